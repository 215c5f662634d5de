"""Rows of binary features under "auto": passed through (one bit a feature, the non-tabular network)
or given the tabular path (a thermometer of ceil(256 / F) copies of each bit, fit's two candidates,
r 0.25) (docs/accuracy.md, "Sixth held-out check: binary features").

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/binary-features.py OUT.jsonl VARIANT KEY[;KEY...] [SEEDS]
    python results/binary-features.py summary FILE.jsonl
    python results/binary-features.py codes KEY     # what a lookup table of the input codes reaches

VARIANT: ``passthrough`` (binary rows are not tabular, as before the sixth check) or ``tabular``
(binary rows of fewer than 256 features are; the rule the check tested); ``bias64`` and
``deep-bias64``: passed through, with 64 bias bits (and 256-256 hidden). KEY: a set the package
loads (``--sets`` names, ``prototypes:...``) or one of this file's development sets (``DEV_SETS``),
made up before the check to see whether the question was worth one; ``KEY:W64``: with one hidden
layer of 64 neurons. Each line: the set, seed,
variant, the kept model's test, validation (its last epoch's) and training accuracy, widths,
input bits, code and r.
"""

import collections
import json
import sys
import time

import numpy as np

from bep_mcu import training
from bep_mcu.data import datasets as ds
from bep_mcu.data.binarize import TABULAR_INPUT_BITS, is_binary

N = 1000


def _redrawn(y, g, share, classes):
    return np.where(g.random(len(y)) < share, g.integers(0, classes, len(y)), y)


def dev_set(name):
    """The development sets (seeded; the same on every machine)."""
    g = np.random.default_rng(11)
    if name == "binary-20":  # 20 bits; tertiles of a noisy score of 7 of them
        g = np.random.default_rng(7)
        X = g.integers(0, 2, (N, 20)).astype(float)
        score = (X[:, 0] * X[:, 1]) + (X[:, 2] != X[:, 3]) + X[:, 4] + X[:, 5] - X[:, 6] + 0.7 * g.normal(size=N)
        y = np.searchsorted(np.quantile(score, [1 / 3, 2 / 3]), score)
    elif name == "onehot-8":  # 8 categories of 2-6 levels one-hot (32 columns); tertiles of additive effects
        g = np.random.default_rng(7)
        levels = [2, 3, 4, 5, 6, 3, 4, 5]
        C = np.stack([g.integers(0, k, N) for k in levels], 1)
        effects = [g.normal(size=k) for k in levels]
        score = sum(effects[j][C[:, j]] for j in range(8)) + 0.5 * g.normal(size=N)
        y = np.searchsorted(np.quantile(score, [1 / 3, 2 / 3]), score)
        X = np.concatenate([np.eye(k)[C[:, j]] for j, k in enumerate(levels)], 1)
    elif name == "flags-12":  # 12 flags; a rule of three terms, 10 % of labels redrawn
        X = g.integers(0, 2, (N, 12))
        y = ((X[:, 0] & X[:, 1]) | (X[:, 2] & (1 - X[:, 3])) | ((X[:, 4] + X[:, 5] + X[:, 6]) >= 2)).astype(int)
        y = _redrawn(y, g, 0.1, 2)
        X = X.astype(float)
    elif name == "bits-8-4":  # 8 bits, 4 classes: an exclusive or and a majority, 15 % redrawn
        X = g.integers(0, 2, (N, 8))
        y = _redrawn(2 * (X[:, 0] ^ X[:, 1]) + ((X[:, 2] + X[:, 3] + X[:, 4]) >= 2), g, 0.15, 4)
        X = X.astype(float)
    elif name == "digits-bin":  # digits' 64 pixels, each 1 where above 7
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        X = (X > 7).astype(float)
    elif name == "bow-50":  # 50 indicators (probability 0.15); a logistic label on 10
        X = (g.random((N, 50)) < 0.15).astype(float)
        w = np.zeros(50)
        w[:10] = g.normal(0, 2, 10)
        logit = X @ w - np.median(X @ w)
        y = (g.random(N) < 1 / (1 + np.exp(-logit))).astype(int)
    else:
        raise KeyError(name)
    y = np.asarray(y)
    tr, te = ds.stratified_split(y, 0.2, 0)
    return ds._finish(name, (X[tr], y[tr]), (X[te], y[te]), "tabular", name)


DEV_SETS = ("binary-20", "onehot-8", "flags-12", "bits-8-4", "digits-bin", "bow-50")


def patch(variant):
    """The training module as the variant has it (both rules explicit, so the file measures the
    same before and after the package took one)."""
    def tabular(X, s):
        X = np.asarray(X)
        small_binary = variant == "tabular" and X.ndim == 2 and X.shape[1] < TABULAR_INPUT_BITS
        return s.binarize == "auto" and s.model == "mlp" and X.ndim == 2 and (small_binary or not is_binary(X))

    package_code = training.input_code

    def code(X, s):
        if tabular(X, s) and is_binary(X):
            return f"thermometer:{-(-TABULAR_INPUT_BITS // np.asarray(X).shape[1])}"
        return package_code(X, s) if tabular(X, s) or not is_binary(X) else s.binarize

    training.auto_tabular, training.input_code = tabular, code
    return {"bias64": {"bias_bits": 64}, "deep-bias64": {"bias_bits": 64, "hidden": (256, 256)}}.get(variant, {})


def run(out, variant, keys, seeds):
    settings = patch(variant)
    for key in keys:
        name, _, width = key.partition(":W")  # KEY:W64: one hidden layer of 64 (a board's size)
        data = dev_set(name) if name in DEV_SETS else ds.load_dataset(name)
        hidden = {"hidden": (int(width),)} if width else {}
        for seed in range(seeds):
            start = time.time()
            m = training.fit(data.X_train, data.y_train, training.Settings(seed=seed, **settings, **hidden))
            rec = {"set": key, "seed": seed, "variant": variant, "test": m.score(data.X_test, data.y_test),
                   "val": m.training.history[-1]["val_accuracy"], "train": m.score(data.X_train, data.y_train),
                   "hidden": list(m.spec.hidden), "inputs": m.spec.n_inputs, "code": m.encoder.binarizer.describe(),
                   "r": m.hyper.r, "s": round(time.time() - start, 1)}
            print(json.dumps(rec), flush=True)
            with open(out, "a") as fh:
                print(json.dumps(rec), file=fh)


def summary(path):
    rows = [json.loads(line) for line in open(path)]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    print(f"{'set':<48}" + "".join(f"{v + ' test / val (train)':>34}" for v in variants))
    means = {v: [] for v in variants}
    for s in dict.fromkeys(r["set"] for r in rows):
        line = f"{s:<48}"
        for v in variants:
            rr = [r for r in rows if r["set"] == s and r["variant"] == v]
            if not rr:
                line += " " * 34
                continue
            figures = [100 * np.mean([np.nan if r[k] is None else r[k] for r in rr]) for k in ("test", "val", "train")]
            means[v].append(figures[:2])
            line += f"{figures[0]:>16.1f} / {figures[1]:5.1f} ({figures[2]:5.1f})   "
        print(line)
    mean = {v: np.mean(means[v], axis=0) for v in variants}
    print(f"{'mean':<48}" + "".join(f"{mean[v][0]:>16.2f} / {mean[v][1]:5.2f}{'':13}" for v in variants))


def codes(key):
    """A lookup table of the training set's input codes (each code's commonest class): its
    training accuracy (the most any function of the bits can fit) and its test accuracy (unseen
    codes take the commonest class), beside the share of test codes seen in training."""
    data = dev_set(key) if key in DEV_SETS else ds.load_dataset(key)
    table = {}
    for x, label in zip(data.X_train.astype(np.int8), data.y_train):
        table.setdefault(x.tobytes(), collections.Counter())[label] += 1
    commonest = collections.Counter(data.y_train.tolist()).most_common(1)[0][0]
    test_codes = [x.tobytes() for x in data.X_test.astype(np.int8)]
    predicted = [table[c].most_common(1)[0][0] if c in table else commonest for c in test_codes]
    fit = sum(c.most_common(1)[0][1] for c in table.values()) / len(data.y_train)
    print(f"{key}: {len(table)} distinct training codes; lookup table: training {100 * fit:.1f}, test "
          f"{100 * np.mean(np.array(predicted) == data.y_test):.1f}; test codes seen in training "
          f"{100 * np.mean([c in table for c in test_codes]):.1f} %")


if __name__ == "__main__":
    if sys.argv[1] == "summary":
        summary(sys.argv[2])
    elif sys.argv[1] == "codes":
        codes(sys.argv[2])
    else:
        run(sys.argv[1], sys.argv[2], sys.argv[3].split(";"), int(sys.argv[4]) if len(sys.argv) > 4 else 3)
