"""Input binarisers (docs/algorithm.md §4): float features -> ±1 bits, fitted on training data only.

A binariser works on 2-D float arrays (rows, features) and returns int8 arrays of
-1/+1 of shape (rows, n_outputs(features)); callers reshape time series themselves.
Thresholds are computed once in ``fit`` and applied unchanged to test data, and are
saved with the model (``to_arrays``, plain arrays for an npz with allow_pickle=False)
so that the host, the generated C and a later ``predict`` binarise identically.

Specs (the CLI value):
    median                  per feature: +1 iff x > median of that feature
    median:global           one median over all training values
    thermometer:N           N bits per feature, thresholds at the training quantiles
                            k/(N+1), k = 1..N, each a different cut between two distinct
                            training values (``distinct_quantile_cuts``)
    thermometer:N:uniform   thresholds evenly spaced strictly between the training
                            min and max of each feature
    thermometer:N:point     an RNN's thresholds per time point (and channel), as an MLP's
                            are, instead of shared over time: series of one shape then
                            differ in most bits, not in a few (docs/research/untuned-data.md §4)
    passthrough             data already in {-1,+1} or {0,1}: 1 -> +1, 0 or -1 -> -1

Thermometer bit k of feature f is ``x >= t_k`` and sits in column ``f*N + k``
(feature-major); thresholds are non-decreasing in k, so the bits of one feature are
monotone (bit k+1 set implies bit k set).

Example usage::

    b = make_binarizer("thermometer:4").fit(X_train)
    bits_train, bits_test = b.transform(X_train), b.transform(X_test)
    np.savez(path, **{f"binarizer_{k}": v for k, v in b.to_arrays().items()})
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from bep_mcu import validate
from bep_mcu.errors import BEPError

MAX_THERMOMETER_BITS = 64
SPEC_FORMS = (
    "median",
    "median:global",
    f"thermometer:N (N = 1..{MAX_THERMOMETER_BITS})",
    "thermometer:N:uniform",
    "thermometer:N:point",
    "passthrough",
)
THERMOMETER_MODES = ("quantile", "uniform", "point")  # point: quantile thresholds per time point


def is_binary(X: np.ndarray) -> bool:
    """True when X is non-empty, numeric, and all in {-1,+1} or all in {0,1}.

    An empty array is not binary: there is nothing to tell the alphabet from.
    """
    a = np.asarray(X)
    if a.size == 0 or a.dtype.kind not in "biuf":
        return False
    ones = a == 1
    return bool(np.all(ones | (a == -1)) or np.all(ones | (a == 0)))


def _as_2d_float(X: np.ndarray, what: str) -> np.ndarray:
    """Validate a binariser input: numeric, 2-D, non-empty, finite."""
    a = np.asarray(X)
    if a.dtype.kind not in "biuf":
        raise BEPError(f"{what}: input must be numeric, got dtype {a.dtype}")
    if a.ndim != 2:
        raise BEPError(
            f"{what}: input must be 2-D (rows, features), got shape {a.shape}; "
            "reshape time series to (rows, features) first"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise BEPError(f"{what}: input is empty (shape {a.shape})")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        row, col = np.unravel_index(int(np.argmax(~np.isfinite(a))), a.shape)
        raise BEPError(f"{what}: non-finite value at row {row}, feature {col}")
    return a


# A tabular feature's thermometer levels follow the feature count, so that the network has
# about this many input bits whatever the data's shape: with ±1 weights a feature's say is a
# step function of its levels, and 2 features x 4 levels (8 bits) could not even fit their
# training set (docs/research/untuned-data.md). Never fewer than 4 levels (digits' 64 features
# keep thermometer:4), never more than MAX_THERMOMETER_BITS.
TABULAR_INPUT_BITS = 256
MIN_TABULAR_LEVELS = 4


def tabular_levels(n_features: int, binary: bool = False) -> int:
    """Thermometer levels per feature of ``n_features`` tabular features (``TABULAR_INPUT_BITS``).
    A ``binary`` feature's cuts all fall between its two values, so its levels are copies of one
    bit: they give its weight more values (k copies, k + 1), not the network more information,
    and need no minimum (from ``TABULAR_INPUT_BITS`` features on, one copy: the bits as they are)."""
    levels = -(-TABULAR_INPUT_BITS // max(1, n_features))
    return min(MAX_THERMOMETER_BITS, levels if binary else max(MIN_TABULAR_LEVELS, levels))


def _to_pm1(bits: np.ndarray) -> np.ndarray:
    """Boolean array -> int8 -1/+1 (True -> +1)."""
    return bits.astype(np.int8) * np.int8(2) - np.int8(1)


class Binarizer(ABC):
    """Base class: fit thresholds on training rows, then map any rows to ±1 bits."""

    kind: str = ""
    # An RNN's encoder fits the binariser on its series (one feature per time point and
    # channel) instead of on its points (data/encoder.py: binarizer_rows).
    per_point: bool = False

    def __init__(self) -> None:
        self.n_features: int | None = None

    # ---- subclass hooks
    @abstractmethod
    def spec(self) -> str:
        """The canonical spec string that ``make_binarizer`` parses back."""

    @abstractmethod
    def _fit(self, X: np.ndarray) -> None:
        """Compute the thresholds from validated training data."""

    @abstractmethod
    def _transform(self, X: np.ndarray) -> np.ndarray:
        """Validated (rows, n_features) float64 -> int8 ±1."""

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """Fitted arrays beyond the spec and the feature count."""

    @abstractmethod
    def _load_state(self, d: dict[str, np.ndarray]) -> None:
        """Inverse of ``_state``; raise BEPError on a malformed entry."""

    @abstractmethod
    def bits_per_feature(self) -> int:
        """Output columns per input feature."""

    # ---- public API
    def fit(self, X: np.ndarray) -> "Binarizer":
        """Fit on training data only; returns self."""
        a = _as_2d_float(X, f"{self.spec()} fit")
        self._fit(a)
        self.n_features = a.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """int8 -1/+1 array of shape (rows, n_features * bits_per_feature)."""
        if self.n_features is None:
            raise RuntimeError(f"{self.describe()}: transform() called before fit()")
        a = _as_2d_float(X, f"{self.spec()} transform")
        if a.shape[1] != self.n_features:
            raise BEPError(
                f"{self.describe()}: fitted on {self.n_features} features, "
                f"asked to transform {a.shape[1]}"
            )
        return self._transform(a)

    def n_outputs(self, n_features: int) -> int:
        return n_features * self.bits_per_feature()

    def describe(self) -> str:
        return self.spec()

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numeric/str arrays that rebuild this fitted binariser.

        Keys: ``spec`` (0-d str), ``n_features`` (0-d int64) and the fitted
        thresholds. Prefix the keys when storing them beside other arrays.
        """
        if self.n_features is None:
            raise RuntimeError(f"{self.describe()}: to_arrays() called before fit()")
        return {
            "spec": np.array(self.spec()),
            "n_features": np.array(self.n_features, dtype=np.int64),
            **self._state(),
        }

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray]) -> "Binarizer":
        binarizer = binarizer_from_arrays(d)
        if not isinstance(binarizer, cls):
            raise BEPError(
                f"saved binarizer is '{binarizer.spec()}', not a {cls.kind} binarizer"
            )
        return binarizer


def _thresholds_entry(d: dict[str, np.ndarray], shape: tuple[int, ...], spec: str
                      ) -> np.ndarray:
    if "thresholds" not in d:
        raise BEPError(f"saved binarizer '{spec}': missing 'thresholds'")
    t = np.asarray(d["thresholds"])
    if t.dtype.kind != "f" or t.shape != shape or not np.all(np.isfinite(t)):
        raise BEPError(
            f"saved binarizer '{spec}': thresholds must be finite floats of shape "
            f"{shape}, got {t.dtype} {t.shape}"
        )
    return t.astype(np.float64)


class MedianBinarizer(Binarizer):
    """+1 iff x > the training median (per feature, or one global median)."""

    kind = "median"

    def __init__(self, global_median: bool = False) -> None:
        super().__init__()
        self.global_median = global_median
        self.thresholds: np.ndarray | None = None  # (n_features,) float64

    def spec(self) -> str:
        return "median:global" if self.global_median else "median"

    def bits_per_feature(self) -> int:
        return 1

    def _fit(self, X: np.ndarray) -> None:
        if self.global_median:
            self.thresholds = np.full(X.shape[1], np.median(X), dtype=np.float64)
        else:
            self.thresholds = np.median(X, axis=0).astype(np.float64)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        assert self.thresholds is not None
        return _to_pm1(X > self.thresholds)

    def _state(self) -> dict[str, np.ndarray]:
        assert self.thresholds is not None
        return {"thresholds": self.thresholds}

    def _load_state(self, d: dict[str, np.ndarray]) -> None:
        assert self.n_features is not None
        self.thresholds = _thresholds_entry(d, (self.n_features,), self.spec())


def distinct_quantile_cuts(x: np.ndarray, n: int) -> np.ndarray:
    """``n`` thresholds at the quantiles k/(n+1) of ``x``, each at a different place.

    Plain quantiles collapse where values repeat: a pixel that is 0 in 80 % of the images
    gets thresholds 0, 0, 0 and one above, i.e. three constant bits (dropped) and one left
    (docs/research/untuned-data.md). Here each threshold is a cut between two neighbouring
    distinct training values (at their midpoint), chosen in turn: the k-th cut is the one
    whose share of values below it is nearest to the share still to place, spread evenly
    over the cuts still to choose, above the previous cut. Without repeats this is the
    plain quantile; a block of repeats takes one cut and the next ones share out the rest.
    With fewer distinct cuts than ``n``, each cut is used about equally often, so every
    feature keeps ``n`` bits (repeated bits weigh a feature as its n levels would); a
    constant feature gets its value (constant bits, dropped by the encoder)."""
    values, counts = np.unique(x, return_counts=True)
    if len(values) == 1:
        return np.full(n, values[0])
    lower, upper = values[:-1], values[1:]
    mid = lower + (upper - lower) / 2
    cuts = np.where((lower < mid) & (mid <= upper), mid, upper)  # an ulp apart: the upper value
    below = np.cumsum(counts)[:-1] / len(x)  # share of values below each cut, increasing
    if len(cuts) <= n:
        return cuts[np.arange(n) * len(cuts) // n]
    chosen, placed, previous = [], 0.0, -1
    for k in range(n):
        target = placed + (1 - placed) / (n - k + 1)
        first, last = previous + 1, len(cuts) - (n - k)  # leave a cut for each one still to choose
        j = min(max(int(np.searchsorted(below, target)), first), last)
        if j > first and target - below[j - 1] <= below[j] - target:  # the nearer one; ties: lower
            j -= 1
        chosen.append(j)
        placed, previous = below[j], j
    return cuts[chosen]


class ThermometerBinarizer(Binarizer):
    """N bits per feature, bit k = x >= t_k, thresholds from quantiles or min..max."""

    kind = "thermometer"

    def __init__(self, n_bits: int, mode: str = "quantile") -> None:
        super().__init__()
        if mode not in THERMOMETER_MODES:
            raise BEPError(
                f"thermometer mode must be one of {', '.join(THERMOMETER_MODES)}, "
                f"got '{mode}'"
            )
        self.n_bits = n_bits
        self.mode = mode
        self.per_point = mode == "point"
        self.thresholds: np.ndarray | None = None  # (n_features, n_bits) float64

    def spec(self) -> str:
        suffix = "" if self.mode == "quantile" else f":{self.mode}"
        return f"thermometer:{self.n_bits}{suffix}"

    def describe(self) -> str:
        return f"thermometer:{self.n_bits} ({'quantile per time point' if self.per_point else self.mode})"

    def bits_per_feature(self) -> int:
        return self.n_bits

    def _fit(self, X: np.ndarray) -> None:
        levels = np.arange(1, self.n_bits + 1) / (self.n_bits + 1)  # k/(N+1)
        if self.mode != "uniform":
            t = np.array([distinct_quantile_cuts(column, self.n_bits) for column in X.T])  # (F, N)
        else:
            lo, hi = X.min(axis=0), X.max(axis=0)
            t = lo[:, None] + (hi - lo)[:, None] * levels[None, :]
        # Rounding could break k-monotonicity by an ulp; the bits must stay monotone.
        self.thresholds = np.maximum.accumulate(t.astype(np.float64), axis=1)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        assert self.thresholds is not None
        bits = X[:, :, None] >= self.thresholds[None, :, :]  # (rows, F, N)
        return _to_pm1(bits).reshape(X.shape[0], -1)  # column f*N + k

    def _state(self) -> dict[str, np.ndarray]:
        assert self.thresholds is not None
        return {"thresholds": self.thresholds}

    def _load_state(self, d: dict[str, np.ndarray]) -> None:
        assert self.n_features is not None
        self.thresholds = _thresholds_entry(d, (self.n_features, self.n_bits), self.spec())


class PassthroughBinarizer(Binarizer):
    """Data already binary: {-1,+1} or {0,1}; 1 -> +1, 0 or -1 -> -1."""

    kind = "passthrough"

    def spec(self) -> str:
        return "passthrough"

    def bits_per_feature(self) -> int:
        return 1

    def _require_binary(self, X: np.ndarray) -> None:
        if not is_binary(X):
            bad = np.unique(X[(X != 1) & (X != 0) & (X != -1)])
            shown = ", ".join(f"{v:g}" for v in bad[:5]) if len(bad) else "both 0 and -1"
            raise BEPError(
                "passthrough needs data all in {-1,+1} or all in {0,1}; found "
                f"{shown}; use median or thermometer:N instead"
            )

    def _fit(self, X: np.ndarray) -> None:
        self._require_binary(X)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        self._require_binary(X)
        return _to_pm1(X == 1)

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_state(self, d: dict[str, np.ndarray]) -> None:
        pass


def _parse_bits(raw: str) -> int:
    try:
        n = validate.int_text(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_THERMOMETER_BITS:
        raise BEPError(
            f"thermometer bits must be an integer 1..{MAX_THERMOMETER_BITS}, got '{raw}'"
        )
    return n


def make_binarizer(spec: str) -> Binarizer:
    """Parse a CLI binariser spec (see the module docstring); unfitted."""
    parts = spec.strip().lower().split(":")
    if parts == ["median"]:
        return MedianBinarizer()
    if parts == ["median", "global"]:
        return MedianBinarizer(global_median=True)
    if parts == ["passthrough"]:
        return PassthroughBinarizer()
    if parts[0] == "thermometer" and len(parts) in (2, 3):
        mode = parts[2] if len(parts) == 3 else "quantile"
        if mode not in THERMOMETER_MODES:
            raise BEPError(
                f"unknown thermometer mode '{mode}' in '{spec}'; use "
                f"thermometer:N, thermometer:N:uniform or thermometer:N:point"
            )
        return ThermometerBinarizer(_parse_bits(parts[1]), mode)
    raise BEPError(f"unknown binarizer '{spec}'; valid forms: {', '.join(SPEC_FORMS)}")


def binarizer_from_arrays(d: dict[str, np.ndarray]) -> Binarizer:
    """Rebuild a fitted binariser from ``to_arrays()`` output (e.g. read from an npz)."""
    for key in ("spec", "n_features"):
        if key not in d:
            raise BEPError(f"saved binarizer: missing '{key}' (keys: {', '.join(d)})")
    spec_arr, nf_arr = np.asarray(d["spec"]), np.asarray(d["n_features"])
    if spec_arr.dtype.kind != "U" or spec_arr.ndim != 0:
        raise BEPError(f"saved binarizer: 'spec' must be a 0-d string, got {spec_arr.dtype}")
    if nf_arr.dtype.kind not in "iu" or nf_arr.ndim != 0 or int(nf_arr) < 1:
        raise BEPError(f"saved binarizer: 'n_features' must be a positive integer, got {nf_arr}")
    binarizer = make_binarizer(str(spec_arr))
    binarizer.n_features = int(nf_arr)
    binarizer._load_state(d)
    return binarizer
