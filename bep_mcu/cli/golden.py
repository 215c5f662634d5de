"""``bep-mcu golden``: write golden vectors (inputs and the numpy engine's state after
every batch) that C drivers replay and compare bit for bit (format: bep_mcu/twin/golden.py)."""

from __future__ import annotations

import click

from bep_mcu.twin.golden import DEFAULT_BATCHES, write_golden_file
from bep_mcu.cli.common import emit, json_option


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("--dataset", "dataset", metavar="NAME",
              help="Built-in dataset (prototypes[:key=value,...], digits, ucr:<Name>); its training part is used.")
@click.option("--data", "data_path", type=click.Path(dir_okay=False),
              help="CSV or NPZ file; its training part is used.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Golden file to write.")
@click.option("--batches", type=int, default=DEFAULT_BATCHES, help="Number of batches to record.")
@click.option("--batch-size", type=int, default=None, help="Samples per batch [default: the model's].")
@json_option
def golden(model_path, dataset, data_path, out, batches, batch_size, as_json) -> None:
    """Write golden vectors for MODEL: batches of the data, the expected predictions and
    every layer's hidden weights after each batch (numpy engine; reproducible bytes)."""
    result = write_golden_file(model_path, out, dataset=dataset, data_path=data_path, batches=batches,
                               batch_size=batch_size)
    emit(result, as_json, lambda d: (
        f"wrote {d['out']} ({d['bytes']} B): {d['batches']} batches x {d['batch_size']} samples of {d['dataset']}, "
        f"{d['triggered']} triggered, config {d['config_hash']}"))
