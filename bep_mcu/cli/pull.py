"""``bep-mcu pull``: read the board's trained weights back into a model file."""

from __future__ import annotations

import click

from bep_mcu import files, modelio, validate
from bep_mcu.cli.common import check_timeout, emit, json_option, load_model, model_argument, port_options
from bep_mcu.device.stream import connect, pull_model
from bep_mcu.model import MAX_BATCH_SIZE


@click.command()
@model_argument
@port_options
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@click.option("--batch-size", type=int, default=None,
              help="The batch size of the stream that trained the board [default: MODEL's].")
@json_option
def pull(model_path, port, timeout, out, batch_size, as_json) -> None:
    """Copy the hidden weights of the board (streamed from MODEL) into a new model file OUT.

    The file records that its weights came from that board, how many batches the board
    ran since its INIT, and where its training stopped: the epochs done, the schedule's
    state and the samples of the open epoch already trained, so that `bep-mcu stream OUT`
    continues exactly there (after a host crash, too)."""
    check_timeout(timeout)
    if batch_size is not None:
        validate.integer(batch_size, "--batch-size", 1, MAX_BATCH_SIZE)
    files.check_writable(out)
    model = load_model(model_path)
    with connect(port, model, timeout) as link:
        pulled = pull_model(link, model, batch_size)
    modelio.save(pulled, out)
    t = pulled.training
    result = {"model": str(out), "board": t.origin.board, "port": t.origin.port,
              "device_batches": t.origin.device_batches, "batch_counter": t.batch_counter,
              "synapses": pulled.spec.synapses, "epochs": t.epochs, "epoch_samples": t.resume.samples}
    emit(result, as_json, lambda d: f"pulled {d['synapses']} hidden weights from {d['board']} "
                                    f"({d['device_batches']} batches since INIT; {d['epochs']} epoch(s) done, "
                                    f"{d['epoch_samples']} sample(s) into the next) into {d['model']}")
