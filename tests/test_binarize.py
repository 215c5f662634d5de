"""Input binarisers: hand-computed thresholds, fit-on-train-only, round trips."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bep_mcu.data.binarize import (
    Binarizer,
    MedianBinarizer,
    ThermometerBinarizer,
    binarizer_from_arrays,
    is_binary,
    make_binarizer,
)
from bep_mcu.errors import BEPError

# Two features; feature 0 = 1..5, feature 1 = 10, 20, 30, 40, 100.
TRAIN = np.array([[1, 10], [2, 20], [3, 30], [4, 40], [5, 100]], dtype=np.float64)


def test_median_per_feature_hand_computed():
    b = make_binarizer("median").fit(TRAIN)
    np.testing.assert_array_equal(b.thresholds, [3.0, 30.0])
    out = b.transform(TRAIN)
    assert out.dtype == np.int8 and out.shape == (5, 2)
    # Strictly greater: the median itself maps to -1.
    np.testing.assert_array_equal(out, [[-1, -1], [-1, -1], [-1, -1], [1, 1], [1, 1]])


def test_median_global_hand_computed():
    b = make_binarizer("median:global").fit(TRAIN)
    # Sorted values 1 2 3 4 5 10 20 30 40 100: median (5 + 10) / 2 = 7.5.
    np.testing.assert_array_equal(b.transform(TRAIN),
                                  [[-1, 1], [-1, 1], [-1, 1], [-1, 1], [-1, 1]])
    np.testing.assert_array_equal(b.transform(np.array([[7.5, 8.0]])), [[-1, 1]])


def test_thermometer_quantile_hand_computed():
    b = make_binarizer("thermometer:3").fit(TRAIN)
    # Quantiles 1/4, 1/2, 3/4 fall at the 2nd, 3rd and 4th value; each threshold is the cut
    # below that value, halfway from the value before (binarize.distinct_quantile_cuts):
    # feature 0 -> 1.5, 2.5, 3.5; feature 1 -> 15, 25, 35.
    np.testing.assert_array_equal(b.thresholds, [[1.5, 2.5, 3.5], [15, 25, 35]])
    out = b.transform(np.array([[2.5, 40.0], [1.0, 100.0]]))
    assert out.shape == (2, 6) and out.dtype == np.int8
    # Column f*3 + k; bit k is x >= t_k.
    np.testing.assert_array_equal(out, [[1, 1, -1, 1, 1, 1], [-1, -1, -1, 1, 1, 1]])


def test_thermometer_uniform_hand_computed():
    b = make_binarizer("thermometer:4:uniform").fit(TRAIN)
    # Strictly between min and max at k/5: feature 0 spans 1..5, feature 1 spans 10..100.
    np.testing.assert_allclose(b.thresholds, [[1.8, 2.6, 3.4, 4.2], [28, 46, 64, 82]])
    np.testing.assert_array_equal(b.transform(np.array([[3.0, 46.0]])),
                                  [[1, 1, -1, -1, 1, 1, -1, -1]])
    assert b.describe() == "thermometer:4 (uniform)"
    assert make_binarizer("thermometer:4").describe() == "thermometer:4 (quantile)"


def test_fit_on_train_only():
    test = np.array([[100.0, -5.0], [-100.0, 1000.0]])
    b = make_binarizer("median").fit(TRAIN)
    before = b.thresholds.copy()
    np.testing.assert_array_equal(b.transform(test), [[1, -1], [-1, 1]])
    np.testing.assert_array_equal(b.thresholds, before)
    # Fitting on the test rows would give other thresholds and other bits.
    refit = make_binarizer("median").fit(test)
    assert not np.array_equal(refit.thresholds, before)


def test_thermometer_test_data_uses_train_thresholds():
    b = make_binarizer("thermometer:2").fit(TRAIN)
    test = np.array([[10.0, 10.0]])  # above all of feature 0's, below feature 1's 2nd
    np.testing.assert_array_equal(b.transform(test), [[1, 1, -1, -1]])


@pytest.mark.parametrize("values", [[[0, 1], [1, 0], [1, 1]], [[-1, 1], [1, -1], [1, 1]]])
def test_passthrough(values):
    X = np.array(values, dtype=np.float64)
    b = make_binarizer("passthrough").fit(X)
    out = b.transform(X)
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, np.where(X == 1, 1, -1))
    assert b.n_outputs(7) == 7


@pytest.mark.parametrize("values, shown", [
    ([[0.5, 1.0], [0.0, 1.0]], "0.5"),
    ([[-1.0, 0.0], [1.0, 1.0]], "both 0 and -1"),
    ([[2.0, 1.0], [0.0, 1.0]], "2"),
])
def test_passthrough_refuses_non_binary(values, shown):
    pattern = r"passthrough needs data all in .*found " + re.escape(shown)
    with pytest.raises(BEPError, match=pattern):
        make_binarizer("passthrough").fit(np.array(values))


def test_passthrough_refuses_non_binary_test_data():
    b = make_binarizer("passthrough").fit(np.array([[0.0, 1.0]]))
    with pytest.raises(BEPError, match="passthrough needs"):
        b.transform(np.array([[0.3, 1.0]]))


@pytest.mark.parametrize("X, expected", [
    ([[0, 1], [1, 0]], True),
    ([[-1, 1], [1, 1]], True),
    ([[1, 1]], True),
    ([[-1, 0, 1]], False),
    ([[0.5, 1]], False),
    ([[np.nan, 1]], False),
    (np.zeros((0, 3)), False),
    ([["a", "b"]], False),
])
def test_is_binary(X, expected):
    assert is_binary(np.asarray(X)) is expected


@pytest.mark.parametrize("spec", ["median", "median:global", "thermometer:5",
                                  "thermometer:3:uniform", "thermometer:4:point", "passthrough"])
def test_round_trip_through_npz(tmp_path, spec):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 6)) if spec != "passthrough" else rng.integers(0, 2, (40, 6))
    b = make_binarizer(spec).fit(X[:30])
    path = tmp_path / "b.npz"
    np.savez(path, **b.to_arrays())
    with np.load(path, allow_pickle=False) as npz:
        rebuilt = Binarizer.from_arrays(dict(npz))
    assert type(rebuilt) is type(b) and rebuilt.describe() == b.describe()
    np.testing.assert_array_equal(rebuilt.transform(X), b.transform(X))
    for value in b.to_arrays().values():
        assert value.dtype.kind in "iufU"


def test_from_arrays_errors():
    arrays = make_binarizer("thermometer:2").fit(TRAIN).to_arrays()
    with pytest.raises(BEPError, match="missing 'spec'"):
        binarizer_from_arrays({k: v for k, v in arrays.items() if k != "spec"})
    with pytest.raises(BEPError, match=r"thresholds must be finite floats of shape \(2, 2\)"):
        binarizer_from_arrays({**arrays, "thresholds": np.zeros((2, 3))})
    with pytest.raises(BEPError, match="not a median binarizer"):
        MedianBinarizer.from_arrays(arrays)
    assert isinstance(ThermometerBinarizer.from_arrays(arrays), ThermometerBinarizer)


def test_n_outputs():
    assert make_binarizer("thermometer:8").n_outputs(24) == 192
    assert make_binarizer("median").n_outputs(24) == 24


@pytest.mark.parametrize("spec, message", [
    ("thermometer:0", "thermometer bits must be an integer 1..64, got '0'"),
    ("thermometer:65", "got '65'"),
    ("thermometer:x", "got 'x'"),
    ("thermometer:2.5", "got '2.5'"),
    ("thermometer:4:log", "unknown thermometer mode 'log'"),
    ("thermometer", "unknown binarizer 'thermometer'; valid forms: median, median:global"),
    ("sign", "unknown binarizer 'sign'; valid forms"),
    ("median:local", "unknown binarizer 'median:local'"),
])
def test_bad_specs(spec, message):
    with pytest.raises(BEPError, match=re.escape(message)):
        make_binarizer(spec)


def test_feature_count_mismatch_names_both():
    b = make_binarizer("thermometer:2").fit(TRAIN)
    with pytest.raises(BEPError, match="fitted on 2 features, asked to transform 3"):
        b.transform(np.zeros((1, 3)))


@pytest.mark.parametrize("X, message", [
    (np.zeros(5), "must be 2-D"),
    (np.array([[1.0, np.nan]]), "non-finite value at row 0, feature 1"),
    (np.zeros((0, 2)), "input is empty"),
])
def test_bad_fit_inputs(X, message):
    with pytest.raises(BEPError, match=message):
        make_binarizer("median").fit(X)


def test_transform_before_fit_is_a_bug():
    with pytest.raises(RuntimeError):
        make_binarizer("median").transform(TRAIN)


finite = st.floats(-1e6, 1e6, allow_nan=False, width=64)


@settings(max_examples=60, deadline=None)
@given(
    train=arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(1, 4)), elements=finite),
    test=arrays(np.float64, st.tuples(st.integers(1, 10), st.just(1)), elements=finite),
    n_bits=st.integers(1, 9),
    uniform=st.booleans(),
)
def test_thermometer_bits_monotone(train, test, n_bits, uniform):
    spec = f"thermometer:{n_bits}" + (":uniform" if uniform else "")
    b = make_binarizer(spec).fit(train)
    X = np.concatenate([train, np.repeat(test, train.shape[1], axis=1)])
    bits = b.transform(X).reshape(len(X), train.shape[1], n_bits)
    assert set(np.unique(bits)) <= {-1, 1}
    # Bit k+1 set implies bit k set.
    assert not np.any((bits[:, :, 1:] == 1) & (bits[:, :, :-1] == -1))
    # Training max sets every bit (all thresholds lie at or below it).
    top = b.transform(train.max(axis=0, keepdims=True))
    assert np.all(top == 1)
