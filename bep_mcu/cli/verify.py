"""``bep-mcu verify``: prove the generated C learns exactly like the numpy engine."""

from __future__ import annotations

import click

from bep_mcu.estimator import BEPClassifier
from bep_mcu.twin.verify import build_twin, run_verify
from bep_mcu.cli.common import check_positive, data_options, emit, json_option, load_data


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@data_options
@click.option("--epochs", type=int, default=5, help="Epochs to train side by side.")
@click.option("--batch-size", type=int, default=None, help="Batch size [default: the model's].")
@click.option("--patience", type=int, default=1,
              help="Epochs without a better training accuracy before γ doubles (1 exercises γ changes).")
@click.option("--grow-gamma-every", type=int, default=None,
              help="Also double γ every N epochs, to be sure the run crosses γ changes.")
@click.option("--name", default="net", help="Network name of the generated C.")
@click.option("--c-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Use this generated directory (e.g. hand-modified) instead of generating one.")
@json_option
def verify(model_path, dataset, data_path, test_data, epochs, batch_size, patience, grow_gamma_every, name, c_dir, as_json) -> None:
    """Train MODEL with numpy and with its C twin side by side; compare all state after every batch."""
    from tqdm import tqdm

    check_positive(epochs=epochs, batch_size=batch_size)
    clf = BEPClassifier.load(model_path)
    data = load_data(dataset, data_path, test_data)
    X = clf.encode(data.X_train)
    y = clf.encode_labels(data.y_train)
    twin = build_twin(model_path, clf, name, c_dir)
    bs = batch_size or clf.batch_size_
    total = epochs * -(-len(y) // bs)
    with tqdm(total=total, desc="batches", file=click.get_text_stream("stderr"), disable=None, leave=False) as bar:
        result = run_verify(clf, twin, X, y, epochs, bs, patience, on_batch=lambda _: bar.update(1),
                            grow_every=grow_gamma_every)
    out = result.as_dict()
    out.update(model=model_path, batch_size=bs, samples=int(len(y)),
               speedup=result.c_samples_per_second / result.numpy_samples_per_second)

    def human(d: dict) -> str:
        head = ("bit-exact" if d["bit_exact"] else f"DIVERGED at {d['first_divergence']}")
        return (f"{head}: {d['batches']} batches of {d['batch_size']} over {d['epochs']} epoch(s); "
                f"numpy {d['numpy_samples_per_second']:.0f} samples/s, C twin {d['c_samples_per_second']:.0f} "
                f"samples/s ({d['speedup']:.1f}x)")

    emit(out, as_json, human)
    if not result.bit_exact:
        raise SystemExit(1)
