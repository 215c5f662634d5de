"""``bep-mcu train``: fit a BEP network on a dataset and write a model file."""

from __future__ import annotations

import time

import click

from bep_mcu import files, modelio, training
from bep_mcu.cli.common import INTEGER, NUMBER, data_options, emit, json_option, load_data, parse_int_list, \
    progress
from bep_mcu.errors import BEPError


@click.command()
@data_options
@click.option("--model", type=click.Choice(["mlp", "rnn"]), default="mlp", help="Binary MLP or binary Elman RNN (BEP-TT).")
@click.option("--hidden", default="512", help="Hidden widths, comma-separated (an rnn takes one).")
@click.option("--epochs", type=INTEGER, default=None, help="Epochs [default: 50, more for small sets].")
@click.option("--batch-size", type=INTEGER, default=None, help="Batch size [default: 100, or 10 below 1000 samples].")
@click.option("--seed", type=INTEGER, default=0,
              help="Seed of initial weights, classifier, order and reinforcement (0..2^32-1).")
@click.option("--binarize", default="auto",
              help="auto | median | median:global | thermometer:N[:uniform] | passthrough "
                   "(auto: passthrough for ±1/0-1 data, else thermometer:8 for series, thermometer:4 for tabular data).")
@click.option("--window", type=INTEGER, default=None, help="RNN window length in points [default: about 2 steps].")
@click.option("--hidden-bits", type=INTEGER, default=8, help="Bits per hidden weight: 8 or 16.")
@click.option("--bias-bits", type=INTEGER, default=None,
              help="Constant +1 input bits (of every step), a threshold per neuron trained like any weight "
                   "[default: 8 for an rnn, 0 for an mlp].")
@click.option("--r", "r", type=NUMBER, default=None,
              help="Trigger margin r, R = floor(r * last width) [default: 0.5 for one hidden layer, "
                   "1.0 for two or more].")
@click.option("--nu", type=NUMBER, default=0.05, help="Gate half-width relative to fan-in.")
@click.option("--gamma", default=None, help="Initial winner-takes-update group size per layer "
              "[default: width/16 for an MLP, width/4 for an RNN].")
@click.option("--p-r", "p_r", type=NUMBER, default=0.5, help="Reinforcement strength p_r.")
@click.option("--sigma", type=NUMBER, default=16.0, help="Std-dev of the initial hidden weights.")
@click.option("--patience", type=INTEGER, default=3,
              help="Epochs without a better stall criterion before γ grows (the validation split from 20 samples "
                   "on, else validation and training predictions pooled).")
@click.option("--gamma-growth", type=NUMBER, default=1.5,
              help="γ's factor after a stall, a multiple of 1/16: γ' = ceil(γ * growth).")
@click.option("--gamma-cap-div", type=INTEGER, default=4,
              help="γ grows to at most max(initial γ, width / this) per layer (1: the full width).")
@click.option("--restore-best/--no-restore-best", default=False,
              help="End with the weights of the epoch with the best stall criterion (docs/accuracy.md: hurts "
                   "with small validation splits).")
@click.option("--val-fraction", type=NUMBER, default=0.1, help="Validation split carved from the training data.")
@click.option("--init-from", "init_from", type=click.Path(dir_okay=False), default=None,
              help="Continue training this model (e.g. one pulled from a board); the network, binariser and "
                   "schedule come from it.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default="model.npz", help="Model file to write.")
@json_option
def train(dataset, data_path, test_data, model, hidden, epochs, batch_size, seed, binarize, window, hidden_bits,
          bias_bits, r, nu, gamma, p_r, sigma, patience, gamma_growth, gamma_cap_div, restore_best, val_fraction, init_from, out,
          as_json) -> None:
    """Train a binary network with BEP and save it."""
    from tqdm import tqdm

    ctx = click.get_current_context()
    if init_from is not None:
        fixed = [f"--{p.replace('_', '-')}" for p in ("model", "hidden", "hidden_bits", "bias_bits", "binarize", "window",
                                                      "r", "nu", "gamma", "p_r", "sigma", "patience", "gamma_growth",
                                                      "gamma_cap_div", "restore_best", "seed")
                 if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE]
        if fixed:
            raise BEPError(f"{', '.join(fixed)}: the network and its settings come from --init-from '{init_from}'")
        base = modelio.load(init_from)
        if batch_size is not None:
            training.Plan.continuing(base, 1, batch_size)  # validates the batch size before any work
    else:
        settings = training.Settings(model=model, hidden=parse_int_list(hidden, "--hidden"), epochs=epochs,
                                     batch_size=batch_size, seed=seed, binarize=binarize, window=window,
                                     hidden_bits=hidden_bits, bias_bits=bias_bits, r=r, nu=nu,
                                     gamma=parse_int_list(gamma, "--gamma"),
                                     p_r=p_r, sigma=sigma, patience=patience, gamma_growth=gamma_growth,
                                     gamma_cap_div=gamma_cap_div, restore_best=restore_best,
                                     val_fraction=val_fraction)
    files.check_writable(out)
    data = load_data(dataset, data_path, test_data)
    progress(f"{data.name}: {len(data.y_train)} training and {len(data.y_test)} test samples")
    start = time.perf_counter()
    with tqdm(desc="epochs", unit="epoch", file=click.get_text_stream("stderr"), disable=None, leave=False) as bar:
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
    trained = trained.with_training(notes={"dataset": data.name[:1024], "test_accuracy": test_acc,
                                           "train_accuracy": train_acc})
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
    }
    emit(result, as_json, lambda d: (
        f"{d['network']} {d['inputs']}-{'-'.join(map(str, d['hidden']))}-{spec.n_classes} on {d['dataset']}: "
        f"test accuracy {d['test_accuracy']:.4f}, train {d['train_accuracy']:.4f} after {d['epochs']} epochs; "
        f"saved {d['model']}"))
