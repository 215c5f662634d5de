"""Label-free recalibration: a board's input thresholds follow the raw values it sees.

A quantile code is invariant to any monotone drift of a feature (a sensor's gain or offset
changing) once its thresholds stand at the same quantiles of the drifted values as they stood
on the training data. Each kept threshold ``T_k`` of a point (device integers,
``inputformat.device_thresholds``) knows its quantile: ``P_k``, the fraction of training values
whose bit is -1 (``Encoder.below``), in fixed point ``ONE``. A board follows it with one integer
accumulator ``a_k`` per threshold; per raw value ``v`` of feature ``f``, in the board's order
(points in time order, a point's features in order, a feature's thresholds in order)::

    a_k += ONE - P_k  if v < T_k,  else  a_k -= P_k
    a_k >= A_f:   T_k = max(lo, T_k - step_f),  a_k -= A_f
    a_k <= -A_f:  T_k = min(hi, T_k + step_f),  a_k += A_f

and then the feature's thresholds are put back in ascending order (a threshold that stepped
past its neighbour swaps places with it; each keeps its own ``P_k`` and ``a_k``). The
accumulator drifts by ``ONE * (P(v < T_k) - P_k)`` per value, so ``T_k`` settles where the
fraction of values below it is ``P_k``: its training quantile. The order keeps a thermometer
code monotone (bit k+1 set implies bit k set), the only codes the network was trained on;
thresholds stay within the input type (``lo``..``hi``), so every one can be stored in it.

The host chooses per feature (from ``Encoder.spread``, a robust standard deviation of the
training values, in device units ``sd_f``) ``step_f = round(sd_f / min(window, STEPS_PER_SD))``
(at least 1) and ``A_f = round(window * ONE * step_f / sd_f)`` (at least ``ONE``, so one value
moves a threshold at most one step), where ``window`` is the adaptation rate: the number of
values of a feature in which a threshold moves one standard deviation when they all fall on
one side. A settled threshold wanders about ``sqrt(0.15 / window)`` in share where its
feature's values are dense; a drift of ``d`` standard deviations is followed in about
``d * window / |P(v < T_k) - P_k|`` values (docs/adaptation.md measures the trade).

:class:`Calibration` runs these lines in numpy, vectorised over thresholds and sequential over
values, in exactly the order of the C (templates/runtime/bep_calibrate.c), so the two agree bit
for bit (tests/test_recalibration.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bep_mcu import validate
from bep_mcu.data.binarize import PassthroughBinarizer
from bep_mcu.data.encoder import Encoder
from bep_mcu.data.inputformat import InputFormat, device_thresholds, encode
from bep_mcu.errors import BEPError

ONE = 1 << 15  # fixed point of P_k (a uint16 table in C: 0..ONE)
STEPS_PER_SD = 256  # a threshold's finest step: 1/256 of the feature's training standard deviation
# (1/32 left thresholds at the edge of a tight cluster 0.05 off their share: docs/adaptation.md)
DEFAULT_WINDOW = 256
MAX_WINDOW = 1 << 15
MAX_ACCUMULATOR = 1 << 30  # A_f: an accumulator stays within int32 with ONE added
MAX_STEP = 1 << 30  # T ± step stays within int32 for every input type


def check_window(window: int) -> int:
    """The adaptation rate, checked (values per standard deviation, 1..MAX_WINDOW)."""
    return validate.integer(window, "--calibration-window", 1, MAX_WINDOW)


def follows(encoder: Encoder) -> bool:
    """Whether a board can follow the encoder's thresholds: not for binary inputs (no
    threshold) nor for a model file written before the training statistics it needs."""
    return encoder.below is not None and not isinstance(encoder.binarizer, PassthroughBinarizer)


def followed(encoder: Encoder) -> int:
    """Thresholds a board follows (the kept bits of a point, or 0): what the state plans."""
    return encoder.kept_bits if follows(encoder) else 0


@dataclass(frozen=True, eq=False)
class CalibrationPlan:
    """The integers a board follows its thresholds with (module docstring), chosen on the host."""

    counts: np.ndarray  # kept thresholds per feature (of a point)
    initial: np.ndarray  # int64 per threshold: the model's device thresholds
    below: np.ndarray  # int64 per threshold: P_k in 1/ONE
    step: np.ndarray  # int64 per feature
    window: np.ndarray  # int64 per feature: A_f
    lo: int
    hi: int
    adaptation: int  # the window in values per standard deviation the plan was made for

    @property
    def count(self) -> int:
        return len(self.initial)

    @property
    def feature(self) -> np.ndarray:
        """The feature of each threshold."""
        return np.repeat(np.arange(len(self.counts)), self.counts)


def plan(encoder: Encoder, fmt: InputFormat, window: int = DEFAULT_WINDOW) -> CalibrationPlan:
    """The plan for ``encoder``'s thresholds on inputs of ``fmt``; none to follow (count 0)
    when :func:`follows` says so."""
    window = check_window(window)
    counts, T = device_thresholds(encoder, fmt)
    n = encoder.n_features
    if not follows(encoder):
        empty = np.zeros(0, dtype=np.int64)
        return CalibrationPlan(np.zeros(n, dtype=np.int64), empty, empty, np.zeros(n, dtype=np.int64),
                               np.zeros(n, dtype=np.int64), fmt.lo, fmt.hi, window)
    sd = encoder.spread * np.asarray(fmt.scales, dtype=np.float64)
    step = np.clip(np.rint(sd / min(window, STEPS_PER_SD)), 1, MAX_STEP).astype(np.int64)
    a = np.where(sd > 0, window * ONE * step / np.where(sd > 0, sd, 1.0), window * ONE)  # sd 0: any step is far
    A = np.clip(np.rint(a), ONE, MAX_ACCUMULATOR).astype(np.int64)
    P = np.clip(np.rint(encoder.below * ONE), 0, ONE).astype(np.int64)
    return CalibrationPlan(counts.astype(np.int64), T, P, step, A, fmt.lo, fmt.hi, window)


class Calibration:
    """Where a board's thresholds stand: ``thresholds`` and ``accumulators`` (int64, one per
    followed threshold, in the encoder's order), moved by :meth:`observe` as the C moves them."""

    def __init__(self, plan: CalibrationPlan, thresholds: np.ndarray | None = None,
                 accumulators: np.ndarray | None = None) -> None:
        self.plan = plan
        k, f = plan.count, len(plan.counts)
        self.width = int(plan.counts.max(initial=1))
        # Each threshold's cell in a (features, most thresholds of a feature) matrix, so that
        # a point updates every threshold at once and a row sort restores each feature's order.
        self._cell = (plan.feature, np.arange(k) - np.repeat(np.cumsum(plan.counts) - plan.counts, plan.counts))
        self._mask = np.zeros((f, self.width), dtype=bool)
        self._mask[self._cell] = True
        P = self._matrix(plan.below, 0)
        self._if_below, self._if_not = np.where(self._mask, ONE - P, 0), np.where(self._mask, -P, 0)
        self._A = np.where(self._mask, plan.window[:, None], np.iinfo(np.int64).max)
        self._step = plan.step[:, None]
        self._T = self._matrix(plan.initial if thresholds is None else thresholds, plan.hi + 1)  # pads sort last
        self._a = self._matrix(np.zeros(k, np.int64) if accumulators is None else accumulators, 0)

    def _matrix(self, values, pad: int) -> np.ndarray:
        m = np.full(self._mask.shape, pad, dtype=np.int64)
        m[self._cell] = np.asarray(values, dtype=np.int64)
        return m

    @property
    def thresholds(self) -> np.ndarray:
        return self._T[self._cell].copy()

    @property
    def accumulators(self) -> np.ndarray:
        return self._a[self._cell].copy()

    def followed(self) -> tuple[np.ndarray, np.ndarray]:
        """(thresholds, accumulators): what a board's snapshot carries (cgen/snapshot.py)."""
        return self.thresholds, self.accumulators

    def observe(self, V) -> "Calibration":
        """Follow device values ``V`` (any shape whose last axis is a point's features:
        (n, features) samples of an mlp, (n, length, channels) series, (points, channels)),
        point after point in their order. Returns self."""
        V = np.asarray(V)
        n_features = len(self.plan.counts)
        if V.dtype.kind not in "iu" or V.ndim < 1 or V.shape[-1] != n_features:
            raise BEPError(f"device values must be integers whose last axis holds a point's {n_features} features, "
                           f"got {V.dtype} {V.shape}")
        if not self.plan.count:
            return self
        points = V.reshape(-1, n_features).astype(np.int64)
        if points.size and (points.min() < self.plan.lo or points.max() > self.plan.hi):
            raise BEPError(f"device values must lie within {self.plan.lo}..{self.plan.hi} (the input type)")
        T, a, A, step, lo, hi = self._T, self._a, self._A, self._step, self.plan.lo, self.plan.hi
        for x in points:
            a += np.where(x[:, None] < T, self._if_below, self._if_not)
            down, up = a >= A, a <= -A
            T = np.where(down, np.maximum(T - step, lo), np.where(up, np.minimum(T + step, hi), T))
            a -= np.where(down, A, 0) - np.where(up, A, 0)
            if self.width > 1:
                T.sort(axis=1)
        self._T = T
        return self

    def encode(self, encoder: Encoder, fmt: InputFormat, V) -> np.ndarray:
        """``inputformat.encode`` with the thresholds where they stand."""
        return encode(encoder, fmt, V, self.thresholds if self.plan.count else None)
