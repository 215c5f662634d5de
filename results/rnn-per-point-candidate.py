"""Replays a fit that would train an RNN twice, with thresholds shared over time and per time
point, and keep the one its validation split prefers (docs/accuracy.md, "Rule changes for the
tabular rows"; not built): no training, on rnn-plateau-input-code.jsonl's ten-seed runs of both
codes ('{}' and '{"_perpoint": 1}'; ACSF1:rnn has four seeds). spectra is left out: its shared
code sits at chance and fit already starts it again per time point. A validation tie keeps the
shared code (fewer thresholds). Prints per row test / validation of each code and of the choice,
how many seeds switch, and the rows' mean.

    python results/rnn-per-point-candidate.py
"""

import json
import pathlib
import statistics

HERE = pathlib.Path(__file__).parent
CODES = {"{}": "shared", '{"_perpoint": 1}': "point"}
runs = {}
for line in (HERE / "rnn-plateau-input-code.jsonl").read_text().splitlines():
    r = json.loads(line)
    code = CODES.get(json.dumps(r["variant"]))
    if code and r["set"] != "spectra:rnn":
        runs[r["set"], r["seed"], code] = r  # a seed run twice: the later line
means = {"shared": [], "point": [], "chosen": []}
print("| row | seeds | shared | per time point | chosen on validation | seeds switched |")
print("|---|---|---|---|---|---|")
for name in sorted({k[0] for k in runs}):
    seeds = [s for s in sorted({k[1] for k in runs if k[0] == name})
             if (name, s, "shared") in runs and (name, s, "point") in runs]
    if not seeds:  # a row measured with one code only
        continue
    shared = [runs[name, s, "shared"] for s in seeds]
    point = [runs[name, s, "point"] for s in seeds]
    chosen = [p if p["val"] > q["val"] else q for q, p in zip(shared, point)]
    cells = []
    for label, rs in (("shared", shared), ("point", point), ("chosen", chosen)):
        test, val = (100 * statistics.mean(r[k] for r in rs) for k in ("test", "val"))
        means[label].append(test)
        cells.append(f"{test:.1f} / {val:.1f}")
    print(f"| {name} | {len(seeds)} | {' | '.join(cells)} | {sum(c is p for c, p in zip(chosen, point))} |")
print(f"| mean test of the {len(means['shared'])} rows | | " +
      " | ".join(f"{statistics.mean(v):.2f}" for v in means.values()) + " | |")
