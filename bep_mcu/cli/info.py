"""``bep-mcu info``: shapes, parameter counts and state bytes of a saved model, and a
summary of its training history (what a user checks before deploying it)."""

from __future__ import annotations

import click

from bep_mcu.cgen.layout import describe
from bep_mcu.cli.common import emit, json_option, load_model, model_argument
from bep_mcu.model import Model
from bep_mcu.training import FRAME_KINDS


def training_summary(model: Model) -> dict:
    """Where the model's training stands: epochs, samples, the last epoch's errors and
    validation accuracy, the best validation accuracy and its epoch, γ, where it was
    trained, and the test accuracy ``train`` noted (the history is checked by modelio)."""
    t = model.training
    last = t.history[-1] if t.history else {}
    scored = [r for r in t.history if r["val_accuracy"] is not None]
    best = max(scored, key=lambda r: r["val_accuracy"], default=None)  # the first of equals
    notes = {k: t.notes[k] for k in ("dataset", "test_accuracy", "train_accuracy")
             if isinstance(t.notes.get(k), (str, int, float)) and not isinstance(t.notes.get(k), bool)}
    return {"epochs": t.epochs, "samples": t.counters.samples, "batch_size": t.batch_size, "gamma": list(t.gamma),
            "train_error": last.get("train_error"), "val_accuracy": last.get("val_accuracy"),
            "best_val_accuracy": best["val_accuracy"] if best else None, "best_epoch": best["epoch"] if best else None,
            "trained_on": t.origin.board if t.origin.kind == "board" else "host",
            "open_epoch_samples": t.resume.samples if t.resume else None, **notes}


def classifier_summary(model: Model) -> dict:
    """Which frame the classifier's rows came from and the measures that chose it, as the model
    noted them when it was made. Notes are for people and a file's notes are anyone's text, so
    only a known frame and shares in [0, 1] are shown; anything else (and a file written before
    the note) is None."""
    notes = model.training.notes
    frame = notes.get("classifier_frame")
    shares = {key: notes.get(key) for key in ("classifier_leading_share", "classifier_between_class_share")}
    return {"classifier_frame": frame if frame in FRAME_KINDS else None,
            **{key: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 else None
               for key, v in shares.items()}}


def _classifier_kind(d: dict) -> str:
    if d["classifier_frame"] is None:
        return "fixed"
    measures = [f"{name} {d[key]:.2f}" for name, key in (("leading share", "classifier_leading_share"),
                                                          ("between-class share", "classifier_between_class_share"))
                if d[key] is not None]
    return f"fixed, {d['classifier_frame']} frame" + (f": {', '.join(measures)}" if measures else "")


def _training_line(t: dict) -> str:
    parts = [f"training: {t['epochs']} epoch(s), {t['samples']} samples in batches of {t['batch_size']} "
             f"on {t['trained_on']}, gamma {','.join(map(str, t['gamma']))}"]
    if t["train_error"] is not None:
        parts.append(f"last epoch: training error {t['train_error']:.4f}"
                     + ("" if t["val_accuracy"] is None else f", validation accuracy {t['val_accuracy']:.4f}"))
    if t["best_val_accuracy"] is not None:
        parts.append(f"best validation accuracy {t['best_val_accuracy']:.4f} at epoch {t['best_epoch']}")
    if "test_accuracy" in t:
        parts.append(f"test accuracy {t['test_accuracy']:.4f}" + (f" ({t['dataset']})" if "dataset" in t else ""))
    if t["open_epoch_samples"] is not None:
        parts.append(f"stopped {t['open_epoch_samples']} samples into epoch {t['epochs'] + 1}")
    return "; ".join(parts)


def _human(d: dict) -> str:
    lines = [f"{d['model']} network, {d['inputs']} input bits"
             + (f" x {d['steps']} steps (window {d['window']})" if d["model"] == "rnn" else "")
             + f", {d['classes']} classes"
             + (f" (+{d['reserved_classes']} reserved: prototypes a new class takes in bep-mcu adapt)"
                if d["reserved_classes"] else "")
             + f", {d['hidden_bits']}-bit hidden weights, binariser {d['binarizer']}"
             + (", inputs centred on their training means (sparse features; docs/algorithm.md §2.9)"
                if d["centred_inputs"] else "")]
    for layer in d["layers"]:
        lines.append(f"  {layer['name']:<9} {layer['shape'][0]:>5} x {layer['shape'][1]:<5} "
                     f"{layer['synapses']:>9} synapses  hidden {layer['hidden_weight_bytes']:>9} B  "
                     f"packed {layer['packed_weight_bytes']:>8} B"
                     + (f" (+{layer['transpose_bytes']} B transpose: "
                        f"{'the backward pass' if d['model'] == 'rnn' else 'the forward and backward passes'})"
                        if layer["transpose_bytes"] else ""))
    lines.append(f"  classifier {d['classes']} x {d['hidden'][-1]} ({_classifier_kind(d)}): {d['classifier_bytes']} B")
    lines.append(f"training state:  {d['training_state_bytes']} B (the C state buffer: hidden + packed weights + "
                 f"{d['activation_bytes']} B activations and header)")
    lines.append(f"inference state: {d['inference_flash_bytes']} B of flash (packed weights + classifier), "
                 f"{d['inference_ram_bytes']} B of RAM (packed input + activations; generate --inference-only)")
    lines.append(_training_line(d["training"]))
    return "\n".join(lines)


@click.command()
@model_argument
@json_option
def info(model_path, as_json) -> None:
    """Describe MODEL: layers, 1-bit parameters, classes (and prototypes reserved for new
    ones), the classifier's frame, the training and the inference-only footprints, and how its training went."""
    model = load_model(model_path)
    summary = describe(model)
    summary.update(path=model_path, training=training_summary(model), reserved_classes=len(model.reserved),
                   **classifier_summary(model))
    emit(summary, as_json, _human)
