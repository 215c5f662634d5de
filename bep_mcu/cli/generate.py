"""``bep-mcu generate``: write the C99 code of a model into a directory: training code
(runtime + tables + wrappers, the device encoder, the on-device schedule and snapshots)
or, with ``--inference-only``, prediction code from the packed visible weights."""

from __future__ import annotations

import click
import numpy as np

from bep_mcu.cgen import cformat
from bep_mcu.cgen.codegen import check_name, generate as generate_c, with_hidden_bits
from bep_mcu.cli.common import INTEGER, data_options, emit, input_format, input_format_options, json_option, \
    load_data, load_model, model_argument, progress
from bep_mcu.data import inputformat, recalibration
from bep_mcu.errors import BEPError


def _human(d: dict) -> str:
    what = "inference-only code" if d["inference_only"] else "training code"
    memory = (f"flash tables {d['flash_tables_bytes']} B, RAM {d['ram_bytes']} B" if d["inference_only"]
              else f"state {d['state_bytes']} B")
    lines = [f"wrote {len(d['files'])} files of {what} to {d['out']} (network '{d['name']}', {memory}, "
             f"config {d['config_hash']})",
             f"  inputs: {d['input_type']}, scale {','.join(str(s) for s in sorted(set(d['input_scale'])))}"]
    if "calibrated_thresholds" in d:
        lines.append(f"  recalibration: {d['calibrated_thresholds']} input thresholds follow the raw values, one training "
                     f"standard deviation in {d['calibration_window']} values all on one side"
                     if d["calibrated_thresholds"] else "  recalibration: none (binary inputs, or a model file older "
                     "than the training statistics it needs)")
    if "input_report" in d:
        r = d["input_report"]
        lines.append(f"  training data: {r['near_threshold_values']} of {r['values']} values within one quantum of a "
                     f"threshold, {r['saturated_values']} saturated, {r['differing_bits']} bits differ in "
                     f"{r['differing_samples']} samples")
    return "\n".join(lines)


@click.command()
@model_argument
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write.")
@click.option("--name", default="net", help="Network name used in C symbols (bep_<name>_*).")
@click.option("--hidden-bits", type=INTEGER, default=None, help="8 or 16 [default: the model's].")
@click.option("--inference-only", is_flag=True,
              help="Prediction code only: packed visible weights (1 bit each, in flash), the encoder and "
                   "bep_<name>_infer_predict; RAM for activations only. Its files and symbols are not the training "
                   "code's, and both write the same build files: they may share --out.")
@click.option("--url", default=None, metavar="URL",
              help="The library's home page, for library.properties' url and library.json's homepage "
                   "[default: a placeholder under example.com].")
@click.option("--calibration-window", type=INTEGER, default=recalibration.DEFAULT_WINDOW, show_default=True,
              help="How fast the board's input thresholds follow its raw values (bep_<name>_calibrate): a threshold "
                   f"moves one training standard deviation in this many values all on one side (1.."
                   f"{recalibration.MAX_WINDOW}).")
@input_format_options
@data_options
@json_option
def generate(model_path, out_dir, name, hidden_bits, inference_only, url, calibration_window, input_type, input_scale,
             dataset, data_path, test_data, as_json) -> None:
    """Generate self-contained C99 code for MODEL: training code, or with --inference-only
    prediction code. A --dataset/--data (the training data) chooses the input format's
    defaults and reports how the device's integers differ from it."""
    check_name(name)
    if url is not None:
        try:
            cformat.curl(url)
        except ValueError as e:
            raise BEPError(f"--url: {e}") from None
    recalibration.check_window(calibration_window)
    model = with_hidden_bits(load_model(model_path), hidden_bits)
    X = None if dataset is None and data_path is None else load_data(dataset, data_path, test_data).X_train
    fmt = input_format(model, X, input_type, input_scale)
    _, thresholds, op = inputformat.point_thresholds(model.encoder)
    if X is None and input_scale is None and op != "==" and np.any(thresholds != np.round(thresholds)):
        progress("note: the encoder's thresholds are not integers, and scale 1 is exact for integer inputs only: "
                 "give the training data (--data/--dataset) or --input-scale to choose the device's resolution")
    gen = generate_c(model, out_dir, name, fmt, inference_only, url, calibration_window)
    result = {"out": str(gen.directory), "name": gen.name, "files": gen.files, "config_hash": gen.config_hash,
              "inference_only": inference_only, **fmt.describe()}
    if gen.inference is not None:
        result.update({"flash_tables_bytes": gen.inference.weight_bytes + gen.inference.classifier_bytes,
                       "ram_bytes": 4 * gen.inference.work_words})
    else:
        kinds = gen.plan.bytes_by_kind()
        result.update({"state_bytes": gen.plan.state_bytes, **{f"{k}_bytes": v for k, v in kinds.items()},
                       "calibrated_thresholds": gen.plan.followed, "calibration_window": calibration_window})
    if X is not None:
        result["input_report"] = inputformat.report(model.encoder, fmt, X)
    emit(result, as_json, _human)
