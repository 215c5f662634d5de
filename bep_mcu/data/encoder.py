"""Raw features → the ±1 network input: binariser, dropped constant bits, RNN windows.

An :class:`Encoder` is fitted on training data only and then travels with the model
(``modelio``), so training, evaluation, the C twin and a board all see the same bits.

- MLP: ``X`` (n, features) → binarise → keep the bits that vary on the training data
  → append ``bias_bits`` constant +1 bits → (n, kept bits + bias bits).
- RNN: ``X`` (n, T) or (n, T, channels) → binarise every point (thresholds shared over
  time, per channel; with ``thermometer:N:point`` per time point and channel) → keep →
  cut into windows of ``window`` points (the last window is padded by repeating the final
  point) → append ``bias_bits`` constant +1 bits to every step → (n, steps, window · kept
  bits + bias bits).

Bits that never change on the training data carry no information, and in a network
without biases they act as large constant offsets that stall BEP (digits under
thermometer:4 has 120 such bits of 256 and collapses to chance), so they are dropped.
A few constant bits *added on purpose* are another matter: each neuron's weights on
them are a threshold that BEP trains like any other weight (the RNN gains 1-3 points
with 8 of them; docs/accuracy.md §2). They are input bits, so the training step is
unchanged; the device encoder sets them too (bep_encode.c).

A fitted encoder also keeps two statistics of its training data, for a board that lets its
thresholds follow drifting sensors without labels (data/recalibration.py, docs/adaptation.md):
``below``, per kept bit, the fraction of training values whose bit is -1 (the quantile each
threshold stands at), and ``spread``, per feature, a robust standard deviation of the training
values (the scale of a threshold's steps). Both are None for binary inputs, passed through or
as copies of each bit under a thermometer (nothing to follow: a cut between a feature's only two
values can only move onto one of them, which makes its bit constant), and in model files written
before them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bep_mcu import validate
from bep_mcu.data.binarize import Binarizer, PassthroughBinarizer, is_binary, make_binarizer
from bep_mcu.engine.spec import MAX_FAN_IN, MAX_STEPS, NetSpec
from bep_mcu.errors import BEPError

# "auto" binarisation of non-binary data: a point of a series (an RNN's, or an MLP's input of
# shape (n, T, channels)) gets 8 thermometer bits, a tabular feature 4 (series MLPs: +1.1
# points over five UCR sets with 8, validation agreeing; docs/accuracy.md §2).
DEFAULT_BINARIZE = {"tabular": "thermometer:4", "series": "thermometer:8"}
# About 2 steps per series: the largest single gain of the defaults study (8 → 4 → 2 steps:
# 76.2 → 76.5 → 79.4 % over five UCR sets; docs/accuracy.md §2). 60 steps stay at chance.
RNN_TARGET_STEPS = 2
DEFAULT_BIAS_BITS = {"mlp": 0, "rnn": 8}  # the MLP is neutral to them (−0.3), the RNN gains
MAX_BIAS_BITS = 1024
MAX_FEATURES = 1 << 20
MAX_LENGTH = 1 << 20


def default_window(length: int) -> int:
    """Window length that cuts a series into about ``RNN_TARGET_STEPS`` steps."""
    return max(1, math.ceil(length / RNN_TARGET_STEPS))


@dataclass(frozen=True, eq=False)
class Encoder:
    """The fitted input encoding of one model (see the module docstring)."""

    model: str
    binarizer: Binarizer
    input_keep: np.ndarray  # bool, one entry per binarised bit (of one point, for an rnn)
    n_features: int  # features (mlp) or channels of one point (rnn)
    length: int | None = None  # rnn: points per series
    window: int | None = None  # rnn: points per step
    bias_bits: int = 0  # constant +1 bits after the kept bits (of every step, for an rnn)
    below: np.ndarray | None = None  # float64 per kept bit: training fraction whose bit is -1
    spread: np.ndarray | None = None  # float64 per feature: robust standard deviation of the training values

    def __post_init__(self) -> None:
        validate.choice(self.model, "encoder model", ("mlp", "rnn"))
        validate.integer(self.n_features, "input.n_features", 1, MAX_FEATURES)
        validate.integer(self.bias_bits, "input.bias_bits", 0, MAX_BIAS_BITS)
        if self.per_point and self.model != "rnn":
            raise BEPError(f"{self.binarizer.spec()} is for an rnn: an mlp's thresholds are per feature already")
        if self.binarizer.n_features != self.n_features * (self.length or 0 if self.per_point else 1):
            raise BEPError(f"the binariser was fitted on {self.binarizer.n_features} features, the input has "
                           f"{self.n_features}" + (f" at each of {self.length} points" if self.per_point else ""))
        keep = self.input_keep
        bits = self.binarizer.n_outputs(self.n_features)
        if not isinstance(keep, np.ndarray) or keep.dtype != np.bool_ or keep.shape != (bits,):
            raise BEPError(f"input_keep must be a boolean array of {bits} entries (one per binarised bit)")
        if not keep.any():
            raise BEPError("input_keep keeps no input bit")
        keep.setflags(write=False)
        if self.model == "rnn":
            length = validate.integer(self.length, "input.length", 1, MAX_LENGTH)
            validate.integer(self.window, "input.window", 1, length)
        elif self.length is not None or self.window is not None:
            raise BEPError("an mlp input has no series length or window")
        self._check_statistics()

    @property
    def per_point(self) -> bool:
        """Thresholds per time point and channel (an rnn's ``thermometer:N:point``), not shared over time."""
        return self.binarizer.per_point

    def _check_statistics(self) -> None:
        if (self.below is None) != (self.spread is None):
            raise BEPError("input.below and input.spread come together")
        if self.below is None:
            return
        if isinstance(self.binarizer, PassthroughBinarizer) or self.per_point:
            raise BEPError("binary inputs and thresholds per time point have no thresholds a board follows: no "
                           "input.below or input.spread")
        for what, a, n, top in (("below", self.below, self.kept_bits, 1.0), ("spread", self.spread, self.n_features,
                                                                            np.inf)):
            if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.shape != (n,):
                raise BEPError(f"input.{what} must be float64 of shape ({n},)")
            if not np.all(np.isfinite(a)) or a.min(initial=0.0) < 0 or a.max(initial=0.0) > top:
                raise BEPError(f"input.{what} must hold finite values in [0, {top}]")
            a.setflags(write=False)

    # ------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, X: np.ndarray, model: str, binarize: str = "auto", window: int | None = None,
            bias_bits: int | None = None, keep_constant: bool = False) -> "Encoder":
        """Fit on training data ``X`` (raw features or series; ``bias_bits`` None: the
        model's default). ``keep_constant``: where no bit varies on ``X`` (one sample, or
        copies of one: ``partial_fit``'s first chunk), keep every bit instead of refusing."""
        series = model == "rnn" or np.ndim(X) == 3
        X = as_model_shape(X, model)
        rows = X if model == "mlp" else X.reshape(-1, X.shape[2])  # the shared thresholds' view; auto reads it
        if bias_bits is None:
            bias_bits = DEFAULT_BIAS_BITS[model]
        bias_bits = validate.integer(bias_bits, "--bias-bits", 0, MAX_BIAS_BITS)
        if binarize == "auto":
            binarize = "passthrough" if is_binary(rows) else DEFAULT_BINARIZE["series" if series else "tabular"]
        binarizer = make_binarizer(binarize)
        if model == "mlp" and binarizer.per_point:
            raise BEPError(f"--binarize {binarize} is for an rnn: an mlp's thresholds are per feature already")
        binarizer.fit(binarizer_rows(X, binarizer))
        bits = point_bits(binarizer, X)
        keep = bits.min(axis=0) != bits.max(axis=0)  # per point: kept where it varies at any time point
        constant = not keep.any()
        if constant and not keep_constant:
            raise BEPError(f"every input bit is constant on the training data after {binarize} binarisation")
        if constant:  # the next chunks will vary; no statistics of inputs that do not vary yet
            keep[:] = True
        followable = not (constant or isinstance(binarizer, PassthroughBinarizer) or binarizer.per_point
                          or is_binary(rows))
        stats = {"below": (bits[:, keep] < 0).mean(axis=0), "spread": robust_spread(rows)} if followable else {}
        if model == "mlp":
            return cls("mlp", binarizer, keep, X.shape[1], bias_bits=bias_bits, **stats)
        length = X.shape[1]
        if window is None:
            window = default_window(length)
        window = validate.integer(window, "--window", 1, MAX_LENGTH)
        if window > length:
            raise BEPError(f"window {window} is longer than the series ({length} points)")
        return cls("rnn", binarizer, keep, X.shape[2], length, window, bias_bits, **stats)

    # ------------------------------------------------------------ shape
    @property
    def kept_bits(self) -> int:
        return int(self.input_keep.sum())

    @property
    def steps(self) -> int:
        return 1 if self.model == "mlp" else math.ceil(self.length / self.window)

    @property
    def n_inputs(self) -> int:
        """Input bits of the network (per step, for an rnn)."""
        return (self.kept_bits if self.model == "mlp" else self.kept_bits * self.window) + self.bias_bits

    def check(self, spec: NetSpec) -> None:
        """The network must read exactly what this encoder writes."""
        if spec.model != self.model or spec.n_inputs != self.n_inputs or spec.steps != self.steps:
            raise BEPError(f"the input encoding gives {self.model} inputs of {self.n_inputs} bits x {self.steps} "
                           f"step(s), the network reads {spec.model} {spec.n_inputs} bits x {spec.steps}")
        if self.n_inputs > MAX_FAN_IN or self.steps > MAX_STEPS:
            raise BEPError(f"the input encoding gives {self.n_inputs} bits x {self.steps} steps, more than the "
                           f"network can hold ({MAX_FAN_IN} bits, {MAX_STEPS} steps)")

    # ------------------------------------------------------------ encoding
    def encode(self, X: np.ndarray) -> np.ndarray:
        """Raw features → the ±1 float32 network input."""
        X = as_model_shape(X, self.model)
        if self.model == "mlp":
            if X.shape[1] != self.n_features:
                raise BEPError(f"data has {X.shape[1]} features, the model expects {self.n_features}")
            return self.with_bias(self.binarizer.transform(X)[:, self.input_keep].astype(np.float32))
        n, length, channels = X.shape
        if channels != self.n_features or length != self.length:
            raise BEPError(
                f"series of length {length} with {channels} channel(s); the model expects "
                f"length {self.length} with {self.n_features}"
            )
        bits = point_bits(self.binarizer, X)[:, self.input_keep].reshape(n, length, -1)
        pad = self.steps * self.window - length
        if pad:  # the last window repeats the final point
            bits = np.concatenate([bits, np.repeat(bits[:, -1:], pad, axis=1)], axis=1)
        return self.with_bias(bits.reshape(n, self.steps, -1).astype(np.float32))

    def with_bias(self, bits: np.ndarray) -> np.ndarray:
        """±1 inputs (..., bits) with the ``bias_bits`` constant +1 bits appended."""
        if not self.bias_bits:
            return bits.astype(np.float32, copy=False)
        ones = np.ones(bits.shape[:-1] + (self.bias_bits,), dtype=np.float32)
        return np.concatenate([bits.astype(np.float32, copy=False), ones], axis=-1)

    def describe(self) -> dict:
        return {"binarizer": self.binarizer.describe(), "features": self.n_features, "kept_bits": self.kept_bits,
                "bias_bits": self.bias_bits, "length": self.length, "window": self.window}


def binarizer_rows(X: np.ndarray, binarizer: Binarizer) -> np.ndarray:
    """The rows a binariser reads of data in the model's shape: an mlp's samples; an rnn's
    points (n·T, channels), thresholds shared over time, or with thresholds per time point its
    series (n, T·channels), one feature per point and channel."""
    if X.ndim == 2:
        return X
    return X.reshape(len(X), -1) if binarizer.per_point else X.reshape(-1, X.shape[2])


def point_bits(binarizer: Binarizer, X: np.ndarray) -> np.ndarray:
    """The ±1 bits of every point (an mlp's sample) of data in the model's shape: (points, bits of a point)."""
    bits = binarizer.transform(binarizer_rows(X, binarizer))
    return bits if X.ndim == 2 else bits.reshape(X.shape[0] * X.shape[1], -1)


def robust_spread(rows: np.ndarray) -> np.ndarray:
    """Per column, the interquartile range / 1.349 (the standard deviation of a normal
    distribution, unmoved by a few outliers), or the standard deviation where half the values
    are equal (a discrete feature)."""
    q1, q3 = np.quantile(rows, (0.25, 0.75), axis=0)
    return np.where(q3 > q1, (q3 - q1) / 1.349, rows.std(axis=0)).astype(np.float64)


def as_model_shape(X, model: str) -> np.ndarray:
    """Raw data as float64 (n, features) for an mlp (series flattened), (n, T, channels) for an rnn."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise BEPError(f"input data must be numeric, got dtype {X.dtype}")
    X = X.astype(np.float64, copy=False)
    if model == "mlp":
        if X.ndim < 2:
            raise BEPError(f"an mlp needs samples of shape (n, features), got {X.shape}")
        return X.reshape(len(X), -1) if X.ndim > 2 else X
    if X.ndim == 2:
        return X[:, :, None]
    if X.ndim != 3:
        raise BEPError(f"an rnn needs series of shape (n, T) or (n, T, channels), got {X.shape}")
    return X
