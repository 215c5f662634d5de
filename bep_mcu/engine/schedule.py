"""The schedule between epochs (docs/algorithm.md §2.5, §2.7, §6): one for every trainer.

Per epoch the previous epoch's training error becomes each layer's fixed-point
reinforcement count Q, and γ grows (sparser updates) once the stall criterion has not
improved for ``patience`` epochs. :class:`IntegerSchedule` does it with integers only,
the same lines as ``bep_end_epoch`` in the C runtime (bep_standalone.c), so numpy, the
C twin and a board compute the same γ and Q from their own counters:

- Q comes from a table over quantised training error rates (:func:`q_table`, rendered
  into the generated C);
- a stall is an epoch whose judged error count is not lower than the best epoch's
  (compared exactly, cross-multiplied); what is judged is an (errors, samples) pair the
  caller chooses (:func:`stall_counts`): the epoch's training counts on a board, in
  ``verify`` and ``stream`` (the C only ever sees those), the validation split's or
  validation + training pooled on the host's ``fit``;
- γ' = min(cap, ceil(γ · growth)), growth a multiple of 1/16 (1.5 by default) and the
  cap per layer max(γ0, width // gamma_cap_div) (:func:`gamma_caps`), one value for the
  host and the generated C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from bep_mcu import validate
from bep_mcu.engine import rng
from bep_mcu.engine.spec import MAX_PATIENCE, HyperParams, NetSpec, reinforcement_probability

STALL_SIGNALS = ("auto", "training")
# "auto" judges stalls on the validation split alone from this many samples on; below, its
# correct count hardly ever improves (3-6 samples on small sets), so the epoch's training
# predictions are pooled with it (docs/accuracy.md §2).
MIN_VALIDATION = 20


def reinforcement_counts(spec: NetSpec, p_r: float, error_rate: float) -> list[int]:
    """Fixed-point reinforcement count Q per layer for a training error rate E."""
    return [
        rng.reinforcement_q(reinforcement_probability(p_r, error_rate, spec.fan_in(i)), rows * cols)
        for i, (rows, cols) in enumerate(spec.layer_shapes())
    ]


Q_LEVELS = 256
"""Error rates are quantised to levels 0..Q_LEVELS (level = E · Q_LEVELS, rounded half
up); the Q table has Q_LEVELS + 1 entries per layer (1 KB a layer in flash)."""


# A board moves its epoch-start marks once an epoch reaches this many samples (BEP_EPOCH_MAX_SAMPLES of
# bep_runtime.h, which a test reads): an epoch the host schedules stays below it.
EPOCH_MAX_SAMPLES = 1 << 31


def error_level(errors: int, samples: int) -> int:
    """An epoch's error count → its quantised error rate (integers only, as in C)."""
    return (2 * errors * Q_LEVELS + samples) // (2 * samples)


def rate_level(error_rate: float) -> int:
    """A recorded error rate (a model's ``training.error_rate``) → its level."""
    return min(Q_LEVELS, max(0, math.floor(error_rate * Q_LEVELS + 0.5)))


def q_table(spec: NetSpec, p_r: float) -> list[list[int]]:
    """Q per layer (rows) and level (columns): ``reinforcement_counts`` at E = level / Q_LEVELS.
    Floating point runs here, once, on the host; the device only indexes the table."""
    columns = [reinforcement_counts(spec, p_r, level / Q_LEVELS) for level in range(Q_LEVELS + 1)]
    return [[column[layer] for column in columns] for layer in range(spec.n_layers)]


def grown(gamma: int, growth: Fraction, cap: int) -> int:
    """γ after a stall: ceil(γ · growth), at most ``cap`` (a growth above 1 always moves γ)."""
    return min(cap, -(-gamma * growth.numerator // growth.denominator))


def gamma_caps(spec: NetSpec, hyper: HyperParams, gamma0) -> list[int]:
    """The largest γ per layer: max(γ0, width // gamma_cap_div), γ0 the model's initial γ
    (``IntParams.gamma``), so a cap never lowers a γ the user chose."""
    return [max(int(g), width // hyper.gamma_cap_div) for g, width in zip(gamma0, spec.hidden)]


def stall_counts(signal: str, training: tuple[int, int], validation: tuple[int, int]) -> tuple[int, int]:
    """The (errors, samples) an epoch's stall is judged on, from its training and
    validation (errors, samples): ``"training"`` the training counts (what a board has);
    ``"auto"`` the validation counts when there are at least MIN_VALIDATION samples, else
    both pooled (the training counts when there is no validation split)."""
    if signal == "training":
        return training
    if signal != "auto":
        raise ValueError(f"unknown stall signal {signal!r}")
    if validation[1] >= MIN_VALIDATION:
        return validation
    return training[0] + validation[0], training[1] + validation[1]


@dataclass(frozen=True)
class EpochStart:
    """Where the schedule stands as an epoch opens: the epoch (it keys the sample order),
    the schedule's state (:meth:`IntegerSchedule.state`) and, for an epoch that continues
    after an interruption, its samples already trained and how many of them were
    predicted wrong. A board keeps it (SET_EPOCH), so it survives the host; a model file
    keeps it (``training.resume``), so ``stream`` continues exactly there. Integers of a
    state the C runtime keeps (bep_runtime.h, bep_schedule_state_t)."""

    epoch: int = 0
    level: int = Q_LEVELS  # the level of an error rate of 1: a fresh model
    stalled: int = 0
    best_errors: int = 0
    best_samples: int = 0  # 0: no epoch judged yet
    samples: int = 0
    errors: int = 0

    FIELDS = ("epoch", "level", "stalled", "best_errors", "best_samples", "samples", "errors")

    def __post_init__(self) -> None:
        for name, hi in (("epoch", validate.UINT32_MAX), ("level", Q_LEVELS), ("stalled", MAX_PATIENCE - 1),
                         ("best_samples", validate.UINT32_MAX), ("best_errors", self.best_samples),
                         ("samples", EPOCH_MAX_SAMPLES - 1), ("errors", self.samples)):
            validate.integer(getattr(self, name), f"epoch record {name}", 0, hi)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.FIELDS}


class IntegerSchedule:
    """The schedule (module docstring). Parameters: p_r (through the Q table),
    ``patience``, the growth factor (a rational, e.g. 2 or Fraction(3, 2)) and the cap of
    γ per layer (:func:`gamma_caps`)."""

    def __init__(self, spec: NetSpec, gamma: list[int], p_r: float, patience: int, growth: int | Fraction,
                 cap: list[int], error_rate: float = 1.0) -> None:
        self.spec = spec
        self.gamma = [int(g) for g in gamma]
        self.patience, self.growth = patience, Fraction(growth)
        self.cap = [int(c) for c in cap]
        self.table = q_table(spec, p_r)
        self.level = rate_level(error_rate)
        self.error_rate = error_rate  # for the model's record only; the schedule reads ``level``
        self.best_errors, self.best_samples, self.stalled = 0, 0, 0  # best_samples 0: no epoch yet

    def q(self) -> list[int]:
        return [row[self.level] for row in self.table]

    def end_epoch_counts(self, errors: int, samples: int, judged: tuple[int, int] | None = None) -> bool:
        """Record an epoch's training error count (Q of the next epoch); γ grows after
        ``patience`` epochs whose ``judged`` (errors, samples) (default: the training
        counts) have no lower error rate than the best epoch's (compared exactly:
        e·s_best < e_best·s). True if this epoch is the new best."""
        self.error_rate = errors / samples
        self.level = error_level(errors, samples)
        e, s = (errors, samples) if judged is None else judged
        if self.best_samples == 0 or e * self.best_samples < self.best_errors * s:
            self.best_errors, self.best_samples, self.stalled = e, s, 0
            return True
        self.stalled += 1
        if self.stalled >= self.patience:
            self.gamma = [grown(g, self.growth, c) for g, c in zip(self.gamma, self.cap)]
            self.stalled = 0
        return False

    def state(self) -> dict[str, int]:
        """What a board keeps between epochs (bep_schedule_state_t), for snapshots."""
        return {"level": self.level, "stalled": self.stalled, "best_errors": self.best_errors,
                "best_samples": self.best_samples}

    def restore(self, start: EpochStart) -> None:
        """Continue from the state an epoch opened with (an interrupted run's record)."""
        self.level, self.stalled = start.level, start.stalled
        self.best_errors, self.best_samples = start.best_errors, start.best_samples


class FixedSchedule(IntegerSchedule):
    """The first epoch's γ and Q throughout: nothing an epoch counts changes them (golden
    vectors replay one SET_EPOCH)."""

    def end_epoch_counts(self, errors: int, samples: int, judged: tuple[int, int] | None = None) -> None:
        return None


class GrowingSchedule(IntegerSchedule):
    """The schedule, and besides γ multiplied by the growth every ``every`` epochs, capped
    only by the widths: the widest range of γ in few epochs, for the bit-exact checks."""

    def __init__(self, *args, every: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.every, self.closed = every, 0

    def end_epoch_counts(self, errors: int, samples: int, judged: tuple[int, int] | None = None) -> bool:
        best = super().end_epoch_counts(errors, samples, judged)
        self.closed += 1
        if self.closed % self.every == 0:
            self.gamma = [grown(g, self.growth, width) for g, width in zip(self.gamma, self.spec.hidden)]
        return best


class ProgressMarks:
    """What the budget keeps between epochs (:class:`ProgressBudget`): the epochs closed and a
    mark, the last epoch whose training error count fell by the gain (1 % of ``samples``, at
    least 1) below the marked count; the first epoch always marks. Integers only, the lines
    of ``bep_end_epoch`` (bep_standalone.c), which keeps the same three integers in the
    board's schedule state and its snapshots (``state``: the C's names)."""

    GAIN_DIVISOR = 100  # BEP_BUDGET_GAIN_DIV

    def __init__(self, samples: int) -> None:
        self.gain = max(1, samples // self.GAIN_DIVISOR)
        self.marked_errors, self.marked_epoch, self.epochs = 0, 0, 0  # marked_epoch 0: no mark yet

    def end_epoch(self, errors: int) -> None:
        """Record an epoch's training error count."""
        self.epochs += 1
        if self.marked_epoch == 0 or errors + self.gain <= self.marked_errors:
            self.marked_errors, self.marked_epoch = errors, self.epochs

    def state(self) -> dict[str, int]:
        return {"budget_epochs": self.epochs, "marked_epoch": self.marked_epoch, "marked_errors": self.marked_errors}


class ProgressBudget(ProgressMarks):
    """How long ``fit`` trains when no epoch count is given, and a board that learns alone
    with ``--follow-progress`` (``bep_should_stop``): at least ``minimum`` epochs (the fixed
    budget of before, ``training.default_epochs``), then on while the training error still
    falls, at most ``cap`` epochs (docs/accuracy.md §2).

    "Still falls": the epoch marks (:class:`ProgressMarks`). Training stops after the first
    epoch from ``minimum`` on that is ``window`` epochs past the mark. The numbers are the
    C's (bep_standalone.h, BEP_BUDGET_*)."""

    WINDOW_DIVISOR = 4  # the window: a quarter of the minimum budget, at least MIN_WINDOW epochs
    MIN_WINDOW = 10
    CAP_FACTOR = 4  # at most four times the minimum budget
    MAX_MINIMUM = 1 << 31

    def __init__(self, samples: int, minimum: int) -> None:
        super().__init__(samples)
        self.minimum = validate.integer(minimum, "minimum epochs", 1, self.MAX_MINIMUM)
        self.cap = self.CAP_FACTOR * minimum
        self.window = max(self.MIN_WINDOW, minimum // self.WINDOW_DIVISOR)

    def end_epoch(self, errors: int) -> bool:
        """Record an epoch's training error count; True when training should stop after it."""
        super().end_epoch(errors)
        return self.stop()

    def stop(self) -> bool:
        """Whether training should stop after the epochs recorded (``bep_should_stop``)."""
        return self.epochs >= self.cap or (self.epochs >= self.minimum
                                           and self.epochs - self.marked_epoch >= self.window)
