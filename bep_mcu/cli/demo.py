"""``bep-mcu demo``: train on the host, generate, verify, build firmware, learn on an emulated board."""

from __future__ import annotations

import click

from bep_mcu.device import boards
from bep_mcu.demo import DEFAULT_BOARD, DEFAULT_DATASET, human_report, run_demo
from bep_mcu.cli.common import INTEGER, emit, json_option, progress


@click.command()
@click.option("--board", "board_name", default=DEFAULT_BOARD,
              type=click.Choice([b for b, v in boards.BOARDS.items() if v.emulated]), help="Emulated board.")
@click.option("--dataset", default=DEFAULT_DATASET, metavar="NAME", help="Built-in dataset.")
@click.option("--hidden", type=INTEGER, default=None, help="Hidden width [default: 128, 32 on 16 KB boards].")
@click.option("--host-epochs", type=INTEGER, default=10, help="Epochs of pre-training on the host.")
@click.option("--device-epochs", type=INTEGER, default=3, help="Epochs of training on the device.")
@click.option("--seed", type=INTEGER, default=0)
@click.option("--out", "out_dir", default="build/demo", type=click.Path(file_okay=False),
              help="Directory for the model files and the firmware.")
@json_option
def demo(board_name, dataset, hidden, host_epochs, device_epochs, seed, out_dir, as_json) -> None:
    """The whole toolchain end to end on an emulated Cortex-M board."""
    report = run_demo(board_name, dataset, hidden, host_epochs, device_epochs, seed, out_dir, say=progress)
    emit(report, as_json, human_report)
    if not report["bit_exact"]:
        raise SystemExit(1)
