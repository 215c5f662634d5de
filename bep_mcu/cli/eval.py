"""``bep-mcu eval``: accuracy of a saved model on a dataset's test part (or a file)."""

from __future__ import annotations

import click

from bep_mcu.cli.common import emit, json_option, load_model, model_argument
from bep_mcu.data.datasets import load_dataset, read_eval_file
from bep_mcu.errors import BEPError


@click.command("eval")
@model_argument
@click.option("--dataset", "dataset", metavar="NAME", help="Built-in dataset; its test part is evaluated.")
@click.option("--data", "data_path", type=click.Path(),
              help="A data file or folder as train's --data; its test part if it has one, else every row.")
@json_option
def evaluate(model_path, dataset, data_path, as_json) -> None:
    """Evaluate MODEL on a dataset."""
    if (dataset is None) == (data_path is None):
        raise BEPError("give exactly one of --dataset NAME or --data PATH")
    model = load_model(model_path)
    if dataset is not None:
        data = load_dataset(dataset)
        X, y, source = data.X_test, data.y_test, f"{dataset} (test part)"
    else:
        X, y = read_eval_file(data_path)
        source = data_path
    accuracy = model.score(X, y)
    result = {"model": model_path, "data": source, "accuracy": accuracy, "n": int(len(y))}
    emit(result, as_json, lambda d: f"{d['model']} on {d['data']}: accuracy {d['accuracy']:.4f} over {d['n']} samples")
