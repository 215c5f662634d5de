"""``bep-mcu emulate``: run a firmware image on an emulated board, its UART on a TCP port.

Prints ``socket://127.0.0.1:PORT`` (with ``--json``: one object with ``url``, ``port``,
``board``, ``elf``, ``machine``) as soon as QEMU listens, then runs until QEMU exits
or Ctrl-C; QEMU is stopped in every case. Other commands (or pyserial) connect to the
URL; the board starts when the first client connects.
"""

from __future__ import annotations

import sys

import click

from bep_mcu.device import boards
from bep_mcu.device.emulate import EmulatedBoard, recorded_board
from bep_mcu.errors import BEPError
from bep_mcu.cli.common import IntegerRange, json_option, progress

EMULATED = [b.name for b in boards.BOARDS.values() if b.emulated]


@click.command()
@click.argument("firmware_path", metavar="FIRMWARE", type=click.Path(dir_okay=False))
@click.option("--board", "board_name", default=None, type=click.Choice(list(boards.BOARDS)),
              help=f"Board the firmware was built for [default: the one the image records] "
                   f"(emulated: {', '.join(EMULATED)}).")
@click.option("--tcp-port", "tcp_port", type=IntegerRange(1, 65535), default=None,
              help="TCP port of the board's UART on 127.0.0.1; other commands reach it with "
                   "--port socket://127.0.0.1:TCP_PORT  [default: a free one]")
@json_option
def emulate(firmware_path, board_name, tcp_port, as_json) -> None:
    """Run FIRMWARE (from bep-mcu firmware) in QEMU until it exits or Ctrl-C."""
    board = EmulatedBoard(firmware_path, board_name or recorded_board(firmware_path), tcp_port)
    try:
        url = board.start()
        result = {"url": url, "port": board.port, "board": board.board.name, "machine": board.board.qemu,
                  "elf": str(firmware_path)}
        if as_json:
            import json

            sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
        else:
            click.echo(url)
        sys.stdout.flush()
        progress(f"QEMU {board.board.qemu} running {firmware_path}; Ctrl-C stops it")
        status = board.wait()
        if status not in (0, -15):
            raise BEPError(f"QEMU stopped with status {status}"
                           + (" (the firmware faulted)" if status == 3 else ""))
    except KeyboardInterrupt:
        progress("stopping QEMU")
    finally:
        board.stop()
