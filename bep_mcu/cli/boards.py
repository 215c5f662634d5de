"""``bep-mcu boards``: the boards bep-mcu builds firmware for."""

from __future__ import annotations

import click

from bep_mcu.cli.common import emit, json_option
from bep_mcu.device import boards as board_table


def _human(d: dict) -> str:
    lines = [f"{'board':<18}{'core':<12}{'RAM':>8}{'flash':>9}  {'status':<17}how to run"]
    for b in d["boards"]:
        lines.append(f"{b['name']:<18}{b['cpu']:<12}{b['ram_bytes'] // 1024:>6} K{b['flash_bytes'] // 1024:>7} K  "
                     f"{b['status']:<17}{b['how_to_run']}")
    return "\n".join(lines)


@click.command()
@json_option
def boards(as_json) -> None:
    """List the boards: core, RAM, flash, status (runs in QEMU, or builds, not run) and how
    to run an image."""
    emit({"boards": [board_table.describe(b) for b in board_table.BOARDS.values()]}, as_json, _human)
