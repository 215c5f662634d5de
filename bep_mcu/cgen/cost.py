"""Instructions per training sample of the generated C on a Cortex-M core, predicted.

``python -m bep_mcu.icount`` counts them exactly by executing the cross-compiled code,
which takes minutes per network; a sweep needs a figure for every candidate network
in microseconds. This is a linear model of the C runtime's work per training sample,
in the worst case (every sample triggers an update, as in a barely trained network):

  instructions = s · (W_X · xnor_words + W_U · update_bytes + W_N · neurons)   per-sample work
               + c_draw · draws / B                                             reinforcement
               + c_pack · repacked_words / B                                    repacking dirty rows

- ``xnor_words``: packed words read by XNOR-popcount per sample: the forward pass of
  every layer and the classifier, the backward pass through the packed transposes
  (MLP layers after the first, the RNN's recurrent weights), every step of an RNN.
- ``update_bytes``: hidden-weight bytes written per sample: one winner per group of γ
  neurons per layer (per step for an RNN), a whole row each.
- ``neurons``: hidden neurons per sample (winner selection, gates, signs).
- ``draws``: expected reinforcement draws per batch, p_r·√E·√(2/(π·fan-in))·rows·cols.
- ``repacked_words``: packed words rebuilt per batch, for every dirty row (at most all).

The split of the per-sample work (W_X, W_U, W_N) is the Cortex-M4's, from icount's
per-part breakdown at batch 100 (``python -m bep_mcu.icount --json``, docs/performance.md:
forward 7.2 k, row updates 5.2 k, winner selection and the rest 1.3 k for 256-128-10). Each core then
has three coefficients (s, c_draw, c_pack), fitted by :func:`calibrate` to measured
totals; :data:`PUBLISHED` holds icount's published totals and :data:`DEFAULT` the
model fitted to them. Counts are instructions, not cycles. Cores without their own
figures use the nearest measured one (:data:`CORE_FAMILY`).

Beside it, two figures for adaptation (``bep-mcu adapt``, ``bench adaptation``): the hidden layers'
forward pass alone (:func:`hidden_forward_instructions`, the same model's forward terms) and
label-free recalibration per sample (:func:`calibration_instructions_per_sample`, an estimate read
off the compiled calibration loop, not a count).

Example::

    features(spec, params.gamma, batch_size=100, error_rate=1.0).instructions(DEFAULT["cortex-m4"])
    model = calibrate([Measurement("cortex-m4", spec, gamma, 100, 1.0, 14479), ...])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bep_mcu.cgen.toolchain import CORES
from bep_mcu.engine.spec import NetSpec, reinforcement_probability
from bep_mcu.errors import BEPError

# M4 instructions per unit of per-sample work, from icount's breakdown of 256-128-10 at
# batch 100, E = 1 (features below: 1064 XNOR words, 4096 update bytes, 128 neurons):
# forward 7,211 (the column form: about half the input bits' columns, 32 neurons a word, so
# still in proportion to the XNOR words); update 5,244; winner 1,131 + other 158 + repack/reinforcement 847.
W_XNOR = 7_211 / 1064
W_UPDATE = 5_244 / 4096
W_NEURON = 1_289 / 128

CORE_FAMILY = {name: core.cost_core for name, core in CORES.items()}  # -mcpu → the core whose coefficients it uses
P_R = 0.5  # the reinforcement strength icount's published figures were measured with (the default)


def _words(bits: int) -> int:
    return (bits + 31) // 32


@dataclass(frozen=True)
class Coefficients:
    """One core's model: per-sample work scale, instructions per draw and per repacked word."""

    sample: float
    draw: float
    pack: float

    def as_array(self) -> np.ndarray:
        return np.array([self.sample, self.draw, self.pack])


@dataclass(frozen=True)
class Features:
    """The work of one training sample at a batch size and error rate (module docstring)."""

    xnor_words: float
    update_bytes: float
    neurons: float
    draws: float  # per sample (per-batch draws / B)
    repacked_words: float  # per sample

    def as_array(self) -> np.ndarray:
        """The three terms the coefficients multiply."""
        work = W_XNOR * self.xnor_words + W_UPDATE * self.update_bytes + W_NEURON * self.neurons
        return np.array([work, self.draws, self.repacked_words])

    def instructions(self, c: Coefficients) -> float:
        return float(self.as_array() @ c.as_array())


def features(spec: NetSpec, gamma: Sequence[int], batch_size: int, error_rate: float = 1.0,
             p_r: float = P_R) -> Features:
    """The per-sample work of ``spec`` with groups ``gamma`` (worst case: every sample triggers).
    A layer of γ 0 is frozen: its forward pass only, and no backward pass below the lowest layer
    that learns (the runtime's bep_learn_mlp)."""
    steps = spec.steps
    wbytes = spec.hidden_bits // 8
    lowest = next((i for i, g in enumerate(gamma) if g), len(gamma))
    xnor = update = neurons = draws = repack = 0.0
    for i, ((rows, cols), g) in enumerate(zip(spec.layer_shapes(), gamma)):
        winners = math.ceil(rows / g) if g else 0
        if spec.model == "rnn":
            row_words = _words(spec.n_inputs) + _words(rows)  # visible and recurrent parts
            xnor += steps * rows * (row_words + (_words(rows) if g else 0))  # forward, then back through W_h^T
        else:
            row_words = _words(cols)
            # forward, backward through the transpose to the layer below when it or one under it learns
            xnor += rows * row_words + (cols * _words(rows) if i > lowest else 0)
        update += steps * winners * cols * wbytes
        neurons += steps * rows
        if g:
            draws += reinforcement_probability(p_r, error_rate, spec.fan_in(i)) * rows * cols
        transposed = spec.model == "rnn" or i > 0
        repack += min(rows, batch_size * steps * winners) * row_words * (2 if transposed else 1)
    xnor += spec.n_classes * _words(spec.hidden[-1])
    return Features(xnor, update, neurons, draws / batch_size, repack / batch_size)


@dataclass(frozen=True)
class Measurement:
    """Instructions per training sample counted by icount for one network and setting."""

    core: str
    spec: NetSpec
    gamma: tuple[int, ...]
    batch_size: int
    error_rate: float
    instructions: float


def calibrate(measurements: Iterable[Measurement]) -> dict[str, Coefficients]:
    """Per core, the coefficients that fit its measured totals best in relative error
    (non-negative least squares). A core needs three measurements that vary the batch
    size and the error rate, as icount's published table does."""
    from scipy.optimize import nnls

    rows: dict[str, list[tuple[np.ndarray, float]]] = {}
    for m in measurements:
        f = features(m.spec, m.gamma, m.batch_size, m.error_rate).as_array()
        rows.setdefault(m.core, []).append((f / m.instructions, 1.0))
    fitted = {}
    for core, pairs in rows.items():
        if len(pairs) < 3:
            raise BEPError(f"calibrating {core} needs at least 3 measurements, got {len(pairs)}")
        a = np.array([p[0] for p in pairs])
        coef, _ = nnls(a, np.array([p[1] for p in pairs]))
        fitted[core] = Coefficients(*(float(c) for c in coef))
    return fitted


# icount's published table (README "Instructions per training sample", and rv32imac's run): 256-128-10, int8,
# γ = 8 (width/16), -Os, reinforcement included, a barely trained model.
_ICOUNT_SPEC = NetSpec("mlp", 256, (128,), 10)
PUBLISHED: tuple[Measurement, ...] = tuple(
    Measurement(core, _ICOUNT_SPEC, (8,), batch, e, n)
    for core, figures in (("cortex-m4", (14_479, 14_421, 27_928, 22_531)),
                          ("cortex-m0", (35_941, 35_778, 72_687, 57_370)),
                          # `python -m bep_mcu.icount --cpus rv32imac` (the portable C, GCC 12.2 -Os)
                          ("rv32imac", (30_894, 30_819, 53_121, 46_329)))
    for (batch, e), n in zip(((100, 1.0), (100, 0.1), (1, 1.0), (1, 0.1)), figures)
)
DEFAULT: dict[str, Coefficients] = calibrate(PUBLISHED)


def _core(cpu: str) -> str:
    try:
        return CORE_FAMILY[cpu]
    except KeyError:
        raise BEPError(f"no instruction model for {cpu}: choose one of {', '.join(CORE_FAMILY)}") from None


def instructions_per_sample(spec: NetSpec, gamma: Sequence[int], cpu: str, batch_size: int,
                            error_rate: float = 1.0, model: dict[str, Coefficients] | None = None) -> int:
    """Predicted instructions per training sample of ``spec`` on ``cpu`` (an -mcpu name)."""
    coefficients = (model or DEFAULT)[_core(cpu)]
    return int(round(features(spec, gamma, batch_size, error_rate).instructions(coefficients)))


# Label-free recalibration (bep_calib_observe, templates/runtime/bep_calibrate.c): instructions per
# followed threshold and per feature of one raw value, read off its code at -Os for each measured
# core (arm-none-eabi-gcc 12.2), along the common path: the accumulator moves, the threshold does not
# step, the feature's thresholds are already in order (the insertion sort's one compare each). An
# estimate from the compiled loop, not a count: icount does not run the calibration.
CALIBRATION_PER_THRESHOLD = {"cortex-m4": 37, "cortex-m0": 47}
CALIBRATION_PER_FEATURE = {"cortex-m4": 45, "cortex-m0": 55}
CALIBRATION_UNREAD = "cortex-m0"  # a core whose loop was not read off (rv32imac): the larger figures


def calibration_instructions_per_sample(thresholds: int, features: int, points: int, cpu: str) -> int:
    """Estimated instructions of recalibrating one sample of ``points`` points (1 for an MLP, the
    series' length for an RNN) of ``features`` raw values each, ``thresholds`` followed per point."""
    core = _core(cpu)
    if thresholds == 0:
        return 0
    core = core if core in CALIBRATION_PER_THRESHOLD else CALIBRATION_UNREAD
    return points * (thresholds * CALIBRATION_PER_THRESHOLD[core] + features * CALIBRATION_PER_FEATURE[core])


def hidden_forward_instructions(spec: NetSpec, cpu: str, model: dict[str, Coefficients] | None = None) -> int:
    """Predicted instructions of the hidden layers' forward pass of one sample (no classifier): the
    XNOR-popcount and per-neuron terms of :func:`features` for the forward part alone, what a
    network whose last layer is replaced by another classifier still runs."""
    coefficients = (model or DEFAULT)[_core(cpu)]
    xnor = neurons = 0.0
    for rows, cols in spec.layer_shapes():
        row_words = _words(spec.n_inputs) + _words(rows) if spec.model == "rnn" else _words(cols)
        xnor += spec.steps * rows * row_words if spec.model == "rnn" else rows * row_words
        neurons += spec.steps * rows
    return int(round(coefficients.sample * (W_XNOR * xnor + W_NEURON * neurons)))
