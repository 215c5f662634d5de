"""``bep-mcu firmware``: build a training firmware for one board and report its size
(the planning and building live in ``bep_mcu/board_firmware.py``)."""

from __future__ import annotations

import click

from .. import boards
from ..board_firmware import LEVEL, build
from .common import emit, json_option, progress


def _human(d: dict) -> str:
    def pct(used: int, budget: int) -> str:
        return f"{100.0 * used / budget:.1f} %"

    ram = (f"  RAM   {d['ram_bytes']:>8} of {d['ram_budget']:>8} B ({pct(d['ram_bytes'], d['ram_budget'])}): "
           f"state {d['state_bytes']} + link {d['link_bytes']} (payload {d['max_payload']}) + stack {d['stack_bytes']} "
           f"+ firmware {d['firmware_static_bytes']}; predicted {d['predicted_ram_bytes']}")
    flash = (f"  flash {d['flash_bytes']:>8} of {d['flash_budget']:>8} B ({pct(d['flash_bytes'], d['flash_budget'])}): "
             f"network tables {d['predicted_tables_bytes']} + code and runtime tables "
             f"{d['flash_bytes'] - d['predicted_tables_bytes']}")
    return "\n".join([f"{d['elf']} for {d['board']} ({d['cpu']}), built with -{LEVEL}",
                      f"  text {d['text']}  data {d['data']}  bss {d['bss']}  (arm-none-eabi-size)", ram, flash])


@click.command(name="firmware")
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("--board", "board_name", required=True, type=click.Choice(list(boards.BOARDS)),
              help="Board to build for.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output directory  [default: firmware-<board>]")
@click.option("--name", default="net", help="Network name used in C symbols (bep_<name>_*).")
@json_option
def firmware_cmd(model_path, board_name, out_dir, name, as_json) -> None:
    """Build a training firmware for BOARD running MODEL's network, and report its size.

    Refuses (exit status 2, one line) when the network does not fit the board's RAM or flash.
    """
    result = build(model_path, board_name, out_dir or f"firmware-{board_name}", name, on_progress=progress)
    emit(result.to_dict(), as_json, _human)

