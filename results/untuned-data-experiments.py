"""The single runs of docs/research/untuned-data.md: one JSON line per seed.

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/untuned-data-experiments.py OUT.jsonl VARIANT KEY[,KEY...] [SEEDS]

VARIANT is a JSON object of ``training.Settings`` fields (e.g. '{"sigma": 64}'); keys that start
with "_" patch the code for the experiment: "_oldq": 1 the plain quantile thresholds of before,
"_bits": N the tabular bit target (binarize.TABULAR_INPUT_BITS), "_cap": F the epoch budget's
cap factor (1: the fixed budget of before). KEY is a ``bench accuracy --sets`` key. Each line:
the key, the variant, the seed, test / training / last validation accuracy, epochs, input bits
(per step), bits kept, the binariser, epochs with training error >= 45 %, seconds, and the
training-error curve.
"""

import json
import sys
import time

import numpy as np

import bep_mcu.data.binarize as binarize
from bep_mcu import training
from bep_mcu.bench import parse_config
from bep_mcu.data.datasets import load_dataset
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
