"""``BEPClassifier``: the scikit-learn-shaped front of the numpy engine.

It owns everything around the training step: label encoding, binarisation (fit on the
training data only), RNN windowing, initialisation, the validation split, the epoch
loop with its host-side schedule (reinforcement probability from the previous epoch's
training error, γ growth when validation accuracy stalls) and model files.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import Callable

import numpy as np

from bep_mcu import __version__, modelio
from bep_mcu.engine import rng
from bep_mcu.data.binarize import Binarizer, binarizer_from_arrays, is_binary, make_binarizer
from bep_mcu.engine.network import Network
from bep_mcu.engine.classifier import binary_equiangular_frame
from bep_mcu.data.datasets import check_xy, stratified_split
from bep_mcu.cgen.layout import plan_state
from bep_mcu.errors import BEPError
from bep_mcu.engine.schedule import EpochSchedule
from bep_mcu.engine.spec import HyperParams, IntParams, NetSpec, int_params

DEFAULT_BINARIZE = {"mlp": "thermometer:4", "rnn": "thermometer:8"}
RNN_TARGET_STEPS = 8  # BEP.md §3: about 8 steps per sequence trains; 60 stays at chance


def default_window(length: int) -> int:
    """Window length that cuts a series into about ``RNN_TARGET_STEPS`` steps."""
    return max(1, math.ceil(length / RNN_TARGET_STEPS))


def default_r(model: str, n_layers: int) -> float:
    """Trigger margin r from the sweep in the README: a deeper MLP needs a wider margin
    (512-512 on prototypes: 94.0 % at r = 0.5, 95.1 % at 1.0) while one hidden layer,
    the RNN cell included, does best at 0.5 (digits: 90.6 % at 0.5, 77.7 % at 1.0)."""
    return 0.5 if n_layers == 1 else 1.0


def default_batch_size(n_train: int) -> int:
    """100 as in the paper, 10 for small sets (few batches per epoch otherwise)."""
    return 100 if n_train >= 1000 else 10


def default_epochs(n_train: int) -> int:
    """Enough updates on small sets too: at least 50 epochs and ~40,000 sample steps."""
    return int(min(400, max(50, math.ceil(40_000 / max(1, n_train)))))


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The sample order of one epoch (shared with the C twin and the device stream)."""
    return np.random.default_rng([seed & rng.MASK32, epoch, 0x5EED]).permutation(n)


def initial_hidden(spec: NetSpec, sigma: float, seed: int) -> list[np.ndarray]:
    """round(N(0, σ²)) clipped to the B-bit range (BEP.md §2.8)."""
    g = np.random.default_rng([seed & rng.MASK32, 0x1417])
    lo, hi = spec.weight_limits
    dtype = np.int8 if spec.hidden_bits == 8 else np.int16
    return [np.clip(np.rint(g.normal(0.0, sigma, shape)), lo, hi).astype(dtype) for shape in spec.layer_shapes()]


def _plain_labels(y: np.ndarray) -> np.ndarray:
    """Object labels (e.g. a pandas column) → int64 if they are all integers, else str,
    so they can be stored in a model file without pickling."""
    if y.dtype != object:
        return y
    try:
        as_int = y.astype(np.int64)
        if (as_int == y).all():
            return as_int
    except (TypeError, ValueError):
        pass
    return y.astype(str)


class BEPClassifier:
    """Binary MLP or RNN trained with BEP, on raw numeric features.

    Example::

        clf = BEPClassifier(hidden=(512,), epochs=30).fit(X_train, y_train)
        clf.score(X_test, y_test)
        clf.save("model.npz"); BEPClassifier.load("model.npz").predict(X_test)

    ``X`` is (n, features) for an MLP; for an RNN (n, T) or (n, T, channels).
    """

    def __init__(
        self,
        model: str = "mlp",
        hidden: tuple[int, ...] = (512,),
        epochs: int | None = None,
        batch_size: int | None = None,
        seed: int = 0,
        binarize: str = "auto",
        window: int | None = None,
        hidden_bits: int = 8,
        r: float | None = None,
        nu: float = 0.05,
        gamma: tuple[int, ...] | None = None,
        p_r: float = 0.5,
        sigma: float = 16.0,
        patience: int = 3,
        gamma_growth: int = 2,
        val_fraction: float = 0.1,
    ) -> None:
        self.model = model
        self.hidden = tuple(int(h) for h in hidden)
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = int(seed)
        self.binarize = binarize
        self.window = window
        self.hidden_bits = hidden_bits
        if r is None:
            r = default_r(model, len(self.hidden))
        self.hp = HyperParams(r=r, nu=nu, gamma=None if gamma is None else tuple(gamma), p_r=p_r,
                              sigma=sigma, patience=patience, gamma_growth=gamma_growth)
        if not 0.0 <= val_fraction < 0.5:
            raise BEPError(f"val fraction must be in [0, 0.5), got {val_fraction}")
        self.val_fraction = val_fraction
        if model not in ("mlp", "rnn"):
            raise BEPError(f"model must be mlp or rnn, got '{model}'")
        if hidden_bits not in (8, 16):
            raise BEPError(f"--hidden-bits must be 8 or 16, got {hidden_bits}")
        if window is not None and int(window) < 1:
            raise BEPError(f"window must be a positive integer, got {window}")
        self.history: list[dict] = []
        self.network: Network | None = None

    # ------------------------------------------------------------ encoding
    def _as_model_shape(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.model == "mlp":
            return X.reshape(len(X), -1) if X.ndim > 2 else X
        if X.ndim == 2:
            return X[:, :, None]
        if X.ndim != 3:
            raise BEPError(f"an rnn needs series of shape (n, T) or (n, T, channels), got {X.shape}")
        return X

    def _fit_encoder(self, X: np.ndarray) -> None:
        X = self._as_model_shape(X)
        spec = self.binarize
        rows = X if self.model == "mlp" else X.reshape(-1, X.shape[2])
        if spec == "auto":
            spec = "passthrough" if is_binary(rows) else DEFAULT_BINARIZE[self.model]
        self.binarizer_: Binarizer = make_binarizer(spec).fit(rows)
        # Bits that never change on the training data carry no information, and in a
        # network without biases they act as large constant offsets that stall BEP
        # (digits under thermometer:4 has 120 such bits of 256 and collapses to
        # chance): drop them.
        bits = self.binarizer_.transform(rows)
        self.input_keep_ = bits.min(axis=0) != bits.max(axis=0)
        if not self.input_keep_.any():
            raise BEPError(f"every input bit is constant on the training data after {spec} binarisation")
        self.n_features_ = X.shape[1] if self.model == "mlp" else X.shape[2]
        if self.model == "rnn":
            self.length_ = X.shape[1]
            self.window_ = int(self.window) if self.window else default_window(self.length_)
            if self.window_ > self.length_:
                raise BEPError(f"window {self.window_} is longer than the series ({self.length_} points)")

    def encode(self, X: np.ndarray) -> np.ndarray:
        """Raw features → the ±1 float32 network input."""
        X = self._as_model_shape(X)
        if self.model == "mlp":
            if X.shape[1] != self.n_features_:
                raise BEPError(f"data has {X.shape[1]} features, the model expects {self.n_features_}")
            return self.binarizer_.transform(X)[:, self.input_keep_].astype(np.float32)
        n, length, channels = X.shape
        if channels != self.n_features_ or length != self.length_:
            raise BEPError(
                f"series of length {length} with {channels} channel(s); the model expects "
                f"length {self.length_} with {self.n_features_}"
            )
        bits = self.binarizer_.transform(X.reshape(-1, channels))[:, self.input_keep_].reshape(n, length, -1)
        steps = math.ceil(length / self.window_)
        pad = steps * self.window_ - length
        if pad:  # the last window repeats the final point
            bits = np.concatenate([bits, np.repeat(bits[:, -1:], pad, axis=1)], axis=1)
        return bits.reshape(n, steps, -1).astype(np.float32)

    def encode_labels(self, y: np.ndarray) -> np.ndarray:
        """Labels → class indices 0..C-1 (the order of ``classes_``); unknown labels are an error."""
        y, classes = np.asarray(y), self.classes_
        if y.dtype.kind != classes.dtype.kind:  # 1 and "1" name the same class
            y, classes = y.astype(str), classes.astype(str)
        order = np.argsort(classes, kind="stable")  # as text, int classes may sort differently
        pos = np.clip(np.searchsorted(classes[order], y), 0, len(classes) - 1)
        index = order[pos]
        unknown = classes[index] != y
        if unknown.any():
            raise BEPError(f"label {y[np.argmax(unknown)].item()!r} was not seen in training "
                           f"(classes: {self.classes_.tolist()})")
        return index.astype(np.int64)

    # ------------------------------------------------------------ training
    def fit(self, X, y, on_epoch: Callable[[dict], None] | None = None) -> "BEPClassifier":
        X = np.asarray(X)
        y = _plain_labels(np.asarray(y))
        check_xy(X, y, "training data")
        self.classes_ = np.unique(y)
        if self.val_fraction > 0 and len(y) >= 4 * len(self.classes_):
            train_idx, val_idx = stratified_split(y, self.val_fraction, self.seed)
        else:
            train_idx, val_idx = np.arange(len(y)), np.zeros(0, dtype=np.int64)
        self._fit_encoder(X[train_idx])
        Xe = self.encode(X)
        ye = self.encode_labels(y)
        Xt, yt = Xe[train_idx], ye[train_idx]
        Xv, yv = Xe[val_idx], ye[val_idx]

        steps = Xe.shape[1] if self.model == "rnn" else 1
        n_inputs = Xe.shape[-1]
        self.spec_ = NetSpec(self.model, n_inputs, self.hidden, len(self.classes_), int(self.hidden_bits), steps)
        self.params_: IntParams = int_params(self.spec_, self.hp)
        self.network = Network(
            self.spec_, self.params_, initial_hidden(self.spec_, self.hp.sigma, self.seed),
            binary_equiangular_frame(len(self.classes_), self.hidden[-1], self.seed, self.hp.alpha), self.seed,
        )
        self.epochs_ = int(self.epochs) if self.epochs is not None else default_epochs(len(yt))
        self.batch_size_ = int(self.batch_size) if self.batch_size is not None else default_batch_size(len(yt))
        if self.epochs_ < 1 or self.batch_size_ < 1:
            raise BEPError(f"epochs and batch size must be >= 1, got {self.epochs_} and {self.batch_size_}")
        self.history = []
        self._train(Xt, yt, Xv, yv, on_epoch)
        return self

    def continue_fit(self, X, y, epochs: int, on_epoch: Callable[[dict], None] | None = None) -> "BEPClassifier":
        """Keep training a trained (or loaded, or pulled from a board) network on more data.

        The encoder, labels, network and schedule (γ, last error rate, sample-order
        sequence) carry on from where they are; labels must be among the model's."""
        self._check_fitted()
        X = np.asarray(X)
        y = _plain_labels(np.asarray(y))
        check_xy(X, y, "training data")
        if epochs < 1:
            raise BEPError(f"epochs must be >= 1, got {epochs}")
        Xe, ye = self.encode(X), self.encode_labels(y)
        if self.val_fraction > 0 and len(y) >= 4 * len(np.unique(y)):
            train_idx, val_idx = stratified_split(y, self.val_fraction, self.seed)
        else:
            train_idx, val_idx = np.arange(len(y)), np.zeros(0, dtype=np.int64)
        first = self.epochs_
        self.epochs_ = first + int(epochs)
        self._train(Xe[train_idx], ye[train_idx], Xe[val_idx], ye[val_idx], on_epoch, first_epoch=first,
                    gamma=list(self.gamma_), error_rate=self.error_rate_)
        return self

    def _train(self, Xt, yt, Xv, yv, on_epoch, first_epoch: int = 0, gamma: list[int] | None = None,
               error_rate: float = 1.0) -> None:
        net, hp = self.network, self.hp
        schedule = EpochSchedule(self.spec_, gamma or list(self.params_.gamma), hp.p_r, hp.patience,
                                 hp.gamma_growth, error_rate)
        for epoch in range(first_epoch, self.epochs_):
            start = time.perf_counter()
            gamma, q = list(schedule.gamma), schedule.q()
            net.set_epoch_params(gamma, q)
            before = dict(net.counters.as_dict())
            order = epoch_order(self.seed, epoch, len(yt))
            for i in range(0, len(order), self.batch_size_):
                b = order[i : i + self.batch_size_]
                net.train_batch(Xt[b], yt[b])
            seconds = time.perf_counter() - start
            after = net.counters.as_dict()
            error_rate = (after["errors"] - before["errors"]) / max(1, len(yt))
            val_acc = float((net.predict(Xv) == yv).mean()) if len(yv) else 1.0 - error_rate
            record = {
                "epoch": epoch + 1, "train_error": error_rate, "val_accuracy": val_acc, "gamma": gamma,
                "reinforce_q": q, "triggered": after["triggered"] - before["triggered"],
                "updates": after["updates"] - before["updates"], "seconds": seconds,
                "samples_per_second": len(yt) / seconds if seconds > 0 else float("inf"),
            }
            self.history.append(record)
            if on_epoch:
                on_epoch(record)
            schedule.end_epoch(error_rate, val_acc)
        self.gamma_ = schedule.gamma
        self.error_rate_ = schedule.error_rate

    # ----------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if self.network is None:
            raise BEPError("the classifier is not trained yet: call fit() or load a model")

    def predict(self, X) -> np.ndarray:
        self._check_fitted()
        return self.classes_[self.network.predict(self.encode(np.asarray(X)))]

    def score(self, X, y) -> float:
        """Accuracy on (X, y)."""
        y = _plain_labels(np.asarray(y))
        if len(y) == 0:
            raise BEPError("no samples to score")
        return float((self.predict(X) == y).mean())

    # ------------------------------------------------------------- summary
    def summary(self) -> dict:
        """Layer shapes, 1-bit parameter counts and the bytes of training and inference state.

        Training state is the C runtime's state buffer as planned by ``layout`` (the same
        number ``generate``/``size`` report): hidden weights at B bits, packed visible
        weights (plus the packed transposes the backward pass reads), activations.
        Inference needs only the packed visible weights and the classifier.
        """
        self._check_fitted()
        spec = self.spec_
        plan = plan_state(spec, self.params_.gate, check_limits=False)
        layers = []
        for i, ((rows, cols), p) in enumerate(zip(spec.layer_shapes(), plan.layers)):
            layers.append({"name": f"hidden{i + 1}" if spec.model == "mlp" else "rnn_cell",
                           "shape": [rows, cols], "synapses": rows * cols,
                           "hidden_weight_bytes": p.sizes["h"], "packed_weight_bytes": p.sizes["w"] + p.sizes["wr"],
                           "transpose_bytes": p.sizes["wt"]})
        classifier_bytes = len(self.classes_) * plan.class_words * 4
        kinds = plan.bytes_by_kind()
        return {
            "model": spec.model, "inputs": spec.n_inputs, "hidden": list(spec.hidden), "classes": len(self.classes_),
            "steps": spec.steps, "hidden_bits": spec.hidden_bits, "layers": layers,
            "synapses": spec.synapses, "classifier_bytes": classifier_bytes,
            "activation_bytes": kinds["activations"] + kinds["header"], "training_state_bytes": plan.state_bytes,
            "inference_state_bytes": sum(lay["packed_weight_bytes"] for lay in layers) + classifier_bytes,
            "binarizer": self.binarizer_.describe(), "window": getattr(self, "window_", None),
            "labels": self.classes_.tolist(),
        }

    # ---------------------------------------------------------- model files
    def save(self, path, extra_meta: dict | None = None) -> None:
        self._check_fitted()
        net = self.network
        arrays = {f"hidden_{i}": h for i, h in enumerate(net.hidden_weights())}
        arrays["classifier"] = net.P.astype(np.int8)
        arrays["classes"] = self.classes_
        arrays["input_keep"] = self.input_keep_
        arrays.update({f"binarizer_{k}": v for k, v in self.binarizer_.to_arrays().items()})
        meta = {
            "generator": f"bep-mcu {__version__}",
            "spec": {**asdict(self.spec_), "hidden": list(self.spec_.hidden)},
            "hyperparams": {**asdict(self.hp), "gamma": None if self.hp.gamma is None else list(self.hp.gamma)},
            "int_params": {"trigger_margin": self.params_.trigger_margin, "gate": list(self.params_.gate),
                           "gamma": list(self.params_.gamma)},
            "training": {
                "seed": self.seed, "epochs": self.epochs_, "batch_size": self.batch_size_,
                "batch_counter": net.batch_counter, "gamma": list(self.gamma_),
                "error_rate": self.error_rate_, "val_fraction": self.val_fraction,
                "counters": net.counters.as_dict(), "history": self.history, **(extra_meta or {}),
            },
            "input": {"n_features": int(self.n_features_), "length": getattr(self, "length_", None),
                      "window": getattr(self, "window_", None)},
        }
        modelio.save_model(path, arrays, meta)

    @classmethod
    def load(cls, path) -> "BEPClassifier":
        arrays, meta = modelio.load_model(path)
        try:
            spec = NetSpec(**{**meta["spec"], "hidden": tuple(meta["spec"]["hidden"])})
            hp = meta["hyperparams"]
            training, inp = meta["training"], meta["input"]
            clf = cls(model=spec.model, hidden=spec.hidden, epochs=training["epochs"],
                      batch_size=training["batch_size"], seed=training["seed"], window=inp["window"],
                      hidden_bits=spec.hidden_bits, r=hp["r"], nu=hp["nu"], gamma=hp["gamma"], p_r=hp["p_r"],
                      sigma=hp["sigma"], patience=hp["patience"], gamma_growth=hp["gamma_growth"],
                      val_fraction=training["val_fraction"])
            ip = meta["int_params"]
            clf.spec_ = spec
            clf.params_ = IntParams(ip["trigger_margin"], tuple(ip["gate"]), tuple(ip["gamma"]))
            clf.classes_ = arrays["classes"]
            clf.binarizer_ = binarizer_from_arrays(
                {k[len("binarizer_"):]: v for k, v in arrays.items() if k.startswith("binarizer_")})
            clf.input_keep_ = arrays["input_keep"].astype(bool)
            clf.n_features_ = inp["n_features"]
            if spec.model == "rnn":
                clf.length_, clf.window_ = inp["length"], inp["window"]
            clf.epochs_, clf.batch_size_ = training["epochs"], training["batch_size"]
            clf.gamma_, clf.error_rate_ = training["gamma"], training["error_rate"]
            clf.history = training["history"]
            hidden = [arrays[f"hidden_{i}"] for i in range(spec.n_layers)]
            clf.network = Network(spec, clf.params_, hidden, arrays["classifier"], training["seed"],
                                  training["batch_counter"])
        except (KeyError, TypeError, ValueError) as e:
            raise BEPError(f"'{path}' is not a valid bep-mcu model: missing or bad field ({e})") from None
        clf.meta_ = meta
        return clf
