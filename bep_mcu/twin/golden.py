"""Golden vectors: a training stream and the state the numpy engine reaches after every
batch, in a small binary file that C drivers (host/bep_host_driver.c, the firmware
self-test) replay through the generated code and compare with exact equality.

The vectors start from a model's state (hidden weights, seed, batch counter) and run
the numpy engine through ``training.run_epochs`` on batches of the dataset's training
part, continuing the model's sequence of sample orders (a batch never spans two
epochs, as in training). One set of per-epoch parameters drives the whole file (the
a FixedSchedule): γ = the model's current γ and Q = the first epoch's value
(training error 1.0), so reinforcement fires on every triggered batch.

File format, version 1. Little-endian; every section starts at a multiple of 4 bytes
(byte arrays are zero-padded to 4), so a device can read values in place.

    offset  type           field
    0       char[8]        magic "BEPGOLD\\0"
    8       u32            format version (1)
    12      u32            config hash, first 32 bits (= BEP_<NET>_CONFIG_HASH)
    16      u8             model: 0 mlp, 1 rnn
    17      u8             hidden bits: 8 or 16
    18      u8             L: number of hidden layers
    19      u8             reserved, 0
    20      u16            number of classes
    22      u16            steps (rnn: T; mlp: 1)
    24      u32            input words per sample (rnn: steps x words of one step)
    28      u32            seed (bep_init's seed)
    32      u32            batch counter at the start (bep_init's batches)
    36      u32            B: number of batches
    40      u32            P: provenance bytes
    44      char[P]        provenance: UTF-8 "key=value\\n" lines (PROVENANCE_KEYS)
                           + pad
            L x 16 bytes   per layer: u32 rows, u32 cols, u32 γ, u32 Q (bep_set_epoch)
            per layer      initial hidden weights, rows x cols int8|int16, row-major,
                           + pad (what bep_read_hidden returns right after bep_init)
            B x batch      per batch b:
                             u32        n: samples in the batch (>= 1)
                             u32[n*W]   packed inputs, W = input words, sample-major
                             u16[n]     labels (class indices) + pad
                             u16[n]     expected forward predictions + pad
                             u32[5]     expected counters after the batch, cumulative
                                        since bep_init: samples, triggered, errors,
                                        updates, batches (= bep_counters_t)
                             per layer  expected hidden weights after the batch,
                                        rows x cols int8|int16, row-major, + pad
    end     char[8]        end marker "BEPGEND\\0"; nothing follows

The file is a pure function of the model file, the data and the options: no
timestamps, and the provenance records a canonical command (without ``--out``), so
the same command writes the same bytes wherever the output goes.

Example usage::

    result = write_golden_file("model.npz", "golden.bin", dataset="digits", batches=10)
    g = read_golden("golden.bin")
    g.batches[0].hidden[1][3, 7]           # layer 1, row 3, column 7 after batch 0
"""

from __future__ import annotations

import hashlib
import math
import shlex
import struct
from dataclasses import dataclass

import numpy as np

from bep_mcu import __version__, files
from bep_mcu.cgen import abi
from bep_mcu.engine import rng
from bep_mcu.engine.spec import HIDDEN_DTYPE
from bep_mcu.engine.schedule import FixedSchedule, reinforcement_counts
from bep_mcu.errors import BEPError
from bep_mcu.model import Model
from bep_mcu.training import EncodedData, NumpyTrainer, Plan, StopAfter, run_epochs, schedule_for

_FORMAT = abi.header_defines("fw", "bep_golden.h")  # the format's one home (also read by the C reader)
MAGIC = _FORMAT["GOLDEN_MAGIC"].encode() + b"\0"
END_MARKER = _FORMAT["GOLDEN_END"].encode() + b"\0"
FORMAT_VERSION = _FORMAT["GOLDEN_VERSION"]
HEADER_BYTES = _FORMAT["GOLDEN_HEADER_BYTES"]
LAYER_RECORD_BYTES = _FORMAT["GOLDEN_LAYER_RECORD_BYTES"]
COUNTER_NAMES = ("samples", "triggered", "errors", "updates", "batches")
assert len(COUNTER_NAMES) == _FORMAT["GOLDEN_N_COUNTERS"]
MODEL_CODES = {"mlp": 0, "rnn": 1}
PROVENANCE_KEYS = ("format", "generator", "config_hash", "model", "model_sha256", "dataset", "seed",
                   "batch_counter", "batch_size", "batches", "epochs", "gamma", "q", "command")
DEFAULT_BATCHES = 10
MAX_GOLDEN_BYTES = 64 << 20
_HEADER = struct.Struct("<8sIIBBBBHHIIIII")
assert _HEADER.size == HEADER_BYTES


def _pad4(n: int) -> int:
    return (n + 3) & ~3


@dataclass
class GoldenBatch:
    """One batch: what goes in and what the numpy engine produced."""

    x: np.ndarray  # (n, input_words) uint32, packed inputs
    labels: np.ndarray  # (n,) uint16
    predictions: np.ndarray  # (n,) uint16, forward predictions during training
    counters: np.ndarray  # (5,) uint32, COUNTER_NAMES after the batch
    hidden: list[np.ndarray]  # per layer (rows, cols) int8/int16 after the batch


@dataclass
class Golden:
    """Everything a golden file holds (see the module docstring for the layout)."""

    config_hash32: int
    model: str
    hidden_bits: int
    n_classes: int
    steps: int
    input_words: int
    seed: int
    batch_counter: int
    provenance: dict[str, str]
    shapes: list[tuple[int, int]]
    gamma: list[int]
    q: list[int]
    initial_hidden: list[np.ndarray]
    batches: list[GoldenBatch]

    @property
    def hidden_dtype(self) -> np.dtype:
        return np.dtype(HIDDEN_DTYPE[self.hidden_bits])


# --------------------------------------------------------------- computing


def compute_golden(model: Model, data: EncodedData, n_batches: int, batch_size: int,
                   provenance: dict[str, str]) -> Golden:
    """Run the numpy engine from ``model``'s state on ``data`` for ``n_batches`` batches."""
    if n_batches < 1 or batch_size < 1:
        raise BEPError(f"--batches and --batch-size must be >= 1, got {n_batches} and {batch_size}")
    if len(data) == 0:
        raise BEPError("the dataset has no training samples")
    spec = model.spec
    per_epoch = -(-len(data) // batch_size)
    plan = Plan.continuing(model, epochs=-(-n_batches // per_epoch), batch_size=batch_size, error_rate=1.0)
    trainer = NumpyTrainer(model)
    batches: list[GoldenBatch] = []

    def record(_: int, index: np.ndarray, predictions: list[np.ndarray]) -> None:
        counters = trainer.counters()
        batches.append(GoldenBatch(data.packed[index], data.y[index].astype(np.uint16),
                                   predictions[0].astype(np.uint16),
                                   np.array([getattr(counters, n) for n in COUNTER_NAMES], dtype=np.uint32),
                                   trainer.hidden_weights()))

    run_epochs([trainer], data, plan, on_batch=record, observers=[StopAfter(n_batches)],
               schedule=schedule_for(plan, FixedSchedule))
    return Golden(
        config_hash32=model.config_hash32, model=spec.model, hidden_bits=spec.hidden_bits,
        n_classes=spec.n_classes, steps=spec.steps, input_words=int(data.packed.shape[1]),
        seed=model.training.seed, batch_counter=model.training.batch_counter & rng.MASK32, provenance=provenance,
        shapes=list(spec.layer_shapes()), gamma=list(plan.gamma), q=first_epoch_q(model), initial_hidden=list(model.hidden),
        batches=batches)


def first_epoch_q(model: Model) -> list[int]:
    """Q per layer at training error 1.0: what every golden file replays."""
    return reinforcement_counts(model.spec, model.hyper.p_r, 1.0)


def epochs_spanned(n_samples: int, batch_size: int, n_batches: int) -> int:
    return -(-n_batches // -(-n_samples // batch_size))


# --------------------------------------------------------------- encoding


def _padded(a: np.ndarray, dtype: str) -> bytes:
    raw = np.ascontiguousarray(a, dtype=dtype).tobytes()
    return raw + b"\0" * (_pad4(len(raw)) - len(raw))


def _provenance_bytes(provenance: dict[str, str]) -> bytes:
    lines = []
    for key, value in provenance.items():
        text = str(value).replace("\n", " ")
        if "=" in key or "\n" in key:
            raise ValueError(f"bad provenance key {key!r}")
        lines.append(f"{key}={text}\n")
    return "".join(lines).encode()


def to_bytes(g: Golden) -> bytes:
    """Serialise (format version 1)."""
    prov = _provenance_bytes(g.provenance)
    hd = g.hidden_dtype.str
    parts = [
        _HEADER.pack(MAGIC, FORMAT_VERSION, g.config_hash32, MODEL_CODES[g.model], g.hidden_bits, len(g.shapes), 0,
                     g.n_classes, g.steps, g.input_words, g.seed, g.batch_counter, len(g.batches), len(prov)),
        prov + b"\0" * (_pad4(len(prov)) - len(prov)),
        np.array([[r, c, gm, q] for (r, c), gm, q in zip(g.shapes, g.gamma, g.q)], dtype="<u4").tobytes(),
        *(_padded(h, hd) for h in g.initial_hidden),
    ]
    for b in g.batches:
        parts += [struct.pack("<I", len(b.labels)), _padded(b.x, "<u4"), _padded(b.labels, "<u2"),
                  _padded(b.predictions, "<u2"), _padded(b.counters, "<u4"), *(_padded(h, hd) for h in b.hidden)]
    parts.append(END_MARKER)
    return b"".join(parts)


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.pos, self.source = data, 0, source
        # Every file ends with the end marker: one that has it and still runs out was
        # damaged (a size or count field says more than there is), not cut short.
        self.whole = data.endswith(END_MARKER)

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            if self.whole:
                raise BEPError(f"{self.source}: damaged golden file ({what} at offset {self.pos} would take {n} "
                               f"bytes, past the end of the file at {len(self.data)}: a size or count is wrong)")
            raise BEPError(f"{self.source}: truncated golden file (it ends at offset {len(self.data)}, in {what} "
                           f"at offset {self.pos}, without the end marker)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += _pad4(n)
        return chunk

    def array(self, dtype: str, shape: tuple[int, ...], what: str) -> np.ndarray:
        dt = np.dtype(dtype)
        count = math.prod(int(n) for n in shape)  # Python integers: a damaged shape must not wrap around
        raw = self.take(count * dt.itemsize, what)
        return np.frombuffer(raw, dtype=dt).reshape(shape).astype(dt.newbyteorder("="))


def _provenance(raw: bytes, source: str) -> dict[str, str]:
    """The "key=value\\n" lines of PROVENANCE_KEYS, byte for byte as written (else the file is damaged)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    provenance = dict(line.split("=", 1) for line in text.split("\n") if "=" in line)
    if tuple(provenance) != PROVENANCE_KEYS or _provenance_bytes(provenance) != raw:
        raise BEPError(f"{source}: damaged golden file (its provenance is not the key=value lines of "
                       f"{', '.join(PROVENANCE_KEYS)})")
    return provenance


def from_bytes(data: bytes, source: str = "golden file") -> Golden:
    """Parse and check a golden file (BEPError on a foreign, newer or damaged file)."""
    r = _Reader(data, source)
    (magic, version, chash, model, hbits, n_layers, reserved, n_classes, steps, input_words, seed, counter,
     n_batches, prov_len) = _HEADER.unpack(r.take(HEADER_BYTES, "the header"))
    if magic != MAGIC:
        raise BEPError(f"{source}: not a bep-mcu golden file (bad magic)")
    if version != FORMAT_VERSION:
        raise BEPError(f"{source}: golden format version {version}, this bep-mcu reads {FORMAT_VERSION}")
    models = {v: k for k, v in MODEL_CODES.items()}
    if model not in models or hbits not in (8, 16) or n_layers < 1 or reserved != 0 or n_classes < 2 \
            or steps < 1 or input_words < 1:
        raise BEPError(f"{source}: damaged golden file: bad header (model {model}, hidden bits {hbits}, "
                       f"layers {n_layers}, reserved {reserved}, classes {n_classes}, steps {steps}, "
                       f"input words {input_words})")
    provenance = _provenance(r.take(prov_len, "the provenance"), source)
    layers = r.array("<u4", (n_layers, 4), "the layer records")
    shapes = [(int(a), int(b)) for a, b in layers[:, :2]]
    hd = "<i1" if hbits == 8 else "<i2"
    g = Golden(chash, models[model], hbits, n_classes, steps, input_words, seed, counter, provenance, shapes,
               [int(v) for v in layers[:, 2]], [int(v) for v in layers[:, 3]],
               [r.array(hd, s, f"initial layer {i}") for i, s in enumerate(shapes)], [])
    for b in range(n_batches):
        (n,) = struct.unpack("<I", r.take(4, f"batch {b}"))
        g.batches.append(GoldenBatch(
            r.array("<u4", (n, input_words), f"batch {b} inputs"), r.array("<u2", (n,), f"batch {b} labels"),
            r.array("<u2", (n,), f"batch {b} predictions"), r.array("<u4", (5,), f"batch {b} counters"),
            [r.array(hd, s, f"batch {b} layer {i}") for i, s in enumerate(shapes)]))
    if r.take(len(END_MARKER), "the end marker") != END_MARKER or r.pos != len(data):
        raise BEPError(f"{source}: damaged golden file (no end marker at offset {r.pos - len(END_MARKER)})")
    return g


def read_golden(path) -> Golden:
    return from_bytes(files.read_regular(path, "golden file", MAX_GOLDEN_BYTES), str(path))


def hidden_offset(g: Golden, batch: int, layer: int, row: int, col: int) -> int:
    """Byte offset in the file of the expected hidden weight (row, col) of ``layer``
    after ``batch`` (0-based), from the layout alone."""
    wb = g.hidden_bits // 8
    layer_bytes = [_pad4(r * c * wb) for r, c in g.shapes]
    pos = HEADER_BYTES + _pad4(len(_provenance_bytes(g.provenance))) + LAYER_RECORD_BYTES * len(g.shapes)
    pos += sum(layer_bytes)
    for b in g.batches[:batch]:
        n = len(b.labels)
        pos += 4 + 4 * n * g.input_words + 2 * _pad4(2 * n) + 4 * len(COUNTER_NAMES) + sum(layer_bytes)
    n = len(g.batches[batch].labels)
    pos += 4 + 4 * n * g.input_words + 2 * _pad4(2 * n) + 4 * len(COUNTER_NAMES) + sum(layer_bytes[:layer])
    return pos + (row * g.shapes[layer][1] + col) * wb


# --------------------------------------------------------------- the command


def command_line(model_path: str, source: list[str], batches: int, batch_size: int) -> str:
    """The canonical command that reproduces a file (no --out: it does not change the bytes)."""
    args = ["bep-mcu", "golden", str(model_path), *source, "--batches", str(batches), "--batch-size", str(batch_size)]
    return " ".join(shlex.quote(a) for a in args)


def golden_file(model: Model, data: EncodedData, dataset_name: str, model_path: str, model_sha256: str,
                source: list[str], batches: int = DEFAULT_BATCHES, batch_size: int | None = None) -> tuple[Golden, bytes]:
    """``bep-mcu golden``: the vectors of ``model`` on ``data`` and the file's bytes."""
    batch_size = int(batch_size) if batch_size is not None else model.training.batch_size
    if batches < 1 or batch_size < 1:
        raise BEPError(f"--batches and --batch-size must be >= 1, got {batches} and {batch_size}")
    provenance = {
        "format": f"bep-mcu-golden {FORMAT_VERSION}", "generator": f"bep-mcu {__version__}",
        "config_hash": model.config_hash, "model": str(model_path), "model_sha256": model_sha256,
        "dataset": dataset_name, "seed": str(model.training.seed), "batch_counter": str(model.training.batch_counter),
        "batch_size": str(batch_size), "batches": str(batches),
        "epochs": str(epochs_spanned(len(data), batch_size, batches)),
        "gamma": ",".join(str(int(g)) for g in model.training.gamma),
        "q": ",".join(str(v) for v in first_epoch_q(model)),
        "command": command_line(model_path, source, batches, batch_size),
    }
    assert tuple(provenance) == PROVENANCE_KEYS
    g = compute_golden(model, data, batches, batch_size, provenance)
    return g, to_bytes(g)


def summary(g: Golden, payload: bytes, out: str) -> dict:
    last = g.batches[-1].counters
    return {
        "out": str(out), "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
        "config_hash": g.provenance["config_hash"], "config_hash32": f"0x{g.config_hash32:08X}",
        "dataset": g.provenance["dataset"], "model": g.provenance["model"], "batches": len(g.batches),
        "batch_size": int(g.provenance["batch_size"]), "samples": int(last[0]), "triggered": int(last[1]),
        "errors": int(last[2]), "updates": int(last[3]), "gamma": g.gamma, "q": g.q, "seed": g.seed,
        "batch_counter": g.batch_counter,
    }


def write(path, payload: bytes) -> None:
    files.write_atomic(path, lambda f: f.write(payload))
