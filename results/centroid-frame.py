"""The frame from the class centroids (docs/accuracy.md, "A frame from the class centroids"): fit's
choice between its two tabular candidates replayed on validation with each frame variant, against
the equiangular frame of every model (the rule before it), seeds 0-9.

    python results/centroid-frame.py

reads centroid-frame-experiments.jsonl (``results/centroid-frame-experiments.py`` lines) and, for
the equiangular runs of the first three groups, the stored candidates as fit trained them before
the centroid frame: the one-layer candidate of tabular-one-layer-margin.jsonl (r 0.25) and the
two-layer candidate of the "none" lines of tabular-rule-experiments-10-seeds.jsonl,
fresh2-rule-experiments.jsonl and fresh3-rule-experiments.jsonl (``centroid-frame-experiments.py
OUT equiangular KEYS 10`` trains the same runs, to the bit). The fourth held-out check's
equiangular runs are lines of the experiment file. Prints, per variant and group, the mean change
of the chosen model's test and validation accuracy, and each set's. "centroid, two layers" keeps
the one-layer candidate's equiangular run beside the centroid frame's two-layer run (the rule
without its test of the centroids' leading direction); "today" is the package's rule; "today, and
the labels' order" takes today's run only where the centroids' projections on their leading
direction also run in the order of the class labels (computed from the data), else the
equiangular one. Then the mean over all the sets of each variant measured on all four groups.
Last, the one-layer candidate alone with the centroid frame ("centroid" runs) against the
equiangular frame, set by set, beside two measures of the data a rule for one layer could test:
the centroids' leading share and the between-class share (η²) of the training samples'
projections on the centroids' leading direction (seed 0's training part). And the fifth held-out
check's test of a rule for one hidden layer built on those two measures (its sets' `today` and
`centroid` lines, the :mlp and :64 keys, run before the package took the rule), that rule on
five series MLPs (their `equiangular` and `one-layer-any` lines), and one hidden layer of 64 on the
earlier sets it takes (their `equiangular` and `today` lines, `today` the package with the rule).
"""

import collections
import json
import pathlib
import statistics

import numpy as np

from bep_mcu import training
from bep_mcu.bench import parse_config
from bep_mcu.data.datasets import load_dataset
from bep_mcu.engine.classifier import centred_gram, leading_share
from bep_mcu.model import plain_labels

HERE = pathlib.Path(__file__).resolve().parent
GROUPS = {
    "fourteen tabular sets": ["hastie:mlp", "quantiles:mlp", "wine:mlp", "breast_cancer:mlp", "multiclass-30:mlp",
                              "blobs-12:mlp", "moons:mlp", "circles:mlp", "iris:mlp", "classification-2:mlp",
                              "classification-8:mlp", "classification-20:mlp", "digits:mlp", "digits-28:mlp"],
    "second held-out check": ["diabetes-3:mlp", "sparse-50:mlp", "friedman-2:mlp", "swissroll-4:mlp", "clusters-4:mlp"],
    "third held-out check": ["friedman2-3:mlp", "friedman3-2:mlp", "regression-20-4:mlp", "classification-6c:mlp",
                             "aniso-3:mlp", "shells-4:mlp"],
    "fourth held-out check (frozen before it ran)": [
        "friedman1-4:mlp", "regression-6-5:mlp", "sparse-uncorrelated-3:mlp", "scurve-5:mlp", "quantiles-5:mlp",
        "classification-4c:mlp", "blobs-7:mlp"],
}
TWO_CLASSES = {"hastie:mlp", "breast_cancer:mlp", "moons:mlp", "circles:mlp", "friedman-2:mlp", "clusters-4:mlp",
               "friedman3-2:mlp"}  # every frame the same up to the sign of its columns: no variant applies


def lines(name):
    return [json.loads(line) for line in (HERE / name).read_text().splitlines() if line.strip()]


def chosen(candidates):
    """fit's rule: validation, then fewer synapses; a full tie keeps the default (first). Validation is
    compared to 9 decimals: a stored epoch record's accuracy and a score of the same count may differ
    in the last bit."""
    return max(candidates, key=lambda c: (round(c["val"], 9), -c["synapses"]))


def equiangular_runs():
    """(set, seed) -> [one-layer, two-layer] candidates with the equiangular frame."""
    two = {}
    for name in ("tabular-rule-experiments-10-seeds.jsonl", "fresh2-rule-experiments.jsonl",
                 "fresh3-rule-experiments.jsonl"):
        two.update({(r["set"], r["seed"]): r["candidates"][1] for r in lines(name) if r["rule"] == "none"})
    runs = {}
    for r in lines("tabular-one-layer-margin.jsonl"):
        key = (r["set"], r["seed"])
        if r["variant"] == {"bias_bits": 0, "r": 0.25} and key in two:
            runs[key] = [{"val": r["val"], "test": r["test"], "synapses": r["bits"] * 512}, two[key]]
    runs.update({(r["set"], r["seed"]): r["candidates"] for r in lines("centroid-frame-experiments.jsonl")
                 if r["rule"] == "equiangular"})
    return runs


def label_order_rule(keys):
    """(set, seed) -> whether the rule with a test of the labels' order takes the frame: today's
    rule (leading share at least 1/2) and the centroids' projections on their leading direction
    monotone in the class labels' order. Computed from the data (no training)."""
    takes = {}
    for key in sorted({k[0] for k in keys}):
        name, base = parse_config(key)
        data = load_dataset(name)
        X, y = np.asarray(data.X_train), plain_labels(np.asarray(data.y_train))
        for seed in sorted(k[1] for k in keys if k[0] == key):
            settings = training.Settings(seed=seed, **base)
            train_idx, _ = training.split_validation(y, settings.val_fraction, seed)
            model = training.initial_model(X, y, settings)
            centroids = training.class_centroids(model.encoder, X[train_idx], model.encode_labels(y[train_idx]),
                                                 len(model.labels))
            lead = np.linalg.eigh(centred_gram(centroids))[1][:, -1]
            steps = np.diff(lead)
            takes[(key, seed)] = leading_share(centroids) >= 0.5 and bool((steps > 0).all() or (steps < 0).all())
    return takes


def main():
    base = equiangular_runs()
    variants = collections.defaultdict(dict)
    for r in lines("centroid-frame-experiments.jsonl"):
        if any(r["set"] in sets for sets in GROUPS.values()):  # the fifth check's lines: fifth_check
            variants[r["rule"]][(r["set"], r["seed"])] = r["candidates"]
    variants["centroid, two layers"] = {k: [base[k][0], c[1]] for k, c in variants["centroid"].items()
                                        if k in base and len(c) == 2}
    takes = label_order_rule(variants["today"])
    variants["today, and the labels' order"] = {k: c if takes[k] else base[k] for k, c in variants["today"].items()}
    for variant in ("centroid", "centroid, two layers", "half", "today", "today, and the labels' order"):
        runs = variants[variant]
        print(f"\n{variant} (against the equiangular frame; two-class sets as they are)")
        everything = []
        for group, sets in GROUPS.items():
            changes = []
            for s in sets:
                keys = [(s, seed) for seed in range(10) if (s, seed) in base and ((s, seed) in runs or s in TWO_CLASSES)]
                if not keys:
                    continue
                new = [chosen(base[k] if s in TWO_CLASSES else runs[k]) for k in keys]
                old = [chosen(base[k]) for k in keys]
                test = 100 * (statistics.mean(c["test"] for c in new) - statistics.mean(c["test"] for c in old))
                val = 100 * (statistics.mean(c["val"] for c in new) - statistics.mean(c["val"] for c in old))
                changes.append((s, len(keys), 100 * statistics.mean(c["test"] for c in old), test, val))
            if not changes:
                continue
            print(f"  {group}: test {statistics.mean(c[3] for c in changes):+.2f}, "
                  f"validation {statistics.mean(c[4] for c in changes):+.2f} over {len(changes)} sets")
            for s, n, old, test, val in changes:
                if s not in TWO_CLASSES:
                    print(f"    {s:28s} {n:2d} seeds  {old:5.1f} {test:+5.1f}  validation {val:+5.1f}")
            everything += changes
        if len(everything) == sum(len(sets) for sets in GROUPS.values()):
            print(f"  all {len(everything)} sets: test {statistics.mean(c[3] for c in everything):+.2f}, validation "
                  f"{statistics.mean(c[4] for c in everything):+.2f}, lowest set {min(c[3] for c in everything):+.1f}")


def between_class_share(key, seed=0):
    """(leading share, η²) of a seed's training part, as ``training.classifier_frame`` computes
    them: η² is the between-class sum of squares over the total of the encoded samples'
    projections on the centroids' leading direction."""
    name, base = parse_config(key)
    data = load_dataset(name)
    X, y = np.asarray(data.X_train), plain_labels(np.asarray(data.y_train))
    settings = training.Settings(seed=seed, **base)
    train_idx, _ = training.split_validation(y, settings.val_fraction, seed)
    model = training.initial_model(X, y, settings)
    classes = model.encode_labels(y[train_idx])
    centroids = training.class_centroids(model.encoder, X[train_idx], classes, len(model.labels))
    return leading_share(centroids), training.between_class_share(model.encoder, X[train_idx], classes, centroids)


def one_layer():
    base = equiangular_runs()
    runs = {(r["set"], r["seed"]): r["candidates"] for r in lines("centroid-frame-experiments.jsonl")
            if r["rule"] == "centroid" and r["set"].split(":")[0] not in FIFTH}
    print("\none hidden layer alone, centroid frame against equiangular (test / validation), seeds 0-9")
    for s in sorted({k[0] for k in runs}):
        keys = [k for k in runs if k[0] == s and k in base]
        if not keys or s in TWO_CLASSES:
            continue
        test = 100 * statistics.mean(runs[k][0]["test"] - base[k][0]["test"] for k in keys)
        val = 100 * statistics.mean(runs[k][0]["val"] - base[k][0]["val"] for k in keys)
        share, eta = between_class_share(s)
        print(f"    {s:28s} {len(keys):2d} seeds  {test:+5.1f} / {val:+5.1f}  leading share {share:.2f}  "
              f"between-class share {eta:.2f}")


FIFTH = ["regression-12-4", "lowrank-5", "friedman1-3", "product-3", "shells8-4", "classification-5c", "blobs-row-5"]


def fifth_check():
    """The fifth held-out check's test of the one-layer rule (docs/accuracy.md, "Fifth held-out
    check"): one hidden layer takes the centroid frame where the seed's training part has a leading
    share of at least 1/2 and η² of at least 0.75, else keeps the equiangular frame (today's run)."""
    runs = collections.defaultdict(dict)
    for r in lines("centroid-frame-experiments.jsonl"):
        if r["set"].split(":")[0] in FIFTH:
            runs[r["rule"]][(r["set"], r["seed"])] = r["candidates"]
    print("\nfifth held-out check: one hidden layer takes the centroid frame where share >= 1/2 and eta^2 >= 0.75"
          " (change against today, test / validation, seeds 0-9)")
    sums = collections.defaultdict(list)
    for name in FIFTH:
        takes = {seed: between_class_share(f"{name}:mlp", seed) for seed in range(10)}
        taken = [seed for seed, (share, eta) in takes.items() if share >= 0.5 and eta >= 0.75]
        row = []
        for label, key, pick in (("one layer of 512", f"{name}:mlp", lambda c: c[0]),
                                 ("one layer of 64", f"{name}:64", lambda c: c[0]),
                                 ("fit's choice", f"{name}:mlp", None)):
            changes = []
            for seed in range(10):
                old, new = runs["today"][(key, seed)], runs["centroid"][(key, seed)]
                if pick is None:
                    old, new = chosen(old), chosen([new[0] if seed in taken else old[0], old[1]])
                else:
                    old, new = pick(old), pick(new) if seed in taken else pick(old)
                changes.append((new["test"] - old["test"], new["val"] - old["val"]))
            test, val = (100 * statistics.mean(c[i] for c in changes) for i in (0, 1))
            sums[label].append((test, val, bool(taken)))
            row.append(f"{label} {test:+5.1f} / {val:+5.1f}")
        share, eta = (statistics.mean(t[i] for t in takes.values()) for i in (0, 1))
        print(f"    {name:20s} share {share:.2f} eta^2 {eta:.2f} taken on {len(taken):2d} seeds:  " + ",  ".join(row))
    for label, rows in sums.items():
        on = [r for r in rows if r[2]]
        test, val = (statistics.mean(r[i] for r in rows) for i in (0, 1))
        print(f"  {label}: seven sets {test:+.2f} / {val:+.2f}"
              + (f", the {len(on)} sets the rule takes {statistics.mean(r[0] for r in on):+.2f} / "
                 f"{statistics.mean(r[1] for r in on):+.2f}" if on else ""))


SERIES = ["BasicMotions:mlp", "ArrowHead:mlp", "ArrowHead-noisy:mlp", "ACSF1-down:mlp", "PickupGestureWiimoteZ:mlp"]
# The earlier sets whose one-layer models the rule takes, at a board's width (its `today` lines: the
# package with the rule).
BOARD_WIDTH = ["wine:64", "iris:64", "friedman2-3:64", "regression-20-4:64", "aniso-3:64", "regression-6-5:64",
               "scurve-5:64"]


def against_equiangular(title, keys, rule):
    """One network a key (the first candidate): ``rule``'s runs against the `equiangular` ones."""
    runs = collections.defaultdict(dict)
    for r in lines("centroid-frame-experiments.jsonl"):
        if r["set"] in keys:
            runs[r["rule"]][(r["set"], r["seed"])] = r["candidates"][0]
    print(f"\n{title} ({rule} against the equiangular frame, test / validation)")
    changes = []
    for s in keys:
        seeds = [k for k in runs[rule] if k[0] == s]
        changed = [k for k in seeds if (runs[rule][k]["test"], runs[rule][k]["val"])
                   != (runs["equiangular"][k]["test"], runs["equiangular"][k]["val"])]
        test, val = (100 * statistics.mean(runs[rule][k][m] - runs["equiangular"][k][m] for k in seeds)
                     for m in ("test", "val"))
        changes.append((test, val))
        print(f"    {s:28s} {len(seeds):2d} seeds, {len(changed):2d} changed  {test:+5.1f} / {val:+5.1f}")
    print(f"  mean over {len(changes)} rows: {statistics.mean(c[0] for c in changes):+.2f} / "
          f"{statistics.mean(c[1] for c in changes):+.2f}")


if __name__ == "__main__":
    main()
    one_layer()
    fifth_check()
    against_equiangular("series MLPs of one hidden layer, the rule applied to them", SERIES, "one-layer-any")
    against_equiangular("one hidden layer of 64 on the earlier sets the rule takes", BOARD_WIDTH, "today")
