"""The single runs of docs/research/untuned-data.md: one JSON line per seed.

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/untuned-data-experiments.py OUT.jsonl VARIANT KEY[,KEY...] [SEEDS]

VARIANT is a JSON object of ``training.Settings`` fields (e.g. '{"sigma": 64}'); keys that start
with "_" patch the code for the experiment: "_oldq": 1 the plain quantile thresholds of before,
"_bits": N the tabular bit target (binarize.TABULAR_INPUT_BITS), "_cap": F the epoch budget's
cap factor (1: the fixed budget of before), "_perpoint": 1 an RNN's thresholds per time point (as the
MLP's) instead of shared over time (what '{"binarize": "thermometer:8:point"}' now does in the package),
"_centre": 1 every RNN series centred (its own mean per channel
subtracted) before binarising, "_hybrid": 1 half of a point's bits shared over time
(thermometer:4), half per time point (thermometer:4). KEY is a ``bench accuracy --sets`` key. Each line:
the key, the variant, the seed, test / training / last validation accuracy, epochs, input bits
(per step), bits kept, the binariser, epochs with training error >= 45 %, seconds, and the
training-error curve. Where ``fit`` falls back from an RNN at chance to thresholds per time point
(docs/research/untuned-data.md §4.2), the curve and epochs are the kept run's and the binariser says
``thermometer:8:point``.
"""

import json
import sys
import time

import numpy as np

import bep_mcu.data.binarize as binarize
from bep_mcu import training
from bep_mcu.bench import parse_config
from bep_mcu.data.datasets import load_dataset
from bep_mcu.data.encoder import Encoder, as_model_shape
from bep_mcu.engine.schedule import ProgressBudget

out, variant, keys = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].split(",")
seeds = range(int(sys.argv[4]) if len(sys.argv) > 4 else 3)
patch = {k: v for k, v in variant.items() if k.startswith("_")}
settings = {k: tuple(v) if isinstance(v, list) else v for k, v in variant.items() if not k.startswith("_")}
if "_cap" in patch:
    ProgressBudget.CAP_FACTOR = patch["_cap"]
if "_bits" in patch:
    binarize.TABULAR_INPUT_BITS = patch["_bits"]
if patch.get("_oldq"):
    binarize.distinct_quantile_cuts = lambda x, n: np.maximum.accumulate(np.quantile(x, np.arange(1, n + 1) / (n + 1)))


class Hybrid:  # thermometer:h shared over time and thermometer:h per time point, side by side per point
    def __init__(self, X, h):
        n, T, C = X.shape
        self.shared = binarize.make_binarizer(f"thermometer:{h}").fit(X.reshape(n * T, C))
        self.point = binarize.make_binarizer(f"thermometer:{h}").fit(X.reshape(n, T * C))

    def transform(self, X2):
        n, TC = X2.shape
        C = self.shared.n_features
        a = self.shared.transform(X2.reshape(-1, C)).reshape(n, TC // C, -1)
        b = self.point.transform(X2).reshape(n, TC // C, -1)
        return np.concatenate([a, b], axis=2).reshape(n, -1)


if patch.get("_centre") or patch.get("_perpoint") or patch.get("_hybrid"):
    fit0, encode0 = Encoder.fit.__func__, Encoder.encode

    def centred(X, model):
        X = as_model_shape(X, model)
        return X - X.mean(axis=1, keepdims=True) if model == "rnn" and patch.get("_centre") else X

    def fit(cls, X, model, code="auto", window=None, bias_bits=None):
        X = centred(X, model)
        enc = fit0(cls, X, model, code, window, bias_bits)
        if model == "rnn" and patch.get("_hybrid"):
            n, T, C = X.shape
            b = Hybrid(X, enc.binarizer.bits_per_feature() // 2)
            bits = b.transform(X.reshape(n, T * C)).reshape(n * T, -1)
            object.__setattr__(enc, "_pp", b)
            object.__setattr__(enc, "input_keep", bits.min(axis=0) != bits.max(axis=0))
        elif model == "rnn" and patch.get("_perpoint"):  # thresholds per (time point, channel); keep a bit that
            n, T, C = X.shape                             # varies at any time point
            b = binarize.make_binarizer(enc.binarizer.spec()).fit(X.reshape(n, T * C))
            bits = b.transform(X.reshape(n, T * C)).reshape(n * T, -1)
            object.__setattr__(enc, "_pp", b)
            object.__setattr__(enc, "input_keep", bits.min(axis=0) != bits.max(axis=0))
        return enc

    def encode(self, X):
        X = centred(X, self.model)
        if not hasattr(self, "_pp"):
            return encode0(self, X)
        n, T, C = X.shape
        bits = self._pp.transform(X.reshape(n, T * C)).reshape(n, T, -1)[:, :, self.input_keep]
        pad = self.steps * self.window - T
        if pad:
            bits = np.concatenate([bits, np.repeat(bits[:, -1:], pad, axis=1)], axis=1)
        return self.with_bias(bits.reshape(n, self.steps, -1).astype(np.float32))

    Encoder.fit, Encoder.encode = classmethod(fit), encode
for key in keys:
    name, base = parse_config(key)
    data = load_dataset(name)
    for seed in seeds:
        start, history = time.time(), []
        m = training.fit(data.X_train, data.y_train, training.Settings(seed=seed, **{**base, **settings}),
                         on_epoch=history.append)
        errors = [h["train_error"] for h in history]
        record = {"set": key, "variant": variant, "seed": seed, "test": m.score(data.X_test, data.y_test),
                  "train": m.score(data.X_train, data.y_train), "val": history[-1]["val_accuracy"],
                  "epochs": len(history), "bits": m.spec.n_inputs, "kept": m.encoder.kept_bits,
                  "binarizer": m.encoder.binarizer.spec(), "stuck": sum(e >= 0.45 for e in errors),
                  "seconds": round(time.time() - start, 1), "train_error": [round(e, 4) for e in errors]}
        with open(out, "a") as fh:
            print(json.dumps(record), file=fh)
        print(key, variant, seed, f"test {record['test']:.3f} train {record['train']:.3f} val {record['val']} "
              f"epochs {record['epochs']} bits {record['bits']} stuck {record['stuck']}", flush=True)
