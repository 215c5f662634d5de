"""Centred inputs (docs/algorithm.md §2.9, docs/accuracy.md "Sparse features"): which models take
them, that they stop the collapse on sparse features, and that a centred model trains in the
generated C, predicts in the inference-only library and learns on a board as numpy does, to the bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bep_mcu import modelio, training
from bep_mcu.data.datasets import load_dataset
from bep_mcu.engine.network import CENTRE_ONE, MAX_CENTRED_INPUTS, Network, centre_offsets, centre_shifts
from bep_mcu.errors import BEPError
from bep_mcu.training import Settings

from .conftest import assert_board_trains_as_host, assert_user_error, blobs, invoke, needs_qemu
from .test_inference_only import assert_predictions_equal_numpy
from .test_modelio import forge


def indicators(n: int, features: int = 120, share: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows of sparse indicators and a label that is a linear score of all of them."""
    g = np.random.default_rng(seed)
    X = (g.random((n, features)) < share).astype(np.float64)
    score = (X - share) @ g.standard_normal(features)
    return X, (score > np.median(score)).astype(np.int64)


def test_offsets_and_shifts_are_the_integers_the_c_runtime_computes():
    W = np.array([[1, 1, -1, -1], [-1, -1, -1, -1]])
    M = np.array([-230, 100, 129, -128])
    # row 0: -230 + 100 - 129 + 128 = -131 -> floor((-131 + 128) / 256) = -1; row 1: 129 -> floor(257 / 256) = 1
    assert centre_offsets(W, M).tolist() == [-1.0, 1.0]
    assert centre_shifts(M).tolist() == [-1.0, 0.0, 1.0, 0.0]  # rarer than one row in four: |M| > 128


def test_a_new_model_is_centred_where_its_inputs_are_sparse():
    X, y = indicators(400)
    model = training.new_model(X, y, Settings(hidden=(32,)))
    bits = model.encode(X)
    M = model.input_means
    assert M is not None and M.dtype == np.int16 and M.shape == (bits.shape[1],)
    m = (bits > 0).mean(axis=0) * 2 - 1
    expected = np.where(np.abs(m) == 1, 0, np.round(m * CENTRE_ONE))
    assert np.array_equal(model.input_means, expected)
    assert training.common_mode(m)[0] > training.SPARSE_COMMON_MODE
    assert np.array_equal(training.input_bit_means(model.encoder, X), m)  # chunked: the same means, exactly
    # balanced inputs (a thermometer of blobs): not centred, unless asked for; sparse ones on request not
    Xb, yb = blobs(200)
    assert training.new_model(Xb, yb, Settings(hidden=(32,))).input_means is None
    assert training.new_model(Xb, yb, Settings(hidden=(32,), centre="on")).input_means is not None
    assert training.new_model(X, y, Settings(hidden=(32,), centre="off")).input_means is None
    # bias bits are constant: M = 0 for them
    biased = training.new_model(X, y, Settings(hidden=(32,), bias_bits=8))
    assert (biased.input_means[-8:] == 0).all()


def test_auto_leaves_a_fan_in_too_wide_for_the_offsets_and_on_refuses_it():
    """An offset as large as the fan-in must fit the int16 pre-activations: "auto" does not centre
    more than MAX_CENTRED_INPUTS input bits (the warning of a collapse still says what happened);
    "on" is one error naming the limit."""
    X, y = indicators(200, features=MAX_CENTRED_INPUTS + 1, share=0.1, seed=7)  # no column constant
    model = training.new_model(X, y, Settings(hidden=(8,)))
    assert model.spec.n_inputs == MAX_CENTRED_INPUTS + 1 and model.input_means is None
    assert training.common_mode(training.input_bit_means(model.encoder, X))[0] > training.SPARSE_COMMON_MODE
    with pytest.raises(BEPError, match=f"exceed {MAX_CENTRED_INPUTS}"):
        training.new_model(X, y, Settings(hidden=(8,), centre="on"))


def test_an_rnn_reads_its_bits_as_they_are():
    X = np.random.default_rng(0).random((60, 12, 1))
    y = np.arange(60) % 2
    assert training.new_model(X, y, Settings(model="rnn", hidden=(16,), window=4)).input_means is None
    with pytest.raises(BEPError, match="for an mlp's first layer"):  # refused as the settings are made
        Settings(model="rnn", hidden=(16,), window=4, centre="on")
    assert_user_error(invoke("train", "--dataset", "ucr:GunPoint", "--model", "rnn", "--centre", "on"),
                      "--centre on", "an mlp's first layer")


def test_centring_stops_the_collapse_on_sparse_indicators():
    """indicators-300-5 (docs/accuracy.md, "Sparse features"): every seed predicts one class for
    every sample without centring; centred, the defaults learn it (QAT: 82.7)."""
    data = load_dataset("indicators-300-5")
    centred = training.fit(data.X_train, data.y_train, Settings(seed=0))
    plain = training.fit(data.X_train, data.y_train, Settings(seed=0, centre="off"))
    assert centred.input_means is not None and plain.input_means is None
    assert plain.score(data.X_test, data.y_test) == 0.5
    assert centred.score(data.X_test, data.y_test) > 0.8
    assert training.one_class_warning(centred, data.X_train, data.y_train) is None


def test_the_offsets_follow_every_repacked_row():
    """After training, each row's offset is the one its final visible weights give."""
    X, y = indicators(300)
    model = training.fit(X, y, Settings(hidden=(32, 16), epochs=3))
    net = model.network()
    trained = Network(net.spec, net.params, [h.copy() for h in net.H], net.P, net.seed, input_means=model.input_means)
    assert np.array_equal(trained.offset, centre_offsets(np.where(model.hidden[0] >= 0, 1, -1), model.input_means))
    moved = model.network()
    moved.train_batch(model.encode(X[:50]), model.encode_labels(y[:50]))
    assert np.array_equal(moved.offset, centre_offsets(moved.W[0], model.input_means))


@pytest.mark.parametrize("hidden, bits, batch", [("48", "8", "10"), ("40,24", "16", "1")])
def test_a_centred_model_trains_bit_exact_in_c(tmp_path, hidden, bits, batch):
    """`bep-mcu train` on sparse indicators, then `verify`: the generated C (the centring table,
    the offsets per row, the centred update) trains as numpy does, to the bit."""
    X, y = indicators(400, seed=2)
    np.savez(tmp_path / "d.npz", X_train=X[:300], y_train=y[:300], X_test=X[300:], y_test=y[300:])
    result = invoke("train", "--data", tmp_path / "d.npz", "--hidden", hidden, "--hidden-bits", bits, "--epochs", 2,
                    "--out", tmp_path / "m.npz")
    assert result.exit_code == 0, result.output
    assert modelio.load(tmp_path / "m.npz").input_means is not None
    result = invoke("verify", tmp_path / "m.npz", "--data", tmp_path / "d.npz", "--epochs", 3, "--batch-size", batch,
                    "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["bit_exact"] is True


def test_a_centred_model_predicts_in_the_inference_library_as_numpy_does(tmp_path):
    X, y = indicators(300, seed=3)
    model = training.fit(X, y, Settings(hidden=(40, 24), epochs=2))
    assert model.input_means is not None
    assert_predictions_equal_numpy(model, X, tmp_path)


@needs_qemu
def test_a_board_trains_a_centred_model_as_the_host_does(tmp_path):
    """The board reads the centring table from its firmware: a centred model streamed to firmware on
    an emulated board ends with the host's weights and test accuracy, bit for bit."""
    X, y = indicators(400, seed=4)
    model = training.fit(X[:300], y[:300], Settings(hidden=(48,), epochs=2, seed=1))
    assert model.input_means is not None
    assert_board_trains_as_host(model, X, y, tmp_path)


@pytest.mark.parametrize("edit, words", [
    (lambda a: a["input_means"].__setitem__(3, 257), ("input_means", "[-256, 256]")),
    (lambda a: a["input_means"].__setitem__(0, -300), ("input_means", "[-256, 256]")),
    (lambda a: a.update(input_means=a["input_means"][:-1]), ("input_means", "int16 of shape")),
    (lambda a: a.update(input_means=a["input_means"].astype(np.int32)), ("input_means", "int16 of shape")),
])
def test_a_forged_centring_table_is_refused_before_any_c_is_rendered(tmp_path, edit, words):
    """The table travels in the model file to the generated C: a hostile one (out of range, another
    shape or type) is one error line naming it, for `info` and `generate`, which writes nothing."""
    X, y = indicators(200, seed=5)
    model = training.fit(X, y, Settings(hidden=(32,), epochs=1))
    assert model.input_means is not None
    modelio.save(model, tmp_path / "m.npz")
    bad = forge(tmp_path / "m.npz", tmp_path / "bad.npz", arrays_edit=edit)
    assert_user_error(invoke("info", bad), *words)
    assert_user_error(invoke("generate", bad, "--out", tmp_path / "c"), *words)
    assert not (tmp_path / "c").exists()


def test_a_centring_table_forged_into_an_rnn_or_a_plain_model_is_refused(tmp_path):
    """The table is an mlp's: one forged into an rnn's file is one error line; one added to a plain
    mlp's file is read like any other (validated) and changes its config hash, so a board built
    without it is told apart."""
    X = np.random.default_rng(0).random((60, 12, 1))
    y = np.arange(60) % 2
    rnn = training.fit(X, y, Settings(model="rnn", hidden=(16,), window=4, epochs=1))
    modelio.save(rnn, tmp_path / "rnn.npz")
    bad = forge(tmp_path / "rnn.npz", tmp_path / "bad.npz",
                arrays_edit=lambda a: a.update(input_means=np.zeros(rnn.spec.n_inputs, dtype=np.int16)))
    assert_user_error(invoke("info", bad), "centred inputs", "not an rnn's")
    assert_user_error(invoke("generate", bad, "--out", tmp_path / "c"), "centred inputs", "not an rnn's")
    assert not (tmp_path / "c").exists()
    Xb, yb = blobs(120)
    plain = training.fit(Xb, yb, Settings(hidden=(16,), epochs=1))
    modelio.save(plain, tmp_path / "plain.npz")
    added = modelio.load(forge(tmp_path / "plain.npz", tmp_path / "added.npz", arrays_edit=lambda a: a.update(
        input_means=np.full(plain.spec.n_inputs, -200, dtype=np.int16))))
    assert added.input_means is not None and added.config_hash != plain.config_hash


def test_info_says_the_inputs_are_centred(tmp_path):
    X, y = indicators(200, seed=6)
    for centre in ("auto", "off"):
        model = training.fit(X, y, Settings(hidden=(32,), epochs=1, centre=centre))
        modelio.save(model, tmp_path / f"{centre}.npz")
        shown = json.loads(invoke("info", tmp_path / f"{centre}.npz", "--json").stdout)
        assert shown["centred_inputs"] is (centre == "auto")
        human = invoke("info", tmp_path / f"{centre}.npz").stdout
        assert ("inputs centred on their training means" in human) is (centre == "auto")
