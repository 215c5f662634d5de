"""``bep-mcu golden``: write golden vectors (inputs and the numpy engine's state after
every batch) that C drivers replay and compare bit for bit (format: bep_mcu/twin/golden.py)."""

from __future__ import annotations

import hashlib

import click

from bep_mcu import files, modelio
from bep_mcu.cli.common import INTEGER, emit, json_option, load_data, model_argument
from bep_mcu.training import encoded
from bep_mcu.twin import golden as golden_file


@click.command()
@model_argument
@click.option("--dataset", "dataset", metavar="NAME",
              help="Built-in dataset (prototypes[:key=value,...], digits, ucr:<Name>); its training part is used.")
@click.option("--data", "data_path", type=click.Path(),
              help="A data file or folder as train's --data; its training part is used.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Golden file to write.")
@click.option("--batches", type=INTEGER, default=golden_file.DEFAULT_BATCHES, help="Number of batches to record.")
@click.option("--batch-size", type=INTEGER, default=None, help="Samples per batch [default: the model's].")
@json_option
def golden(model_path, dataset, data_path, out, batches, batch_size, as_json) -> None:
    """Write golden vectors for MODEL: batches of the data, the expected predictions and
    every layer's hidden weights after each batch (numpy engine; reproducible bytes)."""
    files.check_writable(out)
    raw = files.read_regular(model_path, "model", modelio.MAX_FILE_BYTES)
    model = modelio.load(model_path)
    data = load_data(dataset, data_path, None)
    source = ["--dataset", dataset] if dataset is not None else ["--data", str(data_path)]
    g, payload = golden_file.golden_file(model, encoded(model, data.X_train, data.y_train), data.name, model_path,
                                         hashlib.sha256(raw).hexdigest(), source, batches, batch_size)
    golden_file.write(out, payload)
    emit(golden_file.summary(g, payload, out), as_json, lambda d: (
        f"wrote {d['out']} ({d['bytes']} B): {d['batches']} batches x {d['batch_size']} samples of {d['dataset']}, "
        f"{d['triggered']} triggered, config {d['config_hash']}"))
