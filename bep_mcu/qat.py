"""A quantisation-aware-training (QAT) baseline for BEP: float latent weights, sign with a
straight-through estimator, Adam (the method the BEP paper compares with, as in Larq).

It trains on exactly the ±1 inputs ``training.fit`` feeds a BEP network (the same
binariser fit on the same training part, the same dropped constant bits and bias bits,
the same RNN windows, the same seeded train/validation split, the same batch size,
epoch budget and sample order) a network of the same shape. One difference: where no class can
give the validation split a sample (``training.too_small_to_split``), ``fit`` trains BEP on all
the data, while QAT keeps the split, which its tuning needs:

- ``mlp``: ±1 inputs → binary dense layers (no bias) → binary output layer;
- ``rnn``: an Elman cell ``a_t = sign(W_x x_t + W_h a_{t-1})``, ``a_0 = +1``, binary
  weights, read out from the last state by a binary output layer.

Weights are ``sign(w)`` of float latent weights clipped to [-1, 1] after each step
(BinaryConnect); activations are ``sign`` (sign(0) = +1) with the hard-tanh
straight-through gradient. Without batch norm the pre-activation is divided by
sqrt(fan-in) before the sign (the sign is unchanged; the STE window is then meaningful)
and the logits carry one learnable positive scale (the argmax is unchanged). With
``batch_norm`` a BatchNorm1d sits before every sign (in an RNN one per step) and on the
logits: at inference it folds into an integer threshold per neuron, as in deployed BNNs.

Where ``fit`` trains a second candidate and keeps what validation prefers (a tabular MLP with
bias bits, as two hidden layers of half the width where its widths are left to their default; a
long series' coarser code: ``training.second_candidate``), QAT gets both candidates' inputs and
widths too, as one more dimension of its grid: the same choice, made the same way.

Tuning (documented in docs/accuracy.md): the candidate (the default's inputs and widths, and the
second candidate's where there is one; "inputs" in the results) × learning rate {1e-3, 1e-2} ×
weight decay {0, 1e-4} × the epoch count among {E/4, E/2, E} of the BEP budget E, chosen per
data set by the mean validation accuracy over the seeds (ties: lower mean validation
cross-entropy, then the earlier grid entry: the default's candidate first). The test split is
never looked at for the choice. torch is imported lazily (``pip install bep-mcu[bench]``); runs
are single-threaded and deterministic given the seed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from bep_mcu import training
from bep_mcu.errors import BEPError
from bep_mcu.training import epoch_order

LEARNING_RATES = (1e-3, 1e-2)
WEIGHT_DECAYS = (0.0, 1e-4)
EPOCH_FRACTIONS = (4, 2, 1)  # evaluate after E/4, E/2 and E epochs (one run serves all three)


def _torch():
    try:
        import torch
    except ImportError:
        raise BEPError("the QAT baseline needs torch: pip install 'bep-mcu[bench]'") from None
    torch.set_num_threads(1)
    return torch


@dataclass
class QATRun:
    """One training run: accuracies and validation loss after each checkpoint epoch count."""

    lr: float
    weight_decay: float
    batch_norm: bool
    seed: int
    checkpoints: dict[int, dict] = field(default_factory=dict)  # epochs → {val, val_loss, test, train}
    seconds: float = 0.0


def _build(torch, model: str, n_in: int, hidden: tuple[int, ...], n_classes: int, batch_norm: bool, steps: int = 1):
    nn = torch.nn

    class SignSTE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (x.abs() <= 1).to(grad.dtype)

    class SignWeight(torch.autograd.Function):
        """sign(w) forward, identity backward (latent weights stay in [-1, 1] by clipping)."""

        @staticmethod
        def forward(ctx, w):
            return (w >= 0).to(w.dtype) * 2 - 1

        @staticmethod
        def backward(ctx, grad):
            return grad

    sign = SignSTE.apply
    binary_weight = SignWeight.apply

    class BinaryLinear(nn.Module):
        def __init__(self, n_in: int, n_out: int):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(n_out, n_in).uniform_(-1, 1))
            self.n_in = n_in

        def forward(self, x):
            return x @ binary_weight(self.weight).T

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            widths = (n_in,) + tuple(hidden)
            if model == "mlp":
                self.layers = nn.ModuleList(BinaryLinear(a, b) for a, b in zip(widths[:-1], widths[1:]))
                fan_ins = widths[:-1]
            else:
                self.layers = nn.ModuleList([BinaryLinear(n_in + hidden[0], hidden[0])])
                fan_ins = (n_in + hidden[0],)
            self.scales = [1.0 / math.sqrt(f) for f in fan_ins]
            # An RNN gets one batch norm per step (recurrent batch norm, Cooijmans et al. 2016):
            # the steps' statistics differ (a_0 = +1), one shared set of running statistics mixes them.
            norm_widths = hidden if model == "mlp" else (hidden[0],) * steps
            self.norms = nn.ModuleList(nn.BatchNorm1d(h) for h in norm_widths) if batch_norm else None
            self.out = BinaryLinear(hidden[-1], n_classes)
            self.out_norm = nn.BatchNorm1d(n_classes) if batch_norm else None
            self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / math.sqrt(hidden[-1]))))

        def _act(self, i: int, z, step: int = 0):
            z = self.norms[i + step](z) if self.norms is not None else z * self.scales[i]
            return sign(z)

        def forward(self, x):
            if model == "mlp":
                a = x
                for i, layer in enumerate(self.layers):
                    a = self._act(i, layer(a))
            else:
                a = torch.ones(x.shape[0], hidden[0])
                wt = binary_weight(self.layers[0].weight).T  # once per forward, not per step
                for t in range(x.shape[1]):
                    a = self._act(0, torch.cat([x[:, t], a], dim=1) @ wt, t)
            y = self.out(a)
            return self.out_norm(y) if self.out_norm is not None else y * self.log_scale.exp()

    return Net()


def train_qat(model: str, hidden: tuple[int, ...], n_classes: int, Xt, yt, Xv, yv, Xtest, ytest, *,
              epochs: int, batch_size: int, lr: float, weight_decay: float, batch_norm: bool, seed: int,
              loss=None) -> QATRun:
    """Train one QAT network; accuracies after every epoch count in ``EPOCH_FRACTIONS``.
    ``loss(net, x, y)``: the training loss of a batch (default: cross-entropy on ``net(x)``; the
    experiments of results/qat-bisection.py train with others). Validation loss stays cross-entropy."""
    torch = _torch()
    torch.manual_seed(seed)
    net = _build(torch, model, Xt.shape[-1], tuple(hidden), n_classes, batch_norm, Xt.shape[1] if model == "rnn" else 1)
    latent = [m.weight for m in net.modules() if hasattr(m, "n_in")]
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    objective = loss or (lambda net, x, y: loss_fn(net(x), y))
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in
               (("t", Xt), ("v", Xv), ("test", Xtest))}
    labels = {k: torch.from_numpy(np.asarray(v, dtype=np.int64)) for k, v in (("t", yt), ("v", yv), ("test", ytest))}
    checkpoints = sorted({max(1, epochs // f) for f in EPOCH_FRACTIONS})
    run = QATRun(lr, weight_decay, batch_norm, seed)
    start = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = epoch_order(seed, epoch, len(yt))
        for i in range(0, len(order), batch_size):
            b = torch.from_numpy(order[i:i + batch_size])
            if batch_norm and len(b) < 2:
                continue  # batch norm needs two samples
            opt.zero_grad()
            objective(net, tensors["t"][b], labels["t"][b]).backward()
            opt.step()
            with torch.no_grad():
                for w in latent:
                    w.clamp_(-1, 1)
        if epoch + 1 in checkpoints:
            net.eval()
            rec = {}
            with torch.no_grad():
                for k, name in (("t", "train"), ("v", "val"), ("test", "test")):
                    if len(labels[k]) == 0:
                        rec[name] = float("nan")
                        continue
                    out = net(tensors[k])
                    rec[name] = float((out.argmax(1) == labels[k]).float().mean())
                    if k == "v":
                        rec["val_loss"] = float(loss_fn(out, labels[k]))
            run.checkpoints[epoch + 1] = rec
    run.seconds = time.perf_counter() - start
    return run


def input_settings(bep_kwargs: dict, seed: int, X_train, y_train) -> list[training.Settings]:
    """The settings of every candidate ``training.fit`` with these settings and seed may
    keep (inputs and widths): the default's, then its second candidate's where it has one."""
    settings = training.Settings(seed=seed, **bep_kwargs)
    second = training.candidates(X_train, y_train, settings)[1]
    return [settings] if second is None else [settings, second]


def encoded_data(settings: training.Settings, X_train, y_train, X_test, y_test):
    """The inputs ``training.fit`` with these settings trains on, and the test set encoded
    the same way; plus its epoch budget and batch size."""
    model, train, val = training.encoded_split(X_train, y_train, settings)
    epochs = settings.epochs or training.default_epochs(len(train))
    test = training.encoded(model, X_test, y_test)
    return (train.x, train.y, val.x, val.y, test.x, test.y, model.spec.n_classes, epochs,
            model.training.batch_size)


def tuned_qat(bep_kwargs: dict, data, seeds: int, batch_norm: bool,
              learning_rates=LEARNING_RATES, weight_decays=WEIGHT_DECAYS, log=None) -> dict:
    """Grid over learning rate × weight decay × epochs, chosen by mean validation
    accuracy over ``seeds`` (then lower validation loss); returns the chosen setting's
    final test accuracy per seed and the whole grid."""
    model = bep_kwargs.get("model", "mlp")
    runs: list[tuple[int, QATRun]] = []  # (which inputs, run)
    widths: dict[int, list[int]] = {}  # the candidate's hidden widths, by its index ("inputs")
    for seed in range(seeds):
        for inputs, settings in enumerate(input_settings(bep_kwargs, seed, data.X_train, data.y_train)):
            widths[inputs] = list(settings.widths())
            Xt, yt, Xv, yv, Xs, ys, n_classes, epochs, batch = encoded_data(
                settings, data.X_train, data.y_train, data.X_test, data.y_test)
            for lr in learning_rates:
                for wd in weight_decays:
                    run = train_qat(model, settings.widths(), n_classes, Xt, yt, Xv, yv, Xs, ys, epochs=epochs,
                                    batch_size=batch, lr=lr, weight_decay=wd, batch_norm=batch_norm, seed=seed)
                    runs.append((inputs, run))
                    if log:
                        last = run.checkpoints[max(run.checkpoints)]
                        log(f"  qat{'+bn' if batch_norm else ''} inputs {inputs} lr {lr:g} wd {wd:g} seed {seed}: "
                            f"val {last['val']:.3f} test {last['test']:.4f} ({run.seconds:.1f}s)")
    grid = []
    choices = sorted({(i, r.lr, r.weight_decay) for i, r in runs},
                     key=lambda c: (c[0], learning_rates.index(c[1]), weight_decays.index(c[2])))
    for gi, (inputs, lr, wd) in enumerate(choices):
        mine = [r for i, r in runs if (i, r.lr, r.weight_decay) == (inputs, lr, wd)]
        for ep in sorted(mine[0].checkpoints, reverse=True):
            cps = [r.checkpoints[ep] for r in mine]
            grid.append({"inputs": inputs, "lr": lr, "weight_decay": wd, "epochs": ep,
                         "val": float(np.nanmean([c["val"] for c in cps])),
                         "val_loss": float(np.nanmean([c.get("val_loss", np.nan) for c in cps])),
                         "test": [c["test"] for c in cps], "train": [c["train"] for c in cps], "order": gi})
    def key(g):
        loss = g["val_loss"] if math.isfinite(g["val_loss"]) else float("inf")
        return (-g["val"], loss, g["order"], -g["epochs"])
    chosen = min(grid, key=key)
    full = max(runs[0][1].checkpoints)
    chosen_seconds = sum(r.seconds for i, r in runs
                         if (i, r.lr, r.weight_decay) == (chosen["inputs"], chosen["lr"], chosen["weight_decay"]))
    return {"chosen": {**{k: chosen[k] for k in ("inputs", "lr", "weight_decay", "epochs", "val")},
                       "hidden": widths[chosen["inputs"]]},
            "scores": chosen["test"], "train": chosen["train"], "grid": grid,
            "seconds": chosen_seconds * chosen["epochs"] / full, "grid_seconds": sum(r.seconds for _, r in runs)}
