"""Network description and hyperparameters, validated once, hashed for the C side.

Floats given by the user (r, ν, p_r, …) are turned into the integers the training
step actually uses (``R``, ``G``, ``γ``, fixed-point ``Q``) here, on the host, so the
numpy engine and the C code read the very same numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction

import numpy as np

from bep_mcu import validate
from bep_mcu.errors import BEPError

MODELS = ("mlp", "rnn")
HIDDEN_BITS = (8, 16)
# The hidden weights' type at each width: numpy's (little-endian, as files and the C state
# hold them) and C's.
HIDDEN_DTYPE = {8: "<i1", 16: "<i2"}
HIDDEN_CTYPE = {8: "int8_t", 16: "int16_t"}
# Limits of a network, from the C runtime's types (bep_runtime.h) and the host's cost:
MAX_LAYERS = 4        # bep_config_t holds four layers
MAX_FAN_IN = 32767    # pre-activations are int16: |z| <= fan-in
MAX_WIDTH = 32767     # a width is the next layer's fan-in
MAX_CLASSES = 256     # the fixed classifier's construction is quadratic in classes
MAX_STEPS = 4096      # RNN steps per sequence
MAX_INPUT_WORDS = 65535  # packed words of one sample (uint16 in bep_config_t)
MAX_PATIENCE = 1_000_000  # epochs without a better stall criterion before γ grows
# γ's growth factor is a multiple of 1/GROWTH_DENOMINATOR, so that it is exact as a JSON number and
# as the C schedule's integers (γ · numerator stays far inside uint32: 32767 · 1024 · 16 < 2^30).
GROWTH_DENOMINATOR = 16
MAX_GROWTH = 1024


@dataclass(frozen=True)
class NetSpec:
    """Shapes of a binary network.

    mlp: ``n_inputs`` bits → hidden widths → ``n_classes`` (fixed classifier).
    rnn: an Elman cell of width ``hidden[0]`` reading ``n_inputs`` bits per step for
    ``steps`` steps; its hidden weights are one matrix whose row j is
    ``[H_x[j, :], H_h[j, :]]`` (fan-in ``n_inputs + hidden[0]``).
    """

    model: str
    n_inputs: int
    hidden: tuple[int, ...]
    n_classes: int
    hidden_bits: int = 8
    steps: int = 1

    @property
    def hidden_dtype(self) -> str:
        """numpy's name of the hidden weights' type (``HIDDEN_DTYPE``)."""
        return HIDDEN_DTYPE[self.hidden_bits]

    def __post_init__(self) -> None:
        validate.choice(self.model, "model", MODELS)
        if self.hidden_bits not in HIDDEN_BITS or isinstance(self.hidden_bits, bool):
            raise BEPError(f"hidden bits must be 8 or 16, got {validate.show(self.hidden_bits)}")
        if not isinstance(self.hidden, tuple) or not 1 <= len(self.hidden) <= MAX_LAYERS:
            raise BEPError(f"hidden must list 1..{MAX_LAYERS} layer widths, got {validate.show(self.hidden)}")
        for width in self.hidden:
            validate.integer(width, "hidden width", 1, MAX_WIDTH)
        if self.model == "rnn" and len(self.hidden) != 1:
            raise BEPError(f"an rnn has one hidden layer, got hidden={list(self.hidden)}")
        validate.integer(self.n_inputs, "input bits", 1, MAX_FAN_IN)
        validate.integer(self.n_classes, "classes", 2, MAX_CLASSES)
        validate.integer(self.steps, "steps", 1, MAX_STEPS if self.model == "rnn" else 1)
        for layer in range(self.n_layers):
            if self.fan_in(layer) > MAX_FAN_IN:
                raise BEPError(f"layer {layer} has fan-in {self.fan_in(layer)}; the C runtime holds at most "
                               f"{MAX_FAN_IN} (int16 pre-activations)")
        if self.steps * ((self.n_inputs + 31) // 32) > MAX_INPUT_WORDS:
            raise BEPError(f"{self.steps} steps of {self.n_inputs} input bits exceed {MAX_INPUT_WORDS} packed words")

    @property
    def n_layers(self) -> int:
        return len(self.hidden)

    def fan_in(self, layer: int) -> int:
        """Inputs of hidden layer ``layer`` (0-based)."""
        if self.model == "rnn":
            return self.n_inputs + self.hidden[0]
        return self.n_inputs if layer == 0 else self.hidden[layer - 1]

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(rows, columns) of each hidden-weight matrix."""
        return [(self.hidden[i], self.fan_in(i)) for i in range(self.n_layers)]

    @property
    def weight_limits(self) -> tuple[int, int]:
        """Saturation bounds of the hidden weights: [-2^(B-1), 2^(B-1) - 1]."""
        half = 1 << (self.hidden_bits - 1)
        return -half, half - 1

    @property
    def synapses(self) -> int:
        return sum(r * c for r, c in self.layer_shapes())


@dataclass(frozen=True)
class HyperParams:
    """BEP hyperparameters (docs/algorithm.md §2); defaults come from the sweep in the README."""

    r: float = 0.5  # trigger margin, relative to the last hidden width
    nu: float = 0.05  # gate half-width, relative to the fan-in of the gated layer
    gamma: tuple[int, ...] | None = None  # initial group size per layer; None → default_gamma
    # γ after a stall: ceil(γ · growth), at most the layer's cap (engine/schedule.py). ×1.5 and a cap of
    # width / 4 come from the defaults study (docs/accuracy.md §2): uncapped, γ reached the full width (one
    # update per sample) by epoch ~20 on small sets. Model files without gamma_cap_div mean 1 (the width).
    gamma_growth: int | float = 1.5
    gamma_cap_div: int = 4  # cap of γ per layer: max(initial γ, width // gamma_cap_div)
    patience: int = 3  # epochs without a better stall criterion before γ grows
    p_r: float = 0.5  # reinforcement strength
    sigma: float = 16.0  # std-dev of the initial hidden weights
    alpha: float = 1.0  # variance weight of the BEF objective
    # Host fit: end with the hidden weights of the epoch with the best stall criterion (the history marks
    # it). Off: with the 3-6 validation samples of small sets it picked early, lucky epochs and cost 5-6
    # points in the study (docs/accuracy.md §5); it may help with a large validation split.
    restore_best: bool = False

    def __post_init__(self) -> None:
        for name, hi in (("r", 2.0), ("nu", 1.0), ("p_r", 16.0), ("sigma", 1e6), ("alpha", 1e6)):
            validate.number(getattr(self, name), name, 0.0, hi)
        if self.gamma is not None:
            validate.integers(self.gamma, "gamma", 1, MAX_WIDTH, max_len=MAX_LAYERS)
        exact = growth(self.gamma_growth, "gamma growth")  # stored as a plain JSON number (2 or 1.5)
        object.__setattr__(self, "gamma_growth", int(exact) if exact.denominator == 1 else float(exact))
        validate.integer(self.gamma_cap_div, "gamma cap divisor", 1, MAX_WIDTH)
        validate.integer(self.patience, "patience", 1, MAX_PATIENCE)
        if not isinstance(self.restore_best, bool):
            raise BEPError(f"restore best must be true or false, got {validate.show(self.restore_best)}")

    @property
    def growth(self) -> Fraction:
        """γ's growth factor as the exact rational the schedules multiply by."""
        return growth(self.gamma_growth, "gamma growth")


def growth(value: object, field: str) -> Fraction:
    """A γ growth factor: a number in 1..MAX_GROWTH that is a multiple of 1/GROWTH_DENOMINATOR."""
    number = validate.number(value, field, 1, MAX_GROWTH)
    exact = Fraction(number)
    if (exact * GROWTH_DENOMINATOR).denominator != 1:
        raise BEPError(f"{field} must be a multiple of 1/{GROWTH_DENOMINATOR} (e.g. 1.5, 2), got {value!r}")
    return exact


@dataclass(frozen=True)
class IntParams:
    """The integers a training step uses (what the C code receives)."""

    trigger_margin: int  # R = floor(r · K_L)
    gate: tuple[int, ...]  # G per layer: floor(ν · fan-in of that layer)
    gamma: tuple[int, ...] = field(default=())  # initial γ per layer

    def check(self, spec: NetSpec, field_prefix: str = "") -> "IntParams":
        """Refuse integers the network cannot use (and the C types cannot hold)."""
        validate.integer(self.trigger_margin, f"{field_prefix}trigger_margin", 0, 2 * spec.hidden[-1])
        validate.integers(self.gate, f"{field_prefix}gate", 0, MAX_FAN_IN, length=spec.n_layers)
        for i, g in enumerate(validate.integers(self.gamma, f"{field_prefix}gamma", 1, MAX_WIDTH,
                                                length=spec.n_layers)):
            validate.integer(g, f"{field_prefix}gamma[{i}]", 1, spec.hidden[i])
        return self


# The initial γ is width // GAMMA0_DIV[model]. An MLP starts dense (width/16) and sparsifies on
# stalls: width/4 from the start underfits digits by 2-15 points. The RNN starts at its cap
# (width/4, so γ stays fixed): +0.6 over eight UCR sets × ten seeds, level on digits and
# prototypes read as series (docs/accuracy.md §2).
GAMMA0_DIV = {"mlp": 16, "rnn": 4}


def default_gamma(spec: NetSpec) -> tuple[int, ...]:
    return tuple(max(1, k // GAMMA0_DIV[spec.model]) for k in spec.hidden)


def int_params(spec: NetSpec, hp: HyperParams) -> IntParams:
    widths = spec.hidden
    if hp.gamma is None:
        gamma = default_gamma(spec)
    else:
        gamma = tuple(int(g) for g in hp.gamma)
        if len(gamma) == 1 and len(widths) > 1:
            gamma = gamma * len(widths)
        if len(gamma) != len(widths):
            raise BEPError(f"gamma needs one value per hidden layer ({len(widths)}), got {list(gamma)}")
        gamma = tuple(min(g, k) for g, k in zip(gamma, widths))
    return IntParams(
        trigger_margin=int(math.floor(hp.r * widths[-1])),
        gate=tuple(int(math.floor(hp.nu * spec.fan_in(i))) for i in range(spec.n_layers)),
        gamma=gamma,
    ).check(spec)


def reinforcement_probability(p_r: float, error_rate: float, fan_in: int) -> float:
    """Per-weight, per-batch probability p = p_r · sqrt(E) · sqrt(2 / (π · K_in))."""
    return p_r * math.sqrt(max(0.0, error_rate)) * math.sqrt(2.0 / (math.pi * fan_in))


def config_hash(spec: NetSpec, ip: IntParams, max_classes: int | None = None, input_means=None) -> str:
    """A short hash of everything the C code is specialised on (shapes and integers). The
    classes are the classifier table's rows, ``max_classes`` (default: ``spec.n_classes``):
    the classes in use and the prototypes reserved for classes to come, so a model that put a
    reserved prototype in use still matches the firmware built before it (the board reports
    its classes in use apart: bep_set_classes). A first layer's input centring (``input_means``, int16)
    is part of it where the model has one."""
    spec = replace(spec, n_classes=max_classes or spec.n_classes)
    doc = {"spec": asdict(spec), "int": {"R": ip.trigger_margin, "G": list(ip.gate)}}
    if input_means is not None:
        doc["input_means"] = hashlib.sha256(np.asarray(input_means, dtype="<i2").tobytes()).hexdigest()
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
