"""The model: one frozen value that everything after training takes.

A :class:`Model` is a trained (or freshly initialised) BEP network with everything
needed to use it anywhere: the network's shape and integers, its hidden weights and
fixed classifier, the input encoder, the label names and the training record (where
the sample order, the batch counter and the epoch schedule stand). Generation of C,
golden files, firmware builds, streaming to a board and evaluation all take a
``Model``; only ``modelio`` turns it into a file and back, and only the CLI opens files.

A ``Model`` checks itself when it is made, so one that exists is consistent: every
integer in range for the C types, every array of the dtype and shape the spec implies.
That is what makes it safe to render into C (docs/algorithm.md and docs/security.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from bep_mcu import validate
from bep_mcu.data.encoder import Encoder
from bep_mcu.engine.network import CENTRE_ONE, MAX_CENTRED_INPUTS, Counters, Network
from bep_mcu.engine.schedule import EpochStart
from bep_mcu.engine.spec import MAX_CLASSES, HyperParams, IntParams, NetSpec, config_hash
from bep_mcu.errors import BEPError

MAX_LABEL_CHARS = 256
MAX_EPOCHS = 1_000_000
MAX_BATCH_SIZE = 1 << 20
COUNTER_MAX = (1 << 63) - 1


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Origin:
    """Where the weights were last trained: on this host, or on a board (``pull``)."""

    kind: str = "host"  # "host" or "board"
    board: str | None = None
    port: str | None = None
    device_batches: int | None = None  # batches the board ran since its INIT

    def __post_init__(self) -> None:
        validate.choice(self.kind, "training.origin.kind", ("host", "board"))
        if self.kind == "board":
            validate.text(self.board, "training.origin.board", 64)
            validate.text(self.port, "training.origin.port", 256)
            validate.integer(self.device_batches, "training.origin.device_batches", 0, validate.UINT32_MAX)


@dataclass(frozen=True)
class TrainingRecord:
    """Where training stands, so it can continue exactly (on the host or a board)."""

    seed: int
    epochs: int = 0  # epochs trained; the next epoch's sample order is epoch_order(seed, epochs)
    batch_size: int = 100
    batch_counter: int = 0  # keys the reinforcement generator (uint32 in C)
    gamma: tuple[int, ...] = ()  # γ of the next epoch, per layer
    error_rate: float = 1.0  # training error of the last epoch (Q of the next one)
    val_fraction: float = 0.1
    counters: Counters = field(default_factory=Counters)
    history: tuple[dict, ...] = ()
    origin: Origin = field(default_factory=Origin)
    notes: dict = field(default_factory=dict)  # dataset, test/train accuracy, classifier frame: for people, not code
    # Where a stream stopped (``pull``): the schedule's state as epoch ``epochs`` opened and the samples of
    # it already trained; ``stream`` continues there. None: the next epoch starts afresh.
    resume: EpochStart | None = None

    def __post_init__(self) -> None:
        validate.seed(self.seed, "training.seed")
        validate.integer(self.epochs, "training.epochs", 0, MAX_EPOCHS)
        validate.integer(self.batch_size, "training.batch_size", 1, MAX_BATCH_SIZE)
        validate.integer(self.batch_counter, "training.batch_counter", 0, validate.UINT32_MAX)
        validate.number(self.error_rate, "training.error_rate", 0.0, 1.0)
        validate.number(self.val_fraction, "training.val_fraction", 0.0, 0.5)
        for name in Counters.NAMES:
            validate.integer(getattr(self.counters, name), f"training.counters.{name}", 0, COUNTER_MAX)
        if self.resume is not None:
            if not isinstance(self.resume, EpochStart) or self.resume.epoch != self.epochs:
                raise BEPError(f"training.resume must describe epoch {self.epochs + 1} (training.epochs = "
                               f"{self.epochs}), got {validate.show(self.resume, 120)}")


@dataclass(frozen=True, eq=False)
class Model:
    """A BEP network with its encoder, labels and training record (module docstring)."""

    spec: NetSpec
    hyper: HyperParams
    params: IntParams
    hidden: tuple[np.ndarray, ...]
    classifier: np.ndarray
    encoder: Encoder
    labels: np.ndarray
    training: TrainingRecord
    # Prototypes reserved for classes the model has not seen (``train --max-classes``): rows of the same
    # frame as ``classifier``, after its rows. The network knows only the classifier's classes, so a
    # reserved one is never predicted; :meth:`with_class` moves the first into the classifier.
    reserved: np.ndarray | None = None
    # The first layer's input centring (engine.network, "Centred inputs"): M_i = round(256 m_i) per
    # input bit, int16 in [-256, 256], or None for a network that reads its bits as they are.
    input_means: np.ndarray | None = None

    def __post_init__(self) -> None:
        spec = self.spec
        self.params.check(spec, "int_params.")
        if len(self.hidden) != spec.n_layers:
            raise BEPError(f"the network has {spec.n_layers} hidden layer(s), the model holds "
                           f"{len(self.hidden)} hidden-weight arrays")
        dtype = np.dtype(spec.hidden_dtype)
        hidden = []
        for i, (h, shape) in enumerate(zip(self.hidden, spec.layer_shapes())):
            if not isinstance(h, np.ndarray) or h.dtype.kind != "i" or h.dtype.itemsize != dtype.itemsize \
                    or h.shape != shape:
                raise BEPError(f"hidden_{i} must be {dtype} of shape {shape}, got "
                               f"{getattr(h, 'dtype', type(h).__name__)} {getattr(h, 'shape', '')}")
            hidden.append(_frozen(h.astype(dtype, copy=False)))
        object.__setattr__(self, "hidden", tuple(hidden))
        P = self.classifier
        want = (spec.n_classes, spec.hidden[-1])
        if not isinstance(P, np.ndarray) or P.dtype != np.int8 or P.shape != want:
            raise BEPError(f"classifier must be int8 of shape {want}, got {getattr(P, 'dtype', type(P).__name__)} "
                           f"{getattr(P, 'shape', '')}")
        if not np.all((P == 1) | (P == -1)):
            raise BEPError("classifier entries must be -1 or +1")
        object.__setattr__(self, "classifier", _frozen(P))
        R = np.zeros((0, spec.hidden[-1]), dtype=np.int8) if self.reserved is None else self.reserved
        if not isinstance(R, np.ndarray) or R.dtype != np.int8 or R.ndim != 2 or R.shape[1] != spec.hidden[-1] \
                or spec.n_classes + len(R) > MAX_CLASSES:
            raise BEPError(f"reserved prototypes must be int8 of shape (at most {MAX_CLASSES - spec.n_classes}, "
                           f"{spec.hidden[-1]}), got {getattr(R, 'dtype', type(R).__name__)} {getattr(R, 'shape', '')}")
        if not np.all((R == 1) | (R == -1)):
            raise BEPError("reserved prototype entries must be -1 or +1")
        object.__setattr__(self, "reserved", _frozen(R))
        if self.input_means is not None:
            M = self.input_means
            if spec.model != "mlp":
                raise BEPError("centred inputs are for an mlp's first layer, not an rnn's")
            if spec.n_inputs > MAX_CENTRED_INPUTS:
                raise BEPError(f"centred inputs: {spec.n_inputs} input bits exceed {MAX_CENTRED_INPUTS} "
                               "(an offset as large as the fan-in must fit the int16 pre-activations)")
            if not isinstance(M, np.ndarray) or M.dtype != np.int16 or M.shape != (spec.n_inputs,):
                raise BEPError(f"input_means must be int16 of shape ({spec.n_inputs},), got "
                               f"{getattr(M, 'dtype', type(M).__name__)} {getattr(M, 'shape', '')}")
            if np.abs(M.astype(np.int32)).max(initial=0) > CENTRE_ONE:
                raise BEPError(f"input_means entries must lie in [-{CENTRE_ONE}, {CENTRE_ONE}]")
            object.__setattr__(self, "input_means", _frozen(M))
        object.__setattr__(self, "labels", _frozen(check_labels(self.labels, spec.n_classes)))
        self.encoder.check(spec)
        gamma = validate.integers(self.training.gamma, "training.gamma", 1, max(spec.hidden),
                                  length=spec.n_layers)
        for i, g in enumerate(gamma):
            validate.integer(g, f"training.gamma[{i}]", 1, spec.hidden[i])
        if self.training.resume is not None:
            validate.integer(self.training.resume.stalled, "training.resume.stalled", 0, self.hyper.patience - 1)

    # ------------------------------------------------------------ identity
    @property
    def max_classes(self) -> int:
        """Classes the network can have: those it has and those it reserved prototypes for."""
        return self.spec.n_classes + len(self.reserved)

    @property
    def prototypes(self) -> np.ndarray:
        """Every prototype, reserved ones last: the classifier table generated code holds."""
        return np.concatenate([self.classifier, self.reserved])

    @property
    def config_hash(self) -> str:
        """What a board built from this model reports (shapes and integers; its classes are
        all its prototypes, so a board built before a reserved one was given a class matches)."""
        return config_hash(self.spec, self.params, self.max_classes, self.input_means)

    @property
    def config_hash32(self) -> int:
        return int(self.config_hash[:8], 16)

    def replace(self, **changes) -> "Model":
        return dataclasses.replace(self, **changes)

    def with_class(self, label) -> "Model":
        """This model with ``label`` given the first reserved prototype: one class more, the
        network otherwise the same (its weights, the other prototypes, its training record).
        The new class takes the index after the others (its prototype is the classifier's last
        row, as it is the row after them in the frame): the classes keep their indices, which
        a board running firmware built before the class arrived also counts by."""
        if len(self.reserved) == 0:
            raise BEPError(f"label {validate.show(label)} has no prototype: the model's {self.spec.n_classes} "
                           f"classes are all taken (train with --max-classes to reserve prototypes for new ones)")
        given, kind = plain_labels(np.asarray([label])), self.labels.dtype.kind
        numbers = given.dtype.kind in "iuf" and kind in "iuf"
        same = given.dtype.kind == kind or (numbers and bool(given.astype(self.labels.dtype) == given))
        if not same:
            raise BEPError(f"label {validate.show(given[0].item())} is not of the kind of the model's classes "
                           f"({validate.show(self.labels.tolist(), 120)})")
        given = given.astype(self.labels.dtype) if numbers else given
        return dataclasses.replace(
            self, spec=dataclasses.replace(self.spec, n_classes=self.spec.n_classes + 1),
            classifier=np.concatenate([self.classifier, self.reserved[:1]]), reserved=self.reserved[1:],
            labels=np.concatenate([self.labels, given]))  # concatenate widens text

    def with_training(self, **changes) -> "Model":
        return dataclasses.replace(self, training=dataclasses.replace(self.training, **changes))

    # ------------------------------------------------------------ use
    def network(self) -> Network:
        """A fresh numpy engine holding a copy of this model's state."""
        return Network(self.spec, self.params, [h.copy() for h in self.hidden], self.classifier,
                       self.training.seed, self.training.batch_counter, self.input_means)

    def encode(self, X) -> np.ndarray:
        return self.encoder.encode(X)

    def encode_labels(self, y) -> np.ndarray:
        """Labels → class indices 0..C-1 (the order of ``labels``); unknown labels are an error."""
        return encode_labels(np.asarray(y), self.labels)

    def predict(self, X) -> np.ndarray:
        """Labels predicted for raw features ``X`` (numpy engine)."""
        return self.labels[self.network().predict(self.encode(X))]

    def score(self, X, y) -> float:
        y = plain_labels(np.asarray(y))
        if len(y) == 0:
            raise BEPError("no samples to score")
        return float((self.predict(X) == y).mean())


def plain_labels(y: np.ndarray) -> np.ndarray:
    """Object labels (e.g. a pandas column) → int64 if they are all integers, else str,
    so they can be stored in a model file without pickling."""
    if y.dtype != object:
        return y
    try:
        as_int = y.astype(np.int64)
        if (as_int == y).all():
            return as_int
    except (TypeError, ValueError, OverflowError):
        pass
    return y.astype(str)


def check_labels(labels, n_classes: int) -> np.ndarray:
    """Label names: n_classes distinct int64, float64 (finite) or text values. A model trained
    once has them sorted; a class given a reserved prototype later comes after them."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n_classes:
        raise BEPError(f"classes must list {n_classes} labels, got shape {labels.shape}")
    if labels.dtype.kind in "biu":
        labels = labels.astype(np.int64)
    elif labels.dtype.kind == "f":
        labels = labels.astype(np.float64)
        if not np.all(np.isfinite(labels)):
            raise BEPError("class labels must be finite numbers")
    elif labels.dtype.kind == "U":
        if labels.dtype.itemsize > 4 * MAX_LABEL_CHARS:
            raise BEPError(f"class labels must be at most {MAX_LABEL_CHARS} characters")
    else:
        raise BEPError(f"class labels must be numbers or text, got dtype {labels.dtype}")
    if len(np.unique(labels)) != len(labels):
        raise BEPError("class labels must be distinct")
    return labels


def _lookup(y: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, their class indices, which are unknown) of labels ``y`` among ``classes``."""
    y = plain_labels(np.asarray(y))
    if y.ndim != 1:
        raise BEPError(f"labels must be 1-D, got shape {y.shape}")
    if y.dtype.kind != classes.dtype.kind:  # 1 and "1" name the same class
        y, classes = y.astype(str), classes.astype(str)
    order = np.argsort(classes, kind="stable")  # as text, int classes may sort differently
    pos = np.clip(np.searchsorted(classes[order], y), 0, len(classes) - 1)
    index = order[pos]
    return y, index, classes[index] != y


def new_labels(y, classes: np.ndarray) -> np.ndarray:
    """The distinct labels of ``y`` that are none of ``classes``, sorted."""
    unknown = _lookup(y, classes)[2]
    return np.unique(plain_labels(np.asarray(y))[unknown])


def encode_labels(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    y, index, unknown = _lookup(y, classes)
    if unknown.any():
        raise BEPError(f"label {validate.show(y[np.argmax(unknown)].item())} was not seen in training "
                       f"(classes: {validate.show(classes.tolist(), 120)})")
    return index.astype(np.int64)
