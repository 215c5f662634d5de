"""Replays fit's choice for a tabular MLP (docs/accuracy.md, "Knobs of the two candidates") with
one setting changed, on the stored runs of seeds 0-9 of the fourteen tabular sets: no training.

    python results/tabular-candidate-knobs.py

Today's two candidates are mlp-bias-bits-10-seeds.jsonl's '{"bias_bits": 0}' runs (512, no bias
bits) and two-layer-bias-bits-10-seeds.jsonl's (256-256, 64 bias bits); each variant of
tabular-candidate-knobs-10-seeds.jsonl changes one setting in both candidates, or in one of them
only where the file has no run of it in the other (today's run stands in). fit keeps the
candidate with the higher validation accuracy; a tie keeps the one with fewer weights, then the
default (training.fit). Prints, per variant, the fourteen sets' mean test / validation accuracy
of the choice, its change against today's, the sets it moves most, and the largest loss; then
the same for an oracle that keeps the better of today's two on test, and for a fit that would
train every run of the file and today's two as candidates and keep the best on validation.
"""

import collections
import json
import pathlib
import statistics

HERE = pathlib.Path(__file__).parent
ONE_LAYER, TWO_LAYERS = {"bias_bits": 0}, {"bias_bits": 64, "hidden": [256, 256]}


def runs(name):
    return [json.loads(line) for line in (HERE / name).read_text().splitlines() if line.strip()]


def weights(run):  # the hidden weights of the run's network: its kept input bits, then each width
    total, fan_in = 0, run["bits"]
    for width in run["variant"].get("hidden", [512]):
        total, fan_in = total + fan_in * width, width
    return total


def rank(run):  # fit's rule: validation, then fewer weights; on a full tie max keeps the first (the default)
    return run["val"], -weights(run)


def chosen(default, second):
    return max((default, second), key=rank)


def knob(variant):  # the setting a variant changes: its settings less the candidate's own
    return json.dumps({k: v for k, v in variant.items()
                       if k != "bias_bits" and (k, v) != ("hidden", TWO_LAYERS["hidden"])})


today = collections.defaultdict(dict)
for run in runs("mlp-bias-bits-10-seeds.jsonl"):
    if run["variant"] == ONE_LAYER:
        today[run["set"], run["seed"]]["one"] = run
for run in runs("two-layer-bias-bits-10-seeds.jsonl"):
    today[run["set"], run["seed"]]["two"] = run
variants = collections.defaultdict(lambda: collections.defaultdict(dict))
for run in runs("tabular-candidate-knobs-10-seeds.jsonl"):
    form = "two" if run["variant"].get("bias_bits") == 64 else "one"
    variants[knob(run["variant"])][run["set"], run["seed"]][form] = run


def per_set(choices):
    sets = collections.defaultdict(list)
    for (name, _), run in choices.items():
        sets[name].append(run)
    return {name: (100 * statistics.mean(r["test"] for r in rs), 100 * statistics.mean(r["val"] for r in rs))
            for name, rs in sets.items()}


now = per_set({key: chosen(pair["one"], pair["two"]) for key, pair in today.items()})
mean = lambda table, i: statistics.mean(v[i] for v in table.values())
print(f"today: test {mean(now, 0):.2f} / validation {mean(now, 1):.2f} over {len(now)} sets")
print("| variant | in | test / validation | change | largest gains | largest loss |")
print("|---|---|---|---|---|---|")


def row(name, where, choices):
    table = per_set(choices)
    delta = sorted(((table[s][0] - now[s][0], s) for s in table), reverse=True)
    gains = ", ".join(f"{s.split(':')[0]} {d:+.1f}" for d, s in delta[:2] if d > 0) or "none"
    print(f"| {name} | {where} | {mean(table, 0):.2f} / {mean(table, 1):.2f} | "
          f"{mean(table, 0) - mean(now, 0):+.2f} / {mean(table, 1) - mean(now, 1):+.2f} | {gains} | "
          f"{delta[-1][1].split(':')[0]} {delta[-1][0]:+.1f} |")


for name, by_key in variants.items():
    forms = {form for v in by_key.values() for form in v}
    where = "both" if forms == {"one", "two"} else "two layers" if forms == {"two"} else "one layer"
    row(name, where, {key: chosen(v.get("one", today[key]["one"]), v.get("two", today[key]["two"]))
                      for key, v in by_key.items()})
pools = {key: [*pair.values(), *(run for v in variants.values() for run in v.get(key, {}).values())]
         for key, pair in today.items()}
row("today's two, the better on test (an oracle)", "all",
    {key: max(pair.values(), key=lambda r: r["test"]) for key, pair in today.items()})
row(f"every run a candidate (up to {max(map(len, pools.values()))})", "all",
    {key: max(pool, key=rank) for key, pool in pools.items()})
