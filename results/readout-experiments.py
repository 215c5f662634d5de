"""What a learnt output layer could give BEP's hidden layers, measured in numpy only
(docs/accuracy.md, "A learnt output layer?"). BEP trains as today (both of fit's candidates);
then, on each candidate's final last-hidden activations a (±1), readouts other than the fixed
classifier P are fitted on the training split and scored on validation and test:

- ``none``: argmax a · Pᵀ (today's prediction, to the bit);
- ``bias``: a · Pᵀ + b, one integer b per class, chosen by coordinate ascent on training accuracy
  (the per-class shift a logit batch norm gives QAT);
- ``lr C``: a float logistic regression on a (scikit-learn, L2 strength 1/C): an upper bound on
  what any linear readout of BEP's features gives, integer or not.

One JSON line per set and seed: per readout, per candidate (fit's default first), validation /
test / training accuracy. ``summary`` replays fit's choice (validation, then fewer synapses, then
the default) per readout and prints each readout's mean against ``none``.

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/readout-experiments.py OUT.jsonl KEY[,KEY...] [SEEDS]
    python results/readout-experiments.py summary FILE.jsonl
"""

import collections
import json
import pathlib
import statistics
import sys

import numpy as np


def bias_readout(logits, y, rounds=3):
    """Integer per-class biases maximising training accuracy, one class at a time."""
    n_classes = logits.shape[1]
    b = np.zeros(n_classes, dtype=np.int64)
    best = (np.argmax(logits, axis=1) == y).mean()
    span = int(np.abs(logits).max()) + 1
    for _ in range(rounds):
        moved = False
        for c in range(n_classes):
            for value in range(-span, span + 1):
                trial = b.copy()
                trial[c] = value
                acc = (np.argmax(logits + trial, axis=1) == y).mean()
                if acc > best or (acc == best and abs(value) < abs(b[c])):
                    best, b, moved = acc, trial, moved or value != b[c]
        if not moved:
            break
    return b


def readouts(a_train, y_train, P):
    """name → predict(a) for each readout fitted on (a_train, y_train)."""
    from sklearn.linear_model import LogisticRegression

    out = {"none": lambda a: np.argmax(a @ P.T, axis=1)}
    b = bias_readout((a_train @ P.T).astype(np.int64), y_train)
    out["bias"] = lambda a, b=b: np.argmax((a @ P.T).astype(np.int64) + b, axis=1)
    for C in (0.01, 0.1, 1.0):
        if len(np.unique(y_train)) < 2:
            continue
        lr = LogisticRegression(C=C, max_iter=2000).fit(a_train, y_train)
        out[f"lr {C}"] = lambda a, lr=lr: lr.classes_[lr.predict_proba(a).argmax(axis=1)]
    return out


def rule_experiments():
    """The sibling script tabular-rule-experiments.py: its candidate runs and fit's choice."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rules", pathlib.Path(__file__).with_name("tabular-rule-experiments.py"))
    rules = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rules)
    return rules


def run(out, keys, seeds):
    rules = rule_experiments()

    def scores(trained, parts):  # readout → this candidate's record
        net = trained.network()
        acts = {k: (net.hidden_activations(trained.encode(X)), trained.encode_labels(y)) for k, (X, y) in parts.items()}
        out = {}
        for readout, predict in readouts(*acts["train"], net.P).items():
            out[readout] = {"hidden": list(trained.spec.hidden), "synapses": trained.spec.synapses,
                            "epochs": trained.training.epochs,
                            **{k: float((predict(a) == yy).mean()) for k, (a, yy) in acts.items()}}
        if out["none"]["test"] != trained.score(*parts["test"]):
            raise SystemExit("the 'none' readout differs from the model's own prediction")
        return out

    for key, seed, done, seconds in rules.candidate_runs(keys, seeds, scores):
        ends = collections.defaultdict(list)
        for candidate in done:
            for readout, record in candidate.items():
                ends[readout].append(record)
        with open(out, "a") as fh:
            print(json.dumps({"set": key, "seed": seed, "readouts": ends, "seconds": round(seconds, 1)}), file=fh)
        print(key, seed, f"{seconds:.1f}s", flush=True)


def summary(path):
    chosen = rule_experiments().chosen  # fit's rule: validation, then fewer synapses, then the default
    lines = [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]
    table = collections.defaultdict(lambda: collections.defaultdict(list))
    for line in lines:
        for readout, candidates in line["readouts"].items():
            table[readout][line["set"]].append(chosen(candidates))
    mean = lambda t, k: 100 * statistics.mean(statistics.mean(c[k] for c in cs) for cs in t.values())  # noqa: E731
    today = table["none"]
    sets = list(today)
    print(f"{len(sets)} sets; per set: test mean of each readout")
    print("| readout | test / validation | change | training | " + " | ".join(s.split(":")[0] for s in sets) + " |")
    for readout, t in table.items():
        cells = " | ".join(f"{100 * statistics.mean(c['test'] for c in t[s]):.1f}" for s in sets)
        print(f"| {readout} | {mean(t, 'test'):.2f} / {mean(t, 'val'):.2f} | "
              f"{mean(t, 'test') - mean(today, 'test'):+.2f} / {mean(t, 'val') - mean(today, 'val'):+.2f} | "
              f"{mean(t, 'train') - mean(today, 'train'):+.2f} | {cells} |")


if __name__ == "__main__":
    if sys.argv[1] == "summary":
        summary(sys.argv[2])
    else:
        run(sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]) if len(sys.argv) > 3 else 3)
