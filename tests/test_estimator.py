"""``BEPClassifier`` as a scikit-learn estimator: the estimator checks, and the tools
people use it with (clone, Pipeline, cross_val_score, GridSearchCV, partial_fit)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from bep_mcu import BEPClassifier
from bep_mcu.data.datasets import load_dataset
from bep_mcu.errors import BEPError
from bep_mcu.estimator import EXPECTED_FAILED_CHECKS

from .conftest import blobs, series


def small(**kw) -> BEPClassifier:
    return BEPClassifier(**{"hidden": (32,), "epochs": 8, "seed": 0, **kw})


def test_sklearn_estimator_checks():
    assert len(EXPECTED_FAILED_CHECKS) <= 3
    check_estimator(small(), expected_failed_checks=EXPECTED_FAILED_CHECKS)


def test_clone_keeps_parameters_and_drops_the_fit():
    X, y = blobs(120)
    clf = small(hidden=(16, 16), r=0.75).fit(X, y)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    assert not hasattr(copy, "model_")
    with pytest.raises(NotFittedError):
        copy.predict(X)


def test_set_params_takes_effect():
    X, y = blobs(120)
    clf = small().set_params(hidden=(8,), epochs=2)
    assert clf.fit(X, y).model_.spec.hidden == (8,)
    assert clf.model_.training.epochs == 2


def test_pipeline_and_cross_val_score():
    X, y = blobs(300, seed=1)
    scores = cross_val_score(make_pipeline(StandardScaler(), small()), X, y, cv=3)
    assert scores.shape == (3,) and not np.isnan(scores).any()
    assert scores.mean() > 0.8


def test_grid_search():
    X, y = blobs(240, seed=2)
    search = GridSearchCV(small(epochs=4), {"hidden": [(8,), (32,)], "r": [0.5, 1.0]}, cv=2).fit(X, y)
    assert set(search.best_params_) == {"hidden", "r"}
    assert search.best_estimator_.score(X, y) > 0.8


def test_decision_function_is_the_integer_logits():
    X, y = blobs(150, classes=3)
    clf = small().fit(X, y)
    logits = clf.decision_function(X[:10])
    assert logits.shape == (10, 3) and logits.dtype.kind == "i"
    np.testing.assert_array_equal(clf.classes_[logits.argmax(axis=1)], clf.predict(X[:10]))
    binary = small().fit(*blobs(100, classes=2))
    assert binary.decision_function(X[:7, :]).shape == (7,)


def test_feature_names_from_a_dataframe():
    pd = pytest.importorskip("pandas")
    X, y = blobs(90, features=4)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = small().fit(frame, y)
    assert clf.feature_names_in_.tolist() == ["a", "b", "c", "d"] and clf.n_features_in_ == 4


def test_partial_fit_trains_on_every_sample_one_pass_a_call():
    """N samples in, N trained (no validation split is carved from a chunk), in
    ceil(N / batch) batches; a call is a pass inside the open epoch: the epoch count, γ and
    Q stay until a call with end_epoch=True."""
    X, y = blobs(400, seed=3)
    clf = small()
    with pytest.raises(BEPError, match="classes"):
        clf.partial_fit(X[:100], y[:100])
    seen = 0
    for n in (100, 37, 1, 62):
        clf.partial_fit(X[seen:seen + n], y[seen:seen + n], classes=[0, 1, 2])
        seen += n
        t = clf.model_.training
        assert t.counters.samples == seen, (n, t.counters)
        assert t.epochs == 0 and clf.history_ == [] and t.error_rate == 1.0
    batch = clf.model_.training.batch_size
    assert clf.model_.training.counters.batches == sum(-(-n // batch) for n in (100, 37, 1, 62))
    gamma = clf.model_.training.gamma
    clf.partial_fit(X[200:300], y[200:300], end_epoch=True)
    t = clf.model_.training
    assert t.counters.samples == 300 and t.epochs == 1 and len(clf.history_) == 1
    # the schedule judged this pass's training errors, as a board does after its epoch
    assert clf.history_[0]["train_error"] == t.error_rate < 1.0 and clf.history_[0]["gamma"] == list(gamma)
    for _ in range(3):
        clf.partial_fit(X, y)
    assert clf.score(X, y) > 0.8


def test_partial_fit_starts_from_one_sample():
    """A first chunk of one sample (no bit varies on it yet) keeps every input bit; the
    passes after it learn."""
    X, y = blobs(300, seed=4)
    clf = small()
    clf.partial_fit(X[:1], y[:1], classes=[0, 1, 2])
    assert clf.model_.training.counters.samples == 1
    assert clf.model_.encoder.kept_bits == clf.model_.encoder.binarizer.transform(X[:1]).shape[1]
    for i in range(1, 300):
        clf.partial_fit(X[i:i + 1], y[i:i + 1])
    assert clf.model_.training.counters.samples == 300 and clf.score(X, y) > 0.6


@pytest.mark.parametrize("param, words", [
    ({"hidden": (0,)}, "hidden[0] must be an integer in 1.."), ({"epochs": -1}, "epochs must be"),
    ({"model": "cnn"}, "model must be one of"), ({"val_fraction": 0.7}, "val_fraction must be in"),
    ({"batch_size": 0}, "batch_size must be"),
])
def test_parameter_errors_name_the_parameter_not_the_option(param, words):
    """Python errors in Python terms: the estimator's parameter, not bep-mcu train's option."""
    X, y = blobs(60)
    with pytest.raises(BEPError) as e:
        small(**param).fit(X, y)
    assert str(e.value).startswith(words) and "--" not in str(e.value)


def test_continuous_targets_are_refused():
    X, _ = blobs(100)
    with pytest.raises(ValueError, match="Unknown label type"):
        small().fit(X, np.linspace(0, 1, 100))


def test_a_single_sample_must_be_two_dimensional():
    X, y = blobs(100)
    clf = small().fit(X, y)
    with pytest.raises(ValueError, match="2D array"):
        clf.predict(X[0])
    assert clf.predict(X[:1]).shape == (1,)


def test_errors_are_value_errors():
    assert issubclass(BEPError, ValueError)
    X, y = blobs(60)
    with pytest.raises(ValueError):
        small(hidden=(0,)).fit(X, y)


def test_rnn_estimator_on_series(tmp_path):
    X, y = series(160, 24)
    clf = small(model="rnn", hidden=(24,), epochs=6).fit(X, y)
    assert clf.n_features_in_ == 24
    clf.save(tmp_path / "rnn.npz")
    back = BEPClassifier.load(tmp_path / "rnn.npz")
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))
    assert back.get_params()["window"] == clf.model_.encoder.window


def test_fit_warns_when_the_model_predicts_one_class():
    """Sparse indicators read as they are: BEP's collapse (docs/accuracy.md, "Sparse features"); fit warns
    as `bep-mcu train` does, and a model that learnt raises no warning."""
    data = load_dataset("indicators-300-5")
    with pytest.warns(RuntimeWarning, match=r"predicts one class .* \(sparse features\)"):
        BEPClassifier(centre="off").fit(data.X_train, data.y_train)  # read as they are: 50 epochs and on
    X, y = blobs(200, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        BEPClassifier(hidden=(32,), epochs=3).fit(X, y)
