"""Kinds of tabular data no held-out check covered (imbalanced classes, binary and integer
categorical features, heavy tails, many classes): BEP's defaults against the tuned QAT and QAT + BN
on the same inputs, 3 seeds (docs/accuracy.md, "Sixth held-out check: binary features", how the
question came up). Run before binary rows took the tabular path.

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/other-kinds-of-data.py OUT.jsonl KEY[,KEY...] SEEDS qat

One JSON line per set: the benchmark's row (``bench.accuracy_vs_baseline``) without QAT's grid and
BEP's curves."""
import json
import sys

import numpy as np
from sklearn import datasets as skd
from bep_mcu import bench
from bep_mcu.data import datasets as ds

N = 1000


def make(name):
    g = np.random.default_rng(7)
    if name == "imb-2":
        X, y = skd.make_classification(N, n_features=10, n_informative=5, weights=[0.9], flip_y=0.02, random_state=7)
    elif name == "imb-4":
        X, y = skd.make_classification(N, n_features=8, n_informative=4, n_redundant=0, n_classes=4,
                                       n_clusters_per_class=1, weights=[0.6, 0.25, 0.1], flip_y=0.02, random_state=7)
    elif name == "binary-20":
        X = g.integers(0, 2, (N, 20)).astype(float)
        score = (X[:, 0] * X[:, 1]) + (X[:, 2] != X[:, 3]) + X[:, 4] + X[:, 5] - X[:, 6] + 0.7 * g.normal(size=N)
        y = np.searchsorted(np.quantile(score, [1 / 3, 2 / 3]), score)
    elif name == "categorical-8":
        levels = [2, 3, 4, 5, 6, 3, 4, 5]
        X = np.stack([g.integers(0, k, N) for k in levels], 1).astype(float)
        effects = [g.normal(size=k) for k in levels]
        score = sum(effects[j][X[:, j].astype(int)] for j in range(8)) + 0.5 * g.normal(size=N)
        y = np.searchsorted(np.quantile(score, [1 / 3, 2 / 3]), score)
    elif name == "lognormal-10":
        Z = g.normal(size=(N, 10))
        X = np.exp(2 * Z)
        score = Z[:, 0] + Z[:, 1] - Z[:, 2] + Z[:, 3] * Z[:, 4] + 0.5 * g.normal(size=N)
        y = np.searchsorted(np.quantile(score, [0.5]), score)
    elif name == "blobs-26":
        X, y = skd.make_blobs(1500, n_features=16, centers=26, cluster_std=3.0, random_state=7)
    else:
        raise KeyError(name)
    tr, te = ds.stratified_split(np.asarray(y), 0.2, 0)
    return ds._finish(name, (X[tr], np.asarray(y)[tr]), (X[te], np.asarray(y)[te]), "tabular", name)


NAMES = ["imb-2", "imb-4", "binary-20", "categorical-8", "lognormal-10", "blobs-26"]
real = bench.load_dataset
bench.load_dataset = lambda name: make(name) if name in NAMES else real(name)
bench.GENERATED = tuple(bench.GENERATED) + tuple(NAMES)  # parse_config takes them as generated sets
keys = sys.argv[2].split(",")
rows = bench.accuracy_vs_baseline([f"{k}:mlp" for k in keys], int(sys.argv[3]), baseline=sys.argv[4] == "qat")
with open(sys.argv[1], "a") as fh:
    for r in rows:
        for lab in ("qat", "qat_bn"):
            if lab in r:
                r[lab].pop("grid", None)
        r["bep"].pop("curves", None)
        print(json.dumps(r), file=fh)
