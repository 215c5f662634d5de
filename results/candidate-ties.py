"""Both candidates of ``fit``'s validation choice, run by run (docs/research/untuned-data.md §4.4).

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/candidate-ties.py OUT.jsonl KEY[,KEY...] SEEDS

For every ``bench accuracy --sets`` key whose data gets a second candidate (a tabular MLP with
bias bits, an RNN of at least 4,096 input bits a step with the coarser code) and each seed: the
default's and the second candidate's validation accuracy, mean validation margin (the true
class's logit less the best other one), training and test accuracy, code, the network's input
bits (a step, bias bits included) and seconds; one JSON line per seed.
"""

import json
import sys
import time

import numpy as np

from bep_mcu import training
from bep_mcu.bench import parse_config
from bep_mcu.data.datasets import load_dataset
from bep_mcu.model import plain_labels

out, keys, seeds = sys.argv[1], sys.argv[2].split(","), range(int(sys.argv[3]))


def mean_margin(model, X, y) -> float:
    logits = model.network().logits(model.encode(X)).astype(np.int64)
    idx = model.encode_labels(y)
    rows = np.arange(len(idx))
    own = logits[rows, idx].copy()
    logits[rows, idx] = np.iinfo(np.int64).min
    return float(np.mean(own - logits.max(axis=1)))


with open(out, "a") as f:
    for key in keys:
        name, kwargs = parse_config(key)
        data = load_dataset(name)
        X, y = np.asarray(data.X_train), plain_labels(np.asarray(data.y_train))
        for seed in seeds:
            settings = training.Settings(seed=seed, **kwargs)
            model = training.initial_model(X, y, settings)
            train_idx, val_idx = training.split_validation(y, settings.val_fraction, seed)
            second = training.second_candidate(model, X, settings, len(val_idx))
            if second is None:
                print(key, "has no second candidate")
                break
            row = {"set": key, "seed": seed}
            for tag, fit_one in (("default", lambda: training.fit_watched(model, X, y, settings, train_idx)),
                                 ("second", lambda: training.fit(X, y, second))):
                start = time.perf_counter()
                m = fit_one()
                row[tag] = {"val": m.score(X[val_idx], y[val_idx]), "val_margin": mean_margin(m, X[val_idx], y[val_idx]),
                            "train": m.score(X[train_idx], y[train_idx]), "test": m.score(data.X_test, data.y_test),
                            "code": m.encoder.binarizer.spec(), "inputs": int(m.encoder.n_inputs),
                            "seconds": time.perf_counter() - start}
            f.write(json.dumps(row) + "\n")
            f.flush()
