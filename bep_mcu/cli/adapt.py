"""``bep-mcu adapt``: a model meets the data of its deployment, on a board or in its simulation."""

from __future__ import annotations

import click

from bep_mcu import adapt as adaptation
from bep_mcu import files, modelio
from bep_mcu.cli.common import (INTEGER, NUMBER, check_timeout, data_options, emit, json_option, load_data, load_model,
                                model_argument, progress)
from bep_mcu.data.recalibration import DEFAULT_WINDOW
from bep_mcu.device import boards


def human(r: dict) -> str:
    where = f"{r['board']} ({r['cpu']})" if r["where"] == "board" else f"the host's simulation ({r['cpu']} figures)"
    how = " + ".join(filter(None, [f"{r['labels_used']} labelled samples" + (" (last hidden layer only)" if
                                   r["layers"] == "last" else "") if r["labels_used"] else "",
                                   "recalibration" if r["recalibrated"] else "",
                                   f"{r['replay']} replayed" if r["replay"] else ""])) or "nothing (frozen)"
    lines = [f"adapted on {where}: {r['target']}, {how}, {r['epochs']} epoch(s)",
             f"  target test accuracy  {r['before']:.4f} before, {r['after']:.4f} after "
             f"({r['after'] - r['before']:+.4f})"]
    if r["new_classes"]:
        lines.append(f"  new classes           {', '.join(map(str, r['new_classes']))} (reserved prototypes): "
                     f"{r['after_new_classes']:.4f} after on their test samples, the others "
                     f"{r['before_old_classes']:.4f} before, {r['after_old_classes']:.4f} after")
    if r.get("source_before") is not None:
        lines.append(f"  source test accuracy  {r['source_before']:.4f} before, {r['source_after']:.4f} after "
                     f"({r['source_after'] - r['source_before']:+.4f})")
    if r["bit_exact"] is not None:
        lines.append(f"  bit-exact             {'yes' if r['bit_exact'] else 'NO'} (board = host, every batch)")
    lines.append(f"  cost                  {r['instructions_per_sample']:,} instructions per sample (predicted), "
                 f"RAM {r['ram_bytes']:,} B")
    return "\n".join(lines)


@click.command("adapt")
@model_argument
@data_options
@click.option("--board", "board", default=None, type=click.Choice([b for b, v in boards.BOARDS.items() if v.emulated]),
              help="Boot this emulated board with MODEL's firmware, adapt on it, stop it.")
@click.option("--port", "port", default=None, metavar="URL",
              help="A board already running MODEL's firmware (bep-mcu firmware): /dev/ttyACM0, socket://HOST:PORT.")
@click.option("--timeout", type=NUMBER, default=2.0, help="Seconds to wait for each reply of the board (8 attempts).")
@click.option("--epochs", type=INTEGER, default=adaptation.DEFAULT_EPOCHS,
              help="Passes over the target's training part (training and recalibration).")
@click.option("--labels", type=NUMBER, default=1.0,
              help="Fraction (0..1) of the target's training samples whose labels the board gets; the others only "
                   "recalibrate.")
@click.option("--recalibrate/--no-recalibrate", default=False,
              help="Let the input thresholds follow every target training input first (label-free).")
@click.option("--calibration-window", "window", type=INTEGER, default=DEFAULT_WINDOW,
              help="Recalibration's adaptation rate: values per standard deviation a threshold moves.")
@click.option("--source-data", "source_path", type=click.Path(), default=None,
              help="The data MODEL was trained on (a file or folder, as --data): its test part measures forgetting.")
@click.option("--replay", type=INTEGER, default=0,
              help="Samples of --source-data's training part kept on the board and trained in every epoch.")
@click.option("--layers", default="all", metavar="all|last",
              help="Which hidden layers learn from the labels: all (BEP), or the last alone, the others frozen "
                   "(cheaper per sample on a network of several; the same as all on one).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the adapted model (its new classes and trained weights) here; not with --recalibrate.")
@json_option
def adapt(model_path, dataset, data_path, test_data, board, port, timeout, epochs, labels, recalibrate, window,
          source_path, replay, layers, out, as_json) -> None:
    """Adapt MODEL to target data (--dataset or --data) and measure it before and after.

    On an emulated --board, a board on --port, or, with neither, in the host's simulation of a
    board. Reports target test accuracy before and after, with --source-data the source's
    (forgetting), bit_exact (the board against the host after every batch), labels_used,
    samples_seen, ram_bytes and instructions_per_sample (predicted). --labels 0 --recalibrate
    adapts without any label. A class MODEL has no prototype for takes one it reserved
    (train --max-classes), and is reported with its accuracy (new_classes); a board running
    MODEL's firmware puts it in use and learns it, no new firmware needed. --out writes the
    adapted model, with those classes (the model `pull` needs for the board after)."""
    check_timeout(timeout)
    if out is not None:
        files.check_writable(out)
    model = load_model(model_path)
    target = load_data(dataset, data_path, test_data)
    source = load_data(None, source_path, None) if source_path is not None else None
    keep = None if out is None else lambda adapted: modelio.save(adapted, out)
    report = adaptation.adapt(model, target, epochs, labels, recalibrate, source, replay, board, port, window,
                              timeout, say=progress, keep=keep, layers=layers)
    report.update(model=model_path, out=None if out is None or report["bit_exact"] is False else str(out))
    emit(report, as_json, human)
    if report["bit_exact"] is False:
        raise SystemExit(1)
