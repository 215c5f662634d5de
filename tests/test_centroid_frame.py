"""The classifier frame from the class centroids (docs/algorithm.md §2.2, docs/accuracy.md "A frame
from the class centroids"): what it is, which new models take it, and that a model holding it
trains in the generated C as in numpy, to the bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bep_mcu import modelio, training
from bep_mcu.data.datasets import load_dataset
from bep_mcu.engine.classifier import binary_equiangular_frame, centroid_frame, leading_share
from bep_mcu.training import Settings

from .conftest import assert_user_error, invoke
from .test_modelio import forge


def monotone_columns(frame: np.ndarray) -> np.ndarray:
    """Per column: whether it is a threshold of the class order (never goes back once it changed)."""
    steps = np.diff(frame.astype(int), axis=0)
    return (steps >= 0).all(axis=0) | (steps <= 0).all(axis=0)


def ordered_classes(n: int, seed: int = 0, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 6 features whose classes are bins of one linear direction (plus noise)."""
    g = np.random.default_rng(seed)
    X = g.normal(0, 1, (n, 6))
    target = X[:, 0] + X[:, 1] - X[:, 2] + 0.3 * g.normal(0, 1, n)
    return X, np.searchsorted(np.quantile(target, np.arange(1, classes) / classes), target)


def test_centroids_on_a_line_give_every_column_a_threshold_of_their_order():
    direction = np.random.default_rng(1).normal(0, 1, 50)
    centroids = np.outer([0.0, 1.0, 2.5, 3.0, 5.0], direction)
    frame = centroid_frame(centroids, 200, seed=3)
    assert frame.dtype == np.int8 and frame.shape == (5, 200) and set(np.unique(frame)) == {-1, 1}
    assert monotone_columns(frame).all()
    assert (np.abs(frame.sum(axis=0)) < 5).all()  # every column splits the classes
    cuts = {int((col > 0).sum()) if col[-1] > 0 else int((col < 0).sum()) for col in frame.T}
    assert cuts == {1, 2, 3, 4}  # at every one of the four gaps
    assert leading_share(centroids) > 1 - 1e-9
    assert np.array_equal(frame, centroid_frame(centroids, 200, seed=3))
    assert not np.array_equal(frame, centroid_frame(centroids, 200, seed=4))


def test_leading_share_of_classes_in_general_position():
    assert abs(leading_share(np.eye(5)) - 1 / 4) < 1e-9  # a regular simplex: its 4 directions alike
    assert leading_share(np.ones((3, 8))) == 0.0  # every centroid the same
    # three classes span two directions, so the leading one always holds at least half
    g = np.random.default_rng(2)
    assert all(leading_share(g.normal(0, 1, (3, 40))) >= 0.5 for _ in range(50))


def test_a_new_model_takes_the_centroid_frame_where_its_rule_says():
    X, y = ordered_classes(400)
    deep = training.new_model(X, y, Settings(hidden=(64, 32), seed=5, max_classes=6))
    frame = binary_equiangular_frame(6, 32, 5, deep.hyper.alpha)
    centroids = training.class_centroids(deep.encoder, X, y, 4)
    assert leading_share(centroids) >= training.CENTROID_FRAME_MIN_SHARE
    assert np.array_equal(deep.classifier, centroid_frame(centroids, 32, 5))
    assert monotone_columns(deep.classifier).mean() > 0.9 > monotone_columns(frame[:4]).mean()
    assert np.array_equal(deep.reserved, frame[4:])  # classes not seen yet keep the equiangular rows
    # one hidden layer, two classes, or classes spread in many directions: the equiangular frame
    one = training.new_model(X, y, Settings(hidden=(64,), seed=5))
    assert np.array_equal(one.classifier, binary_equiangular_frame(4, 64, 5, one.hyper.alpha))
    two = training.new_model(X, (y >= 2).astype(int), Settings(hidden=(64, 32), seed=5))
    assert np.array_equal(two.classifier, binary_equiangular_frame(2, 32, 5, two.hyper.alpha))
    digits = load_dataset("digits")
    spread = training.new_model(digits.X_train, digits.y_train, Settings(hidden=(64, 32), seed=5))
    assert leading_share(training.class_centroids(spread.encoder, digits.X_train, digits.y_train, 10)) < 0.5
    assert np.array_equal(spread.classifier, binary_equiangular_frame(10, 32, 5, spread.hyper.alpha))
    # a class with no sample in the data the model is built from (partial_fit's first chunk)
    missing = training.new_model(X[y < 3], y[y < 3], Settings(hidden=(64, 32), seed=5), classes=np.arange(4))
    assert np.array_equal(missing.classifier, binary_equiangular_frame(4, 32, 5, missing.hyper.alpha))


def test_a_model_with_the_centroid_frame_trains_bit_exact_in_c(tmp_path):
    """`bep-mcu train` on ordered classes with two hidden layers, then `verify`: the generated C
    (which reads the frame as a table) trains as numpy does, to the bit."""
    X, y = ordered_classes(400, seed=2)
    np.savez(tmp_path / "d.npz", X_train=X[:300], y_train=y[:300], X_test=X[300:], y_test=y[300:])
    result = invoke("train", "--data", tmp_path / "d.npz", "--hidden", "48,32", "--epochs", 3, "--out",
                    tmp_path / "m.npz")
    assert result.exit_code == 0, result.output
    model = modelio.load(tmp_path / "m.npz")
    assert monotone_columns(model.classifier).mean() > 0.9
    assert not np.array_equal(model.classifier, binary_equiangular_frame(4, 32, 0, model.hyper.alpha))
    result = invoke("verify", tmp_path / "m.npz", "--data", tmp_path / "d.npz", "--epochs", 4, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["bit_exact"] is True


@pytest.mark.parametrize("edit, words", [
    (lambda a: a["classifier"].__setitem__((1, 3), 0), ("classifier", "-1 or +1")),
    (lambda a: a["classifier"].__setitem__((0, 0), 7), ("classifier", "-1 or +1")),
    (lambda a: a.update(classifier=a["classifier"][:, :31]), ("classifier", "int8 of shape")),
    (lambda a: a.update(classifier=a["classifier"].astype(np.float32)), ("classifier", "int8 of shape")),
])
def test_a_forged_classifier_is_refused_before_any_c_is_rendered(tmp_path, edit, words):
    """The frame travels in the model file to the generated C: a hostile table (an entry that is
    not ±1, another shape or type) is one error line naming it, for `info` and for `generate`,
    which writes nothing."""
    X, y = ordered_classes(200, seed=3)
    model = training.fit(X, y, Settings(hidden=(48, 32), epochs=1, seed=0))
    modelio.save(model, tmp_path / "m.npz")
    bad = forge(tmp_path / "m.npz", tmp_path / "bad.npz", arrays_edit=edit)
    assert_user_error(invoke("info", bad), *words)
    assert_user_error(invoke("generate", bad, "--out", tmp_path / "c"), *words)
    assert not (tmp_path / "c").exists()
