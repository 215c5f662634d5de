"""One training driver for every trainer: the numpy engine, the C twin, a board.

A :class:`Trainer` runs the BEP training step somewhere; :func:`run_epochs` owns
everything around it, once, for all of them:

- the sample order (``epoch_order(seed, epoch)``, continuing the model's sequence; or
  the counter-based order a board computes itself, ``rng.sample_order``),
- batching,
- the per-epoch schedule (``engine.schedule.IntegerSchedule``, integers only, the
  rule a board runs: Q from the last epoch's training error, γ growth on a stall,
  judged on the training counts where a board's own counters drive it and on the
  validation split, or validation and training pooled, on the host's ``fit``),
- and the comparison of every other trainer's complete state (hidden weights,
  forward predictions, all five counters) with the first one's.

So "numpy = C twin = device, bit for bit" is a property of this one function: ``fit``,
``verify``, ``stream --check-host``, golden vectors, the benchmarks and the tests all
train through it, and what differs between them is a named field of the
:class:`Plan`.

Example::

    model = new_model(X_train, y_train, Settings(hidden=(256,)))
    data = encoded(model, X_train, y_train)
    report = run_epochs([NumpyTrainer(model)], data, Plan.continuing(model, epochs=10))
    model = report.advance(model, report.trainers[0])
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, make_dataclass, replace
from fractions import Fraction
from functools import cached_property
from typing import NamedTuple, Protocol

import numpy as np

from bep_mcu import memory, validate
from bep_mcu.data.binarize import TABULAR_INPUT_BITS, is_binary, tabular_levels
from bep_mcu.data.datasets import stratified_split
from bep_mcu.data.encoder import Encoder, as_model_shape
from bep_mcu.engine import bits, rng
from bep_mcu.engine.classifier import binary_equiangular_frame, centroid_frame, leading_direction, leading_share
from bep_mcu.engine.network import CENTRE_ONE, MAX_CENTRED_INPUTS, Counters, Network
from bep_mcu.engine.schedule import EPOCH_MAX_SAMPLES, STALL_SIGNALS, EpochStart, IntegerSchedule, ProgressBudget, \
    gamma_caps, stall_counts
from bep_mcu.engine.spec import MAX_CLASSES, MAX_WIDTH, HyperParams, NetSpec, int_params
from bep_mcu.errors import BEPError
from bep_mcu.model import MAX_BATCH_SIZE, MAX_EPOCHS, Model, TrainingRecord, check_labels, encode_labels, plain_labels
from bep_mcu.settings import DEFAULT_HIDDEN, SETTINGS, stored_in, with_preset

SAMPLE_ORDERS = ("numpy", "counter")
LAYERS = ("all", "last")  # which hidden layers learn (Plan.layers)


def learning(gamma: Sequence[int], layers: str) -> list[int]:
    """The γ every trainer gets: the schedule's ``gamma``, 0 (frozen) on the layers ``layers``
    (:attr:`Plan.layers`) keeps from learning."""
    return [int(g) if layers == "all" or i == len(gamma) - 1 else 0 for i, g in enumerate(gamma)]


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The sample order of one epoch (the same for every trainer)."""
    return np.random.default_rng([seed & 0xFFFFFFFF, epoch, 0x5EED]).permutation(n)


def initial_hidden(spec: NetSpec, sigma: float, seed: int) -> list[np.ndarray]:
    """round(N(0, σ²)) clipped to the B-bit range (docs/algorithm.md §2.8)."""
    g = np.random.default_rng([seed & 0xFFFFFFFF, 0x1417])
    lo, hi = spec.weight_limits
    dtype = np.dtype(spec.hidden_dtype)
    return [np.clip(np.rint(g.normal(0.0, sigma, shape)), lo, hi).astype(dtype) for shape in spec.layer_shapes()]


def default_batch_size(n_train: int) -> int:
    """100 as in the paper, 10 for small sets (few batches per epoch otherwise)."""
    return 100 if n_train >= 1000 else 10


def default_epochs(n_train: int) -> int:
    """Enough updates on small sets too: at least 50 epochs and ~40,000 sample steps."""
    return int(min(400, max(50, -(-40_000 // max(1, n_train)))))


# One hidden layer of at least TABULAR_NARROW_MIN_WIDTH neurons reading tabular data that the
# package codes itself ("auto": a thermometer with levels from the feature count) fits its
# training set better with a narrower trigger margin: r 0.25 instead of 0.5, chosen on
# validation over 25 tabular sets at the default width (10 seeds each; the last six a third
# held-out check frozen before it was run: test +0.7, validation +0.9). It costs the series MLPs
# (BasicMotions -6.2), and narrower layers, whose margin R = floor(r * width) is then only a few
# votes (32 and 64 neurons: classification-8 -4 and -2), so those keep 0.5 (docs/accuracy.md,
# "A narrower margin for one tabular hidden layer").
TABULAR_ONE_LAYER_R = 0.25
TABULAR_NARROW_MIN_WIDTH = 128


def default_r(widths: tuple[int, ...], tabular: bool = False) -> float:
    """Trigger margin r from the sweep in the README: a deeper MLP needs a wider margin
    (512-512 on prototypes: 94.0 % at r = 0.5, 95.1 % at 1.0) while one hidden layer,
    the RNN cell included, does best at 0.5 (digits: 90.6 % at 0.5, 77.7 % at 1.0), and
    one of at least ``TABULAR_NARROW_MIN_WIDTH`` reading tabular data left to "auto"
    (``auto_tabular``) at ``TABULAR_ONE_LAYER_R``."""
    if len(widths) > 1:
        return 1.0
    return TABULAR_ONE_LAYER_R if tabular and widths[0] >= TABULAR_NARROW_MIN_WIDTH else 0.5


# ------------------------------------------------------------------- data


@dataclass(eq=False)
class EncodedData:
    """Network inputs (±1 float32, what numpy reads) and class indices; the packed
    words the C code reads are computed once, on first use."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    @cached_property
    def packed(self) -> np.ndarray:
        return bits.pack_inputs(self.x)

    def take(self, index: np.ndarray) -> "EncodedData":
        part = EncodedData(self.x[index], self.y[index])
        if "packed" in self.__dict__:
            part.packed = self.packed[index]
        return part


def encoded(model: Model, X, y) -> EncodedData:
    """Raw features and labels → what every trainer reads."""
    return EncodedData(model.encode(X), model.encode_labels(y))


# ------------------------------------------------------------------- trainers


class Trainer(Protocol):
    """Where a training step runs. Predictions are class indices. Counters count from
    the trainer's start (the model's state), except ``batches``: the batch counter."""

    name: str

    def set_epoch(self, gamma: Sequence[int], q: Sequence[int], start: EpochStart | None = None) -> None:
        """γ and Q of the epoch that opens; ``start``: where the schedule stands (a board keeps it)."""

    def train_batch(self, batch: EncodedData) -> np.ndarray: ...

    def evaluate(self, data: EncodedData) -> np.ndarray: ...

    def counters(self) -> Counters: ...

    def hidden_weights(self) -> list[np.ndarray]: ...


class NumpyTrainer:
    """The numpy engine (``engine.network``), from a model's state."""

    name = "numpy"

    def __init__(self, model: Model) -> None:
        memory.require(12 * model.spec.synapses, f"a {model.spec.synapses}-synapse network")
        self.net: Network = model.network()

    def set_epoch(self, gamma, q, start: EpochStart | None = None) -> None:
        self.net.set_epoch_params(gamma, q)

    def train_batch(self, batch: EncodedData) -> np.ndarray:
        return self.net.train_batch(batch.x, batch.y).predictions

    def evaluate(self, data: EncodedData) -> np.ndarray:
        return self.net.predict(data.x)

    def counters(self) -> Counters:
        return replace(self.net.counters)

    def hidden_weights(self) -> list[np.ndarray]:
        return self.net.hidden_weights()


# ------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """What to run: the network, how many epochs of which batches in which order, and the
    schedule's parameters and starting point. Data only: how a run is watched (compared,
    stopped, its best weights kept) is an :class:`Observer`, which schedule runs it a
    :func:`schedule_for` choice."""

    spec: NetSpec  # the network (Q's fan-ins come from it)
    epochs: int
    batch_size: int
    seed: int  # keys the sample order
    gamma: tuple[int, ...]  # γ of the first epoch
    p_r: float
    patience: int
    growth: Fraction
    cap: tuple[int, ...]  # largest γ per layer (engine.schedule.gamma_caps)
    first_epoch: int = 0  # continue this sequence of sample orders
    error_rate: float = 1.0  # the previous epoch's training error: Q of the first epoch
    # What a stall is judged on (engine.schedule.stall_counts). "training": the epoch's training error
    # counter, as a board computes it (stream, verify, a board alone); "auto": host fit, the validation
    # split from MIN_VALIDATION samples on, else validation and training pooled.
    stall_signal: str = "auto"
    sample_order: str = "numpy"  # "counter": rng.sample_order, the order a board that learns alone computes
    # Start inside epoch ``first_epoch`` where an interrupted stream stopped (``training.resume`` of a pulled
    # model): its schedule state, and the samples of its order already trained with their error count.
    resume: EpochStart | None = None
    # Which hidden layers learn: "all", or "last" (the others frozen: γ 0 is what every trainer gets for
    # them, engine.network; the schedule, the record and the model keep their γ as if they learnt).
    layers: str = "all"

    def __post_init__(self) -> None:
        validate.integer(self.epochs, "--epochs", 1, MAX_EPOCHS)
        validate.integer(self.batch_size, "--batch-size", 1, MAX_BATCH_SIZE)
        validate.choice(self.stall_signal, "stall signal", STALL_SIGNALS)
        validate.integers(self.cap, "gamma cap", 1, MAX_WIDTH, length=self.spec.n_layers)
        validate.choice(self.sample_order, "sample order", SAMPLE_ORDERS)
        validate.choice(self.layers, "--layers", LAYERS)
        if self.resume is not None and self.resume.epoch != self.first_epoch:
            raise BEPError(f"the record resumes epoch {self.resume.epoch + 1}, the plan starts epoch "
                           f"{self.first_epoch + 1}")

    @classmethod
    def continuing(cls, model: Model, epochs: int, batch_size: int | None = None, **changes) -> "Plan":
        """Continue ``model``'s training: its sample-order sequence, γ, error rate and settings."""
        t, hp = model.training, model.hyper
        plan = cls(spec=model.spec, epochs=epochs, batch_size=batch_size or t.batch_size, seed=t.seed,
                   gamma=tuple(t.gamma), p_r=hp.p_r, patience=hp.patience, growth=hp.growth,
                   cap=tuple(gamma_caps(model.spec, hp, model.params.gamma)), first_epoch=t.epochs,
                   error_rate=t.error_rate)
        return replace(plan, **changes)


def schedule_for(plan: Plan, kind: type[IntegerSchedule] = IntegerSchedule, **options) -> IntegerSchedule:
    """The schedule a run of ``plan`` starts with: the integer one a board runs (default),
    ``FixedSchedule`` (golden vectors) or ``GrowingSchedule`` (``every=k``: γ growth for the
    bit-exact checks), at the plan's γ, error rate and, continuing a run, its record."""
    schedule = kind(plan.spec, list(plan.gamma), plan.p_r, plan.patience, plan.growth, list(plan.cap),
                    error_rate=plan.error_rate, **options)
    if plan.resume is not None:
        schedule.restore(plan.resume)
    return schedule


@dataclass
class Divergence:
    """The first place a trainer's state differs from the reference trainer's."""

    trainer: str
    batch: int
    epoch: int
    what: dict

    def as_dict(self) -> dict:
        return {"trainer": self.trainer, "batch": self.batch, "epoch": self.epoch, **self.what}


@dataclass
class Report:
    """What a run did; ``trainers`` stay usable (e.g. to read their final state)."""

    trainers: list
    history: list[dict] = field(default_factory=list)
    gamma: tuple[int, ...] = ()
    error_rate: float = 1.0
    epochs: int = 0  # whole epochs completed
    batches: int = 0
    samples: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # time spent in train_batch, per trainer
    divergence: Divergence | None = None
    schedule_states: list[dict] = field(default_factory=list)  # the schedule's state after each epoch
    q: tuple[int, ...] = ()  # Q of the next epoch (with ``gamma``, what its set_epoch gets)
    next_epoch: EpochStart | None = None  # where the schedule stands for the next epoch; None inside one
    best: tuple[int, list[np.ndarray]] | None = None  # BestWeights: (epoch, the reference's weights)

    @property
    def bit_exact(self) -> bool:
        return self.divergence is None

    def samples_per_second(self, trainer: str) -> float:
        return self.samples / max(self.seconds.get(trainer, 0.0), 1e-9)

    def advance(self, model: Model, trainer: Trainer, **training_changes) -> Model:
        """``model`` with ``trainer``'s weights (the best epoch's, with :class:`BestWeights`)
        and the schedule where this run left it."""
        t = model.training
        counters = trainer.counters()
        hidden = trainer.hidden_weights() if self.best is None else self.best[1]
        return model.replace(hidden=tuple(hidden), training=replace(
            t, epochs=t.epochs + self.epochs, batch_counter=counters.batches, gamma=tuple(self.gamma),
            error_rate=self.error_rate, counters=sum_counters(t.counters, counters),
            history=t.history + tuple(self.history), resume=None, **training_changes))


def sum_counters(before: Counters, run: Counters) -> Counters:
    """A model's counters after a run that counted ``run`` from zero (the batch counter is the run's)."""
    return Counters(*(getattr(before, n) + getattr(run, n) for n in Counters.NAMES[:4]), batches=run.batches)


def first_difference(reference: list[np.ndarray], other: list[np.ndarray]) -> dict | None:
    """Layer, row and column of the first differing hidden weight, with both values."""
    for layer, (a, b) in enumerate(zip(reference, other)):
        diff = np.argwhere(a != b)
        if len(diff):
            row, col = (int(v) for v in diff[0])
            return {"layer": layer, "row": row, "column": col, "reference": int(a[row, col]),
                    "other": int(b[row, col]), "differing_weights": int(len(diff))}
    return None


def compare_states(reference: Trainer, other: Trainer, predictions: tuple | None = None) -> dict | None:
    """The first difference between two trainers' states: hidden weights, then the
    forward predictions of the last batch (``(reference, other, batch indices)``), then counters."""
    diff = first_difference(reference.hidden_weights(), other.hidden_weights())
    if diff is not None:
        return diff
    if predictions is not None:
        ref, oth, index = predictions
        if not np.array_equal(ref, oth):
            k = int(np.flatnonzero(np.asarray(ref) != np.asarray(oth))[0])
            return {"prediction_of_sample": int(index[k]), "reference": int(ref[k]), "other": int(oth[k])}
    a, b = reference.counters(), other.counters()
    for name in Counters.NAMES:
        if getattr(a, name) != getattr(b, name):
            return {"counter": name, "reference": getattr(a, name), "other": getattr(b, name)}
    return None


# ------------------------------------------------------------------- the driver


def batch_bounds(n: int, batch_size: int, start: int = 0) -> list[tuple[int, int]]:
    """(first, end) positions of an epoch's batches from position ``start`` on. A start
    inside a batch (a run interrupted there) first finishes that batch as a shorter one."""
    aligned = -(-start // batch_size) * batch_size
    firsts = ([start] if start < min(aligned, n) else []) + list(range(aligned, n, batch_size))
    return list(zip(firsts, firsts[1:] + [n]))


@dataclass
class Run:
    """A run in progress, as its observers see it."""

    trainers: Sequence[Trainer]
    plan: Plan
    report: Report
    epoch: int = 0  # the epoch being trained (the schedule's count)

    @property
    def reference(self) -> Trainer:
        return self.trainers[0]


class Observer:
    """Watches a run: after each batch (True stops the run), after each epoch (its record;
    True ends the run there, as if the plan had no more epochs) and once at the end."""

    def after_batch(self, run: Run, index: np.ndarray, predictions: list[np.ndarray]) -> bool:
        return False

    def after_epoch(self, run: Run, record: dict) -> bool | None:
        return None

    def finish(self, run: Run) -> None:
        pass


class Lockstep(Observer):
    """Every other trainer's whole state (hidden weights, the batch's predictions, the five
    counters) compared with the reference's: after every batch (the run stops at the first
    divergence), or ``at_end`` only. A run of several trainers is compared after every
    batch unless it is given a Lockstep."""

    def __init__(self, at_end: bool = False) -> None:
        self.at_end = at_end

    def after_batch(self, run: Run, index: np.ndarray, predictions: list[np.ndarray]) -> bool:
        if self.at_end:
            return False
        for t, p in zip(run.trainers[1:], predictions[1:]):
            diff = compare_states(run.reference, t, (predictions[0], p, index))
            if diff is not None:
                run.report.divergence = Divergence(t.name, run.report.batches - 1, run.epoch, diff)
                return True
        return False

    def finish(self, run: Run) -> None:
        if not self.at_end:
            return
        for t in run.trainers[1:]:
            diff = compare_states(run.reference, t)
            if diff is not None:
                run.report.divergence = Divergence(t.name, run.report.batches - 1, run.epoch, diff)
                return


class BestWeights(Observer):
    """The reference's weights at its best epoch (the schedule's judgement), which the
    model keeps (``Report.advance``; host ``fit`` with ``restore_best``)."""

    def after_epoch(self, run: Run, record: dict) -> None:
        if record.get("best"):
            run.report.best = (record["epoch"], [w.copy() for w in run.reference.hidden_weights()])

    def finish(self, run: Run) -> None:
        if run.report.best is not None and run.report.history:
            run.report.history[-1]["restored_epoch"] = run.report.best[0]


class FollowProgress(Observer):
    """Ends the run where ``engine.schedule.ProgressBudget`` says the training error has
    stopped falling (``fit`` without an epoch count)."""

    def __init__(self, budget: ProgressBudget, samples: int) -> None:
        self.budget, self.samples = budget, samples

    def after_epoch(self, run: Run, record: dict) -> bool:
        return self.budget.end_epoch(round(record["train_error"] * self.samples))


class AtChance(Observer):
    """``fit``'s watch over an RNN whose thresholds are shared over time: its first ``epochs``
    epoch records are held back; if at least half of them were no better than predicting the
    commonest class for every training series (``chance_errors`` errors or more of ``samples``),
    the run ends there (``stuck``) and they are dropped, else they go to ``on_epoch`` and every
    later record passes straight through. Watching changes nothing in the run it watches."""

    def __init__(self, epochs: int, chance_errors: int, samples: int,
                 on_epoch: Callable[[dict], None] | None) -> None:
        self.epochs, self.chance_errors, self.samples, self.on_epoch = epochs, chance_errors, samples, on_epoch
        self.held: list[dict] | None = []
        self.stuck = False

    def _forward(self, records: list[dict]) -> None:
        for record in records if self.on_epoch else ():
            self.on_epoch(record)

    def after_epoch(self, run: Run, record: dict) -> bool:
        if self.held is None:
            self._forward([record])
            return False
        self.held.append(record)
        if len(self.held) < self.epochs:
            return False
        at_chance = sum(round(r["train_error"] * self.samples) >= self.chance_errors for r in self.held)
        self.stuck = 2 * at_chance >= self.epochs
        if not self.stuck:
            self._forward(self.held)
        self.held = None
        return self.stuck

    def finish(self, run: Run) -> None:
        if self.held:  # the run ended before the watch did
            self._forward(self.held)
            self.held = None


class StopAfter(Observer):
    """Stop after ``batches`` batches (golden vectors)."""

    def __init__(self, batches: int) -> None:
        self.batches = validate.integer(batches, "--batches", 1, 1 << 31)

    def after_batch(self, run: Run, index: np.ndarray, predictions: list[np.ndarray]) -> bool:
        return run.report.batches >= self.batches


class Callbacks(Observer):
    """Plain functions as an observer: ``on_batch(batch_number, sample_indices,
    predictions_per_trainer)`` and ``on_epoch(record)``."""

    def __init__(self, on_batch: Callable[[int, np.ndarray, list[np.ndarray]], None] | None = None,
                 on_epoch: Callable[[dict], None] | None = None) -> None:
        self.on_batch, self.on_epoch = on_batch, on_epoch

    def after_batch(self, run: Run, index: np.ndarray, predictions: list[np.ndarray]) -> bool:
        if self.on_batch:
            self.on_batch(run.report.batches - 1, index, predictions)
        return False

    def after_epoch(self, run: Run, record: dict) -> None:
        if self.on_epoch:
            self.on_epoch(record)


def _check_run(data: EncodedData, plan: Plan) -> None:
    if len(data) == 0:
        raise BEPError("no training samples")
    if len(data) >= EPOCH_MAX_SAMPLES:
        raise BEPError(f"an epoch of {len(data)} samples: a board's epoch counts fewer than {EPOCH_MAX_SAMPLES}")
    if plan.resume is not None and plan.resume.samples > len(data):
        raise BEPError(f"the model stopped at sample {plan.resume.samples} of epoch {plan.resume.epoch + 1}, but the "
                       f"data has {len(data)} samples: continue it on the data it was trained on")


def _train_epoch(run: Run, data: EncodedData, opened: EpochStart, observers: Sequence[Observer]) -> int | None:
    """The epoch's batches from where it opened; the samples of it seen, None if an observer stopped the run."""
    plan, report = run.plan, run.report
    order = (rng.sample_order if plan.sample_order == "counter" else epoch_order)(plan.seed, run.epoch, len(data))
    seen = opened.samples
    for i, j in batch_bounds(len(order), plan.batch_size, opened.samples):
        index = order[i:j]
        batch = data.take(index)
        predictions = []
        for t in run.trainers:
            t0 = time.perf_counter()
            predictions.append(t.train_batch(batch))
            report.seconds[t.name] += time.perf_counter() - t0
        report.batches += 1
        report.samples += len(index)
        seen += len(index)
        if any(o.after_batch(run, index, predictions) for o in observers):
            return None
    return seen


def _close_epoch(run: Run, schedule: IntegerSchedule, opened: EpochStart, before: Counters, seen: int,
                 validation: EncodedData | None, seconds: float, gamma: list[int], q: list[int]) -> dict:
    """The epoch's record, and the schedule's next γ and Q from its error count."""
    plan, report, after = run.plan, run.report, run.reference.counters()
    errors = opened.errors + after.since(before, "errors")
    val_accuracy, val_counts = None, (0, 0)
    if validation is not None and len(validation):
        val_errors = int(np.count_nonzero(run.reference.evaluate(validation) != validation.y))
        val_accuracy, val_counts = 1.0 - val_errors / len(validation), (val_errors, len(validation))
    trained = seen - opened.samples
    record = {"epoch": run.epoch + 1, "train_error": errors / seen, "val_accuracy": val_accuracy, "gamma": gamma,
              "reinforce_q": q, "triggered": after.since(before, "triggered"), "updates": after.since(before, "updates"),
              "seconds": seconds, "samples_per_second": trained / seconds if seconds > 0 else None}
    best = schedule.end_epoch_counts(errors, seen, stall_counts(plan.stall_signal, (errors, seen), val_counts))
    if best is not None:
        record["best"] = best
    report.history.append(record)
    report.schedule_states.append(schedule.state())
    report.epochs += 1
    report.gamma, report.error_rate, report.q = tuple(schedule.gamma), schedule.error_rate, tuple(schedule.q())
    report.next_epoch = EpochStart(run.epoch + 1, **schedule.state())
    return record


def run_epochs(trainers: Sequence[Trainer], data: EncodedData, plan: Plan, validation: EncodedData | None = None,
               on_batch: Callable[[int, np.ndarray, list[np.ndarray]], None] | None = None,
               on_epoch: Callable[[dict], None] | None = None, observers: Sequence[Observer] = (),
               schedule: IntegerSchedule | None = None) -> Report:
    """Train every trainer on the same batches with the same per-epoch integers.

    ``trainers[0]`` is the reference: its error counter drives the schedule (default:
    :func:`schedule_for` the plan) and its predictions judge ``validation``. ``observers``
    watch the run (:class:`Lockstep`: several trainers are compared after every batch
    unless one is given; :class:`BestWeights`, :class:`StopAfter`); ``on_batch`` and
    ``on_epoch`` are plain :class:`Callbacks`. With ``plan.resume`` the first epoch
    continues from where an interrupted run stopped."""
    _check_run(data, plan)
    schedule = schedule or schedule_for(plan)
    report = Report(list(trainers), seconds={t.name: 0.0 for t in trainers}, gamma=tuple(plan.gamma),
                    error_rate=plan.error_rate)
    run = Run(trainers, plan, report)
    lockstep = [] if len(trainers) == 1 or any(isinstance(o, Lockstep) for o in observers) else [Lockstep()]
    watchers = [*lockstep, *(o for o in observers if isinstance(o, Lockstep)), Callbacks(on_batch, on_epoch),
                *(o for o in observers if not isinstance(o, Lockstep))]
    for e in range(plan.epochs):
        run.epoch = plan.first_epoch + e
        gamma, q = list(schedule.gamma), schedule.q()
        # where the epoch opens: the schedule's state, and the samples of its order an interrupted run
        # already trained, with their error count
        samples, errors = (plan.resume.samples, plan.resume.errors) if e == 0 and plan.resume else (0, 0)
        opened = EpochStart(run.epoch, **schedule.state(), samples=samples, errors=errors)
        report.next_epoch = None
        for t in trainers:
            t.set_epoch(learning(gamma, plan.layers), q, opened)
        start, before = time.perf_counter(), run.reference.counters()
        seen = _train_epoch(run, data, opened, watchers)
        if seen is None:
            return report
        record = _close_epoch(run, schedule, opened, before, seen, validation, time.perf_counter() - start, gamma, q)
        if [o for o in watchers if o.after_epoch(run, record)]:  # every observer sees the record
            break
    for o in watchers:
        o.finish(run)
    return report


# ------------------------------------------------------------------- new models


def _check_settings(self) -> None:
    """The preset's values where a field is at its default (``settings.with_preset``), then each
    field checked as its row says (errors name the option)."""
    for name, value in with_preset({s.name: getattr(self, s.name) for s in SETTINGS}).items():
        object.__setattr__(self, name, value)  # frozen: this is its construction
    for s in SETTINGS:
        s.check(getattr(self, s.name), model=self.model)
    if self.centre == "on" and self.model != "mlp":  # before any data is read
        raise BEPError("--centre on: centred inputs are for an mlp's first layer, not an rnn's")


def _widths(self) -> tuple[int, ...]:
    """The hidden widths of these settings (``DEFAULT_HIDDEN`` where left to their default)."""
    return DEFAULT_HIDDEN if self.hidden is None else tuple(self.hidden)


def _hyper(self, tabular: bool = False) -> HyperParams:
    """The BEP hyperparameters of these settings (r's default from the number of layers and,
    ``tabular``, whether the data is tabular and left to "auto": ``default_r``)."""
    values = {s.name: getattr(self, s.name) for s in stored_in("hyperparams")}
    return HyperParams(**{**values, "r": default_r(self.widths(), tabular) if self.r is None else self.r,
                          "gamma": None if self.gamma is None else tuple(self.gamma)})


Settings = make_dataclass(
    "Settings", [(s.name, s.annotation, field(default=s.default)) for s in SETTINGS], frozen=True,
    namespace={"__module__": __name__, "__post_init__": _check_settings, "hyper": _hyper, "widths": _widths,
               "__doc__": "Everything a user chooses for a new model (the CLI options, the estimator's params): "
                          "one field per row of bep_mcu/settings.py, with its default and check."})


def split_validation(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified validation split of the training data (none for tiny sets)."""
    n_classes = len(np.unique(y))
    if fraction > 0 and len(y) >= 4 * n_classes:
        return stratified_split(y, fraction, seed)
    return np.arange(len(y)), np.zeros(0, dtype=np.int64)


def smallest_split_class(fraction: float) -> int:
    """The fewest samples a class needs for a validation split of ``fraction`` (> 0) to take its
    share, round(n · fraction) >= 1, as ``stratified_split`` rounds (half to even)."""
    n = max(1, math.floor(0.5 / fraction) - 1)  # below the answer, n · fraction > 0.5, whatever the float error
    while np.round(n * fraction) < 1:
        n += 1
    return n


# A model that predicts one class for (nearly) every training sample has learnt nothing: ``train``
# says so rather than save it in silence. Where most input bits sit at one value (sparse indicators,
# counts that are mostly 0) that is BEP's known collapse: an update moves a neuron for every sample
# alike (docs/accuracy.md, "Sparse features"). Such inputs have a common mode above 1 (their bits'
# squared means outweigh their variances); every other set measured has at most 0.78.
ONE_CLASS_SHARE = 0.99
SPARSE_COMMON_MODE = 1.0


def common_mode(means: np.ndarray) -> tuple[float, float] | None:
    """(Σ m² / Σ (1 − m²), mean |m|) over the input bits that vary, m a bit's mean (±1) over the
    samples (``input_bit_means``): 0 for balanced bits, above 1 where most bits sit at one value.
    None where no bit varies."""
    m = means[np.abs(means) < 1]
    return (float((m ** 2).sum() / (1 - m ** 2).sum()), float(np.abs(m).mean())) if m.size else None


def input_bit_means(encoder: Encoder, X) -> np.ndarray:
    """Each network input bit's mean (±1) over the rows of ``X`` (an MLP's), encoded a chunk at a
    time (``encoded_sums``): 2 p − 1, p the bit's share of +1."""
    n = len(X)
    plus = (encoded_sums(encoder, X, np.zeros(n, dtype=np.intp), 1)[0] + n) / 2  # exact integer counts
    return plus / n * 2 - 1


def one_class_warning(model: Model, X, y) -> str | None:
    """Why ``model`` looks collapsed on its training data ``X``, ``y``, or None: it predicts one
    class for at least ONE_CLASS_SHARE of the samples, which the labels themselves do not."""
    y = plain_labels(np.asarray(y))
    if len(y) == 0:
        return None
    predicted = model.predict(X)
    values, counts = np.unique(predicted, return_counts=True)
    if counts.max() < ONE_CLASS_SHARE * len(y) or np.unique(y, return_counts=True)[1].max() >= ONE_CLASS_SHARE * len(y):
        return None
    text = (f"the model predicts one class ('{values[counts.argmax()]}') for {counts.max() / len(y):.0%} of its "
            f"{len(y)} training samples")
    mode = common_mode(input_bit_means(model.encoder, X)) if model.spec.model == "mlp" else None
    if mode is not None and mode[0] > SPARSE_COMMON_MODE:
        text += (f": its input bits take their more common value in {(1 + mode[1]) / 2:.0%} of the samples on "
                 f"average (sparse features), on which BEP collapses (docs/accuracy.md, \"Sparse features\")")
    return text


def too_small_to_split(y: np.ndarray, fraction: float) -> bool:
    """Whether no class is large enough to give a validation split of ``fraction`` its share
    (``smallest_split_class``). The stratified split would still take one sample of every class:
    on five series a class at 0.1 it holds back a fifth of the data and judges stalls on one
    series a class, so ``fit`` trains on all of it (docs/accuracy.md §2, "Classes too small to
    split")."""
    counts = np.unique(y, return_counts=True)[1]
    return bool(fraction > 0 and len(counts) > 0 and counts.max() < smallest_split_class(fraction))


# Rows of binary features (flags, one-hot categories, binarised images) are tabular rows too: passed
# through, F features are F input bits, each of weight ±1, on the non-tabular network, and few of
# them underfit (bits-8-4 43.3, flags-12 74.0 on six development sets, 67.0 -> 83.1 with the tabular
# path). From TABULAR_INPUT_BITS features on they keep the passthrough and the network tuned on Random
# Prototypes' 1,000 bits (docs/accuracy.md, "Sixth held-out check: binary features").
def auto_tabular(X, settings: Settings) -> bool:
    """Whether a new model's input code is left to "auto" on tabular data (an MLP on rows of raw
    features; binary ones only below ``TABULAR_INPUT_BITS`` features): the data ``input_code``,
    ``threshold_bits`` and the tabular margin act on."""
    X = np.asarray(X)
    if settings.binarize != "auto" or settings.model != "mlp" or X.ndim != 2:
        return False
    return X.shape[1] < TABULAR_INPUT_BITS or not is_binary(X)  # few features: no scan of the values


def input_code(X, settings: Settings) -> str:
    """The binariser of a new model: ``settings.binarize``, where it is "auto" on tabular data, a
    thermometer with levels from the feature count (``binarize.tabular_levels``; copies of each
    bit for binary features); the encoder decides the rest of "auto" (series: thermometer:8,
    binary rows of ``TABULAR_INPUT_BITS`` features or more: passed through)."""
    if not auto_tabular(X, settings):
        return settings.binarize
    X = np.asarray(X)
    return f"thermometer:{tabular_levels(X.shape[1], binary=is_binary(X))}"


def chunk_encoder(X, settings: Settings) -> Encoder:
    """The encoder of ``partial_fit``'s first chunk: ``Encoder.fit``'s, but one sample (or
    copies of one) keeps every bit instead of being refused: the next chunks will vary. (Its
    thresholds are the one sample's values.)"""
    one_sample = len(np.unique(np.reshape(X, (len(X), -1)), axis=0)) == 1
    return Encoder.fit(X, settings.model, input_code(X, settings), settings.window, settings.bias_bits,
                       keep_constant=one_sample)


# "auto" centres rows of features, not series given to an MLP: the five sparse sets and sparse-120-2
# gain 0.7 to 34 points with it, while Covid3Month_disc, a series whose discretised values repeat
# (common mode 2.3), lost 8.2 (67.2 -> 59.0, 61 test series; docs/accuracy.md, "Sparse features").
def input_centre(encoder: Encoder, X, settings: Settings, rows: bool = True) -> np.ndarray | None:
    """The first layer's input centring of a new model (``Model.input_means``): M_i = round(256 m_i), m_i
    input bit i's mean over the samples of ``X`` (0 for a bit constant over them, such as a bias bit),
    for an mlp whose ``centre`` setting is "on", or "auto" on ``rows`` (not series) whose bits'
    common mode is above SPARSE_COMMON_MODE and whose offsets fit the int16 pre-activations
    (``MAX_CENTRED_INPUTS``); else None."""
    if settings.model != "mlp" or settings.centre == "off":
        return None
    if settings.centre == "auto" and (not rows or encoder.n_inputs > MAX_CENTRED_INPUTS):  # "on": Model refuses
        return None
    m = input_bit_means(encoder, X)
    mode = common_mode(m)
    if settings.centre == "auto" and (mode is None or mode[0] <= SPARSE_COMMON_MODE):
        return None
    return np.round(np.where(np.abs(m) == 1, 0, m) * CENTRE_ONE).astype(np.int16)


def new_model(X, y, settings: Settings, classes: np.ndarray | None = None, encoder: Encoder | None = None) -> Model:
    """An untrained model for raw training data (encoder fitted on ``X`` only, unless given)."""
    y = plain_labels(np.asarray(y))
    labels = np.unique(y) if classes is None else np.asarray(classes)
    if len(labels) > MAX_CLASSES:
        raise BEPError(f"{len(labels)} classes; bep-mcu supports at most {MAX_CLASSES}")
    labels = check_labels(plain_labels(labels), len(labels))
    if encoder is None:
        encoder = Encoder.fit(X, settings.model, input_code(X, settings), settings.window, settings.bias_bits)
    tabular = auto_tabular(X, settings)  # before the reshape: a series for an MLP is flattened to rows
    rows = np.ndim(X) == 2
    X = as_model_shape(X, settings.model)
    spec = NetSpec(settings.model, encoder.n_inputs, settings.widths(), len(labels), settings.hidden_bits,
                   encoder.steps)
    memory.require(16 * spec.synapses + 8 * X.size, f"a {spec.synapses}-synapse network on {len(X)} samples")
    prototypes = len(labels) if settings.max_classes is None else settings.max_classes
    if prototypes < len(labels):
        raise BEPError(f"--max-classes {prototypes} is fewer than the {len(labels)} classes of the training data")
    hyper = settings.hyper(tabular)
    params = int_params(spec, hyper)
    n_train = len(y)
    frame = classifier_frame(encoder, X, y, labels, spec, prototypes, settings.seed, hyper.alpha, tabular)
    record = TrainingRecord(seed=settings.seed, batch_size=settings.batch_size or default_batch_size(n_train),
                            gamma=params.gamma, val_fraction=settings.val_fraction, notes=frame.notes())
    return Model(spec, hyper, params, tuple(initial_hidden(spec, hyper.sigma, settings.seed)), frame.rows,
                 encoder, labels, record, reserved=frame.reserved, input_means=input_centre(encoder, X, settings, rows))


# With two classes every frame is the same up to the sign of its columns (one split), so the
# centroid frame starts at three; and it is for classes that lie mostly along one direction of
# the inputs (at least half their centroids' spread), where the equiangular frame asks most
# neurons for splits no threshold of that direction makes. Classes spread in many directions
# (digits' ten: 0.29) learn less with it than with the equiangular frame (docs/accuracy.md).
# Three classes always pass (their centred centroids span two directions): the test acts from four.
# One hidden layer, whose neurons each threshold one direction of the inputs, takes it only where that
# leading direction also separates the samples (between-class share of their projections at least
# 0.75: binned linear targets, clusters in a row); on shells (0.4-0.6) and nominal classes it learns
# less with it. Stated before a held-out check that then bore it out, on tabular data; series MLPs of
# one layer lose with it (ArrowHead-noisy, ACSF1-down), so they keep the equiangular frame
# (docs/accuracy.md, "Fifth held-out check").
CENTROID_FRAME_MIN_CLASSES = 3
CENTROID_FRAME_MIN_SHARE = 0.5
CENTROID_FRAME_ONE_LAYER_MIN_BETWEEN = 0.75
FRAME_KINDS = ("equiangular", "centroid")  # where a new model's classifier rows came from (its notes)


class Frame(NamedTuple):
    """A new model's classifier: the rows of its classes, the rows reserved for classes not seen
    yet, which frame the classes' rows came from and the two measures that chose it (None where
    the rule stopped before computing them)."""

    rows: np.ndarray
    reserved: np.ndarray
    kind: str  # one of FRAME_KINDS
    leading_share: float | None = None
    between_class_share: float | None = None

    def notes(self) -> dict:
        """The training record's notes that tell people (``bep-mcu info``) which frame this is."""
        measures = {"classifier_leading_share": self.leading_share,
                    "classifier_between_class_share": self.between_class_share}
        return {"classifier_frame": self.kind,
                **{k: round(v, 4) for k, v in measures.items() if v is not None}}


def classifier_frame(encoder: Encoder, X, y, labels: np.ndarray, spec: NetSpec, prototypes: int, seed: int,
                     alpha: float, tabular: bool) -> Frame:
    """The classifier of a new model. The reserved rows, and every row of an RNN, come from the
    Binary Equiangular Frame of all the prototypes. An MLP on at least
    ``CENTROID_FRAME_MIN_CLASSES`` classes, each with a sample in ``X`` and their mean input bits
    (centroids) lying mostly along one direction (``leading_share`` at least
    ``CENTROID_FRAME_MIN_SHARE``), takes the classes' rows from ``centroid_frame`` if it has two or
    more hidden layers, or one hidden layer on ``tabular`` data (``auto_tabular``) whose samples
    that direction separates (``between_class_share`` at least
    ``CENTROID_FRAME_ONE_LAYER_MIN_BETWEEN``): it learns more on classes ordered along one
    direction of the inputs (two layers: regression-20-4, shells-4, quantiles, about 3 points
    each on ten seeds; one layer: binned linear targets, regression-12-4 +6.6 at 512 neurons and
    +11.9 at 64; series MLPs of one layer lose with it) (docs/accuracy.md, "A frame from the
    class centroids", "Fifth held-out check")."""
    frame = binary_equiangular_frame(prototypes, spec.hidden[-1], seed, alpha)
    equiangular = Frame(frame[:len(labels)], frame[len(labels):], "equiangular")
    if spec.model != "mlp" or len(labels) < CENTROID_FRAME_MIN_CLASSES:
        return equiangular
    classes = encode_labels(y, labels)
    centroids = class_centroids(encoder, X, classes, len(labels))
    if centroids is None:
        return equiangular
    share = leading_share(centroids)
    measured = equiangular._replace(leading_share=share)
    if share < CENTROID_FRAME_MIN_SHARE:
        return measured
    if spec.n_layers < 2:
        if not tabular:
            return measured
        measured = measured._replace(between_class_share=between_class_share(encoder, X, classes, centroids))
        if measured.between_class_share < CENTROID_FRAME_ONE_LAYER_MIN_BETWEEN:
            return measured
    rows = centroid_frame(centroids, spec.hidden[-1], seed)
    if len(np.unique(rows, axis=0)) < len(rows):  # two classes of one prototype could never be told apart
        return measured
    return measured._replace(rows=rows, kind="centroid")


def encoded_sums(encoder: Encoder, X, classes: np.ndarray, n_classes: int, chunk: int = 4096) -> np.ndarray:
    """Each class's sum of the network inputs of its rows of ``X`` (an MLP's), encoded a chunk at a
    time so the float copy stays at most ``chunk`` rows. A chunk's per-class sums of ±1 bits are
    integers below 2**24, exact in the encoder's float32; their total is exact in float64."""
    one_hot = np.eye(n_classes, dtype=np.float32)
    sums = np.zeros((n_classes, encoder.n_inputs))
    for start in range(0, len(X), chunk):
        sums += one_hot[classes[start:start + chunk]].T @ encoder.encode(X[start:start + chunk])
    return sums


def class_centroids(encoder: Encoder, X, classes: np.ndarray, n_classes: int, chunk: int = 4096) -> np.ndarray | None:
    """The mean network input of each class (``encoded_sums``), or None where a class has no sample."""
    counts = np.bincount(classes, minlength=n_classes)
    if counts.min() == 0:
        return None
    return encoded_sums(encoder, X, classes, n_classes, chunk) / counts[:, None]


def between_class_share(encoder: Encoder, X, classes: np.ndarray, centroids: np.ndarray, chunk: int = 4096) -> float:
    """η²: the share of the between-class sum of squares in the total sum of squares of the samples'
    projections on the centroids' ``leading_direction`` (1 where that one direction separates the
    classes, 0 where it does not; 0 where every sample projects alike). The class means of the
    projections are the projections of the centroids; the total is summed a chunk at a time."""
    direction = leading_direction(centroids)
    counts = np.bincount(classes, minlength=len(centroids))
    means = centroids @ direction
    mean = counts @ means / counts.sum()
    total = sum(float(((encoder.encode(X[start:start + chunk]) @ direction - mean) ** 2).sum())
                for start in range(0, len(X), chunk))
    return float(counts @ (means - mean) ** 2 / total) if total > 0 else 0.0


def split_encoded(model: Model, X, y) -> tuple[EncodedData, EncodedData]:
    """Raw data → (training part, validation part) as ``model``'s network reads them; the
    split is stratified and seeded by the model's ``val_fraction`` and seed."""
    data = encoded(model, X, y)
    train_idx, val_idx = split_validation(np.asarray(data.y), model.training.val_fraction, model.training.seed)
    return data.take(train_idx), data.take(val_idx)


def train(model: Model, X, y, epochs: int, batch_size: int | None = None,
          on_epoch: Callable[[dict], None] | None = None, follow_progress: bool = False,
          observers: Sequence[Observer] = ()) -> Model:
    """Train ``model`` (new, loaded or pulled from a board) for ``epochs`` more epochs on
    raw data; a stratified part of it (the model's ``val_fraction``) judges γ stalls
    (engine.schedule.stall_counts, "auto"). ``follow_progress``: ``epochs`` is the minimum,
    and training goes on while the training error falls (``engine.schedule.ProgressBudget``);
    ``observers`` watch the run too."""
    train_part, val_part = split_encoded(model, X, y)
    trainer = NumpyTrainer(model)
    observers = [*([BestWeights()] if model.hyper.restore_best else []), *observers]
    if follow_progress:
        budget = ProgressBudget(len(train_part), epochs)
        observers.append(FollowProgress(budget, len(train_part)))
        epochs = budget.cap
    plan = Plan.continuing(model, epochs, batch_size)
    report = run_epochs([trainer], train_part, plan, val_part, on_epoch=on_epoch, observers=observers)
    return report.advance(model, trainer, batch_size=plan.batch_size)


def train_pass(model: Model, X, y, end_epoch: bool = False) -> Model:
    """One pass over raw (X, y) for online learning (``BEPClassifier.partial_fit``): every
    sample is trained (no validation split), in batches of the model's batch size, in a
    seeded order within the chunk. The pass runs inside the open epoch: γ, Q and the epoch
    count stay, as on a board between two ``bep_<net>_end_epoch`` calls; ``end_epoch``
    closes the epoch with this pass, and the schedule sets the next γ and Q from its
    training errors (a board's rule: it has no validation split)."""
    data = encoded(model, X, y)
    trainer = NumpyTrainer(model)
    plan = Plan.continuing(model, 1, stall_signal="training")
    inside = [] if end_epoch else [StopAfter(len(batch_bounds(len(data), plan.batch_size)))]
    report = run_epochs([trainer], data, plan, observers=inside)
    return report.advance(model, trainer)


def initial_model(X, y, settings: Settings) -> Model:
    """The untrained model ``fit`` starts from: the encoder sees the training part of
    ``X`` only (what remains after the validation split). Its shape is the trained
    model's, so memory can be planned before any training (``bep-mcu sweep``, whose codes
    are explicit; an RNN left to "auto" that ``fit`` restarts per time point may keep other
    bits, and keeps ``length`` times the thresholds; one that keeps ``COARSE_CODE`` has fewer
    bits; a tabular MLP left to "auto" that keeps ``TABULAR_BIAS_BITS`` has that many inputs
    more, and the widths ``TABULAR_DEEP_HIDDEN`` if its widths were left to their default:
    ``fit_shapes`` gives every shape ``fit`` may return)."""
    y = plain_labels(np.asarray(y))
    X = np.asarray(X)
    if len(X) != len(y):
        raise BEPError(f"X has {len(X)} samples but y has {len(y)} labels")
    train_idx, _ = split_validation(y, settings.val_fraction, settings.seed)
    return new_model(X[train_idx], y[train_idx], settings, classes=np.unique(y))


def candidates(X, y, settings: Settings) -> tuple[Model, Settings | None]:
    """The untrained model ``fit`` starts from on (X, y), and the settings of the second
    candidate it trains beside it (``second_candidate``), or None."""
    model = initial_model(X, y, settings)
    val_samples = len(split_validation(plain_labels(np.asarray(y)), settings.val_fraction, settings.seed)[1])
    return model, second_candidate(model, np.asarray(X), settings, val_samples)


def fit_shapes(X, y, settings: Settings) -> list[Model]:
    """The untrained models of every candidate ``fit`` may keep (``candidates``), so memory
    can be planned before training for the largest (``demo``)."""
    model, second = candidates(X, y, settings)
    if too_small_to_split(plain_labels(np.asarray(y)), settings.val_fraction):  # fit trains on all the data
        return [initial_model(X, y, replace(s, val_fraction=0.0)) for s in (settings, second) if s is not None]
    return [model] if second is None else [model, initial_model(X, y, second)]


def encoded_split(X, y, settings: Settings) -> tuple[Model, EncodedData, EncodedData]:
    """The untrained model ``fit`` starts from and the training and validation parts it
    trains on, as the network reads them (e.g. for a baseline trained on the same bits)."""
    model = initial_model(X, y, settings)
    return (model, *split_encoded(model, X, y))


# An RNN reading series of one shape through thresholds shared over time gets almost the same
# bits for every series and can predict one class for all of them for 100-200 epochs; thresholds
# per time point give each series its own bits (docs/research/untuned-data.md §4.1). ``fit``
# watches the shared code's first AT_CHANCE_EPOCHS epochs and starts again with thresholds per
# time point if at least half of them were at chance: 20 caught every stuck spectra seed of ten
# and switched one of the accuracy table's 24 RNN runs; a run it does not switch is untouched (§4.2).
AT_CHANCE_EPOCHS = 20


def per_point_fallback(model: Model, settings: Settings) -> str | None:
    """The code ``fit`` falls back to when ``model``'s shared thresholds leave it at chance:
    the same thermometer per time point, for an RNN whose code was left to "auto"."""
    code = model.encoder.binarizer.spec()
    if settings.model != "rnn" or settings.binarize != "auto" or not code.startswith("thermometer:"):
        return None
    return f"{code}:point"


# An RNN reading a long, oversampled series gets thousands of input bits a step in which
# neighbouring points repeat each other's bits; with few training series it may learn far less
# than from a coarser code (PickupGestureWiimoteZ-long: 5,784 bits a step, 36.0; thermometer:2,
# 1,452 bits, 60.0), but the same coarse code costs other long series (ACSF1 -11), so no fixed
# code suits them all (docs/research/untuned-data.md §4.3). ``fit`` trains such an RNN left to
# "auto" with both codes and keeps the one its validation split prefers (3 seeds: Pickup-long
# 36.0 -> 50.0, ACSF1 kept, JapaneseVowels-long 96.6 -> 95.6; validation +16.7, 0, +1.2), at
# about twice the training time. The benchmark's RNN rows have 104-2,408 bits a step or
# 5,576-5,848: COARSE_CODE_BITS lies between the two groups.
COARSE_CODE_BITS = 4096
COARSE_CODE = "thermometer:2"  # about 1,450 bits a step there, as the RNN rows that learn well


def coarse_code(model: Model, settings: Settings, val_samples: int) -> str | None:
    """The coarser code ``fit`` tries beside ``model``'s: for an RNN whose code was left to
    "auto", with at least ``COARSE_CODE_BITS`` input bits a step and a validation split to judge."""
    if settings.model != "rnn" or settings.binarize != "auto" or val_samples == 0:
        return None
    return COARSE_CODE if model.encoder.n_inputs >= COARSE_CODE_BITS else None


# An MLP without bias bits draws each neuron's boundary through the middle of its inputs' sum;
# classes that lie in shells or around a centre (a sum of squares of every feature) need it far
# from there, and BEP then fits neither its training set nor its test set (hastie 70.6, quantiles
# 52.3 against QAT + BN's 85.0 and 73.6). 64 constant bits give every neuron a threshold it learns
# like a weight (80.7, 72.3), but they cost digits 1.9 points of validation and every tabular
# model 64 inputs, so ``fit`` trains a tabular MLP left to "auto" both ways and keeps what its
# validation split prefers: 10 seeds of 14 tabular sets, test 81.3 -> 83.5, hastie and quantiles
# switch on every seed, digits on none (docs/accuracy.md, "Held-out check").
TABULAR_BIAS_BITS = 64


def threshold_bits(X, settings: Settings, val_samples: int) -> int | None:
    """The bias bits ``fit`` tries beside none: for an MLP on tabular data whose code and bias
    bits were left to their defaults, with a validation split to judge."""
    if settings.bias_bits is not None or val_samples == 0 or not auto_tabular(X, settings):
        return None
    return TABULAR_BIAS_BITS


# Classes in shells also need neurons that can specialise: with a fixed classifier every neuron of
# a single hidden layer is pushed towards its class's whole code, a committee of perceptrons each
# solving the whole task. Two layers of half the width (fewer weights than one wide layer with the
# bias bits) let the first layer's neurons cut one shell each. With the widths left to their
# default the bias-bit candidate is that network: 10 seeds of 14 tabular sets, test 83.5 -> 84.0,
# quantiles 72.3 -> 80.7, hastie 80.8 -> 82.5; validation keeps one layer where two overfit
# (blobs, wine, digits); classification-8 -1.4 (docs/accuracy.md, "Two hidden layers with the
# bias bits"). Trying 512 with the bias bits as well was no better (84.0) at 1.5 times the training.
TABULAR_DEEP_HIDDEN = (256, 256)


def second_candidate(model: Model, X, settings: Settings, val_samples: int) -> Settings | None:
    """The settings ``fit`` trains a second model with, to keep the one validation prefers: a
    coarser code for a long series (``coarse_code``), bias bits for a tabular MLP
    (``threshold_bits``; with its widths left to their default, as ``TABULAR_DEEP_HIDDEN``),
    or None."""
    coarse = coarse_code(model, settings, val_samples)
    if coarse is not None:
        return replace(settings, binarize=coarse)
    bias = threshold_bits(X, settings, val_samples)
    if bias is None:
        return None
    return replace(settings, bias_bits=bias, hidden=TABULAR_DEEP_HIDDEN if settings.hidden is None else settings.hidden)


def fit(X, y, settings: Settings, on_epoch: Callable[[dict], None] | None = None, second: bool = True) -> Model:
    """A new model trained on raw data (the encoder sees the training part only): for
    ``settings.epochs``, else at least ``default_epochs`` and on while the training error
    falls (``ProgressBudget``). An RNN whose "auto" code leaves it at chance in at least half
    of its first ``AT_CHANCE_EPOCHS`` epochs starts again with thresholds per time point; one
    whose "auto" code has at least ``COARSE_CODE_BITS`` input bits a step is trained a second
    time with ``COARSE_CODE``, a tabular MLP left to "auto" a second time with
    ``TABULAR_BIAS_BITS`` bias bits (its widths left to their default, as
    ``TABULAR_DEEP_HIDDEN``), and the model with the higher validation accuracy is kept (a tie
    keeps the one with fewer weights, then the default). Where no class is large enough to give
    the validation split its share (``too_small_to_split``), the split still chooses between two
    candidates (it is all there is to choose on) and the chosen settings are then trained on all
    the data, stalls judged on the training errors. ``on_epoch`` sees the epochs of the
    model returned only (where two are trained, after both). ``second`` False: the default's
    model only, whatever the data (a benchmark that compares other things on a fixed network)."""
    # The second candidate comes from ``candidates``, as ``fit_shapes`` and QAT's
    # ``input_settings`` get it: every caller sees the same choice. (QAT keeps the split on
    # classes too small for BEP's: it needs validation to choose its grid.)
    model, alternative = candidates(X, y, settings) if second else (initial_model(X, y, settings), None)
    X, y = np.asarray(X), plain_labels(np.asarray(y))
    train_idx, val_idx = split_validation(y, settings.val_fraction, settings.seed)
    if too_small_to_split(y, settings.val_fraction):
        chosen = settings if alternative is None else choose(X, y, settings, model, alternative, train_idx, val_idx)[2]
        return fit(X, y, replace(chosen, val_fraction=0.0), on_epoch, second=False)
    if alternative is None:
        return fit_watched(model, X, y, settings, train_idx, on_epoch)
    trained, history, _ = choose(X, y, settings, model, alternative, train_idx, val_idx)
    for record in history if on_epoch else ():
        on_epoch(record)
    return trained


def choose(X: np.ndarray, y: np.ndarray, settings: Settings, model: Model, alternative: Settings,
           train_idx: np.ndarray, val_idx: np.ndarray) -> tuple[Model, list[dict], Settings]:
    """``fit``'s two candidates trained on the training part: the one of higher validation
    accuracy, its epochs' records and its settings."""
    runs = []
    for s, start in ((settings, model), (alternative, initial_model(X, y, alternative))):
        history: list[dict] = []
        trained = fit_watched(start, X, y, s, train_idx, history.append)
        runs.append((trained.score(X[val_idx], y[val_idx]), trained, history, s))
    # A tie keeps the smaller network (fewer weights: less memory and time on a board), and
    # on equal size the default (max keeps the first). Judged on a few validation samples,
    # accuracy ties often: the coarser code of a long series is the smaller one
    # (PickupGestureWiimoteZ-long seed 2: 34 -> 64).
    _, chosen, history, chosen_settings = max(runs, key=lambda run: (run[0], -run[1].spec.synapses))
    return chosen, history, chosen_settings


def fit_watched(model: Model, X: np.ndarray, y: np.ndarray, settings: Settings, train_idx: np.ndarray,
                on_epoch: Callable[[dict], None] | None = None) -> Model:
    """``fit``'s training of ``model`` (its initial model) with the code it was built with,
    watched for a run at chance where ``per_point_fallback`` has a code to start again with."""
    epochs = settings.epochs or default_epochs(len(train_idx))
    fallback = per_point_fallback(model, settings)
    if fallback is None:
        return train(model, X, y, epochs, on_epoch=on_epoch, follow_progress=not settings.epochs)
    counts = np.unique(y[train_idx], return_counts=True)[1]
    watch = AtChance(AT_CHANCE_EPOCHS, len(train_idx) - int(counts.max()), len(train_idx), on_epoch)
    trained = train(model, X, y, epochs, follow_progress=not settings.epochs, observers=[watch])
    if not watch.stuck:
        return trained
    return fit(X, y, replace(settings, binarize=fallback), on_epoch)
