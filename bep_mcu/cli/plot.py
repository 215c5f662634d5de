"""``bep-mcu plot``: a model's learning curve (training and validation accuracy and γ per
epoch, from the training history stored in the model file) as a PNG."""

from __future__ import annotations

import os

import click

from bep_mcu import files, plots
from bep_mcu.cli.common import emit, json_option, load_model, model_argument


@click.command()
@model_argument
@click.option("--out", "out", type=click.Path(dir_okay=False), default="curve.png", help="PNG file to write.")
@json_option
def plot(model_path, out, as_json) -> None:
    """Draw MODEL's learning curve: accuracy and γ per epoch of its training history."""
    plots.require_matplotlib()
    files.check_writable(out)
    model = load_model(model_path)
    png = plots.learning_curve(model, os.path.basename(model_path))
    files.write_atomic(out, lambda f: f.write(png))
    emit({"plot": str(out), "model": str(model_path), "epochs": len(model.training.history), "bytes": len(png)},
         as_json, lambda d: f"wrote {d['plot']}: {d['epochs']} epochs of {d['model']}")
