"""``bep-mcu verify``: prove the generated C learns exactly like the numpy engine."""

from __future__ import annotations

import click

from bep_mcu.cli.common import progress_bar, INTEGER, check_positive, data_options, emit, json_option, load_data, load_model, \
    model_argument
from bep_mcu.training import encoded
from bep_mcu.twin.verify import build_twin, summary, verify as run_verify


@click.command()
@model_argument
@data_options
@click.option("--epochs", type=INTEGER, default=5, help="Epochs to train side by side.")
@click.option("--batch-size", type=INTEGER, default=None, help="Batch size [default: the model's].")
@click.option("--patience", type=INTEGER, default=1,
              help="Epochs without a better training accuracy before γ grows (1 exercises γ changes).")
@click.option("--grow-gamma-every", type=INTEGER, default=None,
              help="Also grow γ every N epochs, to be sure the run crosses γ changes.")
@click.option("--name", default="net", help="Network name of the generated C.")
@click.option("--c-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Use this generated directory (e.g. hand-modified) instead of generating one.")
@json_option
def verify(model_path, dataset, data_path, test_data, epochs, batch_size, patience, grow_gamma_every, name, c_dir,
           as_json) -> None:
    """Train MODEL with numpy and with its C twin side by side; compare all state after every batch."""
    check_positive(epochs=epochs, batch_size=batch_size, patience=patience, grow_gamma_every=grow_gamma_every)
    model = load_model(model_path)
    data = load_data(dataset, data_path, test_data)
    train = encoded(model, data.X_train, data.y_train)
    twin = build_twin(model, name, c_dir)
    bs = batch_size or model.training.batch_size
    with progress_bar("batches", "batch", epochs * -(-len(train) // bs), leave=False) as bar:
        report = run_verify(model, twin, train, epochs, bs, patience, grow_gamma_every,
                            on_batch=lambda *_: bar.update(1))
    out = {**summary(report, bs), "model": model_path}

    def human(d: dict) -> str:
        head = "bit-exact" if d["bit_exact"] else f"DIVERGED at {d['first_divergence']}"
        return (f"{head}: {d['batches']} batches of {d['batch_size']} over {d['epochs']} epoch(s); "
                f"numpy {d['numpy_samples_per_second']:.0f} samples/s, C twin {d['c_samples_per_second']:.0f} "
                f"samples/s ({d['speedup']:.1f}x)")

    emit(out, as_json, human)
    if not report.bit_exact:
        raise SystemExit(1)
