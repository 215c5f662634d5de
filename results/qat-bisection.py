"""Where does QAT's training of the hidden layers generalise better than BEP's (docs/accuracy.md,
"Where does QAT's training generalise better?")? QAT as the benchmark trains it with BEP's classifier
frozen in (`qat-fixed-classifier.py`: float latent weights in [-1, 1], sign with the hard-tanh
straight-through gradient, Adam, the same inputs, widths, batches and sample order; the setting
that file's QAT chose per row), with one loss at a time, from QAT's own to BEP's:
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
import time



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

import numpy as np  # noqa: E402  (after the summary, which needs neither numpy nor the package)

from bep_mcu import qat, training  # noqa: E402
from bep_mcu.bench import parse_config  # noqa: E402
from bep_mcu.data.datasets import load_dataset  # noqa: E402
from bep_mcu.engine.classifier import binary_equiangular_frame  # noqa: E402
from bep_mcu.training import epoch_order  # noqa: E402

torch = qat._torch()
name, kwargs = parse_config(key)
data = load_dataset(name)
for seed in range(seeds):
    settings = qat.input_settings(kwargs, seed, data.X_train, data.y_train)[cand]
    Xt, yt, Xv, yv, Xs, ys, C, epochs, batch = qat.encoded_data(settings, data.X_train, data.y_train,
                                                                  data.X_test, data.y_test)
    epochs = max(1, int(epochs * frac))
    hidden = tuple(settings.widths())
    K = hidden[-1]
    r = settings.r if settings.r is not None else training.default_r(len(hidden))
    R = math.floor(r * K)
    torch.manual_seed(seed)
    net = qat._build(torch, "mlp", Xt.shape[-1], hidden, C, False)
    frame = binary_equiangular_frame(C, K, seed)
    P = torch.from_numpy(frame.astype(np.float32))
    with torch.no_grad():
        net.out.weight.copy_(P)
    net.out.weight.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    latent = [m.weight for m in net.layers]
    T = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in (("t", Xt), ("v", Xv), ("s", Xs))}
    Y = {k: torch.from_numpy(np.asarray(v, dtype=np.int64)) for k, v in (("t", yt), ("v", yv), ("s", ys))}
    ce = torch.nn.CrossEntropyLoss()

    def hidden_acts(x):  # the frozen classifier reads these (net.forward without its output layer)
        a = x
        for i, layer in enumerate(net.layers):
            a = net._act(i, layer(a))
        return a

    begun = time.time()
    for epoch in range(epochs):
        order = epoch_order(seed, epoch, len(yt))
        for i in range(0, len(order), batch):
            b = torch.from_numpy(order[i:i + batch])
            x, y = T["t"][b], Y["t"][b]
            opt.zero_grad()
            a = hidden_acts(x)
            logits = a @ P.T
            if loss_name == "ce":
                loss = ce(logits * net.log_scale.exp(), y)
            else:
                with torch.no_grad():
                    others = logits.clone()
                    others[torch.arange(len(y)), y] = -float("inf")
                    rival = others.argmax(1)
                    margin = logits[torch.arange(len(y)), y] - others.max(1).values
                    trig = (margin < R).float()
                if loss_name == "hinge":
                    m = logits[torch.arange(len(y)), y] - logits[torch.arange(len(y)), rival]
                    loss = (trig * (R - m)).sum() / (K * len(y))
                else:
                    target = P[y]
                    if loss_name == "bepsoft":  # each sample weighted by 1 - p_c (QAT's starting scale)
                        p_c = torch.softmax(logits.detach() / math.sqrt(K), dim=1)[torch.arange(len(y)), y]
                        trig = 1 - p_c
                    weight = trig[:, None] * ((a.detach() != target).float() if loss_name == "bepwrong" else 1.0)
                    loss = -(weight * target * a).sum() / (K * len(y))
            loss.backward()
            opt.step()
            with torch.no_grad():
                for w in latent:
                    w.clamp_(-1, 1)
    with torch.no_grad():
        acc = {k: float(((hidden_acts(T[k]) @ P.T).argmax(1) == Y[k]).float().mean()) for k in ("t", "v", "s")}
    line = {"set": key, "candidate": cand, "hidden": list(hidden), "loss": loss_name, "lr": lr, "epochs": epochs,
            "seed": seed, "train": acc["t"], "val": acc["v"], "test": acc["s"],
            "seconds": round(time.time() - begun, 1)}
    with open(out, "a") as fh:
        print(json.dumps(line), file=fh)
    print(line, flush=True)
