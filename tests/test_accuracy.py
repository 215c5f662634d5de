"""The accuracy levels the defaults must reach, as deterministic regression
checks: same seeds, same data, same result on every machine. The full table over three
seeds, prototypes included, is printed by `python -m bep_mcu.bench accuracy`."""

import numpy as np
import pytest

from bep_mcu.data.datasets import load_dataset
from bep_mcu.estimator import BEPClassifier


@pytest.mark.slow
@pytest.mark.parametrize("name,kwargs,target", [
    ("digits", {"hidden": (512,), "binarize": "median"}, 0.87),
    ("ucr:GunPoint", {"model": "rnn", "hidden": (256,)}, 0.88),
    ("ucr:ItalyPowerDemand", {"model": "rnn", "hidden": (256,)}, 0.88),
])
def test_default_settings_reach_the_calibrated_level(name, kwargs, target):
    data = load_dataset(name)
    scores = [BEPClassifier(seed=seed, **kwargs).fit(data.X_train, data.y_train).score(data.X_test, data.y_test)
              for seed in range(3)]
    assert np.mean(scores) >= target, scores


@pytest.mark.slow
def test_prototypes_one_hidden_layer():
    data = load_dataset("prototypes")
    clf = BEPClassifier(hidden=(512,), seed=0).fit(data.X_train, data.y_train)
    assert clf.score(data.X_test, data.y_test) >= 0.95
