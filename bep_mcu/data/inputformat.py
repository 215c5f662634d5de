"""The device's input format: raw sensor integers → exactly the bits the model's encoder gives.

A board reads integers (ADC counts, IMU int16 samples), the model's :class:`Encoder`
compares real values with float thresholds. An :class:`InputFormat` fixes how the two
meet: an integer input type and an integer scale per feature (per channel for an RNN),
and a device value ``v`` *means* the real value ``x = v / scale`` (float64 division, as
numpy computes it). Each threshold becomes an integer, the smallest device value whose
``x`` passes it, so the integer comparison ``v >= T`` (``v == T`` for passthrough)
gives, for every value the type can hold, exactly the bit the Python encoder gives
for ``x``: the generated C encoder and :func:`encode` here are bit-exact with
``encoder.encode(V / scale)`` by construction, and the tests check it.

A threshold below the type's range becomes the type's minimum (the bit is +1 for every
value, as it is for every ``x`` the type can mean); one above it cannot be expressed and
is refused (choose a wider type or a smaller scale).

What is lost is only the conversion of real training data into device values
(``round(x · scale)``, saturating): :func:`report` counts the training values within one
quantum of a threshold (where rounding could move them across it), the values that
saturate, and the bits that actually change.

Defaults (:func:`choose`): scale 1 (exact for integer-valued data) and the narrowest
signed type that holds the data and every threshold; for non-integer data, int16 and
per feature the largest power of ten that keeps the training values in range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bep_mcu import validate
from bep_mcu.data.binarize import MedianBinarizer, PassthroughBinarizer, ThermometerBinarizer
from bep_mcu.data.encoder import Encoder, as_model_shape
from bep_mcu.errors import BEPError

# name: (lowest value, highest value, C type)
INPUT_TYPES: dict[str, tuple[int, int, str]] = {
    "int8": (-(1 << 7), (1 << 7) - 1, "int8_t"),
    "uint8": (0, (1 << 8) - 1, "uint8_t"),
    "int16": (-(1 << 15), (1 << 15) - 1, "int16_t"),
    "uint16": (0, (1 << 16) - 1, "uint16_t"),
    "int32": (-(1 << 31), (1 << 31) - 1, "int32_t"),
}
SIGNED_WIDENING = ("int8", "int16", "int32")
MAX_SCALE = 10 ** 9
MAX_DECIMALS = 9  # the default scale of non-integer data is at most 10^9


@dataclass(frozen=True)
class InputFormat:
    """Input type and one integer scale per value of a point (module docstring)."""

    input_type: str
    scales: tuple[int, ...]

    def __post_init__(self) -> None:
        validate.choice(self.input_type, "--input-type", tuple(INPUT_TYPES))
        validate.integers(self.scales, "--input-scale", 1, MAX_SCALE, max_len=1 << 20)

    @property
    def lo(self) -> int:
        return INPUT_TYPES[self.input_type][0]

    @property
    def hi(self) -> int:
        return INPUT_TYPES[self.input_type][1]

    @property
    def ctype(self) -> str:
        return INPUT_TYPES[self.input_type][2]

    @property
    def itemsize(self) -> int:
        return np.dtype(self.input_type).itemsize

    def to_device(self, X) -> np.ndarray:
        """Real values (the model's shape: (n, features) or (n, T, channels)) → device
        integers ``round(x · scale)``, saturating at the type's limits (int64)."""
        X = np.asarray(X, dtype=np.float64)
        return np.clip(np.rint(X * np.asarray(self.scales, dtype=np.float64)), self.lo, self.hi).astype(np.int64)

    def to_real(self, V) -> np.ndarray:
        """Device integers → the real values they mean: ``v / scale`` (float64)."""
        return np.asarray(V, dtype=np.int64) / np.asarray(self.scales, dtype=np.int64)

    def describe(self) -> dict:
        return {"input_type": self.input_type, "input_scale": list(self.scales)}


# ------------------------------------------------------------------ thresholds


def point_thresholds(encoder: Encoder) -> tuple[np.ndarray, np.ndarray, str]:
    """Per kept bit of one point: its feature; the float thresholds, shape (points, kept bits),
    one row shared by every point, or one row per time point (``encoder.per_point``); and the
    comparison (">" median, ">=" thermometer, "==" passthrough, against 1)."""
    b, keep = encoder.binarizer, encoder.input_keep
    per_feature = b.bits_per_feature()
    feature = np.repeat(np.arange(encoder.n_features), per_feature)[keep]
    if isinstance(b, MedianBinarizer):
        return feature, b.thresholds[feature][None, :], ">"
    if isinstance(b, ThermometerBinarizer):
        return feature, b.thresholds.reshape(-1, len(keep))[:, keep], ">="
    assert isinstance(b, PassthroughBinarizer)
    return feature, np.ones((1, len(feature))), "=="


def _first_passing(t: float, scale: int, op: str) -> int:
    """The smallest integer v with ``v / scale`` (float64) ``op`` t, op ">=" or ">".

    Exactly, ceil(t · scale) (or floor + 1) is the answer up to one float rounding of
    v / scale, so the answer is one of its neighbours and the float predicate (monotone
    in v) picks it."""
    exact = t * scale  # only a starting point; the candidates below decide
    if abs(exact) > 2.0 ** 40:  # far outside every input type: below is clamped, above refused
        return int(math.copysign(2 ** 40, exact))
    start = math.floor(exact) if op == ">" else math.ceil(exact)
    for v in range(start - 2, start + 3):
        x = float(v) / float(scale)
        if x > t if op == ">" else x >= t:
            return v
    raise AssertionError(f"no integer passes {t!r} at scale {scale}")  # unreachable: start + 2 passes


def device_thresholds(encoder: Encoder, fmt: InputFormat) -> tuple[np.ndarray, np.ndarray]:
    """(kept bits per feature (uint8), one integer threshold per kept bit (int64), point-major
    when the thresholds are per time point: ``length`` times the kept bits of a point): the
    C encoder's tables. Bit = ``v >= T`` (``v == T`` for passthrough)."""
    feature, t, op = point_thresholds(encoder)
    if len(fmt.scales) != encoder.n_features:
        raise BEPError(f"--input-scale needs one value per feature ({encoder.n_features}), got {len(fmt.scales)}")
    counts = np.bincount(feature, minlength=encoder.n_features).astype(np.uint8)
    feature, t = np.tile(feature, len(t)), t.reshape(-1)
    if op == "==":
        T = np.array([fmt.scales[f] for f in feature], dtype=np.int64)
    else:
        T = np.array([_first_passing(float(tk), fmt.scales[f], op) for f, tk in zip(feature, t)], dtype=np.int64)
        T = np.maximum(T, fmt.lo)  # below the range: +1 for every value the type holds
    if len(T) and T.max() > fmt.hi:
        k = int(np.argmax(T > fmt.hi))
        what = f"value {fmt.scales[feature[k]]}" if op == "==" else f"threshold {float(t[k])!r}"
        raise BEPError(f"feature {int(feature[k])}: {what} is {int(T[k])} at scale {fmt.scales[feature[k]]}, "
                       f"beyond {fmt.input_type} (at most {fmt.hi}): choose a wider --input-type or a smaller "
                       f"--input-scale")
    return counts, T


def encode(encoder: Encoder, fmt: InputFormat, V, thresholds: np.ndarray | None = None) -> np.ndarray:
    """Device integers → the ±1 float32 network input, with integer comparisons only
    (what the generated C does), bias bits included; equal to ``encoder.encode(fmt.to_real(V))``.
    ``thresholds``: integer thresholds in place of the model's (a board's recalibrated ones,
    data/recalibration.py), one per kept bit of a point."""
    V = np.asarray(V)
    if V.dtype.kind not in "iu":
        raise BEPError(f"device values must be integers, got dtype {V.dtype}")
    counts, T = device_thresholds(encoder, fmt)
    if thresholds is not None:
        if np.shape(thresholds) != T.shape:
            raise BEPError(f"{np.shape(thresholds)} thresholds; the encoder keeps {len(T)} bits of a point")
        T = np.asarray(thresholds, dtype=np.int64)
    feature = np.repeat(np.arange(encoder.n_features), counts)
    T = T.reshape(-1, len(feature))  # a row per time point, or one for every point
    equal = isinstance(encoder.binarizer, PassthroughBinarizer)
    V = V.astype(np.int64)
    if encoder.model == "mlp":
        if V.ndim != 2 or V.shape[1] != encoder.n_features:
            raise BEPError(f"device values of shape {V.shape}; the model expects (n, {encoder.n_features})")
        vals = V[:, feature]
        T = T[0]
        return encoder.with_bias(np.where((vals == T) if equal else (vals >= T), 1.0, -1.0))
    V = V[:, :, None] if V.ndim == 2 else V
    if V.ndim != 3 or V.shape[1:] != (encoder.length, encoder.n_features):
        raise BEPError(f"device values of shape {V.shape}; the model expects (n, {encoder.length}, "
                       f"{encoder.n_features})")
    vals = V[:, :, feature]
    bits = np.where((vals == T) if equal else (vals >= T), 1.0, -1.0).astype(np.float32)
    pad = encoder.steps * encoder.window - encoder.length
    if pad:  # the last window repeats the final point, as Encoder.encode does
        bits = np.concatenate([bits, np.repeat(bits[:, -1:], pad, axis=1)], axis=1)
    return encoder.with_bias(bits.reshape(len(V), encoder.steps, -1))


# ------------------------------------------------------------------ choosing and reporting


def _spans(encoder: Encoder, rows: np.ndarray | None, robust: bool) -> np.ndarray:
    """Per feature, the real values the device must hold: the training values (all of
    them, or ``robust``: the 1st..99th percentile, so a few outliers saturate), widened to
    every threshold of the feature. Shape (features, 2)."""
    feature, t, op = point_thresholds(encoder)
    spans = np.zeros((encoder.n_features, 2))
    if rows is not None:
        spans[:, 0], spans[:, 1] = (np.quantile(rows, (0.01, 0.99), axis=0, method="nearest") if robust
                                    else (rows.min(axis=0), rows.max(axis=0)))
    for f in np.unique(feature):
        spans[f] = min(spans[f, 0], t[:, feature == f].min()), max(spans[f, 1], t[:, feature == f].max())
    return spans


def _fits(fmt: InputFormat, spans: np.ndarray, encoder: Encoder) -> bool:
    """The spans inside the type, and every threshold strictly inside it (so saturating
    a value never changes a bit)."""
    scaled = spans * np.asarray(fmt.scales, dtype=np.float64)[:, None]
    if scaled.min() < fmt.lo or scaled.max() > fmt.hi:
        return False
    try:
        _, T = device_thresholds(encoder, fmt)
    except BEPError:
        return False
    return not len(T) or bool(T.min() > fmt.lo)


def _decimal_scale(span: np.ndarray, fmt_type: str) -> int:
    """Largest 10^k (k = 0..MAX_DECIMALS) that keeps ``span`` · 10^k inside the type."""
    lo, hi, _ = INPUT_TYPES[fmt_type]
    top = float(np.max(np.abs(span)))
    k = 0
    while k < MAX_DECIMALS and top * 10 ** (k + 1) <= min(hi, -lo if lo < 0 else hi):
        k += 1
    return 10 ** k


def choose(encoder: Encoder, X=None, input_type: str | None = None, scales: tuple[int, ...] | None = None
           ) -> InputFormat:
    """The input format of a board (module docstring for the defaults); ``X`` is the
    raw training data when it is known. A type and scale that hold all of it are
    preferred; failing that, ones that hold all but a few outliers (which saturate
    without changing a bit: every threshold is inside the type)."""
    n = encoder.n_features
    if scales is not None and len(scales) != n:
        raise BEPError(f"--input-scale needs one value per feature ({n}), got {len(scales)}")
    if input_type is not None:
        validate.choice(input_type, "--input-type", tuple(INPUT_TYPES))
    rows = None
    if X is not None:
        X = as_model_shape(X, encoder.model)
        want = (n,) if encoder.model == "mlp" else (encoder.length, n)
        if X.shape[1:] != want:
            raise BEPError(f"data of shape {X.shape[1:]}, the model reads {want}")
        rows = X.reshape(-1, n)
    integer = rows is None or bool(np.all(rows == np.round(rows)))
    candidates = [input_type] if input_type else (SIGNED_WIDENING if integer else SIGNED_WIDENING[1:])
    for robust in (False, True):
        spans = _spans(encoder, rows, robust)
        for name in candidates:
            if scales is not None:
                chosen = scales
            elif integer:
                chosen = (1,) * n
            else:
                chosen = tuple(_decimal_scale(spans[f], name) for f in range(n))
            fmt = InputFormat(name, chosen)
            if input_type or _fits(fmt, spans, encoder):
                device_thresholds(encoder, fmt)  # a given type must hold every threshold: one line if not
                return fmt
    raise BEPError("no input type holds the training data and every threshold at scale 1: give --input-type "
                   "and --input-scale")


def report(encoder: Encoder, fmt: InputFormat, X) -> dict:
    """How the device's integers differ from the real training values ``X``."""
    X = as_model_shape(X, encoder.model)
    rows = X.reshape(len(X), -1, encoder.n_features)  # (samples, points, values of a point)
    feature, t, op = point_thresholds(encoder)
    scales = np.asarray(fmt.scales, dtype=np.float64)
    scaled = np.rint(rows * scales)
    near = np.zeros(rows.shape, dtype=bool)
    if op != "==":
        inexact = scaled != rows * scales  # an exactly representable value cannot move
        for f in np.unique(feature):  # within one quantum (1 / scale) of a threshold of its feature (and point)
            distance = np.abs(rows[:, :, f, None] - t[None, :, feature == f]).min(axis=2)
            near[:, :, f] = (distance * scales[f] < 1.0) & inexact[:, :, f]
    V = fmt.to_device(X)
    differ = encoder.encode(X) != encode(encoder, fmt, V)
    per_sample = differ.reshape(len(X), -1)
    return {"values": int(rows.size), "near_threshold_values": int(near.sum()),
            "saturated_values": int(((scaled < fmt.lo) | (scaled > fmt.hi)).sum()),
            "differing_bits": int(per_sample.sum()), "differing_samples": int(per_sample.any(axis=1).sum())}
