"""``bep-mcu train``: fit a BEP network on a dataset and write a model file."""

from __future__ import annotations

import time

import click

from bep_mcu import files, modelio, training
from bep_mcu.cli.common import progress_bar, data_options, emit, json_option, load_data, new_settings, progress, \
    setting_options
from bep_mcu.cli.info import classifier_summary
from bep_mcu.errors import BEPError
from bep_mcu.settings import SETTINGS


@click.command()
@data_options
@setting_options
@click.option("--init-from", "init_from", type=click.Path(dir_okay=False), default=None,
              help="Continue training this model (e.g. one pulled from a board); the network, binariser and "
                   "schedule come from it.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default="model.npz", help="Model file to write.")
@json_option
def train(dataset, data_path, test_data, init_from, out, as_json, **chosen) -> None:
    """Train a binary network with BEP and save it."""
    ctx = click.get_current_context()
    epochs, batch_size = chosen["epochs"], chosen["batch_size"]
    if init_from is not None:
        fixed = [s.option for s in SETTINGS
                 if not s.continued and ctx.get_parameter_source(s.name) == click.core.ParameterSource.COMMANDLINE]
        if fixed:
            raise BEPError(f"{', '.join(fixed)}: the network and its settings come from --init-from '{init_from}'")
        base = modelio.load(init_from)
        if batch_size is not None:
            training.Plan.continuing(base, 1, batch_size)  # validates the batch size before any work
    else:
        settings = new_settings(chosen)
    files.check_writable(out)
    data = load_data(dataset, data_path, test_data)
    progress(f"{data.name}: {len(data.y_train)} training and {len(data.y_test)} test samples")
    if init_from is None and training.too_small_to_split(training.plain_labels(data.y_train), settings.val_fraction):
        progress(f"no class is large enough to give a {settings.val_fraction:g} validation split a sample: training "
                 "on all of the data (the split only chooses between candidates; docs/accuracy.md §2)")
    start = time.perf_counter()
    with progress_bar("epochs", "epoch", leave=False) as bar:
        def on_epoch(rec: dict) -> None:
            val = "-" if rec["val_accuracy"] is None else f"{rec['val_accuracy']:.3f}"
            bar.set_postfix(val=val, err=f"{rec['train_error']:.3f}", gamma=rec["gamma"])
            bar.update(1)

        if init_from is not None:
            trained = training.train(base, data.X_train, data.y_train, epochs if epochs is not None else 10,
                                     batch_size, on_epoch=on_epoch)
        else:
            trained = training.fit(data.X_train, data.y_train, settings, on_epoch=on_epoch)
    seconds = time.perf_counter() - start
    new = trained.training.history[len(base.training.history):] if init_from is not None else trained.training.history
    train_seconds = sum(rec["seconds"] for rec in new)
    test_acc = trained.score(data.X_test, data.y_test)
    train_acc = trained.score(data.X_train, data.y_train)
    warning = training.one_class_warning(trained, data.X_train, data.y_train)
    if warning:
        progress(f"warning: {warning}")
    trained = trained.with_training(notes={**trained.training.notes, "dataset": data.name[:1024],
                                           "test_accuracy": test_acc, "train_accuracy": train_acc})
    modelio.save(trained, out)
    spec = trained.spec
    result = {
        "model": str(out), "dataset": data.name, "network": spec.model, "hidden": list(spec.hidden),
        "inputs": spec.n_inputs, "steps": spec.steps, "epochs": trained.training.epochs,
        "batch_size": trained.training.batch_size, "binarize": trained.encoder.binarizer.describe(),
        "test_accuracy": test_acc, "train_accuracy": train_acc, "val_accuracy": new[-1]["val_accuracy"],
        "gamma": list(trained.training.gamma), "seconds": seconds,
        "samples_per_second": (sum(rec["samples_per_second"] * rec["seconds"] for rec in new
                                   if rec["samples_per_second"]) / train_seconds) if train_seconds > 0 else None,
        "seed": trained.training.seed, "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)),
        "preset": chosen["preset"], "classifier_frame": classifier_summary(trained)["classifier_frame"],
        "warning": warning,
    }
    emit(result, as_json, lambda d: (
        f"{d['network']} {d['inputs']}-{'-'.join(map(str, d['hidden']))}-{spec.n_classes} on {d['dataset']}: "
        f"test accuracy {d['test_accuracy']:.4f}, train {d['train_accuracy']:.4f} after {d['epochs']} epochs; "
        f"saved {d['model']}"))
