"""Several prototypes a class (docs/accuracy.md, "Several prototypes a class"): fit's choice
between its two tabular candidates replayed on validation with K prototypes a class, against the
package's runs of the same seeds.

    python results/multi-prototype.py

reads multi-prototype-experiments.jsonl (``results/multi-prototype-experiments.py`` lines) and,
for the package, the "today" runs of centroid-frame-experiments.jsonl (the equiangular runs for a
set of two classes, where the two are the same). Prints, per variant, each set's change of the
chosen model's test and validation accuracy (seeds 0-2) and their mean.
"""

import collections
import importlib.util
import pathlib
import statistics

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("frames", HERE / "centroid-frame.py")
frames = importlib.util.module_from_spec(spec)
spec.loader.exec_module(frames)


def main():
    package = {}
    for r in frames.lines("centroid-frame-experiments.jsonl"):
        if r["rule"] == "today" or (r["rule"] == "equiangular" and r["set"] in frames.TWO_CLASSES):
            package[(r["set"], r["seed"])] = r["candidates"]
    variants = collections.defaultdict(dict)
    for r in frames.lines("multi-prototype-experiments.jsonl"):
        variants[r["rule"]][(r["set"], r["seed"])] = r["candidates"]
    for variant, runs in variants.items():
        print(f"\n{variant} (against the package, test / validation)")
        changes = []
        for s in sorted({k[0] for k in runs}):
            keys = [k for k in runs if k[0] == s and k in package]
            test = 100 * statistics.mean(frames.chosen(runs[k])["test"] - frames.chosen(package[k])["test"] for k in keys)
            val = 100 * statistics.mean(frames.chosen(runs[k])["val"] - frames.chosen(package[k])["val"] for k in keys)
            changes.append((test, val))
            print(f"    {s:24s} {len(keys)} seeds  {test:+5.1f} / {val:+5.1f}")
        print(f"  mean over {len(changes)} sets: {statistics.mean(c[0] for c in changes):+.2f} / "
              f"{statistics.mean(c[1] for c in changes):+.2f}")


if __name__ == "__main__":
    main()
