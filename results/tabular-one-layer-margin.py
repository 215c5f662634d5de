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


def pct(records, field):
    """The mean of ``field`` over ``records``, in %."""
    return 100 * statistics.mean(r[field] for r in records)


def by_set(keys):
    """(set, seed) keys grouped by set, in the order the sets first appear."""
    groups = collections.defaultdict(list)
    for key in keys:
        groups[key[0]].append(key)
    return groups


def compare(old, new):
    """Per set, over the seeds both maps ((set, seed) -> run) hold: the seeds, old and new test
    accuracy and the change of validation accuracy (None where the runs had no split)."""
    for s, keys in by_set(k for k in old if k in new).items():
        a, b = [old[k] for k in keys], [new[k] for k in keys]
        split = a[0]["val"] is not None  # no split where classes are too small to give one
        yield s, len(keys), pct(a, "test"), pct(b, "test"), pct(b, "val") - pct(a, "val") if split else None


def candidate_margins(one_layer):
    """fit's choice with the one-layer candidate at each r, against the three files' "none" lines."""
    for group, name in GROUPS.items():
        today = {(d["set"], d["seed"]): d["candidates"] for d in lines(name) if d["rule"] == "none"}
        print(f"\n{group} ({name}): today's choice, one-layer candidate at r 0.5")
        for r in sorted(one_layer):
            per_set = []
            for s, keys in by_set(k for k in today if k in one_layer[r]).items():
                for k in keys:  # the variant's network is today's one-layer candidate's shape
                    assert as_candidate(one_layer[r][k])["synapses"] == today[k][0]["synapses"], k
                new = [chosen([as_candidate(one_layer[r][k]), today[k][1]]) for k in keys]
                old = [chosen(today[k]) for k in keys]
                alone = pct([one_layer[r][k] for k in keys], "test") - pct([today[k][0] for k in keys], "test")
                per_set.append((s, len(keys), pct(old, "test"), pct(new, "test"),
                                pct(new, "test") - pct(old, "test"), pct(new, "val") - pct(old, "val"), alone))
            if not per_set:
                continue
            print(f"  r {r}: test {statistics.mean(p[4] for p in per_set):+.2f}, validation "
                  f"{statistics.mean(p[5] for p in per_set):+.2f} over {len(per_set)} sets "
                  f"(the one-layer candidate alone: test {statistics.mean(p[6] for p in per_set):+.2f})")
            for s, n, old, new, dt, dv, alone in per_set:
                print(f"    {s:24s} seeds {n:2d}  test {old:.1f} -> {new:.1f} ({dt:+.1f}), validation {dv:+.1f}; "
                      f"candidate alone {alone:+.1f}")


def series_margin(series):
    print("\nseries MLPs (no second candidate): r 0.5 -> 0.25, the seeds both ran")
    rows = list(compare(series[0.5], series[0.25]))
    for s, n, old, new, dv in rows:
        print(f"    {s:32s} seeds {n:2d}  test {old:.1f} -> {new:.1f} ({new - old:+.1f}), validation "
              f"{'(no split)' if dv is None else f'{dv:+.1f}'}")
    vals = [dv for *_, dv in rows if dv is not None]
    print(f"  mean over {len(rows)} sets: test {statistics.mean(new - old for _, _, old, new, _ in rows):+.2f}, "
          f"validation {statistics.mean(vals):+.2f} over the {len(vals)} with a split")


def width_margins():
    widths = collections.defaultdict(dict)  # (width, r) -> (set, seed) -> run
    for run in lines("tabular-margin-widths.jsonl"):
        widths[run["variant"]["hidden"][0], run["variant"]["r"]][run["set"], run["seed"]] = run
    print("\none hidden layer of another width (both of fit's candidates at r): r 0.5 -> 0.25, seeds 0-2")
    for width in sorted({w for w, _ in widths}):
        rows = [(s, new - old, dv) for s, _, old, new, dv in compare(widths[width, 0.5], widths[width, 0.25])]
        worst = min(rows, key=lambda row: row[1])
        print(f"  {width:4d} neurons: test {statistics.mean(row[1] for row in rows):+.2f}, validation "
              f"{statistics.mean(row[2] for row in rows):+.2f} over {len(rows)} sets; "
              f"largest loss {worst[0]} {worst[1]:+.1f}")


def main():
    one_layer = collections.defaultdict(dict)  # r -> (set, seed) -> run
    series = collections.defaultdict(dict)  # r -> (set, seed) -> run
    for run in lines("tabular-one-layer-margin.jsonl"):
        variant = run["variant"]
        into = one_layer if variant.get("bias_bits") == 0 else series
        into[variant.get("r", 0.5)][run["set"], run["seed"]] = run
    candidate_margins(one_layer)
    series_margin(series)
    width_margins()


if __name__ == "__main__":
    main()
