"""The classifier frame from the class centroids (docs/algorithm.md §2.2, docs/accuracy.md "A frame
from the class centroids"): what it is, which new models take it, and that a model holding it
trains in the generated C as in numpy, to the bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bep_mcu import modelio, training
from bep_mcu.data.datasets import load_dataset
from bep_mcu.engine.classifier import binary_equiangular_frame, centroid_frame, leading_direction, leading_share
from bep_mcu.training import Settings

from .conftest import assert_board_trains_as_host, assert_user_error, invoke, needs_qemu
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
    # the model notes which frame it took and the share that chose it (for `bep-mcu info`)
    assert deep.training.notes == {"classifier_frame": "centroid",
                                   "classifier_leading_share": round(leading_share(centroids), 4)}
    # two classes, or classes spread in many directions: the equiangular frame
    two = training.new_model(X, (y >= 2).astype(int), Settings(hidden=(64, 32), seed=5))
    assert np.array_equal(two.classifier, binary_equiangular_frame(2, 32, 5, two.hyper.alpha))
    assert two.training.notes == {"classifier_frame": "equiangular"}  # nothing to measure for two classes
    digits = load_dataset("digits")
    spread = training.new_model(digits.X_train, digits.y_train, Settings(hidden=(64, 32), seed=5))
    assert leading_share(training.class_centroids(spread.encoder, digits.X_train, digits.y_train, 10)) < 0.5
    assert np.array_equal(spread.classifier, binary_equiangular_frame(10, 32, 5, spread.hyper.alpha))
    assert spread.training.notes["classifier_frame"] == "equiangular"
    assert spread.training.notes["classifier_leading_share"] < 0.5
    # a class with no sample in the data the model is built from (partial_fit's first chunk)
    missing = training.new_model(X[y < 3], y[y < 3], Settings(hidden=(64, 32), seed=5), classes=np.arange(4))
    assert np.array_equal(missing.classifier, binary_equiangular_frame(4, 32, 5, missing.hyper.alpha))


def shells(n: int, seed: int = 0, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 6 Gaussian features whose classes are nested shells (bins of their norm)."""
    X = np.random.default_rng(seed).normal(0, 1, (n, 6))
    norm = np.linalg.norm(X, axis=1)
    return X, np.searchsorted(np.quantile(norm, np.arange(1, classes) / classes), norm)


def test_one_hidden_layer_takes_the_centroid_frame_only_where_the_leading_direction_separates_the_samples():
    X, y = ordered_classes(400)
    one = training.new_model(X, y, Settings(hidden=(64,), seed=5))
    centroids = training.class_centroids(one.encoder, X, y, 4)
    assert training.between_class_share(one.encoder, X, y, centroids) >= training.CENTROID_FRAME_ONE_LAYER_MIN_BETWEEN
    assert np.array_equal(one.classifier, centroid_frame(centroids, 64, 5))
    # the same values as series (samples, steps, channels) or with a code of the user's: one hidden
    # layer keeps the equiangular frame (measured on tabular data only; series rows lose with it)
    for data, code in ((X[:, :, None], "auto"), (X, "thermometer:8")):
        kept = training.new_model(data, y, Settings(hidden=(64,), seed=5, binarize=code))
        assert np.array_equal(kept.classifier, binary_equiangular_frame(4, 64, 5, kept.hyper.alpha)), code
    # shells: their centroids line up (a high leading share) but the samples do not separate along it
    X, y = shells(400)
    shell = training.new_model(X, y, Settings(hidden=(64,), seed=5))
    centroids = training.class_centroids(shell.encoder, X, y, 4)
    assert leading_share(centroids) >= training.CENTROID_FRAME_MIN_SHARE
    assert training.between_class_share(shell.encoder, X, y, centroids) < training.CENTROID_FRAME_ONE_LAYER_MIN_BETWEEN
    assert np.array_equal(shell.classifier, binary_equiangular_frame(4, 64, 5, shell.hyper.alpha))
    assert shell.training.notes == {
        "classifier_frame": "equiangular", "classifier_leading_share": round(leading_share(centroids), 4),
        "classifier_between_class_share": round(training.between_class_share(shell.encoder, X, y, centroids), 4)}
    # two hidden layers take it on shells all the same (the leading share alone decides there)
    deep = training.new_model(X, y, Settings(hidden=(64, 32), seed=5))
    assert np.array_equal(deep.classifier, centroid_frame(centroids, 32, 5))


def test_between_class_share_is_the_share_of_the_projections_spread_between_classes():
    X, y = ordered_classes(600, seed=4)
    model = training.new_model(X, y, Settings(hidden=(16,), seed=0))
    encoded, centroids = model.encode(X).astype(np.float64), training.class_centroids(model.encoder, X, y, 4)
    proj = encoded @ leading_direction(centroids)
    between = sum((y == k).sum() * (proj[y == k].mean() - proj.mean()) ** 2 for k in range(4))
    expected = between / ((proj - proj.mean()) ** 2).sum()
    for chunk in (7, 4096):  # summed a chunk at a time: the same figure
        assert abs(training.between_class_share(model.encoder, X, y, centroids, chunk) - expected) < 1e-9
    # labels that say nothing of the samples: their centroids differ by chance only
    shuffled = np.random.default_rng(0).permutation(y)
    noise = training.class_centroids(model.encoder, X, shuffled, 4)
    assert training.between_class_share(model.encoder, X, shuffled, noise) < 0.05 < expected


@pytest.mark.parametrize("hidden, width", [("48,32", 32), ("48", 48)])
def test_a_model_with_the_centroid_frame_trains_bit_exact_in_c(tmp_path, hidden, width):
    """`bep-mcu train` on ordered classes with two hidden layers or one, then `verify`: the
    generated C (which reads the frame as a table) trains as numpy does, to the bit."""
    X, y = ordered_classes(400, seed=2)
    np.savez(tmp_path / "d.npz", X_train=X[:300], y_train=y[:300], X_test=X[300:], y_test=y[300:])
    result = invoke("train", "--data", tmp_path / "d.npz", "--hidden", hidden, "--epochs", 3, "--out",
                    tmp_path / "m.npz")
    assert result.exit_code == 0, result.output
    model = modelio.load(tmp_path / "m.npz")
    assert monotone_columns(model.classifier).mean() > 0.8  # the equiangular frame's: about a third
    assert not np.array_equal(model.classifier, binary_equiangular_frame(4, width, 0, model.hyper.alpha))
    result = invoke("verify", tmp_path / "m.npz", "--data", tmp_path / "d.npz", "--epochs", 4, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["bit_exact"] is True


def test_info_says_which_frame_the_classifier_took(tmp_path):
    """`train` reports the frame, and `info` shows it with the measures that chose it, from the
    model file; a file written before models noted it says only "fixed"."""
    X, y = ordered_classes(400, seed=2)
    X_shell, y_shell = shells(400, seed=2)
    cases = {"line": (X, y, "centroid"), "shells": (X_shell, y_shell, "equiangular")}
    for name, (data, labels, frame) in cases.items():
        np.savez(tmp_path / f"{name}.npz", X_train=data[:300], y_train=labels[:300], X_test=data[300:],
                 y_test=labels[300:])
        result = invoke("train", "--data", tmp_path / f"{name}.npz", "--hidden", 32, "--epochs", 1, "--out",
                        tmp_path / f"{name}.bep.npz", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout.strip().splitlines()[-1])["classifier_frame"] == frame
        shown = json.loads(invoke("info", tmp_path / f"{name}.bep.npz", "--json").stdout)
        assert shown["classifier_frame"] == frame
        assert shown["classifier_leading_share"] >= training.CENTROID_FRAME_MIN_SHARE  # both line up
        between = shown["classifier_between_class_share"]
        assert (between >= training.CENTROID_FRAME_ONE_LAYER_MIN_BETWEEN) == (frame == "centroid")
        assert f"(fixed, {frame} frame: leading share " in invoke("info", tmp_path / f"{name}.bep.npz").stdout
        # `train` kept the note beside its own (dataset, accuracies)
        assert modelio.load(tmp_path / f"{name}.bep.npz").training.notes["dataset"].endswith(f"{name}.npz")
    old = forge(tmp_path / "line.bep.npz", tmp_path / "old.npz", meta_edit=lambda m: m["training"].update(
        notes={k: v for k, v in m["training"]["notes"].items() if not k.startswith("classifier")}))
    assert "classifier 4 x 32 (fixed): " in invoke("info", old).stdout
    assert json.loads(invoke("info", old, "--json").stdout)["classifier_frame"] is None
    # a file's notes are anyone's text: an unknown frame or a share outside [0, 1] is not shown
    hostile = forge(tmp_path / "line.bep.npz", tmp_path / "hostile.npz", meta_edit=lambda m: m["training"].update(
        notes={"classifier_frame": "\x1b[2Jcentroid", "classifier_leading_share": 7.5,
               "classifier_between_class_share": "high"}))
    shown = json.loads(invoke("info", hostile, "--json").stdout)
    assert [shown[k] for k in ("classifier_frame", "classifier_leading_share", "classifier_between_class_share")] \
        == [None, None, None]
    human = invoke("info", hostile).stdout
    assert "classifier 4 x 32 (fixed): " in human and "\x1b" not in human
    # a note that is neither text nor a number: one error line naming it
    bad = forge(tmp_path / "line.bep.npz", tmp_path / "bad.npz", meta_edit=lambda m: m["training"].update(
        notes={"classifier_frame": ["centroid"]}))
    assert_user_error(invoke("info", bad), "training.notes", "classifier_frame", "text or a number")


@needs_qemu
def test_a_board_trains_a_model_with_the_centroid_frame_as_the_host_does(tmp_path):
    """The board reads the frame from the model as a table: a model of one hidden layer that took
    the centroid frame, streamed to firmware on an emulated board, ends with the host's weights
    and the host's test accuracy, bit for bit."""
    X, y = ordered_classes(400, seed=2)
    model = training.fit(X[:300], y[:300], Settings(hidden=(48,), epochs=2, seed=1))
    assert model.training.notes["classifier_frame"] == "centroid"
    assert_board_trains_as_host(model, X, y, tmp_path)


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
