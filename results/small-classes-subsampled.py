"""Does training on all the data beat the validation split on sets with five samples a class,
beyond the one family that has them (docs/accuracy.md §2, "Classes too small to split")? Each
set's training part is cut to five samples a class (drawn with the seed), then BEP is trained
with the defaults (no split: every class is too small to give a 10 % split a sample) and with
``val_fraction`` 0.2, which takes one sample a class: the split every run made before the rule,
to the sample. Scored on the whole test part. One JSON line per set, seed and way.

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/small-classes-subsampled.py OUT.jsonl KEY[,KEY...] [SEEDS]
    python results/small-classes-subsampled.py summary FILE.jsonl
"""

import collections
import json
import pathlib
import statistics
import sys
import time

import numpy as np

PER_CLASS = 5
WAYS = {"all the data": {}, "the split": {"val_fraction": 0.2}}


def run(out, keys, seeds):
    from bep_mcu import training
    from bep_mcu.bench import parse_config
    from bep_mcu.data.datasets import load_dataset

    for key in keys:
        name, kwargs = parse_config(key)
        data = load_dataset(name)
        X, y = np.asarray(data.X_train), training.plain_labels(np.asarray(data.y_train))
        for seed in range(seeds):
            g = np.random.default_rng(seed)
            keep = np.sort(np.concatenate([g.choice(np.flatnonzero(y == c), PER_CLASS, replace=False)
                                           for c in np.unique(y)]))
            for way, settings in WAYS.items():
                begun = time.time()
                model = training.fit(X[keep], y[keep], training.Settings(seed=seed, **kwargs, **settings))
                record = {"set": key, "seed": seed, "way": way, "val_fraction": model.training.val_fraction,
                          "test": model.score(data.X_test, data.y_test), "epochs": model.training.epochs,
                          "seconds": round(time.time() - begun, 1)}
                with open(out, "a") as fh:
                    print(json.dumps(record), file=fh)
                print(key, seed, way, f"{record['test']:.3f}", flush=True)


def summary(path):
    table = collections.defaultdict(lambda: collections.defaultdict(list))
    for line in pathlib.Path(path).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            table[r["set"]][r["way"]].append(r["test"])
    print("| `--sets` key | " + " | ".join(WAYS) + " | change | lowest seed / mean, " + " / ".join(WAYS) + " |")
    print("|---" * (len(WAYS) + 3) + "|")
    means = collections.defaultdict(list)
    a, b = WAYS
    for key, ways in table.items():
        m = {w: 100 * statistics.mean(ways[w]) for w in WAYS}
        low = {w: 100 * min(ways[w]) / statistics.mean(ways[w]) for w in WAYS}
        for w in WAYS:
            means[w].append(m[w])
        print(f"| {key} | " + " | ".join(f"{m[w]:.1f}" for w in WAYS) + f" | {m[a] - m[b]:+.1f} | "
              + " / ".join(f"{low[w]:.0f} %" for w in WAYS) + " |")
    print("| **mean** | " + " | ".join(f"**{statistics.mean(means[w]):.1f}**" for w in WAYS)
          + f" | **{statistics.mean(means[a]) - statistics.mean(means[b]):+.1f}** | |")


if __name__ == "__main__":
    if sys.argv[1] == "summary":
        summary(sys.argv[2])
    else:
        run(sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]) if len(sys.argv) > 3 else 3)
