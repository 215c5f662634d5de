"""The host-side schedule between epochs (docs/algorithm.md §2.5, §2.7).

Per epoch the host turns the previous epoch's training error into each layer's
fixed-point reinforcement count Q, and grows γ (sparser updates) once validation
accuracy has stalled for ``patience`` epochs. The numpy trainer, ``verify`` and the
device stream all use this one class, so they feed the C code identical integers.
"""

from __future__ import annotations

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
