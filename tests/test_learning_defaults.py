"""Defaults that must hold on data nobody tuned for (docs/research/untuned-data.md): the
input code gives a tabular network enough bits whatever its feature count, thresholds do
not collapse on repeated values (and the C encoder reproduces them), an RNN's thresholds
per time point (thermometer:N:point) give near-identical series bits of their own, the epoch
budget follows the training error, and the benchmark's generated and derived sets.""" 

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bep_mcu import modelio, training
from bep_mcu.bench import (BASELINE_SETS, FRESH2_KEYS, FRESH3_KEYS, FRESH4_KEYS, FRESH5_KEYS, FRESH6_KEYS, FRESH_KEYS,
                            HOLDOUT_SETS, KINDS_SETS, SPARSE_KEYS, Parser, parse_config, set_keys)
from bep_mcu.data import inputformat, recalibration
from bep_mcu.data.binarize import distinct_quantile_cuts, make_binarizer, tabular_levels
from bep_mcu.data.datasets import lengthen_series, load_dataset, shorten_series
from bep_mcu.engine.schedule import ProgressBudget

from .conftest import assert_error_after_progress, assert_ok, assert_same_weights, assert_user_error, blobs, fit, invoke, \
    last_json, series, timeless
from .test_modelio import forge
from .test_standalone_c import assert_encoder_exact

# ------------------------------------------------------------------ thresholds


def test_repeated_values_keep_distinct_thresholds():
    """A pixel that is 0 in 80 % of the images: plain quantiles gave 0, 0, 0, 0.2 (three
    constant bits, dropped); each cut is now a different place, the rest shared out above."""
    x = np.concatenate([np.zeros(80), np.arange(1.0, 21.0)])
    np.testing.assert_array_equal(distinct_quantile_cuts(x, 4), [0.5, 5.5, 10.5, 15.5])
    bits = make_binarizer("thermometer:4").fit(x[:, None]).transform(x[:, None])
    assert (bits.min(axis=0) != bits.max(axis=0)).all()  # no constant bit left


def test_without_repeats_the_cuts_are_the_quantiles():
    b = make_binarizer("thermometer:3").fit(np.arange(1.0, 6.0)[:, None])
    np.testing.assert_array_equal(b.thresholds, [[1.5, 2.5, 3.5]])  # the bits of quantiles 2, 3, 4
    x = np.random.default_rng(0).normal(size=1000)
    np.testing.assert_allclose(distinct_quantile_cuts(x, 8), np.quantile(x, np.arange(1, 9) / 9), atol=0.01)


def test_fewer_distinct_values_than_levels_share_the_bits():
    np.testing.assert_array_equal(distinct_quantile_cuts(np.array([0.0, 1, 0, 1, 2]), 4), [0.5, 0.5, 1.5, 1.5])
    np.testing.assert_array_equal(distinct_quantile_cuts(np.array([3.0, 3.0]), 2), [3.0, 3.0])  # constant


def test_zero_heavy_integer_pixels_encode_bit_exactly_in_c(tmp_path):
    g = np.random.default_rng(1)
    X = np.where(g.random((200, 12)) < 0.75, 0, g.integers(1, 256, (200, 12))).astype(np.float64)
    y = (X[:, :6].sum(axis=1) > X[:, 6:].sum(axis=1)).astype(np.int64)
    model = fit(X, y, hidden=(8,), epochs=1)
    assert model.encoder.binarizer.spec() == f"thermometer:{tabular_levels(12)}"
    fmt = inputformat.choose(model.encoder, X, "uint8", (1,) * 12)
    assert_encoder_exact(model, fmt, tmp_path, n=120)


# ------------------------------------------------------------------ thresholds per time point


def shared_bits(model, X) -> float:
    """The share of a step's input bits that are the same in at least 90 % of the series."""
    bits = model.encode(X)[:, :, :-model.encoder.bias_bits]
    agree = np.maximum((bits > 0).mean(axis=0), (bits < 0).mean(axis=0))
    return float((agree >= 0.9).mean())


def test_thresholds_per_time_point_give_near_identical_series_their_own_bits():
    """spectra's series share one shape: with thresholds shared over time most of a step's bits
    are the same in nearly every series (the RNN predicted one class for 90-190 epochs); with
    thresholds per time point hardly any (docs/research/untuned-data.md §4)."""
    data = load_dataset("spectra")
    settings = dict(model="rnn", hidden=(8,), epochs=1)
    shared = fit(data.X_train, data.y_train, **settings)
    own = fit(data.X_train, data.y_train, binarize="thermometer:8:point", **settings)
    assert own.encoder.n_inputs == shared.encoder.n_inputs  # the same bits per step, other thresholds
    assert shared_bits(shared, data.X_train) > 0.8 and shared_bits(own, data.X_train) < 0.05
    assert not recalibration.follows(own.encoder)  # a board cannot follow 286 x 8 thresholds
    assert own.encoder.binarizer.describe() == "thermometer:8 (quantile per time point)"


def test_thresholds_per_time_point_survive_the_model_file(tmp_path):
    X, y = series(60, 24)
    model = fit(X, y, model="rnn", hidden=(8,), epochs=1, binarize="thermometer:4:point")
    modelio.save(model, tmp_path / "m.npz")
    back = modelio.load(tmp_path / "m.npz")
    assert back.encoder.per_point and np.array_equal(back.encode(X), model.encode(X))
    assert back.encoder.binarizer.thresholds.shape == (24, 4)


@pytest.mark.parametrize("spec", ["thermometer:4", "thermometer:4:point"])
def test_a_model_file_whose_thresholds_do_not_fit_its_spec_is_refused(tmp_path, spec):
    """Thresholds of every time point under a shared spec, or one row under :point: one line, exit 2."""
    X, y = series(60, 24)
    other = "thermometer:4:point" if spec == "thermometer:4" else "thermometer:4"
    model = fit(X, y, model="rnn", hidden=(8,), epochs=1, binarize=other)
    modelio.save(model, tmp_path / "m.npz")
    forged = forge(tmp_path / "m.npz", tmp_path / "f.npz",
                   arrays_edit=lambda a: a.update(binarizer_spec=np.array(spec)))
    assert_user_error(invoke("info", forged), "binariser", "features")


def test_thresholds_per_time_point_are_for_an_rnn(tmp_path):
    X, y = blobs(100, features=3)
    np.savez(tmp_path / "t.npz", X=X, y=y)
    result = invoke("train", "--data", tmp_path / "t.npz", "--hidden", "8", "--epochs", "1", "--binarize",
                    "thermometer:4:point", "--out", tmp_path / "m.npz")
    assert_error_after_progress(result.exit_code, result.stderr, ("thermometer:4:point", "rnn"))
    assert not (tmp_path / "m.npz").exists()


def test_an_rnn_at_chance_starts_again_with_thresholds_per_time_point(tmp_path):
    """spectra's RNN (seed 0) predicts one class for nearly all of its first 20 epochs with the
    shared code; fit starts again per time point, and reports the kept run's epochs only
    (docs/research/untuned-data.md §4.2). A code the user chose is kept, stuck or not."""
    data = load_dataset("spectra")
    history: list[dict] = []
    model = training.fit(data.X_train, data.y_train, training.Settings(model="rnn", hidden=(256,), epochs=40),
                         on_epoch=history.append)
    assert model.encoder.per_point and model.encoder.binarizer.spec() == "thermometer:8:point"
    assert model.training.epochs == len(history) == 40 and history[0]["epoch"] == 1
    assert sum(h["train_error"] >= 0.5 for h in history[:training.AT_CHANCE_EPOCHS]) < 5
    np.savez(tmp_path / "s.npz", X=data.X_train, y=data.y_train)
    for code, described in (([], "thermometer:8 (quantile per time point)"),
                            (["--binarize", "thermometer:8"], "thermometer:8 (quantile)")):
        result = invoke("train", "--data", tmp_path / "s.npz", "--model", "rnn", "--hidden", "256", "--epochs", "40",
                        *code, "--out", tmp_path / "m.npz", "--json")
        assert_ok(result)
        assert last_json(result.stdout)["binarize"] == described and last_json(result.stdout)["epochs"] == 40
    errors = modelio.load(tmp_path / "m.npz").training.history[:training.AT_CHANCE_EPOCHS]
    assert sum(h["train_error"] >= 0.5 for h in errors) >= training.AT_CHANCE_EPOCHS // 2  # it was stuck


def test_watching_for_chance_changes_nothing_in_a_run_that_learns():
    """Series that the shared code separates: fit's "auto" RNN is the explicit thermometer:8 one,
    weight for weight and record for record."""
    X, y = series(80, 24)
    seen: list[dict] = []
    auto = training.fit(X, y, training.Settings(model="rnn", hidden=(16,), epochs=30), on_epoch=seen.append)
    chosen = fit(X, y, model="rnn", hidden=(16,), epochs=30, binarize="thermometer:8")
    assert not auto.encoder.per_point
    assert_same_weights(auto.hidden, chosen.hidden)
    assert timeless(seen) == timeless(auto.training.history) == timeless(chosen.training.history)
    short: list[dict] = []  # a run shorter than the watch: its records are passed on at the end
    training.fit(X, y, training.Settings(model="rnn", hidden=(16,), epochs=5), on_epoch=short.append)
    assert [h["epoch"] for h in short] == [1, 2, 3, 4, 5]


# ------------------------------------------------------------------ a coarser code for many bits a step


def coarse(X, y, **settings) -> str | None:
    """The coarser code ``fit`` would also try for the initial model of these settings."""
    s = training.Settings(**settings)
    model = training.initial_model(X, y, s)
    return training.coarse_code(model, s, len(training.split_validation(np.asarray(y), s.val_fraction, s.seed)[1]))


def test_only_an_auto_rnn_with_many_bits_a_step_tries_a_coarser_code():
    """1,100 points: a window of 550, 4,408 bits a step; 24 points: 104 bits. A code the user chose,
    an MLP or no validation split to judge by: no second code (docs/research/untuned-data.md §4.3)."""
    X, y = series(60, 1100)
    assert training.initial_model(X, y, training.Settings(model="rnn")).encoder.n_inputs >= training.COARSE_CODE_BITS
    assert coarse(X, y, model="rnn") == training.COARSE_CODE == "thermometer:2"
    assert coarse(X, y, model="rnn", binarize="thermometer:8") is None
    assert coarse(X, y, model="rnn", val_fraction=0.0) is None
    assert coarse(X, y) is None  # an mlp
    assert coarse(*series(60, 24), model="rnn") is None


def test_the_coarser_code_is_tried_on_the_three_long_bench_rnns_only():
    """Of the benchmark's RNN rows (accuracy table, hold-out, kinds) only those with 5,576-5,848
    bits a step train twice; the others (104-2,408) are untouched."""
    keys = [k for k in BASELINE_SETS + HOLDOUT_SETS + KINDS_SETS if k.endswith(":rnn")]
    tried = {key for key in keys if coarse(*load_train(key), **parse_config(key)[1])}
    assert len(keys) == 12 and tried == {"ACSF1:rnn", "JapaneseVowels-long:rnn", "PickupGestureWiimoteZ-long:rnn"}


@pytest.mark.parametrize("noise_seed, switches", [(5, True), (1, False), (0, True)], ids=["coarser", "default", "tie"])
def test_many_bits_a_step_keep_the_code_validation_prefers(monkeypatch, noise_seed, switches):
    """With the cut lowered to these 40-point series' 168 bits a step, fit trains thermometer:8
    and thermometer:2 and keeps the one with the higher validation accuracy (noise seed 5: 1 of
    6 against 3; seed 1: 5 against 4), a tie the smaller network, thermometer:2's (seed 0: 3 of 6
    each; 448 weights against 1,408); on_epoch sees the kept run only."""
    monkeypatch.setattr(training, "COARSE_CODE_BITS", 100)
    X, y = series(60, 40, seed=noise_seed)
    settings = {"model": "rnn", "hidden": (8,), "epochs": 5}
    seen: list[dict] = []
    auto = training.fit(X, y, training.Settings(**settings), on_epoch=seen.append)
    default, coarser = (fit(X, y, binarize=code, **settings) for code in ("thermometer:8", "thermometer:2"))
    val = training.split_validation(y, training.Settings().val_fraction, 0)[1]
    scores = [m.score(X[val], y[val]) for m in (default, coarser)]
    assert (scores[0] == scores[1]) == (noise_seed == 0) and (scores[0] <= scores[1]) == switches
    assert coarser.spec.synapses < default.spec.synapses
    kept = coarser if switches else default
    assert auto.encoder.binarizer.spec() == kept.encoder.binarizer.spec()
    assert_same_weights(auto.hidden, kept.hidden)
    assert len(seen) == 5 and timeless(seen) == timeless(kept.training.history)


def test_the_default_code_still_falls_back_per_time_point_when_at_chance(monkeypatch):
    """spectra's RNN (seed 0, see above) with the cut lowered to its 1,152 bits a step: the
    default code's run sits at chance and starts again per time point, and that run, not the
    abandoned one, is the candidate weighed against thermometer:2."""
    monkeypatch.setattr(training, "COARSE_CODE_BITS", 1000)
    trained: list[tuple[str, int]] = []
    train = training.train

    def recorded(model, *args, **kwargs):
        result = train(model, *args, **kwargs)
        trained.append((model.encoder.binarizer.spec(), result.training.epochs))
        return result

    monkeypatch.setattr(training, "train", recorded)
    data = load_dataset("spectra")
    model = training.fit(data.X_train, data.y_train, training.Settings(model="rnn", hidden=(256,), epochs=40))
    assert trained == [("thermometer:8", training.AT_CHANCE_EPOCHS), ("thermometer:8:point", 40), ("thermometer:2", 40)]
    assert model.encoder.binarizer.spec() in ("thermometer:8:point", "thermometer:2")


def load_train(key: str):
    data = load_dataset(parse_config(key)[0])
    return data.X_train, data.y_train


# ------------------------------------------------------------------ input bits


@pytest.mark.parametrize("features,levels", [(1, 64), (2, 64), (4, 64), (8, 32), (18, 15), (64, 4), (784, 4)])
def test_tabular_levels_follow_the_feature_count(features, levels):
    assert tabular_levels(features) == levels


def test_cli_gives_two_features_enough_input_bits(tmp_path):
    """Two features used to get thermometer:4, 8 input bits: BEP could not fit its training set."""
    X, y = blobs(200, features=2)
    np.savez(tmp_path / "two.npz", X=X, y=y)
    result = invoke("train", "--data", tmp_path / "two.npz", "--hidden", "16", "--epochs", "2", "--out",
                    tmp_path / "m.npz", "--json")
    assert_ok(result)
    report = last_json(result.stdout)
    model = modelio.load(tmp_path / "m.npz")
    # 128 bits of the two features (and the bias bits fit keeps where validation prefers them)
    assert report["binarize"] == "thermometer:64 (quantile)" and report["inputs"] == 128 + model.encoder.bias_bits
    assert model.encoder.binarizer.spec() == "thermometer:64"
    chosen = invoke("train", "--data", tmp_path / "two.npz", "--hidden", "16", "--epochs", "2", "--binarize",
                    "thermometer:4", "--out", tmp_path / "m4.npz", "--json")
    assert_ok(chosen)
    assert last_json(chosen.stdout)["inputs"] == 8  # a code the user chose is kept


def test_series_and_wide_binary_data_keep_their_codes():
    X, y = blobs(120, features=5)
    wide = np.sign(np.random.default_rng(0).normal(size=(60, 256)))
    assert training.input_code(wide, training.Settings()) == "auto"  # 256 ±1 features or more: passthrough
    assert not training.auto_tabular(wide, training.Settings())  # and the network tuned on Random Prototypes
    assert training.input_code(X[:, :, None].repeat(3, axis=2), training.Settings()) == "auto"  # a series
    assert training.input_code(X, training.Settings(model="rnn", hidden=(8,))) == "auto"
    assert training.input_code(X, training.Settings()) == "thermometer:52"


@pytest.mark.parametrize("features,copies", [(1, 64), (5, 52), (16, 16), (64, 4), (100, 3), (255, 2), (256, 1)])
def test_a_binary_feature_gets_copies_of_its_bit_up_to_the_tabular_target(features, copies):
    assert tabular_levels(features, binary=True) == copies  # no minimum of four: copies carry no information


def test_binary_rows_of_few_features_take_the_tabular_path(tmp_path):
    """Flags, one-hot categories, binarised images: F < 256 binary features get ceil(256 / F)
    copies of each bit (each weight then takes ceil(256 / F) + 1 values, not two), the tabular
    margin and fit's second candidate; 0/1 and ±1 alike. The C encoder makes the same bits."""
    X, y = blobs(200, features=5)
    for bits in ((X > 0).astype(np.float64), np.sign(X)):
        assert training.auto_tabular(bits, training.Settings())
        assert training.input_code(bits, training.Settings()) == "thermometer:52"
    (tmp_path / "0").mkdir()
    (tmp_path / "1").mkdir()
    for i, (bits, input_type) in enumerate((((X > 0).astype(np.float64), "uint8"), (np.sign(X), "int8"))):
        model = fit(bits, y, hidden=(128,), epochs=1, bias_bits=0)
        encoded = model.encode(bits)
        assert encoded.shape[1] == 5 * 52  # every copy kept: none is constant
        assert all(np.array_equal(encoded[:, 52 * f:52 * (f + 1)], np.repeat(np.where(bits[:, [f]] > 0, 1, -1), 52, 1))
                   for f in range(5))
        assert model.hyper.r == training.TABULAR_ONE_LAYER_R
        _, second = training.candidates(bits, y, training.Settings(seed=0))
        assert second is not None and second.bias_bits == training.TABULAR_BIAS_BITS
        fmt = inputformat.choose(model.encoder, bits, input_type, (1,) * 5)
        assert_encoder_exact(model, fmt, tmp_path / str(i), n=120)


def test_cli_trains_binary_features_bit_exact_in_c(tmp_path):
    """`bep-mcu train` on a file of 0/1 flags, defaults but the size, then `verify`: the generated
    C, reading the raw flags through its encoder, trains as numpy does."""
    g = np.random.default_rng(3)
    X = g.integers(0, 2, (300, 10)).astype(np.float64)
    y = (X[:, 0].astype(int) ^ X[:, 1].astype(int)) | (X[:, 2:5].sum(axis=1) >= 2)
    np.savez(tmp_path / "flags.npz", X_train=X[:240], y_train=y[:240], X_test=X[240:], y_test=y[240:])
    result = invoke("train", "--data", tmp_path / "flags.npz", "--hidden", "32", "--epochs", "3", "--out",
                    tmp_path / "m.npz", "--json")
    assert_ok(result)
    assert last_json(result.stdout)["binarize"] == "thermometer:26 (quantile)"
    result = invoke("verify", tmp_path / "m.npz", "--data", tmp_path / "flags.npz", "--epochs", 3, "--json")
    assert_ok(result)
    assert last_json(result.stdout)["bit_exact"] is True


# ------------------------------------------------------------------ the epoch budget


def replay(budget: ProgressBudget, errors: list[int]) -> int:
    """The epoch after which the budget stops on these error counts (0: it never stops)."""
    return next((i + 1 for i, e in enumerate(errors) if budget.end_epoch(e)), 0)


def test_budget_stops_once_the_error_stops_falling():
    # 1,000 samples: a gain is 10 errors; minimum 20 epochs, window 10, cap 80
    falling = [1000 - 10 * i for i in range(100)]  # a gain every epoch
    assert replay(ProgressBudget(1000, 20), falling) == 80  # the cap
    flat_after_30 = [max(500, 1000 - 20 * i) for i in range(100)]  # reaches 500 at epoch 26
    assert replay(ProgressBudget(1000, 20), flat_after_30) == 26 + 10
    early_plateau = [300] * 100
    assert replay(ProgressBudget(1000, 20), early_plateau) == 20  # never before the minimum
    slow = [1000 - 2 * i for i in range(200)]  # 2 a epoch: 10 every 5 epochs, still falling
    assert replay(ProgressBudget(1000, 20), slow) == 80  # the cap
    noise = [500 + (5 if i % 2 else 0) for i in range(100)]  # wobbles under a gain: not progress
    assert replay(ProgressBudget(1000, 20), noise) == 20


def test_budget_window_gain_and_cap():
    b = ProgressBudget(537, 83)
    assert (b.minimum, b.window, b.gain, b.cap) == (83, 20, 5, 332)
    small = ProgressBudget(25, 400)
    assert (small.window, small.gain, small.cap) == (100, 1, 1600)


def test_fit_follows_the_training_error_and_an_epoch_count_is_exact():
    X, y = blobs(300, features=4, classes=3, seed=2)
    y = np.where(np.random.default_rng(0).random(300) < 0.3, (y + 1) % 3, y)  # noisy labels: slow progress
    history: list[dict] = []
    model = training.fit(X, y, training.Settings(hidden=(16,), seed=0), on_epoch=history.append)
    n_train = len(training.split_validation(y, 0.1, 0)[0])
    minimum = training.default_epochs(n_train)
    errors = [round(h["train_error"] * n_train) for h in history]
    assert model.training.epochs == len(history) == replay(ProgressBudget(n_train, minimum), errors)
    assert minimum < len(history) <= 4 * minimum  # the old budget stopped at the minimum
    fixed = training.fit(X, y, training.Settings(hidden=(16,), seed=0, epochs=7))
    assert fixed.training.epochs == 7


# ------------------------------------------------------------------ the benchmark's sets


def test_generated_sets_are_fixed_and_shaped():
    for name, shape, classes in (("moons", (800, 2), 2), ("circles", (800, 2), 2), ("iris", (120, 4), 3),
                                 ("classification-20", (801, 20), 3), ("digits-28", (1438, 784), 10),
                                 ("spectra", (28, 286, 1), 2)):
        a, b = load_dataset(name), load_dataset(name)
        assert a.X_train.shape == shape and len(np.unique(a.y_train)) == classes, name
        assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test), name
    assert (load_dataset("digits-28").X_train == 0).mean() > 0.7  # mostly zeros, like MNIST


def test_long_series_keep_the_padding_flat():
    X = np.array([[[1.0], [3.0], [3.0]]])
    np.testing.assert_allclose(lengthen_series(X, 2)[0, :, 0], [1, 1.8, 2.6, 3, 3, 3])
    long = load_dataset("ucr-long:JapaneseVowels")
    assert long.X_train.shape == (270, 116, 12) and long.name == "ucr-long:JapaneseVowels"


# The fresh held-out check (docs/accuracy.md, "Held-out check"): key → (dataset, train shape, test shape, classes).
FRESH_SHAPES = {
    "wine:mlp": ("wine", (142, 13), (36, 13), 3),
    "breast_cancer:mlp": ("breast_cancer", (456, 30), (113, 30), 2),
    "hastie:mlp": ("hastie", (800, 10), (200, 10), 2),
    "quantiles:mlp": ("quantiles", (799, 6), (201, 6), 3),
    "multiclass-30:mlp": ("multiclass-30", (799, 30), (201, 30), 5),
    "blobs-12:mlp": ("blobs-12", (800, 12), (200, 12), 5),
    "ACSF1-down:mlp": ("ucr-down:ACSF1", (100, 182, 1), (100, 182, 1), 10),
    "ACSF1-down:rnn": ("ucr-down:ACSF1", (100, 182, 1), (100, 182, 1), 10),
    "ArrowHead-noisy:mlp": ("ucr-noisy:ArrowHead", (36, 251, 1), (175, 251, 1), 3),
    "ArrowHead-noisy:rnn": ("ucr-noisy:ArrowHead", (36, 251, 1), (175, 251, 1), 3),
}


# The second held-out check, frozen before any run (docs/accuracy.md, "Held-out check").
FRESH2_SHAPES = {
    "diabetes-3:mlp": ("diabetes-3", (354, 10), (88, 10), 3),
    "friedman-2:mlp": ("friedman-2", (800, 10), (200, 10), 2),
    "swissroll-4:mlp": ("swissroll-4", (800, 3), (200, 3), 4),
    "sparse-50:mlp": ("sparse-50", (800, 50), (200, 50), 3),
    "clusters-4:mlp": ("clusters-4", (800, 4), (200, 4), 2),
    "Covid3Month_disc:mlp": ("ucr:Covid3Month_disc", (140, 84, 1), (61, 84, 1), 3),
    "Covid3Month_disc:rnn": ("ucr:Covid3Month_disc", (140, 84, 1), (61, 84, 1), 3),
    "JapaneseVowels-noisy:mlp": ("ucr-noisy:JapaneseVowels", (270, 29, 12), (370, 29, 12), 9),
    "PickupGestureWiimoteZ-down:rnn": ("ucr-down:PickupGestureWiimoteZ", (50, 45, 1), (50, 45, 1), 10),
}


# The third, tabular only, frozen before any run (docs/accuracy.md, "Third held-out check").
FRESH3_SHAPES = {
    "friedman2-3:mlp": ("friedman2-3", (799, 4), (201, 4), 3),
    "friedman3-2:mlp": ("friedman3-2", (800, 4), (200, 4), 2),
    "regression-20-4:mlp": ("regression-20-4", (800, 20), (200, 20), 4),
    "classification-6c:mlp": ("classification-6c", (800, 15), (200, 15), 6),
    "aniso-3:mlp": ("aniso-3", (799, 2), (201, 2), 3),
    "shells-4:mlp": ("shells-4", (800, 4), (200, 4), 4),
}


# The fourth, tabular of three classes or more, frozen before any run (docs/accuracy.md, "Fourth held-out check").
FRESH4_SHAPES = {
    "friedman1-4:mlp": ("friedman1-4", (800, 10), (200, 10), 4),
    "regression-6-5:mlp": ("regression-6-5", (800, 6), (200, 6), 5),
    "sparse-uncorrelated-3:mlp": ("sparse-uncorrelated-3", (799, 10), (201, 10), 3),
    "scurve-5:mlp": ("scurve-5", (800, 3), (200, 3), 5),
    "quantiles-5:mlp": ("quantiles-5", (800, 3), (200, 3), 5),
    "classification-4c:mlp": ("classification-4c", (800, 10), (200, 10), 4),
    "blobs-7:mlp": ("blobs-7", (798, 6), (202, 6), 7),
}


# The fifth, the same kind, frozen before any run (docs/accuracy.md, "Fifth held-out check").
FRESH5_SHAPES = {
    "regression-12-4:mlp": ("regression-12-4", (800, 12), (200, 12), 4),
    "lowrank-5:mlp": ("lowrank-5", (800, 16), (200, 16), 5),
    "friedman1-3:mlp": ("friedman1-3", (799, 6), (201, 6), 3),
    "product-3:mlp": ("product-3", (799, 5), (201, 5), 3),
    "shells8-4:mlp": ("shells8-4", (800, 8), (200, 8), 4),
    "classification-5c:mlp": ("classification-5c", (800, 8), (200, 8), 5),
    "blobs-row-5:mlp": ("blobs-row-5", (800, 4), (200, 4), 5),
}


# The sixth: rows of binary features, frozen before any run (docs/accuracy.md, "Sixth held-out check").
FRESH6_SHAPES = {
    "flags-16-2:mlp": ("flags-16-2", (800, 16), (200, 16), 2),
    "onehot-6-4:mlp": ("onehot-6-4", (800, 30), (200, 30), 4),
    "weighted-12-3:mlp": ("weighted-12-3", (799, 12), (201, 12), 3),
    "digits-bin-16:mlp": ("digits-bin-16", (1438, 16), (359, 16), 10),
    "bernoulli-5:mlp": ("bernoulli-5", (801, 24), (199, 24), 5),
    "sparse-120-2:mlp": ("sparse-120-2", (800, 120), (200, 120), 2),
    "bits-6-2:mlp": ("bits-6-2", (800, 6), (200, 6), 2),
}
# Sparse indicators and counts (docs/accuracy.md, "Sparse features").
SPARSE_SHAPES = {
    "indicators-300-5:mlp": ("indicators-300-5", (1600, 300), (400, 300), 2),
    "indicators-300-10:mlp": ("indicators-300-10", (1600, 300), (400, 300), 2),
    "indicators-60-3:mlp": ("indicators-60-3", (1600, 60), (400, 60), 2),
    "counts-300:mlp": ("counts-300", (1600, 300), (400, 300), 2),
    "counts-40-4:mlp": ("counts-40-4", (1600, 40), (400, 40), 4),
}


@pytest.mark.parametrize("group, keys, shapes", [("fresh", FRESH_KEYS, FRESH_SHAPES),
                                                  ("fresh2", FRESH2_KEYS, FRESH2_SHAPES),
                                                  ("fresh3", FRESH3_KEYS, FRESH3_SHAPES),
                                                  ("fresh4", FRESH4_KEYS, FRESH4_SHAPES),
                                                  ("fresh5", FRESH5_KEYS, FRESH5_SHAPES),
                                                  ("fresh6", FRESH6_KEYS, FRESH6_SHAPES),
                                                  ("sparse", SPARSE_KEYS, SPARSE_SHAPES)])
def test_fresh_group_keys_parse_and_load_with_their_shapes(group, keys, shapes):
    assert set_keys(group, Parser()) == keys == list(shapes)
    for key, (name, train, test, classes) in shapes.items():
        dataset, kwargs = parse_config(key)
        assert dataset == name and kwargs.get("hidden") == ((256,) if key.endswith(":rnn") else None), key
        a, b = load_dataset(name), load_dataset(name)
        assert (a.X_train.shape, a.X_test.shape, len(np.unique(a.y_train))) == (train, test, classes), key
        assert np.array_equal(np.unique(a.y_train), np.unique(a.y_test)), key  # every class on both sides
        assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.X_test, b.X_test), key  # fixed seeds


def test_derived_series_are_shortened_or_noisy_copies_of_the_original():
    X = np.arange(10.0).reshape(1, 5, 2)  # 5 points, 2 channels
    np.testing.assert_allclose(shorten_series(X, 2)[0], [[1, 2], [5, 6]])  # block means, remainder dropped
    plain, noisy = load_dataset("ucr:ArrowHead"), load_dataset("ucr-noisy:ArrowHead")
    assert np.array_equal(plain.y_test, noisy.y_test)
    noise = np.concatenate([(noisy.X_train - plain.X_train).ravel(), (noisy.X_test - plain.X_test).ravel()])
    assert 0.2 < noise.std() / plain.X_train.std() < 0.3 and abs(noise.mean()) < 0.01


def test_bench_keys_of_the_new_sets():
    assert parse_config("moons:mlp") == ("moons", {})  # the CLI's defaults
    assert parse_config("classification-8:mlp") == ("classification-8", {})
    assert parse_config("JapaneseVowels-long:rnn") == ("ucr-long:JapaneseVowels", {"model": "rnn", "hidden": (256,)})
    for key, words in (("classification-99:mlp", "2..64"), ("Nope-long:mlp", "names no UCR set"),
                       ("Nope-down:rnn", "names no UCR set")):
        out = subprocess.run([sys.executable, "-m", "bep_mcu.bench", "accuracy", "--sets", key],
                             capture_output=True, text=True, timeout=120)
        last = out.stderr.strip().splitlines()[-1]
        assert out.returncode == 2 and "Traceback" not in out.stderr and f"'{key}'" in last and words in last, last
        assert not out.stdout


def test_bench_row_keeps_each_seeds_training_curve():
    out = subprocess.run([sys.executable, "-m", "bep_mcu.bench", "accuracy", "--sets", "iris:16", "--seeds", "2",
                          "--json"], capture_output=True, text=True, timeout=600, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])["rows"][0]
    curves = row["bep"]["curves"]
    assert len(curves) == 2 and all(len(c["train_error"]) == len(c["val_accuracy"]) >= 1 for c in curves)


def test_unknown_generated_name_is_one_line(tmp_path):
    assert_user_error(invoke("train", "--dataset", "classification-1", "--out", tmp_path / "m.npz"),
                      "classification-<F>", "2..64")


# ------------------------------------------------------------------ a threshold per neuron for tabular data


def sphere(n: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features, class 1 outside a sphere (as scikit-learn's make_hastie_10_2)."""
    X = np.random.default_rng(seed).normal(size=(n, features))
    return X, (np.sum(X ** 2, axis=1) > features - 0.7).astype(np.int64)


def shifted_classes(n: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of Gaussian features shifted along the diagonal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return rng.normal(size=(n, features)) + 0.8 * y[:, None], y


def test_only_a_tabular_mlp_left_to_its_defaults_tries_bias_bits():
    """A tabular MLP whose code and bias bits were left alone, with a validation split to judge:
    64 bias bits tried beside none (with its widths left alone, as two layers of 256); fit_shapes
    gives both shapes (64 inputs apart) for the demo's memory check. Bias bits or a
    code the user chose, an RNN, ±1 data of 256 features or more, or no validation split: no
    other model (±1 data of fewer features is tabular data: test_binary_rows_of_few_features...)."""
    X, y = sphere(300, 4, 0)
    split = len(training.split_validation(y, training.Settings().val_fraction, 0)[1])
    assert split and training.threshold_bits(X, training.Settings(), split) == training.TABULAR_BIAS_BITS == 64
    for settings in ({"bias_bits": 0}, {"bias_bits": 8}, {"binarize": "thermometer:8"}, {"model": "rnn"}):
        assert training.threshold_bits(X, training.Settings(**settings), split) is None, settings
    wide = np.sign(np.random.default_rng(0).normal(size=(len(X), 256)))
    assert training.threshold_bits(wide, training.Settings(), split) is None  # wide ±1 data: passthrough
    assert training.threshold_bits(np.sign(X), training.Settings(), split) == 64  # four ±1 features: tabular
    assert training.threshold_bits(X, training.Settings(), 0) is None
    shapes = training.fit_shapes(X, y, training.Settings())
    assert [(m.encoder.bias_bits, m.spec.hidden) for m in shapes] == [(0, (512,)), (64, (256, 256))]
    assert shapes[1].spec.n_inputs == shapes[0].spec.n_inputs + 64
    # widths the user chose (even the default's) are kept: bias bits only
    assert [m.spec.hidden for m in training.fit_shapes(X, y, training.Settings(hidden=(512,)))] == [(512,), (512,)]
    assert len(training.fit_shapes(X, y, training.Settings(bias_bits=0))) == 1


@pytest.mark.parametrize("data, switches", [(sphere(300, 4, 2), True), (shifted_classes(300, 4, 0), False)],
                         ids=["sphere", "tie"])
def test_a_tabular_mlp_keeps_the_bias_bits_validation_prefers(data, switches):
    """fit trains both and keeps the model with the higher validation accuracy: a sphere's class
    boundary needs a threshold per neuron (validation 0.63 without bias bits, 0.97 with 64); on
    shifted classes both score 0.71 and the default (none: the smaller network) is kept. on_epoch sees the kept run."""
    X, y = data
    settings = {"hidden": (32,), "epochs": 10}
    seen: list[dict] = []
    auto = training.fit(X, y, training.Settings(**settings), on_epoch=seen.append)
    without, with_bias = (fit(X, y, bias_bits=b, **settings) for b in (0, 64))
    val = training.split_validation(y, training.Settings().val_fraction, 0)[1]
    scores = [m.score(X[val], y[val]) for m in (without, with_bias)]
    assert scores[0] < scores[1] if switches else scores[0] == scores[1]
    kept = with_bias if switches else without
    assert auto.encoder.bias_bits == kept.encoder.bias_bits == (64 if switches else 0)
    assert_same_weights(auto.hidden, kept.hidden)
    assert len(seen) == 10 and timeless(seen) == timeless(kept.training.history)


def test_a_tabular_mlp_left_to_its_widths_tries_its_bias_bits_as_two_layers():
    """Widths left to their default: the bias-bit candidate is two hidden layers of 256 (fewer
    weights than 512 with the bias bits), kept where validation prefers it: on a sphere in 8
    features validation 0.60 with one layer of 512, 0.87 with them."""
    X, y = sphere(300, 8, 0)
    auto = training.fit(X, y, training.Settings(epochs=10))
    one, two = (fit(X, y, epochs=10, **kw) for kw in ({"bias_bits": 0, "hidden": (512,)},
                                                      {"bias_bits": 64, "hidden": training.TABULAR_DEEP_HIDDEN}))
    val = training.split_validation(y, training.Settings().val_fraction, 0)[1]
    assert one.score(X[val], y[val]) < two.score(X[val], y[val])
    assert auto.spec.hidden == (256, 256) and auto.encoder.bias_bits == 64
    assert_same_weights(auto.hidden, two.hidden)


def test_common_mode_of_balanced_sparse_and_constant_bits():
    balanced = np.array([[1, -1], [-1, 1], [1, 1], [-1, -1]], dtype=np.float32)
    assert training.common_mode(balanced.mean(axis=0)) == (0.0, 0.0)
    sparse = -np.ones((20, 3), dtype=np.float32)
    sparse[0, 0] = sparse[1, 1] = 1  # two bits set once in 20 rows (mean -0.9); the third is constant: not counted
    ratio, mean = training.common_mode(sparse.mean(axis=0))
    assert ratio == pytest.approx(0.81 / 0.19) and ratio > training.SPARSE_COMMON_MODE and mean == pytest.approx(0.9)
    assert training.common_mode(-np.ones((4, 2)).mean(axis=0)) is None  # nothing varies


def test_one_class_warning_only_where_the_labels_are_not_one_class():
    """Predictions of one class are flagged unless the labels are that lopsided themselves."""
    X, y = blobs(200, seed=4)
    model = training.fit(X, y, training.Settings(hidden=(32,), epochs=3))
    assert training.one_class_warning(model, X, y) is None  # it learnt the blobs
    same = np.repeat(X[:1], len(X), axis=0)  # one row 200 times: one prediction, against labels of three classes
    text = training.one_class_warning(model, same, y)
    assert text.startswith(f"the model predicts one class ('{model.predict(X[:1])[0]}') for 100% of its 200")
    assert "sparse" not in text  # no input bit varies: not the sparse case
    lopsided = np.where(np.arange(len(y)) == 0, y[0] + 1, y[0])  # 199 of one label
    assert training.one_class_warning(model, same, lopsided) is None
    assert training.one_class_warning(model, X[:0], y[:0]) is None
