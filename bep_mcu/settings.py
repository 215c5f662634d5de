"""The settings of a new model, each declared once: one :class:`Setting` row in :data:`SETTINGS`.

A row says what a user may choose: the name, default, help text, the check of type and
range (its one-line error names the option), and where a model keeps the value. The faces
of the settings are derived from the table, in its order:

- ``training.Settings``: its fields, defaults and checks;
- ``bep-mcu train``'s options (``cli.common.setting_options``), and which of them
  ``train --init-from`` refuses (the continued model keeps them);
- ``BEPClassifier``'s parameters (its ``__init__`` signature) and ``from_model``
  (:func:`of_model`);
- the ``hyperparams`` and ``input`` objects of a model file (``modelio``): each value
  checked as here, its error naming the field;
- the values ``bep-mcu sweep`` searches (``search``).

A preset (:data:`PRESETS`, the ``preset`` row) is a named set of values for some settings, each
with its reason; ``training.Settings`` gives every setting left at its default the preset's value
(:func:`with_preset`), so ``train --preset``, the estimator's ``preset=`` and the benchmarks read
it the same way. ``bep-mcu presets`` lists them.

Adding a setting is one row here plus the code that uses it: for a BEP hyperparameter
(``stored="hyperparams"``), its field in ``engine.spec.HyperParams`` and the engine code that
reads it. tests/test_settings.py checks each face against the table.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from bep_mcu import validate
from bep_mcu.data.encoder import MAX_BIAS_BITS, MAX_LENGTH
from bep_mcu.engine.spec import HIDDEN_BITS, MAX_CLASSES, MAX_LAYERS, MAX_PATIENCE, MAX_WIDTH, MODELS, growth
from bep_mcu.errors import BEPError
from bep_mcu.model import MAX_BATCH_SIZE, MAX_EPOCHS

REQUIRED = object()  # ``file_default`` of a setting every model file holds
DEFAULT_HIDDEN = (512,)  # the widths of ``hidden`` left to its default (None)

# The Python type of each kind of value (the annotations of training.Settings).
TYPES = {"choice": "str", "text": "str", "int": "int", "ints": "tuple[int, ...]", "number": "float",
         "fraction": "float", "growth": "int | float", "flag": "bool"}
# The objects of a model file that keep settings, and the Model attributes they are written from.
HOLDERS = {"spec": "spec", "hyperparams": "hyper", "training": "training", "input": "encoder"}


@dataclass(frozen=True)
class Setting:
    """One setting of a new model. ``default`` None: decided from the data (the help says how)."""

    name: str
    default: object
    help: str
    # choice: one of ``choices``; text: checked where it is parsed; int (one of ``choices`` if
    # given), number: in lo..hi; ints: 1..MAX_LAYERS integers in lo..hi; fraction: a number in
    # [lo, hi); growth: engine.spec.growth; flag: true or false
    kind: str
    lo: float = 0
    hi: float = 0
    choices: tuple = ()
    label: str = ""  # what an error calls it [default: the option]
    one_for_rnn: bool = False  # ints: an rnn takes one (its one hidden layer)
    stored: str | None = None  # the model-file object (HOLDERS) that keeps it
    # What a model file without it means (one written before the setting existed); where that is
    # None, the file may also hold null.
    file_default: object = REQUIRED
    continued: bool = False  # ``train --init-from`` takes it; the model keeps the others
    search: tuple = ()  # the values ``bep-mcu sweep`` tries

    @property
    def annotation(self) -> str:
        return TYPES[self.kind] + (" | None" if self.default is None else "")

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: object, label: str | None = None, model: str = "mlp",
              nullable: bool | None = None) -> object:
        """``value`` checked as this setting (one-line ``BEPError`` naming ``label``), returned as
        the type the code relies on. None passes where ``nullable`` [default: the default is None]."""
        label = label or self.label or self.option
        if value is None and (self.default is None if nullable is None else nullable):
            return None
        if self.kind == "choice":
            return validate.choice(value, label, self.choices)
        if self.kind == "int" and self.choices:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value not in self.choices:
                raise BEPError(f"{label} must be {' or '.join(map(str, self.choices))}, got {validate.show(value)}")
            return int(value)
        if self.kind == "int":
            return validate.integer(value, label, self.lo, self.hi)
        if self.kind == "number":
            return validate.number(value, label, self.lo, self.hi)
        if self.kind == "ints":
            return validate.integers(value, label, self.lo, self.hi,
                                     max_len=1 if self.one_for_rnn and model == "rnn" else MAX_LAYERS)
        if self.kind == "fraction":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.lo <= value < self.hi:
                raise BEPError(f"{label} must be in [{self.lo:g}, {self.hi:g}), got {validate.show(value)}")
            return float(value)
        if self.kind == "growth":
            return growth(value, label)
        if self.kind == "flag":
            if not isinstance(value, bool):
                raise BEPError(f"{label} must be true or false, got {validate.show(value)}")
            return value
        return value  # text: a binariser spec, parsed and checked by data.binarize


@dataclass(frozen=True)
class Preset:
    """Values of some settings, each with why (``values``: name → (value, reason)); ``unstated``:
    the settings it leaves at the project's defaults because its source does not state them."""

    name: str
    summary: str
    values: dict
    unstated: tuple = ()

    def describe(self) -> str:
        return f"{self.name}: {self.summary}: " + "; ".join(
            f"--{name.replace('_', '-')} {show(value)} ({why})" for name, (value, why) in self.values.items()) + (
            f"; not stated, the project's defaults: {', '.join(n.replace('_', '-') for n in self.unstated)}.")


def show(value: object) -> str:
    """A setting's value as an option takes it (widths comma-separated)."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


# docs/algorithm.md's opening table gives the paper's value of every setting and how the project's differs.
PRESETS = {p.name: p for p in (
    Preset("paper", "the BEP paper's known values and the closest choices for the unknown ones", {
               "batch_size": (100, "the paper's"),
               "p_r": (0.5, "the paper's"),
               "r": (0.5, "the paper's range is 0.25-0.5; one value is not stated"),
               "gamma_growth": (2, "the paper doubles γ on a stall"),
               "gamma_cap_div": (1, "the paper has no cap: γ may grow to the width"),
               "val_fraction": (0.1, "the paper judges stalls on validation accuracy; the size of its split is not "
                                     "stated"),
               "bias_bits": (0, "the paper's RNN has no bias bits"),
               "hidden_bits": (16, "not stated; a third-party reimplementation reads 16-bit hidden weights"),
           }, unstated=("epochs", "binarize", "window", "nu", "gamma", "sigma", "patience", "restore_best")),
)}

SETTINGS: tuple[Setting, ...] = (
    Setting("model", "mlp", "Binary MLP or binary Elman RNN (BEP-TT).", "choice", choices=MODELS, stored="spec"),
    Setting("hidden", None, "Hidden widths, comma-separated (an rnn takes one) [default: 512; an mlp on tabular "
            "data whose --bias-bits are left to their default is also trained as 256,256 with 64 bias bits, kept "
            "where validation prefers it].", "ints", 1, MAX_WIDTH, one_for_rnn=True, stored="spec"),
    Setting("epochs", None, "Epochs [default: at least 50, more for small sets, then on while the training error "
            "falls, at most 4 times that].", "int", 1, MAX_EPOCHS, continued=True),
    Setting("batch_size", None, "Batch size [default: 100, or 10 below 1000 samples].", "int", 1, MAX_BATCH_SIZE,
            stored="training", continued=True),
    Setting("seed", 0, "Seed of initial weights, classifier, order and reinforcement (0..2^32-1).", "int", 0,
            validate.UINT32_MAX, stored="training"),
    Setting("binarize", "auto",
            "auto | median | median:global | thermometer:N[:uniform] | thermometer:N:point (an rnn's thresholds per "
            "time point) | passthrough "
            "(auto: passthrough for ±1/0-1 data, else thermometer:8 for series, per time point for an rnn that is at "
            "chance in half of its first 20 epochs, also tried with thermometer:2 for an rnn of at least 4096 input "
            "bits a step, kept where validation prefers it, and for tabular data 4..64 levels a feature, about 256 "
            "input bits).",
            "text"),
    Setting("window", None, "RNN window length in points [default: about 2 steps].", "int", 1, MAX_LENGTH,
            stored="input", file_default=None),  # an mlp has none
    Setting("hidden_bits", 8, "Bits per hidden weight: 8 or 16.", "int", choices=HIDDEN_BITS, stored="spec"),
    Setting("bias_bits", None, "Constant +1 input bits (of every step), a threshold per neuron trained like any "
            "weight [default: 8 for an rnn, 0 for an mlp; an mlp on tabular data is also trained with 64, kept where "
            "validation prefers it].", "int", 0, MAX_BIAS_BITS, stored="input",
            file_default=0),
    # The BEP hyperparameters (engine.spec.HyperParams); r and ν's searched values bracket the
    # defaults of the README's sweep.
    Setting("r", None, "Trigger margin r, R = floor(r * last width) [default: 0.5 for one hidden layer "
            "(0.25 for one of at least 128 on tabular data coded by auto), 1.0 for two or more].", "number", 0, 2,
            label="r", stored="hyperparams", search=(0.25, 0.5, 0.75, 1.0)),
    Setting("nu", 0.05, "Gate half-width relative to fan-in.", "number", 0, 1, label="nu", stored="hyperparams",
            search=(0.02, 0.05, 0.1)),
    Setting("gamma", None, "Initial winner-takes-update group size per layer "
            "[default: width/16 for an MLP, width/4 for an RNN].", "ints", 1, MAX_WIDTH, label="gamma",
            stored="hyperparams", file_default=None),  # null: the default for the widths
    Setting("p_r", 0.5, "Reinforcement strength p_r.", "number", 0, 16, label="p_r", stored="hyperparams"),
    Setting("sigma", 16.0, "Std-dev of the initial hidden weights.", "number", 0, 1e6, label="sigma",
            stored="hyperparams"),
    Setting("patience", 3, "Epochs without a better stall criterion before γ grows (the validation split from 20 "
            "samples on, else validation and training predictions pooled).", "int", 1, MAX_PATIENCE,
            label="patience", stored="hyperparams"),
    Setting("gamma_growth", 1.5, "γ's factor after a stall, a multiple of 1/16: γ' = ceil(γ * growth).", "growth",
            label="gamma growth", stored="hyperparams"),
    # Files written before the current defaults have no cap divisor or restore_best: they keep
    # training as they did (γ up to the full width, the last epoch's weights).
    Setting("gamma_cap_div", 4, "γ grows to at most max(initial γ, width / this) per layer (1: the full width).",
            "int", 1, MAX_WIDTH, label="gamma cap divisor", stored="hyperparams", file_default=1),
    Setting("restore_best", False, "End with the weights of the epoch with the best stall criterion "
            "(docs/accuracy.md: hurts with small validation splits).", "flag", label="restore best",
            stored="hyperparams", file_default=False),
    Setting("max_classes", None, "Prototypes of the fixed classifier: the classes of the training data take the "
            "first, the others wait for classes a board learns later (bep-mcu adapt) [default: the classes of the "
            "training data].", "int", 2, MAX_CLASSES),
    # train --init-from has always accepted (and ignored) it: the continued model keeps its split.
    Setting("val_fraction", 0.1, "Validation split carved from the training data (0: train on all of it, stalls "
            "judged on the training errors as on a board; also where no class is large enough to give the split "
            "a sample, the split then only choosing between two candidates; docs/accuracy.md §2).", "fraction", 0, 0.5,
            label="val fraction", stored="training", continued=True),
    Setting("centre", "auto", "An mlp's first layer reads its input bits centred on their training means "
            "(auto: where most bits sit at one value, sparse features; docs/accuracy.md, \"Sparse features\").",
            "choice", choices=("auto", "on", "off")),
    # Last, so the estimator's positional parameters keep their order.
    Setting("preset", None, "Start from a preset's values; a setting given another value than its default keeps "
            "it (bep-mcu presets lists them). " + " ".join(p.describe() for p in PRESETS.values()), "choice",
            choices=tuple(PRESETS)),
)
BY_NAME = {s.name: s for s in SETTINGS}


def with_preset(values: dict) -> dict:
    """Settings by name, with the values of their ``preset`` (if any) where a setting is at its default."""
    preset = BY_NAME["preset"].check(values.get("preset"))
    if preset is None:
        return values
    return {**values, **{name: value for name, (value, _) in PRESETS[preset].values.items()
                         if values.get(name, BY_NAME[name].default) == BY_NAME[name].default}}


def stored_in(holder: str) -> list[Setting]:
    """The settings model-file object ``holder`` keeps."""
    return [s for s in SETTINGS if s.stored == holder]


def of_model(model) -> dict:
    """The settings ``model`` keeps, by name (not ``epochs``); ``binarize`` is its fitted
    binariser's spec, ``max_classes`` its classes and reserved prototypes (None: none reserved),
    ``centre`` whether its inputs are centred ("on" or "off")."""
    values = {s.name: getattr(getattr(model, HOLDERS[s.stored]), s.name) for s in SETTINGS if s.stored}
    return {**values, "binarize": model.encoder.binarizer.spec(),
            "max_classes": model.spec.n_classes + len(model.reserved) if len(model.reserved) else None,
            "centre": "off" if model.input_means is None else "on"}
