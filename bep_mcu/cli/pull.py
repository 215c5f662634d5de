"""``bep-mcu pull``: read the board's trained weights back into a model file."""

from __future__ import annotations

import click

from bep_mcu import files, modelio
from bep_mcu.cli.common import check_timeout, emit, json_option, load_model, model_argument, port_options
from bep_mcu.device.stream import connect, pull_model


@click.command()
@model_argument
@port_options
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@json_option
def pull(model_path, port, timeout, out, as_json) -> None:
    """Copy the hidden weights of the board (running MODEL's network) into a new model file OUT.

    The file records that its weights came from that board and how many batches the
    board ran since its INIT."""
    check_timeout(timeout)
    files.check_writable(out)
    model = load_model(model_path)
    with connect(port, model, timeout) as link:
        pulled = pull_model(link, model)
    modelio.save(pulled, out)
    origin = pulled.training.origin
    result = {"model": str(out), "board": origin.board, "port": origin.port, "device_batches": origin.device_batches,
              "batch_counter": pulled.training.batch_counter, "synapses": pulled.spec.synapses}
    emit(result, as_json, lambda d: f"pulled {d['synapses']} hidden weights from {d['board']} "
                                    f"({d['device_batches']} batches since INIT) into {d['model']}")
