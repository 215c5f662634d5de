"""Inference-only output: ``bep-mcu generate MODEL --inference-only``.

The packed visible weights (1 bit per weight, const), the encoder and
``bep_<net>_infer_predict``/``_predict_raw``/``_scores_raw``; RAM is the packed input and two
activation vectors. Asserted:

* 1000-512-10 on ``prototypes``: flash at most 70 KB and RAM at most 4 KB on a Cortex-M4
  at -Os (``size --inference-only``, objects measured with binutils), it fits the
  NUCLEO-F401RE (``size --board nucleo-f401re --inference-only``) where the training
  code does not, and its predictions on the whole test set equal numpy's, from raw
  device values and from packed inputs, and so do the scores (integer logits) of every class;
* the same equality for two hidden layers with 16-bit hidden weights (only the signs
  ship) and for an RNN with a padded last window;
* ``info`` and ``generate`` report the footprint; the directory holds no training runtime, and
  it is a drop-in library (build files, an Arduino example) whose files and symbols are not
  the training library's (tests/test_package.py builds both from one directory);
* bad options are one ``error:`` line.
"""

from __future__ import annotations

import numpy as np
import pytest

from bep_mcu import modelio
from bep_mcu.cgen.codegen import generate
from bep_mcu.data import inputformat
from bep_mcu.data.datasets import load_dataset
from bep_mcu.engine import bits
from bep_mcu.twin.cffi_twin import InferenceTwin

from .conftest import assert_ok, assert_user_error, fit, invoke, last_json, needs_arm, series

FILES = sorted(["CMakeLists.txt", "INFERENCE.md", "library.json", "library.properties", "zephyr/Kconfig",
                "zephyr/module.yml", "examples/net_predict/net_predict.ino",
                *(f"src/{f}" for f in ("bep_encode.c", "bep_encode.h", "bep_infer.c", "bep_infer.h", "bep_net_infer.c",
                                       "bep_net_infer.h", "bep_status.c", "bep_status.h"))])


@pytest.fixture(scope="module")
def proto(tmp_path_factory):
    """1000-512-10 on the full prototypes set (one epoch: the weights' values do not matter here)."""
    path = tmp_path_factory.mktemp("proto") / "proto.npz"
    assert_ok(invoke("train", "--dataset", "prototypes", "--hidden", "512", "--epochs", "1", "--out", path))
    return path


def assert_predictions_equal_numpy(model, X, tmp_path) -> InferenceTwin:
    fmt = inputformat.choose(model.encoder, X)
    gen = generate(model, tmp_path / "inf", "net", fmt, inference_only=True)
    assert gen.files == FILES
    twin = InferenceTwin(gen)
    V = fmt.to_device(X)
    x_device = inputformat.encode(model.encoder, fmt, V)
    want = model.network().predict(x_device)
    assert np.array_equal(twin.predict_raw(V.reshape(len(V), -1)), want)
    preds, scores = twin.scores_raw(V.reshape(len(V), -1))
    assert np.array_equal(preds, want) and np.array_equal(scores, model.network().logits(x_device))
    x = model.encode(X)
    assert np.array_equal(twin.predict(bits.pack_inputs(x)), model.network().predict(x))
    return twin


def test_1000_512_10_predicts_like_numpy(proto, tmp_path):
    model = modelio.load(proto)
    data = load_dataset("prototypes")
    assert model.spec.layer_shapes() == [(512, 1000)] and len(data.y_test) == 2000
    twin = assert_predictions_equal_numpy(model, data.X_test, tmp_path)
    # a scores buffer shorter than the classes is refused, and nothing is written to it
    ffi, lib = twin.ffi, twin.lib
    x = np.ascontiguousarray(bits.pack_inputs(model.encode(data.X_test[:1]))[0], dtype=np.uint32)
    scores = np.full(10, 7, dtype=np.int32)
    scratch = np.zeros(twin.gen.inference.scratch_words, dtype=np.uint32)
    status = lib.bep_net_infer_scores(ffi.from_buffer("uint32_t[]", x), x.size, ffi.from_buffer("uint32_t[]", scratch),
                                      scratch.size, ffi.from_buffer("int32_t[]", scores), 9, ffi.new("uint16_t *"))
    assert status == lib.BEP_ERR_SIZE and (scores == 7).all()


@needs_arm
def test_1000_512_10_fits_70k_flash_4k_ram_and_the_nucleo(proto):
    result = invoke("size", proto, "--board", "nucleo-f401re", "--inference-only", "--json")
    assert_ok(result)
    d = last_json(result.stdout)
    inf = d["inference"]
    assert d["target"] == "cortex-m4" and d["judged"] == "inference" and inf["fits"] is True
    assert (inf["ram_budget"], inf["flash_budget"]) == (96 * 1024, 512 * 1024)
    os_ = inf["parts"]["inference"]["levels"]["Os"]
    assert os_["flash"] <= 70_000 and os_["ram"] <= 4096
    assert os_["rodata"] >= 512 * 32 * 4 + 10 * 16 * 4  # the packed weights and the classifier, in flash
    assert inf["state_bytes"] == 4 * (32 + 2 * 16) and os_["data"] == os_["bss"] == 0
    # the training code of the same network does not fit the board: that is what inference-only is for
    training = invoke("size", proto, "--board", "nucleo-f401re", "--json")
    assert_user_error_after_report(training, "does not fit on nucleo-f401re", "nucleo-f401re's RAM")


def assert_user_error_after_report(result, *words):
    assert result.exit_code == 3  # DoesNotFit (README: exit statuses)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and all(w in lines[0] for w in words), lines
    assert last_json(result.stdout)["fits"] is False


def test_two_layers_16_bit_and_rnn_predict_like_numpy(tmp_path):
    data = load_dataset("prototypes:classes=5,features=90,samples=900")
    model = fit(data.X_train, data.y_train, hidden=(40, 33), hidden_bits=16, epochs=2)
    assert_predictions_equal_numpy(model, data.X_test, tmp_path / "mlp")
    X, y = series(120, 23, 2)
    model = fit(X, y, model="rnn", hidden=(21,), epochs=2, window=5, binarize="thermometer:3")
    assert model.spec.steps * 5 > 23
    assert_predictions_equal_numpy(model, X, tmp_path / "rnn")


def test_generate_and_info_report_the_footprint(proto, tmp_path):
    result = invoke("generate", proto, "--out", tmp_path / "g", "--inference-only", "--json")
    assert_ok(result)
    d = last_json(result.stdout)
    assert d["inference_only"] is True and d["files"] == FILES
    assert d["flash_tables_bytes"] == 512 * 32 * 4 + 10 * 16 * 4 and d["ram_bytes"] == 4 * (32 + 32)
    assert d["input_type"] == "int8" and set(d["input_scale"]) == {1}
    header = (tmp_path / "g" / "src" / "bep_net_infer.h").read_text()
    assert "#define BEP_NET_INFER_WORK_WORDS 64u" in header and "bep_runtime.h" not in header
    info = last_json(invoke("info", proto, "--json").stdout)
    assert info["inference_flash_bytes"] == d["flash_tables_bytes"] and info["inference_ram_bytes"] == d["ram_bytes"]


def test_generate_reports_the_input_format_on_training_data(tmp_path):
    g = np.random.default_rng(0)
    X = g.normal(0, 2, (200, 4))
    y = (X[:, 0] > 0).astype(int)
    model = tmp_path / "m.npz"
    modelio.save(fit(X, y, hidden=(8,), epochs=1), model)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    result = invoke("generate", model, "--out", tmp_path / "g", "--data", tmp_path / "d.npz", "--json")
    assert_ok(result)
    d = last_json(result.stdout)
    assert d["input_type"] == "int16" and set(d["input_scale"]) == {1000}
    report = d["input_report"]
    assert report["values"] == 4 * 160 and report["differing_bits"] <= report["near_threshold_values"]
    result = invoke("generate", model, "--out", tmp_path / "g2", "--input-type", "int32", "--input-scale", "1,10,100,7",
                    "--json")
    assert_ok(result)
    assert last_json(result.stdout)["input_scale"] == [1, 10, 100, 7] and "input_report" not in last_json(result.stdout)


@pytest.mark.parametrize("args,words", [
    (["--input-scale", "1.5"], ["--input-scale"]),
    (["--input-scale", "1,2"], ["--input-scale", "1000 of them"]),
    (["--inference-only", "--name", "9x"], ["not a valid C identifier"]),
])
def test_generate_option_mistakes(proto, tmp_path, args, words):
    assert_user_error(invoke("generate", proto, "--out", tmp_path / "g", *args), *words)
    assert not (tmp_path / "g").exists()


def test_unknown_input_type_is_one_line(proto, tmp_path, monkeypatch, capsys):
    from .test_size import _run_main, one_error_line

    code, out, err = _run_main(monkeypatch, capsys, "generate", proto, "--out", tmp_path / "g", "--input-type", "float")
    assert out == ""
    one_error_line(code, err, "--input-type", "int16")
