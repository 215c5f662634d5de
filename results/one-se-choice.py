"""Replays a one-standard-error choice between fit's two candidates (docs/accuracy.md, "A
one-standard-error choice between the two candidates"): keep the network with fewer weights
unless the other leads on validation by more than one standard error of the difference,
sqrt(2 p (1 - p) / n), p the two validation accuracies' mean and n the validation samples
(today's rule: the higher validation accuracy, a tie keeping the smaller). No training: the
stored runs of both candidates, "none" lines of

- tabular-rule-experiments-10-seeds.jsonl (the fourteen tabular sets, seeds 0-9),
- fresh2-rule-experiments.jsonl (the five tabular sets of the second held-out check, seeds 0-9),
- long-series-candidates.jsonl (the three long series whose second candidate is a coarser code,
  seeds 0-2).

    PYTHONPATH=. python results/one-se-choice.py
"""

import functools
import json
import math
import pathlib
import statistics

import numpy as np

from bep_mcu import training
from bep_mcu.bench import parse_config
from bep_mcu.data.datasets import load_dataset

HERE = pathlib.Path(__file__).parent
FILES = {"the fourteen tabular sets": "tabular-rule-experiments-10-seeds.jsonl",
         "the five held-out tabular sets": "fresh2-rule-experiments.jsonl",
         "the three long series": "long-series-candidates.jsonl"}


def today(candidates):  # training.choose: validation, then fewer weights
    return max(candidates, key=lambda c: (c["val"], -c["synapses"]))


def one_se(candidates, n_val):
    small, large = sorted(candidates, key=lambda c: c["synapses"])
    p = (small["val"] + large["val"]) / 2
    return large if large["val"] - small["val"] > math.sqrt(2 * p * (1 - p) / n_val) else small


@functools.cache
def validation_samples(key, seed):  # the split fit makes (seeded)
    y = np.asarray(load_dataset(parse_config(key)[0]).y_train)
    return len(training.split_validation(training.plain_labels(y), 0.1, seed)[1])


every = []
for group, name in FILES.items():
    runs = [json.loads(line) for line in (HERE / name).read_text().splitlines() if line.strip()]
    runs = [r for r in runs if r["rule"] == "none" and len(r["candidates"]) == 2]
    by_set = {}
    for r in runs:
        old, new = today(r["candidates"]), one_se(r["candidates"], validation_samples(r["set"], r["seed"]))
        by_set.setdefault(r["set"], []).append((100 * old["test"], 100 * new["test"]))
        if group != "the three long series":
            every.append(100 * (new["test"] - old["test"]))
    print(f"{group}: test {statistics.mean(statistics.mean(o for o, _ in v) for v in by_set.values()):.2f} -> "
          f"{statistics.mean(statistics.mean(n for _, n in v) for v in by_set.values()):.2f}")
    for key, pairs in by_set.items():
        old, new = statistics.mean(o for o, _ in pairs), statistics.mean(n for _, n in pairs)
        print(f"  {key:32} {old:5.1f} -> {new:5.1f} ({new - old:+.1f}), {len(pairs)} seeds")
print(f"tabular runs: {len(every)}, mean change {statistics.mean(every):+.3f}, "
      f"standard error {statistics.stdev(every) / math.sqrt(len(every)):.3f}")
