"""How many epochs fit's watch for an RNN at chance should look at (docs/research/untuned-data.md §4.2).

    PYTHONPATH=. python results/rnn-plateau-fallback-choice.py

Replays the rule on the stored runs of rnn-plateau-input-code.jsonl (no training): for each seed, the
shared code's run (variant {}) is kept unless at least half of its first K epochs were at chance (a
training error count at least the training part's size minus its commonest class's count), in which
case the run with thresholds per time point (the package's thermometer:8:point, or the `_perpoint`
patch that gives it to the bit) is taken: what fit then returns. Prints, per K, each row's mean test /
validation accuracy / seeds switched, and the means over the rows.
"""

import json
from collections import defaultdict

import numpy as np

from bep_mcu.bench import parse_config
from bep_mcu.data.datasets import load_dataset
from bep_mcu.training import split_validation

runs: dict = defaultdict(dict)
for line in open("results/rnn-plateau-input-code.jsonl"):
    r = json.loads(line)
    code = {"{}": "shared", '{"_perpoint": 1}': "point", '{"binarize": "thermometer:8:point"}': "point"}.get(
        json.dumps(r["variant"], sort_keys=True))
    if code:
        runs[(r["set"], r["seed"])][code] = r
chance, samples = {}, {}
for key, seed in runs:
    y = load_dataset(parse_config(key)[0]).y_train
    part = y[split_validation(y, 0.1, seed)[0]]
    samples[key, seed] = len(part)
    chance[key, seed] = len(part) - np.unique(part, return_counts=True)[1].max()


def at_chance(r: dict, k: int, key: tuple) -> bool:
    errors = [round(e * samples[key]) for e in r["train_error"][:k]]
    return len(errors) == k and 2 * sum(e >= chance[key] for e in errors) >= k


for k in (0, 5, 10, 20, 30, 50):  # 0: never switch (the shared code)
    rows = defaultdict(list)
    for key, pair in sorted(runs.items()):
        if "shared" in pair and "point" in pair:
            pick = pair["point"] if k and at_chance(pair["shared"], k, key) else pair["shared"]
            rows[key[0]].append((pick["test"], pick["val"], pick is pair["point"]))
    cells = [f"{s.split(':')[0]} {100 * np.mean([t for t, _, _ in v]):.1f}/{100 * np.mean([a for _, a, _ in v]):.1f}"
             f"/{sum(p for _, _, p in v)}" for s, v in rows.items()]
    test = np.mean([np.mean([t for t, _, _ in v]) for v in rows.values()])
    val = np.mean([np.mean([a for _, a, _ in v]) for v in rows.values()])
    print(f"K {k:2}: {' '.join(cells)} | mean test {100 * test:.2f} val {100 * val:.2f}")
