"""Issue 20's integer random-projection input code, measured host-side before any C (one JSON line per seed).

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/projection-code-experiments.py OUT.jsonl VARIANT KEY[,KEY...] [SEEDS | FIRST-LAST]

VARIANT (docs/research/untuned-data.md §1.1):
  base        the package's default (thermometer with ``tabular_levels(F)`` levels, ~256 bits)
  base512     the same with the tabular bit target at 512 (``binarize.TABULAR_INPUT_BITS``)
  same:K      F raw features and K projections side by side, every one ``tabular_levels(F + K)`` levels (~256 bits)
  add:K       the default's bits unchanged, K projections of ceil(256 / K) levels each beside them (~512 bits)
  qat:V       the project's QAT baseline (``qat.tuned_qat``, no batch norm; its grid chosen on validation over
              the seeds) on variant V's bits: one line with the chosen setting and the test accuracy per seed
A projection: every feature standardised with its training mean and standard deviation, then summed with
a seeded matrix of integers in {-1, 0, +1} (Li et al.'s very sparse random projection: a weight is
non-zero with probability 1/sqrt(F), never a column of zeros), binarised by the same quantile
thermometer (``distinct_quantile_cuts``) as a raw feature. KEY is a ``bench accuracy --sets`` key, or
``wine:mlp`` / ``breast_cancer:mlp`` (scikit-learn's bundled sets, split as the bench splits its
generated sets). Each line: the key, the variant, the seed, test / training / last validation accuracy,
epochs, input bits, bits kept, seconds.
"""

import json
import math
import sys
import time

import numpy as np

import bep_mcu.data.binarize as binarize
import bep_mcu.data.encoder as encoder
from bep_mcu import training
from bep_mcu.bench import parse_config
from bep_mcu.data import datasets
from bep_mcu.data.datasets import load_dataset

PROJECTION_SEED = 20


class ProjectionCode(binarize.Binarizer):
    """Thermometer(L) of the F raw features, then thermometer(M) of K integer projections."""

    kind = "projection"

    def __init__(self, raw_levels: int, k: int, levels: int) -> None:
        super().__init__()
        self.raw = binarize.ThermometerBinarizer(raw_levels)
        self.proj = binarize.ThermometerBinarizer(levels)
        self.k = k

    def spec(self) -> str:
        return f"exp-proj:{self.raw.n_bits}:{self.k}:{self.proj.n_bits}"

    def bits_per_feature(self) -> int:  # unused: n_outputs is what the encoder reads
        return self.raw.n_bits

    def n_outputs(self, n_features: int) -> int:
        return n_features * self.raw.n_bits + self.k * self.proj.n_bits

    def projections(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.std) @ self.matrix

    def _fit(self, X: np.ndarray) -> None:
        f = X.shape[1]
        self.mean, std = X.mean(axis=0), X.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        rng = np.random.default_rng(PROJECTION_SEED)
        p = min(1.0, 1 / math.sqrt(f))
        m = np.zeros((f, self.k), dtype=np.int64)
        for j in range(self.k):
            while not m[:, j].any():
                m[:, j] = (rng.random(f) < p) * rng.choice((-1, 1), f)
        self.matrix = m.astype(np.float64)
        self.raw.fit(X)
        self.proj.fit(self.projections(X))

    def _transform(self, X: np.ndarray) -> np.ndarray:
        return np.concatenate([self.raw.transform(X), self.proj.transform(self.projections(X))], axis=1)

    def _state(self):
        raise NotImplementedError

    def _load_state(self, d):
        raise NotImplementedError


def code_for(variant: str, f: int) -> str:
    name, _, k = variant.partition(":")
    if name == "same":
        levels = binarize.tabular_levels(f + int(k))
        return f"exp-proj:{levels}:{k}:{levels}"
    if name == "add":
        return f"exp-proj:{binarize.tabular_levels(f)}:{k}:{-(-binarize.TABULAR_INPUT_BITS // int(k))}"
    raise ValueError(variant)


make0 = encoder.make_binarizer


def make(spec: str) -> binarize.Binarizer:
    if spec.startswith("exp-proj:"):
        raw, k, levels = (int(v) for v in spec.split(":")[1:])
        return ProjectionCode(raw, k, levels)
    return make0(spec)


encoder.make_binarizer = make


def load(name: str) -> datasets.Dataset:
    if name in ("wine", "breast_cancer"):
        X, y = getattr(datasets._sklearn_datasets(), f"load_{name}")(return_X_y=True)
        return datasets._split_generated(name, np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64))
    return load_dataset(name)


out, variant, keys = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
first, _, last = (sys.argv[4] if len(sys.argv) > 4 else "3").partition("-")  # "N": seeds 0..N-1; "A-B": A..B
seeds = range(int(first), int(last) + 1) if last else range(int(first))
if variant == "base512":
    binarize.TABULAR_INPUT_BITS = 512
qat_of = variant[len("qat:"):] if variant.startswith("qat:") else None
if qat_of == "base512":
    binarize.TABULAR_INPUT_BITS = 512
for key in keys:
    name, base = parse_config(key) if not key.startswith(("wine:", "breast_cancer:")) else (key.split(":")[0],
                                                                                             {"hidden": (512,)})
    data = load(name)
    code = qat_of or variant
    extra = {} if code.startswith("base") else {"binarize": code_for(code, data.X_train.shape[1])}
    if qat_of:
        from bep_mcu import qat
        start = time.time()
        res = qat.tuned_qat({**base, **extra}, data, len(seeds), batch_norm=False)
        record = {"set": key, "variant": variant, "seeds": len(seeds), "chosen": res["chosen"],
                  "test": res["scores"], "train": res["train"], "seconds": round(time.time() - start, 1)}
        with open(out, "a") as fh:
            print(json.dumps(record), file=fh)
        print(key, variant, record, flush=True)
        continue
    for seed in seeds:
        start, history = time.time(), []
        m = training.fit(data.X_train, data.y_train, training.Settings(seed=seed, **{**base, **extra}),
                         on_epoch=history.append)
        record = {"set": key, "variant": variant, "seed": seed, "test": m.score(data.X_test, data.y_test),
                  "train": m.score(data.X_train, data.y_train), "val": history[-1]["val_accuracy"],
                  "epochs": len(history), "bits": m.spec.n_inputs, "kept": m.encoder.kept_bits,
                  "binarizer": m.encoder.binarizer.spec(), "seconds": round(time.time() - start, 1)}
        with open(out, "a") as fh:
            print(json.dumps(record), file=fh)
        print(key, variant, seed, f"test {record['test']:.3f} train {record['train']:.3f} val {record['val']:.3f} "
              f"epochs {record['epochs']} bits {record['bits']}", flush=True)
