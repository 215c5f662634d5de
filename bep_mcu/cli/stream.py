"""``bep-mcu stream``: train on the board, batch by batch over the serial link."""

from __future__ import annotations

import click

from bep_mcu.estimator import BEPClassifier
from bep_mcu.device.stream import connect, stream_train
from bep_mcu.cli.common import check_positive, data_options, emit, json_option, load_data, port_options, progress


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@port_options
@data_options
@click.option("--epochs", type=int, default=3, help="Epochs of on-device training.")
@click.option("--batch-size", type=int, default=None, help="Samples per batch [default: the model's].")
@click.option("--check-host", is_flag=True,
              help="Also train the numpy engine on the same batches and compare the final weights (bit_exact).")
@json_option
def stream(model_path, port, timeout, dataset, data_path, test_data, epochs, batch_size, check_host, as_json) -> None:
    """Train the board's network (built from MODEL) on a dataset streamed over --port.

    MODEL supplies the binariser, labels and schedule; its config hash must match the board's."""
    from tqdm import tqdm

    check_positive(epochs=epochs, batch_size=batch_size)
    clf = BEPClassifier.load(model_path)
    data = load_data(dataset, data_path, test_data)
    X, y = clf.encode(data.X_train), clf.encode_labels(data.y_train)
    Xt, yt = clf.encode(data.X_test), clf.encode_labels(data.y_test)
    bs = batch_size or clf.batch_size_
    with connect(port, clf, model_path, timeout) as link:
        progress(f"{port}: {link.info.board}, network 0x{link.info.config_hash:08X}, "
                 f"{link.info.state_bytes} B of training state")
        total = epochs * -(-len(y) // bs)
        with tqdm(total=total, desc="device batches", file=click.get_text_stream("stderr"), disable=None,
                  leave=False) as bar:
            result = stream_train(link, clf, X, y, epochs, bs, Xt, yt, mirror=check_host,
                                  on_batch=lambda: bar.update(1))
        board = link.info.board
    out = result.as_dict()
    out.update(model=model_path, port=port, board=board, batch_size=bs, samples=int(len(y)))
    emit(out, as_json, lambda d: (
        f"{d['board']}: device test accuracy {d['device_test_accuracy']:.4f} after {d['epochs']} epoch(s), "
        f"{d['samples_per_second']:.0f} samples/s, {d['frames_retried']} frames retried"
        + ("" if d["bit_exact"] is None else f", bit-exact with the host: {'yes' if d['bit_exact'] else 'NO'}")))
    if check_host and not result.bit_exact:
        raise SystemExit(1)
