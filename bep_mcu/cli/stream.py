"""``bep-mcu stream``: train on the board, batch by batch over the serial link."""

from __future__ import annotations

import click

from bep_mcu.cli.common import progress_bar, INTEGER, check_positive, check_timeout, data_options, emit, json_option, load_data, \
    load_model, model_argument, port_options, progress
from bep_mcu.device.stream import connect, stream_train
from bep_mcu.training import encoded


@click.command()
@model_argument
@port_options
@data_options
@click.option("--epochs", type=INTEGER, default=3, help="Epochs of on-device training.")
@click.option("--batch-size", type=INTEGER, default=None, help="Samples per batch [default: the model's].")
@click.option("--check-host", is_flag=True,
              help="Also train the numpy engine on the same batches and compare the final weights (bit_exact).")
@json_option
def stream(model_path, port, timeout, dataset, data_path, test_data, epochs, batch_size, check_host, as_json) -> None:
    """Train the board's network (built from MODEL) on a dataset streamed over --port.

    MODEL supplies the hidden weights the board starts from, the binariser, labels and
    schedule; its config hash must match the board's. A model pulled from a board after an
    interrupted stream continues at the sample where the board stopped (the rest of that
    epoch is the first of --epochs)."""
    check_positive(epochs=epochs, batch_size=batch_size)
    check_timeout(timeout)
    model = load_model(model_path)
    data = load_data(dataset, data_path, test_data)
    train, test = encoded(model, data.X_train, data.y_train), encoded(model, data.X_test, data.y_test)
    bs = batch_size or model.training.batch_size
    resume = model.training.resume
    done = resume.samples if resume else 0
    with connect(port, model, timeout) as link:
        progress(f"{port}: {link.info.board}, network 0x{link.info.config_hash:08X}, "
                 f"{link.info.state_bytes} B of training state")
        if resume is not None:
            progress(f"continuing epoch {resume.epoch + 1} at sample {done} of {len(train)}, where the board stopped")
            if done % bs and done < len(train):
                progress(f"warning: sample {done} lies inside a batch of {bs}: the rest of that batch trains as a "
                         "batch of its own, so the run cannot equal an uninterrupted one (was it streamed with "
                         "another --batch-size?)")
        with progress_bar("device batches", "batch", epochs * -(-len(train) // bs) - done // bs, leave=False) as bar:
            result, _ = stream_train(link, model, train, epochs, bs, test, check_host, on_batch=lambda: bar.update(1))
        board = link.info.board
    out = result.as_dict()
    out.update(model=model_path, port=port, board=board, batch_size=bs, samples=int(len(train)))
    emit(out, as_json, lambda d: (
        f"{d['board']}: device test accuracy {d['device_test_accuracy']:.4f} after {d['epochs']} epoch(s), "
        f"{d['samples_per_second']:.0f} samples/s, {d['frames_retried']} frames retried"
        + ("" if d["bit_exact"] is None else f", bit-exact with the host: {'yes' if d['bit_exact'] else 'NO'}")))
    if check_host and not result.bit_exact:
        raise SystemExit(1)
