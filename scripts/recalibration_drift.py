"""Does label-free recalibration win back what a sensor drift takes? (docs/adaptation.md)

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python scripts/recalibration_drift.py --seeds 3 \
        --out results/recalibration-under-sensor-drift.jsonl

Per data set and seed: a model trained with the package defaults (an MLP) on 75 % of the data,
the board's input format chosen on that training part (``inputformat.choose``, what
``bep-mcu generate --data`` picks). Per drift of the raw values (``DRIFTS``), the test accuracy
of: the host model on clean inputs; the board with the model's thresholds ("frozen") on drifted
inputs; thresholds set at once where recalibration settles ("batch": each at its training share
of the drifted training inputs, a one-off re-fit); and the board after following a stream of
``n`` unlabelled drifted training inputs (shuffled, repeated as needed) with each adaptation rate
of ``WINDOWS`` (``adapt.Recalibrated``, bit for bit what ``bep_<net>_calibrate`` does). Also the
board that follows clean inputs (what recalibration costs when nothing drifted), and boards that
follow ``MIXED`` drifted inputs whose class mix is not the training one ("mixed": three quarters
of one class, or runs of ``RUN`` samples of one class). One JSON line per data set, seed and
drift; accuracies as fractions.

It lives in scripts/ because it reads scikit-learn's bundled data sets and writes results/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_classification
from sklearn.model_selection import train_test_split

from bep_mcu import adapt, training
from bep_mcu.data import recalibration

WINDOWS = (16, 64, 256, 1024, 4096)
STREAM = (100, 300, 1000, 3000, 10000, 30000)  # unlabelled samples the board follows
MIXED = 10000  # samples of the streams whose class mix is not the training one
RUN = 200


def sensor_set(seed: int):
    """18 features, 6 of them informative: a tabular sensor-like set."""
    return make_classification(n_samples=2000, n_features=18, n_informative=6, n_redundant=6, n_classes=2,
                               random_state=seed)


DATASETS = {
    "sensor18": sensor_set,
    "breast_cancer": lambda seed: load_breast_cancer(return_X_y=True),
    "wine": lambda seed: load_wine(return_X_y=True),
    "digits": lambda seed: load_digits(return_X_y=True),
}


def issue_drift(sd: np.ndarray, g: np.random.Generator):
    """A common drift: every feature's gain 1.3, offset +0.5 standard deviations, noise 10 %."""
    return lambda X: 1.3 * X + 0.5 * sd + 0.1 * sd * g.normal(size=X.shape)


def per_feature_drift(sd: np.ndarray, g: np.random.Generator):
    """Each feature its own gain (0.7..1.4, log-uniform) and offset (-1..+1 standard
    deviations), drawn once; noise 10 %, drawn per value."""
    gain = np.exp(g.uniform(np.log(0.7), np.log(1.4), len(sd)))
    offset = g.uniform(-1.0, 1.0, len(sd))
    return lambda X: gain * X + offset * sd + 0.1 * sd * g.normal(size=X.shape)


DRIFTS = {"gain1.3-offset0.5-noise0.1": issue_drift, "per-feature-gain-offset-noise0.1": per_feature_drift}


def stream(X: np.ndarray, n: int, g: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``X``, shuffled and repeated as needed."""
    return X[np.concatenate([g.permutation(len(X)) for _ in range(-(-n // len(X)))])[:n]]


def skewed(X: np.ndarray, y: np.ndarray, n: int, g: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``X`` drawn with replacement, three quarters of them of the first class."""
    first = y == np.unique(y)[0]
    p = np.where(first, 0.75 / first.sum(), 0.25 / (~first).sum())
    return X[g.choice(len(X), n, p=p)]


def runs(X: np.ndarray, y: np.ndarray, n: int, g: np.random.Generator, run: int = RUN) -> np.ndarray:
    """``n`` samples of ``X`` in runs of ``run`` of one class each (a machine that stays in a
    state for a while), the classes in their training proportions."""
    out = []
    while len(out) * run < n:
        c = y[g.integers(len(y))]
        out.append(g.choice(np.flatnonzero(y == c), run))
    return X[np.concatenate(out)[:n]]


def batch(board: adapt.Recalibrated, X: np.ndarray) -> adapt.Recalibrated:
    """Each threshold set at once at its training share of ``X``'s device values: where
    following ``X`` for long settles it."""
    cal = board.calibration
    plan = cal.plan
    V = np.sort(board._device(X), axis=0)
    index = np.minimum(np.rint(plan.below / recalibration.ONE * len(V)).astype(np.int64), len(V) - 1)
    board.calibration = recalibration.Calibration(plan, V[index, plan.feature])
    return board


def mixed_scores(model, fmt, train: np.ndarray, y_train, test: np.ndarray, y_test, seed: int) -> dict:
    """{stream: {window: test accuracy after following ``MIXED`` samples}} for the streams whose
    class mix is not the training one: ``skewed`` and ``runs``."""
    out = {}
    for name, make in (("skewed", skewed), ("runs", runs)):
        values = make(train, y_train, MIXED, np.random.default_rng(seed))
        out[name] = {str(w): adapt.recalibrate(model, values, fmt, window=w).score(test, y_test) for w in WINDOWS}
    return out


def followed_scores(model, fmt, train: np.ndarray, test: np.ndarray, y_test, seed: int) -> dict:
    """{window: {n: test accuracy after following n samples of ``train``}}."""
    out = {}
    for window in WINDOWS:
        g = np.random.default_rng(seed)
        board, seen, scores = adapt.Recalibrated(model, fmt, window=window), 0, {}
        for n in STREAM:
            board.observe(stream(train, n - seen, g))
            seen = n
            scores[str(n)] = board.score(test, y_test)
        out[str(window)] = scores
    return out


def run(name: str, seed: int) -> list[dict]:
    X, y = DATASETS[name](seed)
    X = X.astype(np.float64)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
    start = time.time()
    model = training.fit(X_train, y_train, training.Settings(seed=seed))
    fmt = adapt.Recalibrated(model, X_train=X_train).fmt
    sd = X_train.std(axis=0)
    common = {"ds": name, "seed": seed, "features": X.shape[1], "train": len(X_train), "test": len(X_test),
              "binarize": model.encoder.binarizer.spec(), "input_type": fmt.input_type,
              "clean": model.score(X_test, y_test),
              "clean_frozen": adapt.Recalibrated(model, fmt).score(X_test, y_test),
              "clean_followed": followed_scores(model, fmt, X_train, X_test, y_test, seed),
              "train_seconds": time.time() - start}
    lines = []
    for drift_name, drift in DRIFTS.items():
        moved = drift(sd, np.random.default_rng(seed + 1000))
        train_d, test_d = moved(X_train), moved(X_test)
        lines.append({**common, "drift": drift_name,
                      "frozen": adapt.Recalibrated(model, fmt).score(test_d, y_test),
                      "batch": batch(adapt.Recalibrated(model, fmt), train_d).score(test_d, y_test),
                      "followed": followed_scores(model, fmt, train_d, test_d, y_test, seed),
                      "mixed": mixed_scores(model, fmt, train_d, y_train, test_d, y_test, seed)})
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sets", default=",".join(DATASETS))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with args.out.open("a") as out:
        for name in args.sets.split(","):
            for seed in range(args.seeds):
                for line in run(name, seed):
                    out.write(json.dumps(line) + "\n")
                    out.flush()
                    print(f"{name} seed {seed} {line['drift']}: clean {line['clean']:.3f} frozen {line['frozen']:.3f} "
                          f"batch {line['batch']:.3f} followed@1024x10000 {line['followed']['1024']['10000']:.3f}",
                          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
