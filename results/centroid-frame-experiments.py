"""The runs of docs/accuracy.md, "A frame from the class centroids": fit's candidates each trained
with one classifier frame, one JSON line per set, seed and variant.

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/centroid-frame-experiments.py OUT.jsonl VARIANT KEY[,KEY...] [SEEDS]

VARIANT:
- ``today``: the package as it is (``training.classifier_frame``'s rule);
- ``equiangular``: the Binary Equiangular Frame for every model (the rule before the centroid frame);
- ``centroid``: ``centroid_frame`` for every new MLP, whatever its layers, classes and centroids;
- ``centroid-z``: the same, each column's sign set by the class means of its neuron's initial
  pre-activations (the direction the random weights already lean);
- ``half``: ``centroid``, with every other column the equiangular frame's;
- ``cut``: each column cuts the class means of its neuron's initial pre-activations (random
  directions of the inputs, not of the centroids' span) at a random gap;
- ``ordinal``: an oracle that knows the classes are ordered by their labels: each column a
  threshold of the label order at a random gap, with a random sign.
- ``one-layer-any``: the package's rule with its test for one hidden layer applied to every MLP,
  series too (the package applies it to tabular data only).

Each line: the key, the seed, the variant ("rule") and per candidate (fit's default first) its
widths, synapses, validation / test / training accuracy and seconds. ``results/centroid-frame.py``
replays fit's choice.
"""

import dataclasses
import json
import sys
import time

import numpy as np

from bep_mcu import training
from bep_mcu.bench import parse_config
from bep_mcu.data.datasets import load_dataset
from bep_mcu.engine.classifier import centroid_frame
from bep_mcu.model import plain_labels

package_new_model = training.new_model
variant = "today"  # set by the command line (module-level, as frame and new_model read it)


def class_means(values, classes, n_classes):
    return np.stack([values[classes == k].mean(axis=0) for k in range(n_classes)])


def random_cuts(proj, rng):
    """+1 above a cut of each column's sorted values at a gap drawn at random."""
    n_classes, width = proj.shape
    ordered, cut, columns = np.sort(proj, axis=0), rng.integers(0, n_classes - 1, size=width), np.arange(width)
    return np.where(proj > (ordered[cut, columns] + ordered[cut + 1, columns]) / 2, 1, -1)


def frame(model, X, y, seed):
    classes = model.encode_labels(y)
    n_classes, width = model.classifier.shape
    if variant == "ordinal":
        rng = np.random.default_rng(7 + seed)
        cut, sign = rng.integers(0, n_classes - 1, size=width), rng.choice([-1, 1], size=width)
        return np.where(np.arange(n_classes)[:, None] > cut[None, :], 1, -1) * sign
    pre = model.network()._forward(model.encode(X))[1][-1].astype(np.float64)  # initial pre-activations
    if variant == "cut":
        return random_cuts(class_means(pre, classes, n_classes), np.random.default_rng(1000 + seed))
    P = centroid_frame(class_means(model.encode(X).astype(np.float64), classes, n_classes), width, seed)
    if variant == "centroid-z":
        means = class_means(pre, classes, n_classes)
        P = P * np.where(((P - P.mean(0)) * (means - means.mean(0))).sum(0) < 0, -1, 1)
    if variant == "half":
        P = P.copy()
        P[:, ::2] = model.classifier[:, ::2]
    return P


def new_model(X, y, settings, classes=None, encoder=None):
    model = package_new_model(X, y, settings, classes, encoder)
    if variant in ("today", "equiangular", "one-layer-any") or model.spec.model != "mlp":
        return model
    return dataclasses.replace(model, classifier=frame(model, X, y, settings.seed).astype(np.int8))


def run_candidates(out, rule, keys, seeds):
    """Both of fit's candidates on each key and seed, as the training module is patched now: one
    JSON line per set and seed, appended to ``out`` (``multi-prototype-experiments.py`` too)."""
    for key in keys:
        name, base = parse_config(key)
        data = load_dataset(name)
        X, y = np.asarray(data.X_train), plain_labels(np.asarray(data.y_train))
        for seed in seeds:
            settings = training.Settings(seed=seed, **base)
            model, alternative = training.candidates(X, y, settings)
            train_idx, val_idx = training.split_validation(y, settings.val_fraction, seed)
            candidates = []
            for s in (settings, alternative):
                if s is None:
                    continue
                start = time.time()
                m = training.fit_watched(model if s is settings else training.initial_model(X, y, s), X, y, s,
                                         train_idx)
                candidates.append({"widths": list(m.spec.hidden), "synapses": m.spec.synapses,
                                   "val": m.score(X[val_idx], y[val_idx]), "test": m.score(data.X_test, data.y_test),
                                   "train": m.score(X[train_idx], y[train_idx]), "s": round(time.time() - start, 1)})
            with open(out, "a") as fh:
                print(json.dumps({"set": key, "seed": seed, "rule": rule, "candidates": candidates}), file=fh)
            print(key, seed, rule, [(c["widths"], round(c["val"], 3), round(c["test"], 3)) for c in candidates],
                  flush=True)


if __name__ == "__main__":
    variant = sys.argv[2]
    training.new_model = new_model
    if variant == "one-layer-any":
        package_frame = training.classifier_frame
        training.classifier_frame = lambda *args: package_frame(*args[:8], True)
    if variant == "equiangular":
        training.CENTROID_FRAME_MIN_CLASSES = 10 ** 9
    run_candidates(sys.argv[1], variant, sys.argv[3].split(","), range(int(sys.argv[4]) if len(sys.argv) > 4 else 3))
