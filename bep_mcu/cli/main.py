"""Entry point: the click group, the commands it registers, and the error policy.

A ``BEPError`` (a user mistake) prints ``error: <one line>`` on standard error and exits
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import click

from bep_mcu import __version__
from bep_mcu.errors import BEPError
from bep_mcu.cli import demo as demo_cmd
from bep_mcu.cli import emulate as emulate_cmd
from bep_mcu.cli import eval as eval_cmd
from bep_mcu.cli import firmware as firmware_cmd
from bep_mcu.cli import generate as generate_cmd
from bep_mcu.cli import golden as golden_cmd
from bep_mcu.cli import info as info_cmd
from bep_mcu.cli import plot as plot_cmd
from bep_mcu.cli import pull as pull_cmd
from bep_mcu.cli import size as size_cmd
from bep_mcu.cli import stream as stream_cmd
from bep_mcu.cli import sweep as sweep_cmd
from bep_mcu.cli import train as train_cmd
from bep_mcu.cli import verify as verify_cmd


class UserError(click.ClickException):
    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BEPError as e:
            raise UserError(str(e)) from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="bep-mcu")
def cli() -> None:
    """Train fully-binary networks with Binary Error Propagation, on the host and on Cortex-M."""


cli.add_command(train_cmd.train)
cli.add_command(eval_cmd.evaluate)
cli.add_command(info_cmd.info)
cli.add_command(generate_cmd.generate)
cli.add_command(golden_cmd.golden)
cli.add_command(size_cmd.size)
cli.add_command(verify_cmd.verify)
cli.add_command(firmware_cmd.firmware_cmd)
cli.add_command(emulate_cmd.emulate)
cli.add_command(stream_cmd.stream)
cli.add_command(pull_cmd.pull)
cli.add_command(demo_cmd.demo)
cli.add_command(sweep_cmd.sweep_cmd)
cli.add_command(plot_cmd.plot)


def main() -> None:
    """Console entry point: every user mistake, click's usage errors included, is one line."""
    try:
        cli.main(prog_name="bep-mcu", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        raise SystemExit(130) from None
    except click.ClickException as e:
        message = e.format_message().replace("\n", " ")
        hint = f" (see 'bep-mcu {e.ctx.info_name} --help')" if getattr(e, "ctx", None) and e.ctx.parent else ""
        click.echo(f"error: {message}{hint}", err=True)
        raise SystemExit(e.exit_code) from None
