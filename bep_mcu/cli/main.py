"""Entry point: the click group, the commands it registers, and the error policy.

A ``BEPError`` (a user mistake, a network that does not fit, a board that refuses)
prints ``error: <one line>`` on standard error and exits with the error's status
(``bep_mcu/errors.py``); with ``--json`` the last line of standard output is then
``{"error": ..., "exit_status": ...}``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys

import click

from bep_mcu import __version__
from bep_mcu.cli import adapt as adapt_cmd
from bep_mcu.cli import boards as boards_cmd
from bep_mcu.cli import demo as demo_cmd
from bep_mcu.cli import emulate as emulate_cmd
from bep_mcu.cli import eval as eval_cmd
from bep_mcu.cli import firmware as firmware_cmd
from bep_mcu.cli import generate as generate_cmd
from bep_mcu.cli import golden as golden_cmd
from bep_mcu.cli import info as info_cmd
from bep_mcu.cli import plot as plot_cmd
from bep_mcu.cli import presets as presets_cmd
from bep_mcu.cli import pull as pull_cmd
from bep_mcu.cli import size as size_cmd
from bep_mcu.cli import stream as stream_cmd
from bep_mcu.cli import sweep as sweep_cmd
from bep_mcu.cli import train as train_cmd
from bep_mcu.cli import verify as verify_cmd
from bep_mcu.errors import BEPError

USAGE_STATUS = 2


class UserError(click.ClickException):
    def __init__(self, message: str, exit_status: int, as_json: bool) -> None:
        super().__init__(message)
        self.exit_code, self.as_json = exit_status, as_json

    def show(self, file=None) -> None:
        report(self.format_message(), self.exit_code, self.as_json)


def report(message: str, status: int, as_json: bool) -> None:
    """The one error line on stderr; with --json also the JSON object on stdout."""
    message = " ".join(message.split())  # one line, whatever the message held
    if as_json:
        click.echo(json.dumps({"error": message, "exit_status": status}))
    click.echo(f"error: {message}", err=True)


class Group(click.Group):
    def invoke(self, ctx: click.Context):
        as_json = "--json" in ctx.args  # the command's own arguments, before they are parsed
        try:
            return super().invoke(ctx)
        except BEPError as e:
            raise UserError(str(e), e.exit_status, as_json) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="bep-mcu")
def cli() -> None:
    """Train fully-binary networks with Binary Error Propagation, on the host and on Cortex-M.

    Exit status: 0 success, 1 a check failed, 2 bad input, 3 does not fit, 4 the board."""


for command in (train_cmd.train, eval_cmd.evaluate, info_cmd.info, plot_cmd.plot, generate_cmd.generate,
                golden_cmd.golden, size_cmd.size, verify_cmd.verify, boards_cmd.boards, firmware_cmd.firmware_cmd,
                emulate_cmd.emulate, stream_cmd.stream, pull_cmd.pull, adapt_cmd.adapt, demo_cmd.demo,
                sweep_cmd.sweep_cmd, presets_cmd.presets):
    cli.add_command(command)


def main() -> None:
    """Console entry point: every user mistake, click's usage errors included, is one line."""
    try:
        cli.main(prog_name="bep-mcu", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        raise SystemExit(130) from None
    except UserError as e:
        e.show()
        raise SystemExit(e.exit_code) from None
    except click.ClickException as e:
        hint = f" (see 'bep-mcu {e.ctx.info_name} --help')" if getattr(e, "ctx", None) and e.ctx.parent else ""
        report(e.format_message() + hint, e.exit_code, "--json" in sys.argv[1:])
        raise SystemExit(e.exit_code) from None
