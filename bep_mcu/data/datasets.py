"""Dataset loaders: synthetic Random Prototypes, scikit-learn digits, UCR/UEA series
shipped inside aeon, and the user's own files: CSV, NPZ, NumPy arrays (``.npy``, one file
per NPZ key) and IDX (MNIST's format).

Every loader returns a :class:`Dataset` with a fixed train/test split, checked by
:func:`check_xy`, so a bad file fails here with one line naming the file, line and
column instead of deep inside training. Nothing is ever downloaded: digits ships with
scikit-learn and the UCR sets are read from the ``.ts`` files inside the aeon package.

Example usage::

    ds = load_dataset("prototypes:classes=5,flip=0.3")
    ds = load_dataset("ucr:GunPoint")           # X_train (50, 150, 1)
    ds = load_files("my.csv", split_seed=1)     # seeded stratified 80/20 split
    ds = load_dataset("moons")                  # a generated set (GENERATED_SETS)

Decisions:
- Unequal-length UCR series (JapaneseVowels, PickupGestureWiimoteZ) are padded to the
  longest series of train and test together by repeating each series' last value, so
  a recurrent net sees a held final state rather than an artificial zero.
- Labels keep the type found in the source: int64 where every label is an integer,
  else str (``.ts`` files always give str). When a separate test file's labels have
  the other type, both sides become str so that ``1`` and ``"1"`` still match.
- Test labels that never occur in training are refused: a closed-set classifier can
  never predict them, so the accuracy would silently be capped.
- ``load_dataset`` also accepts a data file's path and forwards it to
  :func:`load_files` (without a separate test file).
- A folder is a data set in one of two forms: the four standard IDX files
  (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``: the
  test part), or the NPZ's arrays as ``.npy`` files (X_train.npy, y_train.npy, X_test.npy,
  y_test.npy | X.npy, y.npy). An IDX images file given alone reads its labels beside it
  (``idx.labels_beside``); an ``X.npy`` or ``X_train.npy`` reads its folder. IDX images
  (n, rows, columns) are flattened to (n, rows · columns) features.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bep_mcu import files, memory, validate
from bep_mcu.data import idx
from bep_mcu.errors import BEPError

PIP_HINT = "pip install bep-mcu[data]"
DATASET_FORMS = (
    "prototypes[:classes=C,features=F,flip=P,samples=N,seed=S]",
    "digits",
    "ucr:<Name>",
    "moons | circles | iris | classification-<F> | digits-28 | spectra",
    "wine | breast_cancer | hastie | quantiles | multiclass-30 | blobs-12",
    "ucr-long:<Name> | ucr-down:<Name> | ucr-noisy:<Name>",
    "<file>.csv",
    "<file>.npz",
    "X.npy | X_train.npy (y.npy ... beside it)",
    "<part>-images-idx3-ubyte[.gz] (its labels beside it)",
)
FILE_EXTENSIONS = (".csv", ".npz", ".npy")
NPZ_SPLIT_KEYS = ("X_train", "y_train", "X_test", "y_test")
NPZ_WHOLE_KEYS = ("X", "y")
# Fixed so that every training seed sees the same digits split (results comparable).
DIGITS_SPLIT_SEED = 0
DEFAULT_TEST_FRACTION = 0.2
# Predecessor paper setting (docs/algorithm.md §5): 12,000 samples, the last 2,000 are the test set.
PROTOTYPES_TEST_DIVISOR = 6
MAX_DATA_FILE_BYTES = 16 << 30  # a CSV or NPZ data file may be at most 16 GiB


@dataclass
class Dataset:
    """A fixed train/test split.

    X is float64: tabular ``(n, d)`` or series ``(n, T, channels)``. Labels are 1-D,
    int64 or str, as found in the source.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    kind: str  # "tabular" or "series"


@dataclass(frozen=True)
class PrototypesSpec:
    """Parameters of the Random Prototypes generator (defaults: docs/algorithm.md §5)."""

    classes: int = 10
    features: int = 1000
    flip: float = 0.44  # the predecessor's benchmark; the BEP paper reports p = 0.46 (flip=0.46)
    samples: int = 12000
    seed: int = 0


# --------------------------------------------------------------------------- checks


def _label_repr(label: object) -> str:
    # numpy scalars repr as "np.int64(1)"; users wrote 1 or 'a'.
    return repr(label.item() if isinstance(label, np.generic) else label)


def _check_x_values(X: np.ndarray, y: np.ndarray, source: str) -> None:
    """Shape and value checks that apply to both the train and the test part."""
    if X.dtype.kind not in "biuf":
        raise BEPError(f"{source}: X must be numeric, got dtype {X.dtype}")
    if X.ndim not in (2, 3):
        raise BEPError(
            f"{source}: X must be (samples, features) or (samples, time, channels), "
            f"got shape {X.shape}"
        )
    if y.ndim != 1:
        raise BEPError(f"{source}: y must be 1-D, got shape {y.shape}")
    if len(X) != len(y):
        raise BEPError(f"{source}: X has {len(X)} samples but y has {len(y)} labels")
    if len(X) == 0:
        raise BEPError(f"{source}: no samples")
    if X.dtype.kind == "f":
        bad = ~np.isfinite(X)
        if bad.any():
            first = np.unravel_index(int(np.argmax(bad)), X.shape)
            what = "NaN" if np.isnan(X[first]) else "infinite"
            if X.ndim == 2:
                where = f"sample {first[0]}, feature {first[1]}"
            else:
                where = f"sample {first[0]}, time step {first[1]}, channel {first[2]}"
            raise BEPError(f"{source}: {what} value at {where}")


def check_xy(X: np.ndarray, y: np.ndarray, source: str) -> None:
    """Raise a one-line :class:`BEPError` naming ``source`` if (X, y) cannot be trained on.

    Checks: numeric X of ndim 2 or 3, no NaN/inf (first bad sample and feature
    named), 1-D y with one label per sample, at least one sample and at least two
    classes. "Fewer samples than classes" needs no separate test: the classes are
    the distinct labels of y, so each has at least one sample.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    _check_x_values(X, y, source)
    classes = np.unique(y)
    if len(classes) < 2:
        raise BEPError(
            f"only one class ({_label_repr(classes[0])}) in {source}; "
            "need at least 2 classes"
        )


def _check_test(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                source: str) -> None:
    """The test part must match the train part's shape and use only known labels."""
    X_train, y_train = train
    X_test, y_test = test
    _check_x_values(X_test, y_test, source)
    if X_test.ndim != X_train.ndim or X_test.shape[1:] != X_train.shape[1:]:
        if X_train.ndim == 2 and X_test.ndim == 2:
            raise BEPError(
                f"{source}: test data has {X_test.shape[1]} features, "
                f"training data has {X_train.shape[1]}"
            )
        raise BEPError(
            f"{source}: test sample shape {X_test.shape[1:]} differs from "
            f"training sample shape {X_train.shape[1:]}"
        )
    unseen = np.setdiff1d(np.unique(y_test), np.unique(y_train))
    if len(unseen):
        shown = ", ".join(_label_repr(v) for v in unseen[:5])
        raise BEPError(f"{source}: test labels never seen in training: {shown}")


def _finish(name: str, train: tuple[np.ndarray, np.ndarray],
            test: tuple[np.ndarray, np.ndarray], kind: str, source: str) -> Dataset:
    """Check both parts and build the Dataset with canonical dtypes."""
    check_xy(train[0], train[1], f"{source} (train)")
    _check_test(train, test, f"{source} (test)")
    memory.require(8 * (np.size(train[0]) + np.size(test[0])), f"the data of {source} as float64")
    return Dataset(
        name=name,
        X_train=np.ascontiguousarray(train[0], dtype=np.float64),
        y_train=train[1],
        X_test=np.ascontiguousarray(test[0], dtype=np.float64),
        y_test=test[1],
        kind=kind,
    )


# ---------------------------------------------------------------------- splitting


def stratified_split(y: np.ndarray, test_fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split into sorted index arrays ``(train_idx, test_idx)``.

    Each class sends ``round(n_c * test_fraction)`` samples to the test part, clamped
    to ``1 .. n_c - 1`` so that a class with at least 2 samples appears on both
    sides; a class with a single sample stays in training. Deterministic in
    ``(y, test_fraction, seed)``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise BEPError(f"test fraction must be between 0 and 1, got {test_fraction}")
    y = np.asarray(y)
    n = len(y)
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    n_test = np.clip(np.round(counts * test_fraction).astype(np.int64), 1, counts - 1)
    # Random order, then grouped by class (stable sort keeps the random order inside
    # each class); the first n_test[c] of each group go to the test part.
    order = np.random.default_rng(seed).permutation(n)
    order = order[np.argsort(inverse[order], kind="stable")]
    group_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(n) - group_start[inverse[order]]
    to_test = rank < n_test[inverse[order]]
    return np.sort(order[~to_test]), np.sort(order[to_test])


# --------------------------------------------------------------------- prototypes

_PROTOTYPE_TYPES = {"classes": validate.int_text, "features": validate.int_text, "flip": validate.float_text,
                    "samples": validate.int_text, "seed": validate.int_text}


def _parse_prototypes(params: str) -> PrototypesSpec:
    """Parse ``classes=5,flip=0.3`` overrides; unknown keys and bad values fail."""
    values: dict[str, int | float] = {}
    for item in filter(None, (p.strip() for p in params.split(","))):
        key, sep, raw = (s.strip() for s in item.partition("="))
        if key not in _PROTOTYPE_TYPES:
            raise BEPError(
                f"prototypes: unknown parameter '{key}'; valid: "
                + ", ".join(_PROTOTYPE_TYPES)
            )
        if not sep:
            raise BEPError(f"prototypes: parameter '{key}' needs a value ({key}=...)")
        try:
            values[key] = _PROTOTYPE_TYPES[key](raw)
        except ValueError:
            kind = "an integer" if _PROTOTYPE_TYPES[key] is validate.int_text else "a number"
            raise BEPError(f"prototypes: {key}={raw!r} is not {kind}") from None
    spec = PrototypesSpec(**values)  # type: ignore[arg-type]
    _validate_prototypes(spec)
    return spec


def _validate_prototypes(spec: PrototypesSpec) -> None:
    if spec.classes < 2:
        raise BEPError(f"prototypes: classes={spec.classes} must be at least 2")
    if spec.features < 1:
        raise BEPError(f"prototypes: features={spec.features} must be at least 1")
    if not 0.0 <= spec.flip <= 1.0:
        raise BEPError(f"prototypes: flip={spec.flip} must be between 0 and 1")
    if spec.samples < PROTOTYPES_TEST_DIVISOR * spec.classes:
        raise BEPError(
            f"prototypes: samples={spec.samples} is too small; need at least "
            f"{PROTOTYPES_TEST_DIVISOR * spec.classes} for {spec.classes} classes"
        )
    if spec.seed < 0:
        raise BEPError(f"prototypes: seed={spec.seed} must be >= 0")


def make_prototypes(spec: PrototypesSpec) -> tuple[np.ndarray, np.ndarray]:
    """All ``spec.samples`` samples, X in {-1.0, +1.0} float64 and int64 labels."""
    # X (float64) and the flip draws (float64, then bool), and the training copy later.
    memory.require(spec.samples * spec.features * 25, f"prototypes:samples={spec.samples},features={spec.features}")
    rng = np.random.default_rng(spec.seed)
    prototypes = np.where(rng.random((spec.classes, spec.features)) < 0.5, -1.0, 1.0)
    labels = rng.integers(0, spec.classes, size=spec.samples, dtype=np.int64)
    flips = rng.random((spec.samples, spec.features)) < spec.flip
    X = prototypes[labels]
    X[flips] *= -1.0
    return X, labels


def load_prototypes(params: str = "") -> Dataset:
    """Random Prototypes; the last 1/6 of the samples are the test set."""
    spec = _parse_prototypes(params)
    X, y = make_prototypes(spec)
    n_train = spec.samples - spec.samples // PROTOTYPES_TEST_DIVISOR
    name = "prototypes" if spec == PrototypesSpec() else (
        f"prototypes:classes={spec.classes},features={spec.features},"
        f"flip={spec.flip},samples={spec.samples},seed={spec.seed}"
    )
    return _finish(name, (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:]),
                   "tabular", name)


# ------------------------------------------------------------------------- digits


def load_digits_dataset() -> Dataset:
    """scikit-learn's 8x8 digits (1797 x 64), fixed seeded stratified 80/20 split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise BEPError(f"the 'digits' dataset needs scikit-learn: {PIP_HINT}") from None
    X, y = load_digits(return_X_y=True)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    train_idx, test_idx = stratified_split(y, DEFAULT_TEST_FRACTION, DIGITS_SPLIT_SEED)
    return _finish("digits", (X[train_idx], y[train_idx]), (X[test_idx], y[test_idx]),
                   "tabular", "digits")


# ------------------------------------------------------- generated and derived sets
# Sets built on the fly from scikit-learn's generators and the bundled data, each a kind of
# data the defaults were not tuned on (docs/research/untuned-data.md): low-dimensional
# tabular data, images that are mostly zeros, long padded series of unequal length, and a
# small two-class set of near-identical series. Fixed seeds: the same set on every machine.
GENERATED_SAMPLES = 1000
GENERATED_SEED = 0
MAX_GENERATED_FEATURES = 64  # classification-<F>
# The held-out check of the defaults (``bench --sets fresh``, docs/accuracy.md "Held-out check"): tabular
# sets nobody here chose a default on.
FRESH_SETS = ("wine", "breast_cancer", "hastie", "quantiles", "multiclass-30", "blobs-12")
# The second held-out check (``bench --sets fresh2``), frozen on 2026-12-07 before any run, after the
# first had been seen and defaults chosen with it: regressions binned into classes, a rolled-up
# manifold, many irrelevant features, several clusters per class.
FRESH2_SETS = ("diabetes-3", "friedman-2", "swissroll-4", "sparse-50", "clusters-4")
# The third held-out check (``bench --sets fresh3``), tabular only, frozen on 2026-12-07 before any run,
# after the second had been seen: to judge a tabular default chosen with the first two. Regressions
# binned into classes (smooth, linear, an angle), many classes with label noise, elongated clusters
# in 2 dimensions, nested shells.
FRESH3_SETS = ("friedman2-3", "friedman3-2", "regression-20-4", "classification-6c", "aniso-3", "shells-4")
# The fourth (``bench --sets fresh4``), tabular of three classes or more, frozen on 2026-12-07 before
# any run, after the third had been seen and the centroid frame of two hidden layers chosen with
# the first three: regressions binned into classes (nonlinear, linear with few features, sparse,
# along a curved sheet), nested shells, and nominal classes (several clusters each; many blobs).
FRESH4_SETS = ("friedman1-4", "regression-6-5", "sparse-uncorrelated-3", "scurve-5", "quantiles-5",
               "classification-4c", "blobs-7")
# The fifth (``bench --sets fresh5``), tabular of three classes or more, frozen on 2026-12-07 before any
# run, after the fourth had been seen: to test a frame from the class centroids for one hidden layer
# (docs/accuracy.md, "Fifth held-out check"). Linear targets binned into classes (many informative
# features, correlated features), a nonlinear one, a product, nested shells in 8 dimensions, nominal
# classes of one cluster each, and clusters in a row.
FRESH5_SETS = ("regression-12-4", "lowrank-5", "friedman1-3", "product-3", "shells8-4", "classification-5c",
               "blobs-row-5")
# The sixth (``bench --sets fresh6``), frozen on 2026-12-08 before any run: rows of binary features
# (flags, one-hot categories, binarised images, sparse indicators), fewer than 256 of them, the data
# a passthrough code gives few input bits (docs/accuracy.md, "Sixth held-out check: binary features").
FRESH6_SETS = ("flags-16-2", "onehot-6-4", "weighted-12-3", "digits-bin-16", "bernoulli-5", "sparse-120-2",
               "bits-6-2")
# Sparse features (``bench --sets sparse``): rows where most input bits take one value, as bag-of-words
# indicators, event counts and rare flags give them. Under the defaults BEP collapsed to chance on
# the sparsest (docs/accuracy.md, "Sparse features"). More samples than the other generated sets:
# a label on hundreds of rare features needs them for any learner.
SPARSE_SETS = ("indicators-300-5", "indicators-300-10", "indicators-60-3", "counts-300", "counts-40-4")
SPARSE_SAMPLES = 2000
LONG_FACTOR = 4  # ucr-long: every series resampled to four times its length
DOWN_FACTOR = 8  # ucr-down: every series averaged over blocks of eight points
NOISE_SCALE = 0.25  # ucr-noisy: Gaussian noise of a quarter of the training values' standard deviation


def _split_generated(name: str, X: np.ndarray, y: np.ndarray) -> Dataset:
    train_idx, test_idx = stratified_split(y, DEFAULT_TEST_FRACTION, GENERATED_SEED)
    return _finish(name, (X[train_idx], y[train_idx]), (X[test_idx], y[test_idx]), "tabular", name)


def _sklearn_datasets():
    try:
        from sklearn import datasets
    except ImportError:
        raise BEPError(f"generated data sets need scikit-learn: {PIP_HINT}") from None
    return datasets


def classification_features(text: str) -> int:
    """F of ``classification-<F>``: ASCII digits, 2..MAX_GENERATED_FEATURES."""
    try:
        features = validate.int_text(text)
    except ValueError:
        features = 0
    if not 2 <= features <= MAX_GENERATED_FEATURES:
        raise BEPError(f"classification-<F>: F must be an integer 2..{MAX_GENERATED_FEATURES}, got '{text}'")
    return features


def _classification(text: str):
    """make_classification with F features (F//2 informative, at least 2), three classes."""
    features = classification_features(text)
    informative = max(2, features // 2)
    return _sklearn_datasets().make_classification(
        GENERATED_SAMPLES, n_features=features, n_informative=informative, n_redundant=0, n_classes=3,
        n_clusters_per_class=1 if informative < 3 else 2, random_state=GENERATED_SEED)


def _upsample(images: np.ndarray, size: int) -> np.ndarray:
    """(n, k, k) → (n, size, size) by bilinear interpolation (one matrix per axis)."""
    k = images.shape[1]
    where = np.linspace(0, k - 1, size)
    lower = np.minimum(where.astype(np.int64), k - 2)
    frac = where - lower
    M = np.zeros((size, k))
    M[np.arange(size), lower] = 1 - frac
    M[np.arange(size), lower + 1] = frac
    return np.einsum("ik,nkl,jl->nij", M, images, M)


def load_digits_28() -> Dataset:
    """digits as 28x28 8-bit images that are mostly zeros (like MNIST): each 8x8 digit
    upsampled to 16x16, scaled to 0..255, rounded, centred in a zero frame; digits' split."""
    digits = load_digits_dataset()
    def frame(X: np.ndarray) -> np.ndarray:
        up = np.rint(_upsample(X.reshape(-1, 8, 8), 16) * (255 / 16))
        return np.pad(up, ((0, 0), (6, 6), (6, 6))).reshape(len(X), -1)
    return _finish("digits-28", (frame(digits.X_train), digits.y_train), (frame(digits.X_test), digits.y_test),
                   "tabular", "digits-28")


def make_spectra(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n series sharing one smooth shape (random gain, noise 0.05); class 1 adds a bump of
    0.1 near 57 % of the length; each series z-normalised. Near-identical series: an RNN
    reading them with thresholds shared over time sees almost the same bits for every one."""
    t = np.linspace(0, 1, length)
    shape = sum(a * np.exp(-((t - c) / w) ** 2) for a, c, w in ((1, .2, .05), (2, .45, .08), (1.5, .7, .04),
                                                                 (.7, .85, .06)))
    y = np.arange(n) % 2
    X = shape * rng.uniform(0.9, 1.1, (n, 1)) + rng.normal(0, 0.05, (n, length))
    X += y[:, None] * 0.1 * np.exp(-((t - rng.uniform(0.55, 0.6, (n, 1))) / 0.03) ** 2)
    X = (X - X.mean(axis=1, keepdims=True)) / X.std(axis=1, keepdims=True)
    return X[:, :, None], y.astype(np.int64)


def load_spectra() -> Dataset:
    """28 training and 28 test series of 286 points, two classes (like UCR's Coffee)."""
    rng = np.random.default_rng(GENERATED_SEED)
    train, test = make_spectra(28, 286, rng), make_spectra(28, 286, rng)
    return _finish("spectra", train, test, "series", "spectra")


def lengthen_series(X: np.ndarray, factor: int = LONG_FACTOR) -> np.ndarray:
    """(n, T, channels) → (n, factor·T, channels), every series resampled by linear
    interpolation: a set of unequal-length series padded with their last values (the
    loader's) becomes one of long padded series, the padding lengthened with them."""
    length = X.shape[1]
    where = np.linspace(0, length - 1, factor * length)
    lower = np.minimum(where.astype(np.int64), length - 2) if length > 1 else np.zeros(len(where), np.int64)
    frac = (where - lower)[None, :, None]
    upper = np.minimum(lower + 1, length - 1)
    return X[:, lower] * (1 - frac) + X[:, upper] * frac


def shorten_series(X: np.ndarray, factor: int = DOWN_FACTOR) -> np.ndarray:
    """(n, T, channels) → (n, T // factor, channels): the mean of every block of ``factor``
    points (a remainder shorter than a block is dropped)."""
    length = X.shape[1] // factor * factor
    return X[:, :length].reshape(len(X), -1, factor, X.shape[2]).mean(axis=2)


def _noisy(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both parts plus seeded Gaussian noise, ``NOISE_SCALE`` times the training values' std."""
    rng = np.random.default_rng(GENERATED_SEED)
    sd = NOISE_SCALE * X_train.std()
    return X_train + rng.normal(0, sd, X_train.shape), X_test + rng.normal(0, sd, X_test.shape)


# ucr-<variant>:<Name>: (train, test) → (train, test), each a kind of series no row reads as such.
UCR_VARIANTS = {
    "long": lambda a, b: (lengthen_series(a), lengthen_series(b)),
    "down": lambda a, b: (shorten_series(a), shorten_series(b)),
    "noisy": _noisy,
}


def load_ucr_variant(variant: str, name: str) -> Dataset:
    """A UCR set changed by ``UCR_VARIANTS[variant]``: ``long`` (every series ``LONG_FACTOR``
    times as long, ``lengthen_series``), ``down`` (``DOWN_FACTOR`` times shorter,
    ``shorten_series``) or ``noisy`` (``_noisy``); the official split."""
    data = load_ucr(name)
    source = f"ucr-{variant}:{data.name[len('ucr:'):]}"
    X_train, X_test = UCR_VARIANTS[variant](data.X_train, data.X_test)
    return _finish(source, (X_train, data.y_train), (X_test, data.y_test), "series", source)


def _binned(target: np.ndarray, classes: int) -> np.ndarray:
    """A regression target as ``classes`` classes of (about) equal size: its quantile bins."""
    cuts = np.quantile(target, np.arange(1, classes) / classes)
    return np.searchsorted(cuts, target, side="right").astype(np.int64)


def _fresh2(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The sets of ``FRESH2_SETS`` as (X, y)."""
    datasets = _sklearn_datasets()
    if name == "diabetes-3":  # 442 patients, 10 features; disease progression in tertiles
        X, target = datasets.load_diabetes(return_X_y=True)
        return np.asarray(X, dtype=np.float64), _binned(target, 3)
    if name == "friedman-2":  # y = 10 sin(pi x1 x2) + 20 (x3 - 1/2)^2 + 10 x4 + 5 x5 + noise, at its median
        X, target = datasets.make_friedman1(GENERATED_SAMPLES, n_features=10, noise=1.0, random_state=GENERATED_SEED)
        return X, _binned(target, 2)
    if name == "swissroll-4":  # 3-d points on a rolled sheet; the class is the quarter of the roll
        X, position = datasets.make_swiss_roll(GENERATED_SAMPLES, noise=0.5, random_state=GENERATED_SEED)
        return X, _binned(position, 4)
    if name == "sparse-50":  # 50 features of which 4 informative and 2 their combinations
        X, y = datasets.make_classification(GENERATED_SAMPLES, n_features=50, n_informative=4, n_redundant=2,
                                            n_classes=3, n_clusters_per_class=1, flip_y=0.02,
                                            random_state=GENERATED_SEED)
    else:  # clusters-4: two classes of four clusters each in 4 dimensions (XOR-like)
        X, y = datasets.make_classification(GENERATED_SAMPLES, n_features=4, n_informative=4, n_redundant=0,
                                            n_classes=2, n_clusters_per_class=4, class_sep=2.0, flip_y=0.02,
                                            random_state=GENERATED_SEED)
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)


def _fresh3(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The sets of ``FRESH3_SETS`` as (X, y)."""
    datasets = _sklearn_datasets()
    n, seed = GENERATED_SAMPLES, GENERATED_SEED
    if name == "friedman2-3":  # 4 features on very different ranges, an impedance; tertiles
        X, target = datasets.make_friedman2(n, noise=0.0, random_state=seed)
        return X, _binned(target, 3)
    if name == "friedman3-2":  # the same 4 features, a phase angle (arctan); at its median
        X, target = datasets.make_friedman3(n, noise=0.0, random_state=seed)
        return X, _binned(target, 2)
    if name == "regression-20-4":  # a linear target of 5 of 20 features plus noise; quartiles
        X, target = datasets.make_regression(n, n_features=20, n_informative=5, noise=10.0, random_state=seed)
        return X, _binned(target, 4)
    if name == "classification-6c":  # 6 classes in 15 features (6 informative, 3 redundant), 10 % flipped
        X, y = datasets.make_classification(n, n_features=15, n_informative=6, n_redundant=3, n_classes=6,
                                            n_clusters_per_class=1, flip_y=0.10, random_state=seed)
        return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)
    if name == "aniso-3":  # 3 Gaussian clusters in 2 dimensions, sheared into overlapping ellipses
        X, y = datasets.make_blobs(n, n_features=2, centers=3, random_state=seed)
        return X @ np.array([[0.6, -0.6], [-0.4, 0.8]]), np.asarray(y, dtype=np.int64)
    X, y = datasets.make_gaussian_quantiles(n_samples=n, n_features=4, n_classes=4, random_state=seed)  # shells-4
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)


def _fresh4(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The sets of ``FRESH4_SETS`` as (X, y)."""
    datasets = _sklearn_datasets()
    n, seed = GENERATED_SAMPLES, GENERATED_SEED
    if name == "friedman1-4":  # 10 sin(pi x1 x2) + 20 (x3 - 1/2)^2 + 10 x4 + 5 x5 + noise of 10 features; quartiles
        X, target = datasets.make_friedman1(n, n_features=10, noise=2.0, random_state=seed)
        return X, _binned(target, 4)
    if name == "regression-6-5":  # a linear target of 3 of 6 features plus noise (20); quintiles
        X, target = datasets.make_regression(n, n_features=6, n_informative=3, noise=20.0, random_state=seed)
        return X, _binned(target, 5)
    if name == "sparse-uncorrelated-3":  # x1 + 2 x2 - 2 x3 - 1.5 x4 of 10 features plus noise; tertiles
        X, target = datasets.make_sparse_uncorrelated(n, n_features=10, random_state=seed)
        return X, _binned(target, 3)
    if name == "scurve-5":  # 3-d points on an S-shaped sheet; the class is its fifth along the curve
        X, position = datasets.make_s_curve(n, noise=0.1, random_state=seed)
        return X, _binned(position, 5)
    if name == "quantiles-5":  # 5 nested shells in 3 dimensions
        X, y = datasets.make_gaussian_quantiles(n_samples=n, n_features=3, n_classes=5, random_state=seed)
    elif name == "classification-4c":  # 4 classes of 2 clusters each in 10 features (5 informative, 2 redundant)
        X, y = datasets.make_classification(n, n_features=10, n_informative=5, n_redundant=2, n_classes=4,
                                            n_clusters_per_class=2, flip_y=0.02, random_state=seed)
    else:  # blobs-7: 7 overlapping Gaussian blobs in 6 dimensions
        X, y = datasets.make_blobs(n, n_features=6, centers=7, cluster_std=4.0, random_state=seed)
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)


def _fresh5(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The sets of ``FRESH5_SETS`` as (X, y)."""
    datasets = _sklearn_datasets()
    n, seed = GENERATED_SAMPLES, GENERATED_SEED
    if name == "regression-12-4":  # a linear target of 8 of 12 features plus noise (30); quartiles
        X, target = datasets.make_regression(n, n_features=12, n_informative=8, noise=30.0, random_state=seed)
        return X, _binned(target, 4)
    if name == "lowrank-5":  # a linear target of 16 correlated features (effective rank 4) plus noise; quintiles
        X, target = datasets.make_regression(n, n_features=16, n_informative=16, effective_rank=4, noise=5.0,
                                             random_state=seed)
        return X, _binned(target, 5)
    if name == "friedman1-3":  # Friedman's first target of 6 features (5 used) plus noise; tertiles
        X, target = datasets.make_friedman1(n, n_features=6, noise=1.0, random_state=seed)
        return X, _binned(target, 3)
    rng = np.random.default_rng(seed)
    if name == "product-3":  # x1 x2 of 5 Gaussian features plus noise; tertiles
        X = rng.standard_normal((n, 5))
        return X, _binned(X[:, 0] * X[:, 1] + 0.1 * rng.standard_normal(n), 3)
    if name == "shells8-4":  # 4 nested shells in 8 dimensions
        X, y = datasets.make_gaussian_quantiles(n_samples=n, n_features=8, n_classes=4, random_state=seed)
    elif name == "classification-5c":  # 5 classes of one cluster each in 8 features (4 informative)
        X, y = datasets.make_classification(n, n_features=8, n_informative=4, n_redundant=0, n_classes=5,
                                            n_clusters_per_class=1, flip_y=0.02, random_state=seed)
    else:  # blobs-row-5: 5 Gaussian blobs in 4 dimensions whose centres lie in a row, 3 apart
        direction = np.array([1.0, -1.0, 0.5, 2.0]) / np.linalg.norm([1.0, -1.0, 0.5, 2.0])
        centres = 3.0 * np.outer(np.arange(5) - 2, direction)
        X, y = datasets.make_blobs(n, n_features=4, centers=centres, cluster_std=1.5, random_state=seed)
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)


def _fresh6(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The sets of ``FRESH6_SETS`` as (X, y): every feature 0 or 1."""
    n, rng = GENERATED_SAMPLES, np.random.default_rng(GENERATED_SEED)

    def flipped(y: np.ndarray, share: float, classes: int) -> np.ndarray:  # label noise: a share redrawn
        return np.where(rng.random(len(y)) < share, rng.integers(0, classes, len(y)), y)

    if name == "flags-16-2":  # 16 flags; a rule of three terms on 8 of them, 8 % of labels redrawn
        X = rng.integers(0, 2, (n, 16))
        rule = (X[:, 0] & X[:, 1] & (1 - X[:, 2])) | (X[:, 3] & X[:, 4]) | ((X[:, 5] ^ X[:, 6]) & X[:, 7])
        return X.astype(np.float64), flipped(rule, 0.08, 2)
    if name == "onehot-6-4":  # 6 categories of 3-7 levels one-hot (30 columns); additive effects plus
        levels = (3, 4, 5, 7, 6, 5)  # an interaction of the first two, and noise; quartiles
        codes = np.stack([rng.integers(0, k, n) for k in levels], axis=1)
        effects = [rng.standard_normal(k) for k in levels]
        pair = rng.standard_normal((levels[0], levels[1]))
        score = sum(effects[j][codes[:, j]] for j in range(len(levels))) + pair[codes[:, 0], codes[:, 1]]
        X = np.concatenate([np.eye(k)[codes[:, j]] for j, k in enumerate(levels)], axis=1)
        return X, _binned(score + 0.5 * rng.standard_normal(n), 4)
    if name == "weighted-12-3":  # 12 bits; integer weights 6, 5, 4, 3, 2, 1 on six of them plus noise; tertiles
        X = rng.integers(0, 2, (n, 12)).astype(np.float64)
        score = X[:, :6] @ np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0]) + rng.standard_normal(n)
        return X, _binned(score, 3)
    if name == "digits-bin-16":  # scikit-learn's digits in 4 x 4 blocks of 2 x 2 pixels, each block's mean >= 8
        X, y = _sklearn_datasets().load_digits(return_X_y=True)
        blocks = np.asarray(X).reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
        return (blocks >= 8).astype(np.float64), np.asarray(y, dtype=np.int64)
    if name == "bernoulli-5":  # 5 classes, each its own probability per bit (Beta(0.5, 0.5)) over 24 bits
        p = rng.beta(0.5, 0.5, (5, 24))
        y = rng.integers(0, 5, n)
        return (rng.random((n, 24)) < p[y]).astype(np.float64), y.astype(np.int64)
    if name == "sparse-120-2":  # 120 indicators, each set with probability 0.08; a logistic label on 15
        X = (rng.random((n, 120)) < 0.08).astype(np.float64)
        logit = X[:, :15] @ rng.normal(0.0, 1.5, 15)
        return X, (rng.random(n) < 1 / (1 + np.exp(-(logit - np.median(logit))))).astype(np.int64)
    # bits-6-2: 6 bits; the exclusive or of two, or a majority of three, 10 % of labels redrawn
    X = rng.integers(0, 2, (n, 6))
    rule = (X[:, 0] ^ X[:, 1]) | (X[:, 2] + X[:, 3] + X[:, 4] >= 2).astype(X.dtype)
    return X.astype(np.float64), flipped(rule, 0.1, 2)


def _sparse(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The sets of ``SPARSE_SETS`` as (X, y): indicators (0 or 1) set with a probability of a few
    per cent, or counts drawn from Poisson distributions of small means. The label is a noisy linear
    score of every feature, binned into classes of equal size (the score is centred, so a set and an
    unset feature both carry evidence)."""
    n, rng = SPARSE_SAMPLES, np.random.default_rng(GENERATED_SEED)

    def labelled(X: np.ndarray, mean: float, classes: int) -> tuple[np.ndarray, np.ndarray]:
        score = (X - mean) @ rng.standard_normal(X.shape[1])
        return X.astype(np.float64), _binned(score + 0.3 * score.std() * rng.standard_normal(n), classes)

    if name == "indicators-300-5":  # 300 indicators, each set with probability 0.05 (15 a row)
        return labelled((rng.random((n, 300)) < 0.05).astype(np.float64), 0.05, 2)
    if name == "indicators-300-10":  # the same with probability 0.1
        return labelled((rng.random((n, 300)) < 0.1).astype(np.float64), 0.1, 2)
    if name == "indicators-60-3":  # 60 indicators set with probability 0.03 (fewer than 256: copies)
        return labelled((rng.random((n, 60)) < 0.03).astype(np.float64), 0.03, 2)
    if name == "counts-300":  # 300 counts of mean 0.3 (three in four are 0), two classes
        return labelled(rng.poisson(0.3, (n, 300)).astype(np.float64), 0.3, 2)
    # counts-40-4: 40 counts of mean 0.5, four classes
    return labelled(rng.poisson(0.5, (n, 40)).astype(np.float64), 0.5, 4)


def load_generated(name: str) -> Dataset | None:
    """A generated set by name (``GENERATED_SETS``), None for another name."""
    if name in SPARSE_SETS:
        return _split_generated(name, *_sparse(name))
    if name in FRESH6_SETS:
        return _split_generated(name, *_fresh6(name))
    if name in FRESH5_SETS:
        return _split_generated(name, *_fresh5(name))
    if name in FRESH4_SETS:
        return _split_generated(name, *_fresh4(name))
    if name in FRESH2_SETS:
        return _split_generated(name, *_fresh2(name))
    if name in FRESH3_SETS:
        return _split_generated(name, *_fresh3(name))
    if name in ("moons", "circles", "iris") + FRESH_SETS:
        datasets = _sklearn_datasets()
        X, y = {"moons": lambda: datasets.make_moons(GENERATED_SAMPLES, noise=0.3, random_state=GENERATED_SEED),
                "circles": lambda: datasets.make_circles(GENERATED_SAMPLES, noise=0.2, factor=0.5,
                                                         random_state=GENERATED_SEED),
                "iris": lambda: datasets.load_iris(return_X_y=True),
                "wine": lambda: datasets.load_wine(return_X_y=True),
                "breast_cancer": lambda: datasets.load_breast_cancer(return_X_y=True),
                "hastie": lambda: datasets.make_hastie_10_2(GENERATED_SAMPLES, random_state=GENERATED_SEED),
                "quantiles": lambda: datasets.make_gaussian_quantiles(
                    n_samples=GENERATED_SAMPLES, n_features=6, n_classes=3, random_state=GENERATED_SEED),
                "multiclass-30": lambda: datasets.make_classification(
                    GENERATED_SAMPLES, n_features=30, n_informative=10, n_redundant=5, n_classes=5,
                    n_clusters_per_class=2, flip_y=0.05, random_state=GENERATED_SEED),
                "blobs-12": lambda: datasets.make_blobs(GENERATED_SAMPLES, n_features=12, centers=5,
                                                        cluster_std=10.0, random_state=GENERATED_SEED)}[name]()
        y = np.asarray(y)
        y = (y > 0).astype(np.int64) if name == "hastie" else y.astype(np.int64)  # hastie labels -1 / +1
        return _split_generated(name, np.asarray(X, dtype=np.float64), y)
    if name.startswith("classification-"):
        X, y = _classification(name[len("classification-"):])
        return _split_generated(name, X, np.asarray(y, dtype=np.int64))
    if name == "digits-28":
        return load_digits_28()
    if name == "spectra":
        return load_spectra()
    return None


# ---------------------------------------------------------------------------- UCR


def _aeon_data_dir() -> Path:
    # find_spec locates aeon without importing it (importing takes over a second).
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise BEPError(f"UCR datasets need aeon: {PIP_HINT}")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def _ts_paths(root: Path, name: str) -> tuple[Path, Path]:
    return root / name / f"{name}_TRAIN.ts", root / name / f"{name}_TEST.ts"


def _is_classification_ts(path: Path) -> bool:
    """True when the .ts header declares ``@classLabel true`` (not a regression set)."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                words = line.strip().lower().split()
                if not words:
                    continue
                if words[0] == "@data":
                    return False
                if words[0] == "@classlabel":
                    return len(words) > 1 and words[1] == "true"
    except (OSError, UnicodeDecodeError):
        return False
    return False


def available_ucr() -> list[str]:
    """Names of the classification sets shipped inside aeon (TRAIN and TEST .ts present)."""
    root = _aeon_data_dir()
    if not root.is_dir():
        return []
    names = []
    for sub in sorted(root.iterdir()):
        train, test = _ts_paths(root, sub.name)
        if train.is_file() and test.is_file() and _is_classification_ts(train):
            names.append(sub.name)
    return names


def _pad_series(series: list[np.ndarray], length: int, source: str) -> np.ndarray:
    """Ragged list of (channels, T_i) -> (n, length, channels), repeating the last value.

    Vectorised: concatenate along time once, then gather with the time index clamped
    to each series' last step.
    """
    channels = {s.shape[0] for s in series}
    if len(channels) != 1:
        raise BEPError(f"{source}: series have different channel counts {sorted(channels)}")
    lengths = np.array([s.shape[1] for s in series])
    if lengths.min() == 0:
        raise BEPError(f"{source}: sample {int(np.argmin(lengths))} is an empty series")
    flat = np.concatenate(series, axis=1)  # (channels, sum T_i)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    idx = starts[:, None] + np.minimum(np.arange(length)[None, :], lengths[:, None] - 1)
    return flat[:, idx].transpose(1, 2, 0)  # (channels, n, length) -> (n, length, channels)


def _as_series(X: np.ndarray | list, length: int, source: str) -> np.ndarray:
    if isinstance(X, list):
        return _pad_series([np.asarray(s, dtype=np.float64) for s in X], length, source)
    return np.asarray(X, dtype=np.float64).transpose(0, 2, 1)  # aeon: (n, channels, T)


def _series_length(X: np.ndarray | list) -> int:
    return max(np.shape(s)[-1] for s in X) if isinstance(X, list) else X.shape[2]


def _read_ts(path: Path, source: str) -> tuple[np.ndarray | list, np.ndarray]:
    try:
        from aeon.datasets import load_from_ts_file
    except ImportError:
        raise BEPError(f"UCR datasets need aeon: {PIP_HINT}") from None
    try:
        X, y = load_from_ts_file(str(path))
    except (OSError, ValueError, IndexError) as exc:
        raise BEPError(f"{source}: cannot read '{path}': {exc}") from None
    return X, np.asarray(y).astype(str)


def load_ucr(name: str) -> Dataset:
    """A UCR/UEA classification set from aeon's bundled ``.ts`` files, official split.

    X is (n, T, channels) float64; labels are the strings of the ``.ts`` file.
    """
    available = available_ucr()
    if name not in available:
        # Forgive case only when it is unambiguous ("gunpoint" -> "GunPoint").
        matches = [a for a in available if a.lower() == name.lower()]
        if len(matches) != 1:
            raise BEPError(
                f"unknown UCR dataset '{name}'; available: {', '.join(available)}"
            )
        name = matches[0]
    source = f"ucr:{name}"
    train_path, test_path = _ts_paths(_aeon_data_dir(), name)
    X_train, y_train = _read_ts(train_path, source)
    X_test, y_test = _read_ts(test_path, source)
    length = max(_series_length(X_train), _series_length(X_test))
    return _finish(source,
                   (_as_series(X_train, length, source), y_train),
                   (_as_series(X_test, length, source), y_test),
                   "series", source)


# -------------------------------------------------------------------------- files


def _labels_from_strings(labels: np.ndarray) -> np.ndarray:
    """int64 when every label is an integer in ASCII digits, else the (stripped) strings
    (numpy, like int(), would read '٣' as 3, the same class as '3')."""
    labels = np.char.strip(labels.astype(str))
    if not all(validate.INTEGER_TEXT.fullmatch(label) for label in labels):
        return labels
    try:
        return labels.astype(np.int64)
    except OverflowError:
        return labels


def _normalise_labels(y: np.ndarray, source: str) -> np.ndarray:
    """Labels from an npz: int64 or str, 1-D (an (n, 1) column is accepted)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise BEPError(f"{source}: y must be 1-D, got shape {y.shape}")
    if y.dtype.kind in "biu":
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        if np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            return y.astype(np.int64)
        raise BEPError(f"{source}: labels must be integers or strings, got non-integer floats")
    if y.dtype.kind == "S":
        return y.astype(str)
    if y.dtype.kind == "U":
        return y
    raise BEPError(f"{source}: labels must be integers or strings, got dtype {y.dtype}")


def _read_text(path: str) -> list[tuple[int, list[str]]]:
    """Non-blank CSV rows with their (1-based) line numbers."""
    raw = files.open_regular(path, "data file", MAX_DATA_FILE_BYTES)
    # A CSV needs a few times its size in memory as Python rows: check before reading.
    memory.require(12 * os.fstat(raw.fileno()).st_size, f"reading '{path}'")
    try:
        with io.TextIOWrapper(raw, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = [(reader.line_num, row) for row in reader
                    if len(row) > 1 or (row and row[0].strip())]
    except OSError as exc:
        raise BEPError(f"cannot read '{path}': {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BEPError(f"{path}: not a UTF-8 text CSV file") from None
    except csv.Error as exc:
        raise BEPError(f"{path}: not a valid CSV file: {exc}") from None
    return rows


def _looks_numeric(fields: list[str]) -> bool:
    try:
        np.array(fields).astype(np.float64)
    except ValueError:
        return False
    return True


def _first_non_number(values: np.ndarray) -> tuple[int, int]:
    """(row, column) of the first value float() refuses; only called on the error path."""
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            try:
                float(v)
            except ValueError:
                return i, j
    raise AssertionError("a value failed to convert but none fails on its own")


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(X float64 (n, d), labels) from a CSV with a header row.

    The label column is the one named ``label``, else the last column.
    """
    rows = _read_text(path)
    if not rows:
        raise BEPError(f"{path}: empty file (need a header row and data rows)")
    header_line, header = rows[0]
    header = [h.strip() for h in header]
    if _looks_numeric(header):
        raise BEPError(
            f"{path}: line {header_line} looks like data; a header row naming the "
            "columns is required"
        )
    if len(rows) == 1:
        raise BEPError(f"{path}: header only, no data rows")
    if len(header) < 2:
        raise BEPError(f"{path}: need at least one feature column and a label column")
    if header.count("label") > 1:
        raise BEPError(f"{path}: more than one column is named 'label'")
    label_col = header.index("label") if "label" in header else len(header) - 1
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise BEPError(
                f"{path}: line {line} has {len(row)} fields, expected {len(header)}"
            )
    table = np.array([row for _, row in rows[1:]], dtype=str)
    feature_cols = [j for j in range(len(header)) if j != label_col]
    features = table[:, feature_cols]
    try:
        X = np.char.strip(features).astype(np.float64)
    except ValueError:
        i, j = _first_non_number(features)
        raise BEPError(
            f"{path}: line {rows[1 + i][0]}, column '{header[feature_cols[j]]}': "
            f"{str(features[i, j])!r} is not a number"
        ) from None
    raw_labels = np.char.strip(table[:, label_col])
    empty = np.flatnonzero(raw_labels == "")
    if len(empty):
        raise BEPError(
            f"{path}: line {rows[1 + empty[0]][0]}, column '{header[label_col]}': "
            "empty label"
        )
    return X, _labels_from_strings(raw_labels)


def _open_npz(path: str) -> dict[str, np.ndarray]:
    """All arrays of an npz, each checked before it is read (``files.read_npz``): plain
    numeric or text dtypes only (no pickled objects), no header claiming more data than
    the file holds, and no more than the memory this machine has free."""
    budget = memory.available_bytes() // 2  # the data, and room to train on it
    return files.read_npz(path, "data file", MAX_DATA_FILE_BYTES, lambda name, header: None, budget)


def _require_keys(arrays: dict[str, np.ndarray], keys: tuple[str, ...], path: str) -> None:
    for key in keys:
        if key not in arrays:
            present = ", ".join(arrays) or "none"
            raise BEPError(
                f"{path}: missing key '{key}' (expected {', '.join(NPZ_SPLIT_KEYS)} "
                f"or {', '.join(NPZ_WHOLE_KEYS)}; keys present: {present})"
            )


def _npz_xy(arrays: dict[str, np.ndarray], x_key: str, y_key: str, path: str
            ) -> tuple[np.ndarray, np.ndarray]:
    X = arrays[x_key]
    if X.dtype.kind not in "biuf":
        raise BEPError(f"{path}: {x_key} must be numeric, got dtype {X.dtype}")
    return X, _normalise_labels(arrays[y_key], f"{path}: {y_key}")


def read_npz(path: str) -> tuple[tuple[np.ndarray, np.ndarray],
                                  tuple[np.ndarray, np.ndarray] | None]:
    """((X, y), test part or None) from an npz with X_train/.../y_test or X, y."""
    return _parts(_open_npz(path), path)


def _parts(arrays: dict[str, np.ndarray], path: str) -> tuple[tuple[np.ndarray, np.ndarray],
                                                               tuple[np.ndarray, np.ndarray] | None]:
    """((X, y), test part or None) from the arrays of an npz (or of .npy files) by key."""
    if "X_train" in arrays or "X_test" in arrays:
        _require_keys(arrays, NPZ_SPLIT_KEYS, path)
        return (_npz_xy(arrays, "X_train", "y_train", path),
                _npz_xy(arrays, "X_test", "y_test", path))
    _require_keys(arrays, NPZ_WHOLE_KEYS, path)
    return _npz_xy(arrays, "X", "y", path), None


def read_npy_folder(folder: str, named: str | None = None) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                    tuple[np.ndarray, np.ndarray] | None]:
    """((X, y), test part or None) from the NPZ's keys as ``.npy`` files in ``folder`` (``named``:
    the key the user named, read even if absent, so its error names it), each checked before it
    is read (``files.read_npy``: plain dtypes, no header claiming more than the file holds), all
    of them within half the memory this machine has free."""
    budget = memory.available_bytes() // 2
    arrays: dict[str, np.ndarray] = {}
    for key in NPZ_SPLIT_KEYS + NPZ_WHOLE_KEYS:
        path = os.path.join(folder, key + ".npy")
        if key == named or os.path.lexists(path):
            arrays[key] = files.read_npy(path, "data file", MAX_DATA_FILE_BYTES, lambda header: None,
                                         budget - sum(a.nbytes for a in arrays.values()))
    return _parts(arrays, folder)


def read_idx_pair(images: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, features), labels) from an IDX images file and the labels file beside it."""
    labels = idx.labels_beside(images)
    budget = memory.available_bytes() // 2
    X = idx.read_idx(images, MAX_DATA_FILE_BYTES, budget)
    y = idx.read_idx(labels, MAX_DATA_FILE_BYTES, budget - X.nbytes)
    if X.ndim < 2:
        raise BEPError(f"IDX file '{images}': holds {X.ndim}-D values; images are (samples, rows, columns)")
    return X.reshape(len(X), -1), _normalise_labels(y, f"IDX file '{labels}'")


def _read_folder(folder: str) -> tuple[tuple[np.ndarray, np.ndarray],
                                       tuple[np.ndarray, np.ndarray] | None]:
    train = idx.part_in(folder, idx.PARTS[0])
    if train is not None:
        test = idx.part_in(folder, idx.PARTS[1])
        return read_idx_pair(train), None if test is None else read_idx_pair(test)
    if any(os.path.lexists(os.path.join(folder, key + ".npy")) for key in ("X_train", "X")):
        return read_npy_folder(folder)
    raise BEPError(f"'{folder}': a data folder holds {idx.PARTS[0]}{idx.IMAGES}[.gz] and its labels (and the "
                   f"{idx.PARTS[1]} pair: the test part), or X_train.npy, y_train.npy, X_test.npy, y_test.npy | "
                   "X.npy, y.npy")


def _read_any(path: str) -> tuple[tuple[np.ndarray, np.ndarray],
                                   tuple[np.ndarray, np.ndarray] | None]:
    ext = os.path.splitext(path)[1].lower()
    if os.path.isdir(path):
        return _read_folder(path)
    if idx.is_idx(path):
        return read_idx_pair(path), None
    if ext == ".csv":
        return read_csv(path), None
    if ext == ".npz":
        return read_npz(path)
    if ext == ".npy":
        if Path(path).stem not in ("X", "X_train"):
            raise BEPError(f"'{path}': a .npy data file is X.npy or X_train.npy, its labels and test part beside "
                           "it as y.npy | y_train.npy, X_test.npy, y_test.npy")
        return read_npy_folder(os.path.dirname(path) or ".", Path(path).stem)
    raise BEPError(
        f"'{path}': unsupported file type '{ext or '(none)'}'; use .csv, .npz, .npy, an IDX file "
        f"(<part>{idx.IMAGES}[.gz]) or a folder of them"
    )


def _match_label_types(y_train: np.ndarray, y_test: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    # Separate files may disagree (train all ints, test has a word): compare as text.
    if (y_train.dtype.kind == "U") != (y_test.dtype.kind == "U"):
        return y_train.astype(str), y_test.astype(str)
    return y_train, y_test


def load_files(path: str, test_path: str | None = None, split_seed: int = 0) -> Dataset:
    """A Dataset from a data file or folder (module docstring).

    The test part is, in order: the file's own (npz ``X_test``/``y_test``), else
    ``test_path`` (same format rules), else a stratified 80/20 split seeded by
    ``split_seed``. X of ndim 2 is "tabular", ndim 3 "series".
    """
    path = str(path)
    train, test = _read_any(path)
    X, y = train
    if test is not None and test_path is not None:
        raise BEPError(
            f"{path} already holds a test part (X_test, y_test); "
            f"do not also give a test file ('{test_path}')"
        )
    if test is None and test_path is not None:
        test_path = str(test_path)
        test, own_test = _read_any(test_path)
        if own_test is not None:
            raise BEPError(f"{test_path}: a test file must hold X, y (not X_train, X_test)")
        check_xy(X, y, path)
        y, y_test = _match_label_types(y, test[1])
        _check_test((X, y), (test[0], y_test), test_path)
        test = (test[0], y_test)
    elif test is None:
        check_xy(X, y, path)
        train_idx, test_idx = stratified_split(y, DEFAULT_TEST_FRACTION, split_seed)
        if len(test_idx) == 0:
            raise BEPError(
                f"{path}: every class has a single sample, nothing left for a test "
                "split; give a test file"
            )
        X, y, test = X[train_idx], y[train_idx], (X[test_idx], y[test_idx])
    kind = "tabular" if np.ndim(X) == 2 else "series"
    return _finish(path, (X, y), test, kind, path)


def read_eval_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation data from a file: its test part if it has one, else every row."""
    path = str(path)
    train, test = _read_any(path)
    X, y = test if test is not None else train
    if len(y) == 0:
        raise BEPError(f"{path}: no samples to evaluate")
    _check_x_values(np.asarray(X), np.asarray(y), path)
    return X, y


# ---------------------------------------------------------------------- dispatcher


def load_dataset(name: str) -> Dataset:
    """Load by name: ``prototypes[:k=v,...]``, ``digits``, ``ucr:<Name>`` or a file path."""
    name = name.strip()
    head, sep, rest = name.partition(":")
    if head == "prototypes":
        return load_prototypes(rest)
    if name == "digits":
        return load_digits_dataset()
    if head == "ucr" and sep and rest.strip():
        return load_ucr(rest.strip())
    if head.startswith("ucr-") and head[len("ucr-"):] in UCR_VARIANTS and sep and rest.strip():
        return load_ucr_variant(head[len("ucr-"):], rest.strip())
    generated = load_generated(name)
    if generated is not None:
        return generated
    if name.lower().endswith(FILE_EXTENSIONS) or idx.is_idx(name):
        return load_files(name)
    raise BEPError(f"unknown dataset '{name}'; valid forms: {', '.join(DATASET_FORMS)}")
