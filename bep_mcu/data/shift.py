"""The shifts a deployed sensor meets, applied to raw data (what a board reads).

:class:`SensorDrift` is the commonest: each feature's reading drifts in gain and offset
and gets noisier, x' = gain · x + offset · sd + noise · sd · N(0, 1), with sd the
feature's standard deviation in the training data (so the drift is in each feature's own
units). Seeded: the same data, drift and seed give the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bep_mcu import validate


@dataclass(frozen=True)
class SensorDrift:
    gain: float = 1.3       # the sensor reads 30 % high
    offset_sd: float = 1.0  # and one standard deviation off
    noise_sd: float = 0.2   # with noise of a fifth of a standard deviation

    def __post_init__(self) -> None:
        validate.number(self.gain, "drift gain", 0.0, 1e6)
        validate.number(self.offset_sd, "drift offset", -1e6, 1e6)
        validate.number(self.noise_sd, "drift noise", 0.0, 1e6)

    def apply(self, X: np.ndarray, reference: np.ndarray, seed: int) -> np.ndarray:
        """``X`` as the drifted sensor reads it; ``reference``: the training data the
        features' standard deviations come from (samples along the first axis)."""
        sd = np.asarray(reference, dtype=np.float64).std(axis=0)
        noise = np.random.default_rng(seed).standard_normal(np.shape(X))
        return np.asarray(X, dtype=np.float64) * self.gain + (self.offset_sd + self.noise_sd * noise) * sd

    def describe(self) -> str:
        return (f"sensor drift: gain {self.gain:g}, offset {self.offset_sd:+g} sd, noise {self.noise_sd:g} sd per "
                f"feature")
