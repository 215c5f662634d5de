"""The schedule between epochs (docs/algorithm.md §2.5, §2.7, §6).

Per epoch the previous epoch's training error becomes each layer's fixed-point
reinforcement count Q, and γ grows (sparser updates) once the stall signal has not
improved for ``patience`` epochs. Two modes:

- :class:`EpochSchedule` (host ``fit``): Q from the error rate in floating point, stalls
  judged on the validation accuracy.
- :class:`IntegerSchedule` (on-device training: ``stream``, ``verify``, a board that
  learns on its own): integers only, the same lines as ``bep_end_epoch`` in the C
  runtime (bep_standalone.c), so numpy, the C twin and a board compute the same γ and
  Q from their own error counters. Q comes from a table over quantised error rates
  (:func:`q_table`, rendered into the generated C), stalls from the epoch's error
  count compared exactly (cross-multiplied) with the best epoch's.
"""

from __future__ import annotations

import math
from fractions import Fraction

from bep_mcu.engine import rng
from bep_mcu.engine.spec import NetSpec, reinforcement_probability


def reinforcement_counts(spec: NetSpec, p_r: float, error_rate: float) -> list[int]:
    """Fixed-point reinforcement count Q per layer for a training error rate E."""
    return [
        rng.reinforcement_q(reinforcement_probability(p_r, error_rate, spec.fan_in(i)), rows * cols)
        for i, (rows, cols) in enumerate(spec.layer_shapes())
    ]


class EpochSchedule:
    def __init__(self, spec: NetSpec, gamma: list[int], p_r: float, patience: int, growth: int = 2,
                 error_rate: float = 1.0) -> None:
        self.spec = spec
        self.gamma = [int(g) for g in gamma]
        self.p_r, self.patience, self.growth = p_r, patience, growth
        self.error_rate = error_rate  # 1.0 before the first epoch (docs/algorithm.md §2.7)
        self.best, self.stalled = -1.0, 0

    def q(self) -> list[int]:
        """Fixed-point reinforcement count per layer for the coming epoch."""
        return reinforcement_counts(self.spec, self.p_r, self.error_rate)

    def end_epoch(self, error_rate: float, val_accuracy: float) -> None:
        """Record the epoch's training error and validation accuracy; maybe grow γ."""
        self.error_rate = error_rate
        if val_accuracy > self.best:
            self.best, self.stalled = val_accuracy, 0
            return
        self.stalled += 1
        if self.stalled >= self.patience:
            self.gamma = [min(g * self.growth, k) for g, k in zip(self.gamma, self.spec.hidden)]
            self.stalled = 0


Q_LEVELS = 256
"""Error rates are quantised to levels 0..Q_LEVELS (level = E · Q_LEVELS, rounded half
up); the Q table has Q_LEVELS + 1 entries per layer (1 KB a layer in flash)."""


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


class IntegerSchedule:
    """The on-device schedule (module docstring). Parameters: p_r (through the Q table),
    ``patience``, the growth factor (a rational, e.g. 2 or Fraction(3, 2)) and the cap of
    γ per layer (default: the layer widths)."""

    def __init__(self, spec: NetSpec, gamma: list[int], p_r: float, patience: int, growth: int | Fraction = 2,
                 cap: list[int] | None = None, error_rate: float = 1.0) -> None:
        self.spec = spec
        self.gamma = [int(g) for g in gamma]
        self.patience, self.growth = patience, Fraction(growth)
        self.cap = list(spec.hidden) if cap is None else [int(c) for c in cap]
        self.table = q_table(spec, p_r)
        self.level = rate_level(error_rate)
        self.error_rate = error_rate  # for the model's record only; the schedule reads ``level``
        self.best_errors, self.best_samples, self.stalled = 0, 0, 0  # best_samples 0: no epoch yet

    def q(self) -> list[int]:
        return [row[self.level] for row in self.table]

    def end_epoch_counts(self, errors: int, samples: int) -> None:
        """Record an epoch's error count; γ grows after ``patience`` epochs without a
        lower error rate than the best one (compared exactly: e·s_best < e_best·s)."""
        self.error_rate = errors / samples
        self.level = error_level(errors, samples)
        if self.best_samples == 0 or errors * self.best_samples < self.best_errors * samples:
            self.best_errors, self.best_samples, self.stalled = errors, samples, 0
            return
        self.stalled += 1
        if self.stalled >= self.patience:
            self.gamma = [grown(g, self.growth, c) for g, c in zip(self.gamma, self.cap)]
            self.stalled = 0

    def state(self) -> dict[str, int]:
        """What a board keeps between epochs (bep_schedule_state_t), for snapshots."""
        return {"level": self.level, "stalled": self.stalled, "best_errors": self.best_errors,
                "best_samples": self.best_samples}
