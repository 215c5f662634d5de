"""Where does QAT's training of the hidden layers generalise better than BEP's (docs/accuracy.md,
"Where does QAT's training generalise better?")? QAT as the benchmark trains it with BEP's classifier
frozen in (`qat-fixed-classifier.py`: float latent weights in [-1, 1], sign with the hard-tanh
straight-through gradient, Adam, the same inputs, widths, batches and sample order; the setting
that file's QAT chose per row; `qat.train_qat` with its ``loss``), with one loss at a time, from
QAT's own to BEP's:
- ``ce``: cross-entropy on the scaled logits (qat-fixed-classifier.jsonl's runs, to the digit);
- ``bep``: BEP's desired activations as a loss: on a triggered sample (margin < R = floor(r · K)),
  -P[c] · a / K, every last-layer neuron pulled toward its class's prototype bit;
- ``bepsoft``: as ``bep`` on every sample, weighted by cross-entropy's 1 - p_c (p the softmax of
  the logits over sqrt(K), QAT's starting scale) instead of the trigger's 0 or 1;
- ``bepwrong``: as ``bep``, only the neurons whose bit differs from the prototype's (BEP updates
  wrong neurons only);
- ``hinge``: relu(R - margin) / K on the integer logits P · a (BEP's trigger as a loss; its
  gradient is the rival's contrastive target).
One JSON line per seed.

    PYTHONPATH=. OMP_NUM_THREADS=1 python results/qat-bisection.py OUT.jsonl KEY CANDIDATE LOSS LR EPOCH_FRACTION SEEDS
    python results/qat-bisection.py summary FILE.jsonl

CANDIDATE: 0 fit's default, 1 its second candidate; EPOCH_FRACTION of the BEP budget E. The rows
of the page: ``hastie:mlp 1 LOSS 0.01 1``, ``classification-20:mlp 1 LOSS 0.01 1``,
``sparse-50:mlp 0 LOSS 0.01 0.5``, ``diabetes-3:mlp 1 LOSS 0.001 0.5``, 10 seeds, LOSS each of
the five (``bepsoft`` run last, appended).
"""

import collections
import json
import math
import pathlib
import statistics
import sys



def summary(path):
    runs = collections.defaultdict(list)
    for line in pathlib.Path(path).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            runs[r["set"], r["candidate"], r["loss"]].append(r)
    print("| row | candidate | loss | seeds | test | validation | training |")
    print("|---|---|---|---|---|---|---|")
    for (key, cand, loss), rs in runs.items():
        print(f"| {key} | {cand} | {loss} | {len(rs)} | " + " | ".join(
            f"{100 * statistics.mean(r[k] for r in rs):.1f}" for k in ("test", "val", "train")) + " |")


if sys.argv[1] == "summary":
    summary(sys.argv[2])
    sys.exit()
out, key, cand, loss_name, lr, frac, seeds = (sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4],
                                              float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]))
if loss_name not in ("ce", "bep", "bepsoft", "bepwrong", "hinge"):
    raise SystemExit(f"unknown loss '{loss_name}'")

import importlib.util  # noqa: E402  (after the summary, which needs neither torch nor the package)

from bep_mcu import qat, training  # noqa: E402
from bep_mcu.bench import parse_config  # noqa: E402
from bep_mcu.data.datasets import load_dataset  # noqa: E402

spec = importlib.util.spec_from_file_location("fixed", pathlib.Path(__file__).with_name("qat-fixed-classifier.py"))
fixed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixed)
fixed.freeze_classifiers()  # every network below trains with BEP's classifier of its seed, frozen
torch = qat._torch()


def bep_loss(R, K):
    """The loss ``loss_name`` of a batch, from the hidden activations the frozen classifier reads."""
    def loss(net, x, y):
        a = x
        for i, layer in enumerate(net.layers):
            a = net._act(i, layer(a))
        P = net.out.weight  # BEP's classifier, frozen (±1)
        logits = a @ P.T  # the integer logits P · a
        rows = torch.arange(len(y))
        with torch.no_grad():
            others = logits.clone()
            others[rows, y] = -float("inf")
            rival = others.argmax(1)
            trig = (logits[rows, y] - others.max(1).values < R).float()
        if loss_name == "hinge":
            return (trig * (R - (logits[rows, y] - logits[rows, rival]))).sum() / (K * len(y))
        target = P[y]
        if loss_name == "bepsoft":  # each sample weighted by 1 - p_c (QAT's starting scale)
            trig = 1 - torch.softmax(logits.detach() / math.sqrt(K), dim=1)[rows, y]
        weight = trig[:, None] * ((a.detach() != target).float() if loss_name == "bepwrong" else 1.0)
        return -(weight * target * a).sum() / (K * len(y))
    return loss


name, kwargs = parse_config(key)
data = load_dataset(name)
for seed in range(seeds):
    settings = qat.input_settings(kwargs, seed, data.X_train, data.y_train)[cand]
    Xt, yt, Xv, yv, Xs, ys, C, epochs, batch = qat.encoded_data(settings, data.X_train, data.y_train,
                                                                  data.X_test, data.y_test)
    epochs = max(1, int(epochs * frac))
    hidden = tuple(settings.widths())
    K = hidden[-1]
    # BEP's margin as it was when the file was measured: 0.5 for one layer, 1.0 for two (the
    # narrower tabular margin came later; tabular=False keeps the stored lines reproducible)
    R = math.floor((settings.r if settings.r is not None else training.default_r(hidden, tabular=False)) * K)
    run = qat.train_qat("mlp", hidden, C, Xt, yt, Xv, yv, Xs, ys, epochs=epochs, batch_size=batch, lr=lr,
                        weight_decay=0.0, batch_norm=False, seed=seed,
                        loss=None if loss_name == "ce" else bep_loss(R, K))
    acc = run.checkpoints[epochs]
    line = {"set": key, "candidate": cand, "hidden": list(hidden), "loss": loss_name, "lr": lr, "epochs": epochs,
            "seed": seed, "train": acc["train"], "val": acc["val"], "test": acc["test"],
            "seconds": round(run.seconds, 1)}
    with open(out, "a") as fh:
        print(json.dumps(line), file=fh)
    print(line, flush=True)
