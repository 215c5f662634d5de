"""The trigger margin of one hidden layer on tabular data (docs/accuracy.md, "A narrower margin
for one tabular hidden layer"): fit's choice between its two tabular candidates replayed with the
one-layer candidate trained at another r, against today's candidates as fit trained them.

    python results/tabular-one-layer-margin.py

reads tabular-one-layer-margin.jsonl (``results/untuned-data-experiments.py`` lines: the one-layer
candidate, '{"bias_bits": 0, "r": R}', and the series MLPs at '{}' and '{"r": 0.25}') and today's
candidates, the "none" lines of tabular-rule-experiments-10-seeds.jsonl (fourteen tabular sets),
fresh2-rule-experiments.jsonl (the second held-out check's five) and fresh3-rule-experiments.jsonl
(the third held-out check's six, frozen before any of it was run), all seeds 0-9. Those "none"
lines were run before r 0.25 became the default, with r 0.5 in the one-layer candidate; with
today's package ``results/tabular-rule-experiments.py OUT none KEYS 10`` trains that candidate at
0.25 (the variant's runs to the bit) and ``results/untuned-data-experiments.py OUT
'{"bias_bits": 0, "r": 0.5}' KEYS 10`` the earlier one. Prints, per r and group, the mean change
of the chosen model's test and validation accuracy and each set's; then the series MLPs, where
there is no second candidate (r 0.5 against 0.25 as fit runs them); then narrower single layers
(tabular-margin-widths.jsonl: ``fit`` with '{"hidden": [W], "r": R}', both candidates at that r,
seeds 0-2, eight tabular sets), r 0.25 against 0.5 per width.
"""

import collections
import json
import pathlib
import statistics

HERE = pathlib.Path(__file__).resolve().parent
GROUPS = {"fourteen tabular sets": "tabular-rule-experiments-10-seeds.jsonl",
          "second held-out check": "fresh2-rule-experiments.jsonl",
          "third held-out check": "fresh3-rule-experiments.jsonl"}


def lines(name):
    return [json.loads(line) for line in (HERE / name).read_text().splitlines() if line.strip()]


def chosen(candidates):  # fit's rule: validation, then fewer synapses; a full tie keeps the default (first)
    return max(candidates, key=lambda c: (c["val"], -c["synapses"]))


def as_candidate(run):  # an untuned-data-experiments line of a one-hidden-layer MLP as a candidate record
    return {"val": run["val"], "test": run["test"], "train": run["train"], "synapses": run["bits"] * 512}


def main():
    runs = lines("tabular-one-layer-margin.jsonl")
    one_layer = collections.defaultdict(dict)  # r -> (set, seed) -> run
    series = collections.defaultdict(dict)  # "r 0.5" / "r 0.25" -> (set, seed) -> run
    for run in runs:
        variant = run["variant"]
        if variant.get("bias_bits") == 0:
            one_layer[variant["r"]][run["set"], run["seed"]] = run
        else:
            series[variant.get("r", 0.5)][run["set"], run["seed"]] = run
    for group, name in GROUPS.items():
        today = {(d["set"], d["seed"]): d["candidates"] for d in lines(name) if d["rule"] == "none"}
        sets = list(dict.fromkeys(s for s, _ in today))
        print(f"\n{group} ({name}): today's choice, one-layer candidate at r 0.5")
        for r in sorted(one_layer):
            per_set = []
            for s in sets:
                keys = [k for k in today if k[0] == s and k in one_layer[r]]
                if not keys:
                    continue
                for k in keys:  # the variant's network is today's one-layer candidate's shape
                    assert as_candidate(one_layer[r][k])["synapses"] == today[k][0]["synapses"], k
                new = [chosen([as_candidate(one_layer[r][k]), today[k][1]]) for k in keys]
                old = [chosen(today[k]) for k in keys]
                mean = lambda cs, f: 100 * statistics.mean(c[f] for c in cs)  # noqa: E731
                per_set.append((s, len(keys), mean(old, "test"), mean(new, "test"),
                                mean(new, "test") - mean(old, "test"), mean(new, "val") - mean(old, "val"),
                                mean([one_layer[r][k] for k in keys], "test") - mean([today[k][0] for k in keys], "test")))
            if not per_set:
                continue
            print(f"  r {r}: test {statistics.mean(p[4] for p in per_set):+.2f}, validation "
                  f"{statistics.mean(p[5] for p in per_set):+.2f} over {len(per_set)} sets "
                  f"(the one-layer candidate alone: test {statistics.mean(p[6] for p in per_set):+.2f})")
            for s, n, old, new, dt, dv, alone in per_set:
                print(f"    {s:24s} seeds {n:2d}  test {old:.1f} -> {new:.1f} ({dt:+.1f}), validation {dv:+.1f}; "
                      f"candidate alone {alone:+.1f}")
    print("\nseries MLPs (no second candidate): r 0.5 -> 0.25, the seeds both ran")
    shared = sorted(set(series[0.5]) & set(series[0.25]))
    tests, vals = [], []
    for s in dict.fromkeys(k[0] for k in shared):
        keys = [k for k in shared if k[0] == s]
        mean = lambda r, f: 100 * statistics.mean(series[r][k][f] for k in keys)  # noqa: E731
        tests.append(mean(0.25, "test") - mean(0.5, "test"))
        split = series[0.5][keys[0]]["val"] is not None  # no split where classes are too small to give one
        if split:
            vals.append(mean(0.25, "val") - mean(0.5, "val"))
        print(f"    {s:32s} seeds {len(keys):2d}  test {mean(0.5, 'test'):.1f} -> {mean(0.25, 'test'):.1f} "
              f"({tests[-1]:+.1f}), validation {f'{vals[-1]:+.1f}' if split else '(no split)'}")
    print(f"  mean over {len(tests)} sets: test {statistics.mean(tests):+.2f}, validation "
          f"{statistics.mean(vals):+.2f} over the {len(vals)} with a split")
    widths = collections.defaultdict(dict)  # (width, r) -> (set, seed) -> run
    for run in lines("tabular-margin-widths.jsonl"):
        widths[run["variant"]["hidden"][0], run["variant"]["r"]][run["set"], run["seed"]] = run
    print("\none hidden layer of another width (both of fit's candidates at r): r 0.5 -> 0.25, seeds 0-2")
    for width in sorted({w for w, _ in widths}):
        old, new = widths[width, 0.5], widths[width, 0.25]
        per_set = []
        for s in dict.fromkeys(k[0] for k in old):
            keys = [k for k in old if k[0] == s]
            mean = lambda runs, f: 100 * statistics.mean(runs[k][f] for k in keys)  # noqa: E731
            per_set.append((s, mean(new, "test") - mean(old, "test"), mean(new, "val") - mean(old, "val")))
        worst = min(per_set, key=lambda p: p[1])
        print(f"  {width:4d} neurons: test {statistics.mean(p[1] for p in per_set):+.2f}, validation "
              f"{statistics.mean(p[2] for p in per_set):+.2f} over {len(per_set)} sets; "
              f"largest loss {worst[0]} {worst[1]:+.1f}")


if __name__ == "__main__":
    main()
