"""``python -m bep_mcu.bench adaptation``: what learning on the device buys on the shifts a deployed
device meets, against the float alternatives a user would pick instead (docs/adaptation.md).

Scenarios, from real data (``SCENARIOS``; each seed draws its own splits and networks):

- ``drift:<set>``: the sensor drifts (``data.shift.SensorDrift``: gain 1.3, offset +1 sd, noise
  0.2 sd per feature, a series' per channel); the source is the clean set, the target the same
  set as the drifted sensor reads it.
- ``condition:<set>``: a new operating condition: the set split in two by a value of each sample
  (digits: its ink, the sum of its pixels, a pen or a writer; breast_cancer: its mean fractal
  dimension, the feature least related to the class), the source the lower half, the target
  the upper half.
- ``more:<set>``: more data arrives: the source a quarter of the training part, the target the
  rest; both are measured on the same test part.
- ``drift:digits-deep``: the sensor drift of digits, on a network of two hidden layers
  (``hidden``, ``hidden // 2``), where BEP on the last hidden layer alone differs from BEP.

Each source and target is split 75/25 into training and test parts (stratified, seeded); a
model is pre-trained on the source's training part with the package's defaults (one hidden
layer of ``hidden`` neurons, two for a ``-deep`` set) and adapted on the target's for ``epochs``
epochs. Methods:

- ``frozen``: the pre-trained model as it is;
- ``recalibration``: label-free: the input thresholds follow the target's training inputs;
- ``bep``: BEP on the target's labelled training part, as a board runs it (``adapt.adapt``, the
  host's simulation: bit for bit a board over the link);
- ``bep-last-layer``: the same with the last hidden layer alone learning, the others frozen
  (``adapt --layers last``): cheaper per sample; on one hidden layer it is ``bep`` itself;
- ``bep+recalibration``: both; ``bep+recalibration@10%``: both, with the labels of a tenth of the
  target's training samples only; ``bep+replay``: BEP with ``REPLAY`` source samples mixed in;
- ``float-last-layer`` (TinyOL style): the frozen network's binary hidden features a_L read by a
  float linear classifier (softmax, cross-entropy) that starts as the model's own classifier
  and is trained online by SGD, one sample at a time;
- ``float-mlp`` (AIfES style): a float MLP of the same width (ReLU, softmax), pre-trained on the
  source (mini-batch SGD with momentum, inputs standardised with the source's statistics) and
  adapted by plain SGD one sample at a time: the step ``icount``'s ``c/float_sgd_tuned.c`` counts.

Per method: target test accuracy before and after, the source's test accuracy after
(forgetting), instructions per sample it learns from on Cortex-M4 and M0, and bytes of RAM
state. BEP's instructions are ``cgen.cost``'s prediction of the training step (every sample
triggering an update: the worst case), recalibration's its estimate of the calibration; the
float methods' are estimates: icount's count of one float32 SGD step of 256-128-10
(``FLOAT_SGD_COUNT``) scaled by multiply-accumulates (:func:`float_macs`), plus, for the last
layer, BEP's predicted hidden forward pass. RAM is the state each method needs on the board
(fixed weights can stay in flash): the inference buffers for ``frozen``, with the calibration
region for ``recalibration``; BEP's training state plan (``cgen.layout.plan_state``, with the
region when it recalibrates, plus the replayed samples); for the float methods their float32
weights, biases and per-step buffers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bep_mcu import adapt, training
from bep_mcu.cgen import cost
from bep_mcu.cgen.layout import plan_inference, plan_model, plan_state
from bep_mcu.data.datasets import Dataset, load_dataset, stratified_split
from bep_mcu.data.shift import SensorDrift
from bep_mcu.errors import BEPError
from bep_mcu.model import Model

CPUS = ("cortex-m4", "cortex-m0")
DEFAULT_HIDDEN = 128
DEFAULT_EPOCHS = 3
REPLAY = 100  # source samples bep+replay keeps
TEST_FRACTION = 0.25
# icount's count of one float32 SGD step of a 256-128-10 MLP as a careful user writes it (c/float_sgd_tuned.c at
# its best level, -Os on the M4, -O3 on the M0; results/instructions-per-sample.json: hard-float on the M4,
# soft-float on the M0), on ±1 inputs with He-initialised weights.
FLOAT_SGD_COUNT = {"cortex-m4": 167_760, "cortex-m0": 9_946_897}
FLOAT_SGD_SHAPE = (256, 128, 10)
RELU_ACTIVE = 0.5  # the share of hidden units whose ReLU passes the error (the first-layer update's rows)
# Float learning rates, each chosen once on drift:digits (seed 0, width 128) among 0.001, 0.003, 0.01, 0.03 and
# 0.1 by test accuracy (the source's for pre-training, the target's after adapting), then fixed: tuned on
# the very data they are measured on, which favours the float methods.
FLOAT_PRETRAIN = {"lr": 0.01, "momentum": 0.9, "batch": 32, "epochs": 100}
FLOAT_ADAPT_LR = 0.001
LAST_LAYER_LR = 0.003
FEW_LABELS = 0.1  # the labels fraction of bep+recalibration@10%
# method → (labels fraction, recalibrate, replayed samples, layers that learn) of adapt.adapt
BEP_METHODS = {"frozen": (0.0, False, 0, "all"), "recalibration": (0.0, True, 0, "all"), "bep": (1.0, False, 0, "all"),
               "bep-last-layer": (1.0, False, 0, "last"), "bep+recalibration": (1.0, True, 0, "all"),
               "bep+recalibration@10%": (FEW_LABELS, True, 0, "all"), "bep+replay": (1.0, False, REPLAY, "all")}
METHODS = (*BEP_METHODS, "float-last-layer", "float-mlp")


# ------------------------------------------------------------------ scenarios


def whole(name: str) -> tuple[np.ndarray, np.ndarray]:
    """All samples of a real data set, training and test parts together."""
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        return load_breast_cancer(return_X_y=True)
    data = load_dataset({"digits": "digits", "ItalyPowerDemand": "ucr:ItalyPowerDemand"}[name])
    return np.concatenate([data.X_train, data.X_test]), np.concatenate([data.y_train, data.y_test])


def split(name: str, X: np.ndarray, y: np.ndarray, seed: int) -> Dataset:
    train, test = stratified_split(y, TEST_FRACTION, seed)
    return Dataset(name, X[train], y[train], X[test], y[test], "series" if X.ndim == 3 else "tabular")


def drifted(X: np.ndarray, reference: np.ndarray, seed: int) -> np.ndarray:
    """``X`` as the drifted sensor reads it; a series' drift is its channel's (one sensor per channel)."""
    channels = X.shape[-1] if X.ndim == 3 else None
    if channels is None:
        return SensorDrift().apply(X, reference, seed)
    return SensorDrift().apply(X.reshape(-1, channels), reference.reshape(-1, channels), seed).reshape(X.shape)


def drift(name: str, seed: int) -> tuple[Dataset, Dataset]:
    X, y = whole(name)
    source = split(name, X, y, seed)
    return source, Dataset(f"{name}, drifted", drifted(source.X_train, source.X_train, seed + 1), source.y_train,
                           drifted(source.X_test, source.X_train, seed + 2), source.y_test, source.kind)


def ink(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1).sum(axis=1)


CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "digits": ink,
    "breast_cancer": lambda X: X[:, 9],  # mean fractal dimension: |correlation with the class| 0.01
}


def condition(name: str, seed: int) -> tuple[Dataset, Dataset]:
    X, y = whole(name)
    value = CONDITIONS[name](X)
    low = value <= np.median(value)
    high = ~low & np.isin(y, y[low])  # the model can only know the source's classes
    return split(f"{name}, lower half", X[low], y[low], seed), split(f"{name}, upper half", X[high], y[high], seed)


def more(name: str, seed: int) -> tuple[Dataset, Dataset]:
    X, y = whole(name)
    data = split(name, X, y, seed)
    rest, quarter = stratified_split(data.y_train, 0.25, seed)
    return tuple(Dataset(f"{name}, {what}", data.X_train[i], data.y_train[i], data.X_test, data.y_test, data.kind)
                 for i, what in ((quarter, "a quarter"), (rest, "the rest")))


def new_class(name: str, seed: int) -> tuple[Dataset, Dataset]:
    """The source: half the training part and the test part without the set's last class; the
    target: the other half of the training part, every class, and the whole test part."""
    X, y = whole(name)
    data = split(name, X, y, seed)
    half, other = stratified_split(data.y_train, 0.5, seed)
    last = np.unique(y)[-1]
    old, old_test = half[data.y_train[half] != last], data.y_test != last
    return (Dataset(f"{name} without {last}", data.X_train[old], data.y_train[old], data.X_test[old_test],
                    data.y_test[old_test], data.kind),
            Dataset(f"{name}, every class", data.X_train[other], data.y_train[other], data.X_test, data.y_test,
                    data.kind))


@dataclass(frozen=True)
class Scenario:
    key: str
    shift: str
    make: Callable[[str, int], tuple[Dataset, Dataset]]  # (set, seed) → (source, target)
    dataset: str
    new_classes: int = 0  # classes the target adds: the model reserves a prototype for each
    deep: bool = False  # two hidden layers (hidden, hidden // 2) instead of one

    def data(self, seed: int) -> tuple[Dataset, Dataset]:
        return self.make(self.dataset, seed)

    def hidden(self, width: int) -> tuple[int, ...]:
        return (width, max(1, width // 2)) if self.deep else (width,)


SCENARIOS = {s.key: s for s in (
    Scenario("drift:digits", "sensor drift", drift, "digits"),
    Scenario("drift:breast_cancer", "sensor drift", drift, "breast_cancer"),
    Scenario("drift:ItalyPowerDemand", "sensor drift", drift, "ItalyPowerDemand"),
    Scenario("condition:digits", "new condition", condition, "digits"),
    Scenario("condition:breast_cancer", "new condition", condition, "breast_cancer"),
    Scenario("more:digits", "more data", more, "digits"),
    Scenario("more:ItalyPowerDemand", "more data", more, "ItalyPowerDemand"),
    Scenario("class:digits", "a new class", new_class, "digits", new_classes=1),
    Scenario("drift:digits-deep", "sensor drift", drift, "digits", deep=True),
)}


def scenario(key: str) -> Scenario:
    try:
        return SCENARIOS[key]
    except KeyError:
        raise BEPError(f"no adaptation scenario '{key}': choose from {', '.join(SCENARIOS)}") from None


# ------------------------------------------------------------------ the float alternatives


def softmax_gradient(logits: np.ndarray, label: int) -> np.ndarray:
    """d(cross-entropy)/d(logits) of one sample: softmax minus the one-hot label."""
    p = np.exp(logits - logits.max())
    p /= p.sum()
    p[label] -= 1.0
    return p


def sgd_epochs(step: Callable[[np.ndarray, int], None], X: np.ndarray, y: np.ndarray, epochs: int,
               seed: int) -> None:
    """``epochs`` passes of one-sample steps, each in a seeded order."""
    for e in range(epochs):
        for i in training.epoch_order(seed, e, len(y)):
            step(X[i], int(y[i]))


class LastLayer:
    """TinyOL: a float linear classifier on the frozen network's ±1 hidden features, starting as
    the model's own classifier (its prototypes, scaled so a logit gap of a quarter of the width is
    one nat), so that it first predicts what the model predicts."""

    def __init__(self, model: Model) -> None:
        self.net, self.model = model.network(), model
        width = model.spec.hidden[-1]
        self.W = model.classifier.astype(np.float64) * (4.0 / width)
        self.b = np.zeros(model.spec.n_classes)

    def features(self, X) -> np.ndarray:
        return self.net.hidden_activations(self.model.encode(X)).astype(np.float64)

    def step(self, a: np.ndarray, label: int) -> None:
        g = LAST_LAYER_LR * softmax_gradient(self.W @ a + self.b, label)
        self.W -= np.outer(g, a)
        self.b -= g

    def predict(self, X) -> np.ndarray:
        return self.model.labels[(self.features(X) @ self.W.T + self.b).argmax(axis=1)]


class FloatMLP:
    """A float MLP of one ReLU hidden layer and a softmax output, on inputs standardised with the
    source's statistics (fixed once deployed, like BEP's thresholds)."""

    def __init__(self, X, y, width: int, seed: int, classes: np.ndarray | None = None) -> None:
        X = self.flat(X)
        self.classes = np.unique(y if classes is None else classes)  # an output for each, seen or not
        self.mean, sd = X.mean(axis=0), X.std(axis=0)
        self.sd = np.where(sd > 0, sd, 1.0)
        g = np.random.default_rng([seed, 0xF10A7])
        n_in, n_out = X.shape[1], len(self.classes)
        self.W1 = g.standard_normal((width, n_in)) * np.sqrt(2 / n_in)
        self.b1 = np.zeros(width)
        self.W2 = g.standard_normal((n_out, width)) * np.sqrt(2 / width)
        self.b2 = np.zeros(n_out)
        self.pretrain(self.inputs(X), self.labels(y), seed)

    @staticmethod
    def flat(X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return X.reshape(len(X), -1)

    def inputs(self, X) -> np.ndarray:
        return (self.flat(X) - self.mean) / self.sd

    def labels(self, y) -> np.ndarray:
        return np.searchsorted(self.classes, y)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.W1.shape[1], self.W1.shape[0], self.W2.shape[0]

    def params(self) -> list[np.ndarray]:
        return [self.W1, self.b1, self.W2, self.b2]

    def gradients(self, X: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
        h = np.maximum(X @ self.W1.T + self.b1, 0.0)
        logits = h @ self.W2.T + self.b2
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(labels)), labels] -= 1.0
        p /= len(labels)
        dh = (p @ self.W2) * (h > 0)
        return [dh.T @ X, dh.sum(axis=0), p.T @ h, p.sum(axis=0)]

    def pretrain(self, X: np.ndarray, labels: np.ndarray, seed: int) -> None:
        """Mini-batch SGD with momentum on the host (any optimiser would do before deployment)."""
        cfg = FLOAT_PRETRAIN
        velocity = [np.zeros_like(p) for p in self.params()]
        for e in range(cfg["epochs"]):
            order = training.epoch_order(seed, e, len(labels))
            for i in range(0, len(order), cfg["batch"]):
                batch = order[i:i + cfg["batch"]]
                for p, v, g in zip(self.params(), velocity, self.gradients(X[batch], labels[batch])):
                    v *= cfg["momentum"]
                    v -= cfg["lr"] * g
                    p += v

    def adapt(self, X, y, epochs: int, seed: int) -> None:
        """Plain SGD, one sample at a time: what a board runs (icount's c/float_sgd_tuned.c)."""
        X, labels = self.inputs(X), self.labels(y)

        def step(x: np.ndarray, label: int) -> None:
            for p, g in zip(self.params(), self.gradients(x[None], np.array([label]))):
                p -= FLOAT_ADAPT_LR * g

        sgd_epochs(step, X, labels, epochs, seed)

    def predict(self, X) -> np.ndarray:
        h = np.maximum(self.inputs(X) @ self.W1.T + self.b1, 0.0)
        return self.classes[(h @ self.W2.T + self.b2).argmax(axis=1)]


def measured(predict: Callable[[np.ndarray], np.ndarray], data: Dataset, when: str, new: list) -> dict:
    """Test accuracy of ``data`` ``when`` ("before", "after"), and, where the target adds ``new``
    classes, on their samples and on the others' (``adapt.adapt``'s keys)."""
    right = predict(data.X_test) == data.y_test
    out = {when: float(np.mean(right))}
    if new:
        mask = np.isin(data.y_test, new)
        out.update({f"{when}_new_classes": float(np.mean(right[mask])),
                    f"{when}_old_classes": float(np.mean(right[~mask]))})
    return out


def score(predict: Callable[[np.ndarray], np.ndarray], data: Dataset) -> float:
    return float(np.mean(predict(data.X_test) == data.y_test))


def float_macs(n_in: int, hidden: int, n_out: int) -> float:
    """Multiply-accumulates of one float SGD step (c/float_sgd_tuned.c): forward, the error to the hidden
    layer and the output layer's update, and the first layer's update where the ReLU passed."""
    return n_in * hidden + 3 * hidden * n_out + RELU_ACTIVE * hidden * n_in


def float_instructions(macs: float, cpu: str) -> int:
    """Estimated instructions: icount's float step of 256-128-10 scaled by multiply-accumulates."""
    return int(round(FLOAT_SGD_COUNT[cpu] * macs / float_macs(*FLOAT_SGD_SHAPE)))


# ------------------------------------------------------------------ costs


def bep_costs(model: Model, labels: float, recal: bool, replay: int, layers: str) -> dict:
    """Instructions per sample learnt from (a labelled one, when it has labels), per core, and bytes of
    RAM state of a BEP method (``BEP_METHODS``'s arguments of ``adapt.adapt``). Frozen layers save no
    RAM: the runtime plans one state, every layer's counters in it, whichever layers learn."""
    spec, full, trains = model.spec, plan_model(model), labels > 0
    if trains:
        ram = plan_state(spec, model.params.gate, full.followed if recal else 0).state_bytes
        ram += adapt.replay_bytes(model, replay)
    else:
        ram = 4 * plan_inference(spec).work_words + (full.calib_bytes if recal else 0)
    return {"instructions": {cpu: adapt.instructions(model, trains, recal, cpu, layers)["instructions_per_sample"]
                             for cpu in CPUS}, "ram_bytes": ram}


def last_layer_costs(model: Model) -> dict:
    spec = model.spec
    width, classes = spec.hidden[-1], spec.n_classes
    return {"instructions": {cpu: cost.hidden_forward_instructions(spec, cpu) +
                             float_instructions(2 * width * classes, cpu) for cpu in CPUS},
            "ram_bytes": 4 * plan_inference(spec).work_words + 4 * (width * classes + 2 * classes)}


def float_mlp_costs(net: FloatMLP) -> dict:
    n_in, hidden, n_out = net.shape
    return {"instructions": {cpu: float_instructions(float_macs(n_in, hidden, n_out), cpu) for cpu in CPUS},
            "ram_bytes": 4 * (n_in * hidden + hidden + hidden * n_out + n_out + 2 * hidden + n_out + n_in)}


# ------------------------------------------------------------------ the runs


def run_one(case: Scenario, seed: int, hidden: int, epochs: int) -> list[dict]:
    """Every method on one scenario and seed."""
    source, target = case.data(seed)
    classes = len(np.unique(source.y_train)) + case.new_classes
    # The source network is fit's first candidate only (not the second model fit may train and
    # keep where validation prefers it, e.g. with bias bits): the methods are compared on the
    # network the table was first measured with, whatever later defaults choose.
    model = training.fit(source.X_train, source.y_train, training.Settings(
        hidden=case.hidden(hidden), seed=seed, max_classes=classes if case.new_classes else None), second=False)
    # What the board runs: a class the target adds takes a reserved prototype (as adapt.adapt gives it).
    board, new = adapt.with_new_classes(model, np.concatenate([target.y_train, target.y_test]), target.name)
    parts = ("before", "after", "source_before", "source_after", *(
        f"{when}_{part}_classes" for when in ("before", "after") for part in ("new", "old") if new))
    rows = []
    for method, (labels, recal, replay, layers) in BEP_METHODS.items():
        replay = min(replay, len(source.y_train))
        r = adapt.adapt(model, target, epochs, labels, recal, source, replay, layers=layers)
        rows.append({"method": method, **{k: r[k] for k in parts}, **bep_costs(board, labels, recal, replay, layers)})
    model = board
    head = LastLayer(model)  # a new class's classifier row starts as its reserved prototype
    before = {**measured(head.predict, target, "before", new), "source_before": score(head.predict, source)}
    sgd_epochs(head.step, head.features(target.X_train), model.encode_labels(target.y_train), epochs, seed)
    rows.append({"method": "float-last-layer", **before, **measured(head.predict, target, "after", new),
                 "source_after": score(head.predict, source), **last_layer_costs(model)})
    # an output for every class, the new ones' trained down on the source as a reserved prototype is kept out
    net = FloatMLP(source.X_train, source.y_train, hidden, seed, model.labels)
    before = {**measured(net.predict, target, "before", new), "source_before": score(net.predict, source)}
    net.adapt(target.X_train, target.y_train, epochs, seed)
    rows.append({"method": "float-mlp", **before, **measured(net.predict, target, "after", new),
                 "source_after": score(net.predict, source), **float_mlp_costs(net)})
    for row in rows:
        spec = model.spec
        row.update(scenario=case.key, shift=case.shift, seed=seed,
                   network="-".join(map(str, (spec.n_inputs, *spec.hidden, spec.n_classes))), source=source.name,
                   target=target.name,
                   source_train=len(source.y_train), target_train=len(target.y_train))
    return rows


def adaptation(keys: list[str], seeds: int, hidden: int = DEFAULT_HIDDEN, epochs: int = DEFAULT_EPOCHS,
               say: Callable[[str], None] = print) -> dict:
    """Every scenario of ``keys`` for seeds 0..seeds-1; one row per scenario, seed and method."""
    scenarios = [scenario(k) for k in keys]  # every key checked before minutes of work
    rows = []
    say(f"{'scenario':<26} {'method':<22} {'before':>6} {'after':>6} {'source':>6} {'M4 instr.':>10} "
        f"{'M0 instr.':>11} {'RAM B':>8}   (means over {seeds} seed(s), accuracy in %)")
    for case in scenarios:
        start = time.perf_counter()
        runs = [row for seed in range(seeds) for row in run_one(case, seed, hidden, epochs)]
        rows += runs
        for method in METHODS:
            mine = [r for r in runs if r["method"] == method]
            before, after, source = (100 * float(np.mean([r[k] for r in mine])) for k in
                                     ("before", "after", "source_after"))
            new = (f"   new class(es) {100 * float(np.mean([r['after_new_classes'] for r in mine])):.1f} after"
                   if case.new_classes else "")
            say(f"{case.key:<26} {method:<22} {before:6.1f} {after:6.1f} {source:6.1f} "
                f"{mine[0]['instructions']['cortex-m4']:>10,} {mine[0]['instructions']['cortex-m0']:>11,} "
                f"{mine[0]['ram_bytes']:>8,}{new}")
        say(f"{case.key:<26} ({time.perf_counter() - start:.0f} s)")
    return {"hidden": hidden, "epochs": epochs, "seeds": seeds, "replay": REPLAY, "scenarios": keys, "rows": rows}
