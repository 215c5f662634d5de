"""``bep-mcu info``: shapes, parameter counts and state bytes of a saved model."""

from __future__ import annotations

import click

from bep_mcu.cgen.layout import describe
from bep_mcu.cli.common import emit, json_option, load_model, model_argument


def _human(d: dict) -> str:
    lines = [f"{d['model']} network, {d['inputs']} input bits"
             + (f" x {d['steps']} steps (window {d['window']})" if d["model"] == "rnn" else "")
             + f", {d['classes']} classes, {d['hidden_bits']}-bit hidden weights, binariser {d['binarizer']}"]
    for layer in d["layers"]:
        lines.append(f"  {layer['name']:<9} {layer['shape'][0]:>5} x {layer['shape'][1]:<5} "
                     f"{layer['synapses']:>9} synapses  hidden {layer['hidden_weight_bytes']:>9} B  "
                     f"packed {layer['packed_weight_bytes']:>8} B"
                     + (f" (+{layer['transpose_bytes']} B transpose for the backward pass)"
                        if layer["transpose_bytes"] else ""))
    lines.append(f"  classifier {d['classes']} x {d['hidden'][-1]} (fixed): {d['classifier_bytes']} B")
    lines.append(f"training state:  {d['training_state_bytes']} B (the C state buffer: hidden + packed weights + "
                 f"{d['activation_bytes']} B activations and header)")
    lines.append(f"inference state: {d['inference_flash_bytes']} B of flash (packed weights + classifier), "
                 f"{d['inference_ram_bytes']} B of RAM (packed input + activations; generate --inference-only)")
    return "\n".join(lines)


@click.command()
@model_argument
@json_option
def info(model_path, as_json) -> None:
    """Describe MODEL: layers, 1-bit parameters, the training and the inference-only footprints."""
    summary = describe(load_model(model_path))
    summary["path"] = model_path
    emit(summary, as_json, _human)
