"""Replays fit's choice with the graded trigger's runs (docs/accuracy.md, "A graded trigger"):
as two more candidates beside today's two (validation keeps the best of four), and in one of
today's candidates only (the other keeping the margin trigger). No training: the stored runs of
tabular-rule-experiments-10-seeds.jsonl (the fourteen tabular sets) and
fresh2-rule-experiments.jsonl (the five held-out tabular sets), seeds 0-9.

    python results/graded-trigger-choice.py
"""

import collections
import json
import pathlib
import statistics

HERE = pathlib.Path(__file__).parent
HELD_OUT = ("diabetes-3", "sparse-50", "friedman-2", "swissroll-4", "clusters-4")
RULES = ("graded:1", "graded:4", "gradedr:1", "gradedr:4", "linear:1", "linear:2")

runs = collections.defaultdict(dict)  # (set, seed) -> rule -> candidates (fit's default first)
for name in ("tabular-rule-experiments-10-seeds.jsonl", "fresh2-rule-experiments.jsonl"):
    for line in (HERE / name).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            runs[r["set"], r["seed"]][r["rule"]] = r["candidates"]


def chosen(candidates):  # training.choose: validation, then fewer weights, then the first
    return max(candidates, key=lambda c: (c["val"], -c["synapses"]))


def change(rule, combine, held_out):
    """Mean test change over the sets (of the held-out five or the fourteen) and per set."""
    before, after = collections.defaultdict(list), collections.defaultdict(list)
    for (key, _), by_rule in runs.items():
        if (key.split(":")[0] in HELD_OUT) != held_out or rule not in by_rule or "none" not in by_rule:
            continue
        before[key].append(100 * chosen(by_rule["none"])["test"])
        after[key].append(100 * chosen(combine(by_rule["none"], by_rule[rule]))["test"])
    per_set = {k.split(":")[0]: statistics.mean(after[k]) - statistics.mean(before[k]) for k in after}
    return statistics.mean(per_set.values()), per_set


def in_candidate(which):
    return lambda today, graded: [graded[i] if i == which else c for i, c in enumerate(today)]


ways = {"as two more candidates": lambda today, graded: today + graded,
        "in the one-layer candidate only": in_candidate(0),
        "in the two-layer candidate only": in_candidate(1)}
for rule in RULES:
    for way, combine in ways.items():
        parts = []
        for held_out, label in ((False, "fourteen"), (True, "held-out five")):
            mean, per_set = change(rule, combine, held_out)
            largest = ", ".join(f"{k} {v:+.1f}" for k, v in sorted(per_set.items(), key=lambda kv: kv[1])
                                if abs(v) >= 1.0)
            parts.append(f"{label} {mean:+.2f}" + (f" ({largest})" if largest else ""))
        print(f"{rule} {way}: " + "; ".join(parts))
