"""The state-buffer plan: every byte the C runtime uses, decided on the host.

The runtime (templates/runtime/bep_runtime.c) gets these offsets through the generated
``bep_config_t``; nothing is allocated on the device. The same numbers feed ``bep-mcu
info``/``size`` reports and the firmware RAM budget.

State buffer = header, then per layer:
  h      hidden weights, int8/int16, rows x cols                        (learnable)
  w      packed visible weights, rows x words(K_in)                     (derived: sign(h))
  wr     rnn: packed recurrent weights, rows x words(K_h)               (derived)
  wt     packed transpose (mlp: cols x words(rows), the column-form forward pass and the
         backward pass, then one column of zeros that pads its column lists;
         rnn: W_h^T, K_h x words(K_h))                                  (derived)
  tn     mlp: int16 per row, its +1 signs (the runtime finds it right after wt) (derived)
  sl     mlp: the column-form forward pass's list of columns, K_in / 2 + 16 uint16
         (right after tn)                                               (scratch)
  z      int16 pre-activations (rnn: one row per step)                  (activations)
  a      packed activations (rnn: one per step)                         (activations)
  t      packed desired activations a* (rnn: a*_t, a*_{t-1}, all-ones a_0)
  dirty  one bit per row updated in the open batch
then one packed gate mask of the widest layer, then the epoch schedule's state
(bep_runtime.h: bep_schedule_state_t), counted with the header as bookkeeping, then, when
the board follows its input thresholds (data/recalibration.py), their region
(bep_calibrate.h: a word, then one int32 threshold and one int32 accumulator per followed
threshold).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bep_mcu.cgen.abi import MAX_LAYERS, SCHEDULE_STATE_BYTES, STATE_HEADER_BYTES as HEADER_BYTES
from bep_mcu.data.recalibration import followed
from bep_mcu.engine.spec import MAX_LAYERS as SPEC_MAX_LAYERS, NetSpec
from bep_mcu.errors import BEPError

# The runtime's bep_config_t holds MAX_LAYERS layers; every NetSpec fits it.
assert SPEC_MAX_LAYERS <= MAX_LAYERS
MAX_STATE_BYTES = 0xFFFFFFFF  # bep_config_t.state_bytes is uint32


def words(bits: int) -> int:
    return (bits + 31) // 32


def _align4(n: int) -> int:
    return (n + 3) & ~3


@dataclass
class LayerPlan:
    rows: int
    cols: int
    in_bits: int
    in_words: int
    rec_words: int
    out_words: int
    gate: int
    n_weights: int
    offsets: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def transpose_bytes(self) -> int:
        """The transpose's bit per synapse: an MLP's column of zeros after it (padding of the
        column lists) is per neuron, and counts with the activations like its counts per row."""
        return self.sizes["wt"] - (4 * self.out_words if self.sizes["tn"] else 0)


@dataclass
class StatePlan:
    layers: list[LayerPlan]
    gate_off: int
    state_bytes: int
    input_words: int
    class_words: int
    schedule_off: int
    hidden_bits: int  # 8 or 16: a layer's hidden weights are n_weights * hidden_bits / 8 bytes (bep_read_hidden)
    max_classes: int  # rows of the classifier table in flash: the classes and the prototypes reserved for more
    calib_off: int = 0  # the followed thresholds' region (0: none)
    followed: int = 0  # thresholds the board follows
    centre_off: int = 0  # a centred first layer's int16 offset per row (0: not centred)

    @property
    def calib_bytes(self) -> int:
        return 4 + 8 * self.followed if self.followed else 0

    def bytes_by_kind(self) -> dict[str, int]:
        """Hidden weights, packed weights (incl. transposes), activations/scratch, header
        (the runtime's and the schedule's bookkeeping), the followed input thresholds."""
        hidden = sum(p.sizes["h"] for p in self.layers)
        packed = sum(p.sizes["w"] + p.sizes["wr"] + p.transpose_bytes for p in self.layers)
        header = HEADER_BYTES + SCHEDULE_STATE_BYTES
        return {"header": header, "hidden_weights": hidden, "packed_weights": packed,
                "activations": self.state_bytes - header - hidden - packed - self.calib_bytes,
                "calibration": self.calib_bytes}


def plan_model(model) -> StatePlan:
    """The state buffer of a :class:`~bep_mcu.model.Model`: its network and the input
    thresholds its board follows."""
    return plan_state(model.spec, model.params.gate, followed(model.encoder), model.max_classes,
                      model.input_means is not None)


def plan_state(spec: NetSpec, gates: tuple[int, ...], followed_thresholds: int = 0,
               max_classes: int | None = None, centred: bool = False) -> StatePlan:
    """Lay out the state buffer of ``spec`` (gates: G per layer, from IntParams) with room
    for ``followed_thresholds`` input thresholds (``plan_model`` counts a model's), its
    classifier holding ``max_classes`` prototypes (default: ``spec.n_classes``) and, for a
    ``centred`` first layer, its offset per row (bep_config_t.input_means). Every
    shape a ``NetSpec`` accepts fits the runtime's types (spec.py holds the limits)."""
    wbytes = spec.hidden_bits // 8
    offset = HEADER_BYTES
    layers = []
    for i, (rows, cols) in enumerate(spec.layer_shapes()):
        rnn = spec.model == "rnn"
        in_bits = spec.n_inputs if rnn else cols
        p = LayerPlan(rows=rows, cols=cols, in_bits=in_bits, in_words=words(in_bits),
                      rec_words=words(rows) if rnn else 0, out_words=words(rows), gate=int(gates[i]),
                      n_weights=rows * cols)
        steps = spec.steps if rnn else 1
        p.sizes = {
            "h": _align4(rows * cols * wbytes),
            "w": rows * p.in_words * 4,
            "wr": rows * p.rec_words * 4,
            "wt": (rows if rnn else cols + 1) * p.out_words * 4,
            "tn": 0 if rnn else _align4(rows * 2),
            "sl": 0 if rnn else _align4((in_bits // 2 + 16) * 2),
            "z": _align4(steps * rows * 2),
            "a": steps * p.out_words * 4,
            "t": (3 if rnn else 1) * p.out_words * 4,
            "dirty": p.out_words * 4,
        }
        for name in ("h", "w", "wr", "wt", "tn", "sl", "z", "a", "t", "dirty"):
            p.offsets[name] = offset if p.sizes[name] else 0
            offset += p.sizes[name]
        layers.append(p)
    gate_off = offset
    offset += max(p.out_words for p in layers) * 4
    schedule_off = offset
    offset += SCHEDULE_STATE_BYTES
    calib_off = offset if followed_thresholds else 0
    offset += 4 + 8 * followed_thresholds if followed_thresholds else 0
    centre_off = offset if centred else 0
    offset += _align4(2 * spec.hidden[0]) if centred else 0
    if offset > MAX_STATE_BYTES:
        raise BEPError(f"the training state would need {offset} bytes; the C runtime addresses at most "
                       f"{MAX_STATE_BYTES} (uint32)")
    input_words = spec.steps * words(spec.n_inputs) if spec.model == "rnn" else words(spec.n_inputs)
    return StatePlan(layers, gate_off, offset, input_words, words(spec.hidden[-1]), schedule_off, spec.hidden_bits,
                     max_classes or spec.n_classes, calib_off, followed_thresholds, centre_off)


@dataclass
class InferencePlan:
    """What inference-only code holds (bep_infer.h): packed visible weights and the
    classifier in flash; in RAM only the packed input and two activation vectors of the
    widest layer (``work_words``)."""

    input_words: int
    scratch_words: int
    class_words: int
    weight_bytes: int
    classifier_bytes: int

    @property
    def work_words(self) -> int:
        return self.input_words + self.scratch_words


def plan_inference(spec: NetSpec, centred: bool = False) -> InferencePlan:
    """``centred``: the first layer's offsets (int16, one a row) are constant tables too."""
    rnn = spec.model == "rnn"
    weight_words = sum(rows * (words(spec.n_inputs if rnn else cols) + (words(rows) if rnn else 0))
                       for rows, cols in spec.layer_shapes())
    class_words = words(spec.hidden[-1])
    input_words = spec.steps * words(spec.n_inputs)
    return InferencePlan(input_words, 2 * max(words(k) for k in spec.hidden), class_words,
                         4 * weight_words + (2 * spec.hidden[0] if centred else 0), 4 * spec.n_classes * class_words)


def describe(model) -> dict:
    """Layer shapes, 1-bit parameter counts and the bytes of training and inference state
    of a :class:`~bep_mcu.model.Model` (``bep-mcu info``).

    Training state is the C runtime's state buffer as planned here (the number
    ``generate``/``size`` report): hidden weights at B bits, packed visible weights (plus
    the packed transposes the backward pass reads), activations. Inference-only code
    (``generate --inference-only``) keeps the packed visible weights and the classifier
    in flash and needs only the packed input and two activation vectors of RAM."""
    spec = model.spec
    plan = plan_model(model)
    layers = []
    for i, ((rows, cols), p) in enumerate(zip(spec.layer_shapes(), plan.layers)):
        layers.append({"name": f"hidden{i + 1}" if spec.model == "mlp" else "rnn_cell",
                       "shape": [rows, cols], "synapses": rows * cols,
                       "hidden_weight_bytes": p.sizes["h"], "packed_weight_bytes": p.sizes["w"] + p.sizes["wr"],
                       "transpose_bytes": p.transpose_bytes})
    classifier_bytes = plan.max_classes * plan.class_words * 4  # reserved prototypes too: the table in flash
    kinds = plan.bytes_by_kind()
    infer = plan_inference(spec, model.input_means is not None)
    enc = model.encoder
    return {
        "model": spec.model, "inputs": spec.n_inputs, "hidden": list(spec.hidden), "classes": spec.n_classes,
        "steps": spec.steps, "hidden_bits": spec.hidden_bits, "layers": layers, "synapses": spec.synapses,
        "classifier_bytes": classifier_bytes, "activation_bytes": kinds["activations"] + kinds["header"],
        "training_state_bytes": plan.state_bytes,
        "inference_state_bytes": sum(lay["packed_weight_bytes"] for lay in layers) + infer.classifier_bytes,
        "inference_flash_bytes": infer.weight_bytes + infer.classifier_bytes,
        "inference_ram_bytes": 4 * infer.work_words,
        "binarizer": enc.binarizer.describe(), "centred_inputs": model.input_means is not None, "window": enc.window,
        "labels": model.labels.tolist(),
        "epochs": model.training.epochs, "origin": model.training.origin.kind,
    }
