"""Golden vectors: a training stream and the state the numpy engine reaches after every
batch, in a small binary file that C drivers (host/bep_host_driver.c, the firmware
self-test) replay through the generated code and compare with exact equality.

The vectors start from a model file's state (hidden weights, seed ``network.seed``,
batch counter ``network.batch_counter``) and run ``Network.train_batch`` on batches of
the dataset's training part, in the order ``epoch_order(seed, 0, n)`` (then epoch 1,
2, … when more batches are asked for than one epoch holds; a batch never spans two
epochs, as in training). One set of per-epoch parameters drives the whole file:
γ = the model's current ``gamma_`` and Q = ``reinforcement_q(reinforcement_probability(
p_r, 1.0, fan_in), rows * cols)`` per layer, the first epoch's value, so reinforcement
fires on every triggered batch.

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
import os
import shlex
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bep_mcu import __version__
from bep_mcu.engine import rng
from bep_mcu.data.datasets import Dataset, load_dataset, load_files
from bep_mcu.errors import BEPError
from bep_mcu.estimator import BEPClassifier, epoch_order
from bep_mcu.modelio import check_writable, write_atomic
from bep_mcu.engine.schedule import reinforcement_counts
from bep_mcu.engine.spec import NetSpec, config_hash
from bep_mcu.twin.cffi_twin import pack_inputs

MAGIC = b"BEPGOLD\0"
END_MARKER = b"BEPGEND\0"
FORMAT_VERSION = 1
HEADER_BYTES = 44
LAYER_RECORD_BYTES = 16
COUNTER_NAMES = ("samples", "triggered", "errors", "updates", "batches")
MODEL_CODES = {"mlp": 0, "rnn": 1}
PROVENANCE_KEYS = ("format", "generator", "config_hash", "model", "model_sha256", "dataset", "seed",
                   "batch_counter", "batch_size", "batches", "epochs", "gamma", "q", "command")
DEFAULT_BATCHES = 10
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
        return np.dtype("<i1" if self.hidden_bits == 8 else "<i2")


# --------------------------------------------------------------- computing


def epoch_q(spec: NetSpec, p_r: float, error_rate: float = 1.0) -> list[int]:
    """Fixed-point reinforcement counts Q per layer (the first epoch's: error rate 1)."""
    return reinforcement_counts(spec, p_r, error_rate)


def batch_indices(seed: int, n: int, batch_size: int, n_batches: int) -> tuple[list[np.ndarray], int]:
    """The first ``n_batches`` batches of the training stream, and the epochs they span."""
    out: list[np.ndarray] = []
    epoch = 0
    while len(out) < n_batches:
        order = epoch_order(seed, epoch, n)
        out.extend(order[i:i + batch_size] for i in range(0, n, batch_size))
        epoch += 1
    return out[:n_batches], epoch


def compute_golden(clf: BEPClassifier, X: np.ndarray, y: np.ndarray, n_batches: int, batch_size: int,
                   provenance: dict[str, str]) -> Golden:
    """Run the numpy engine from ``clf``'s state on encoded inputs ``X`` (±1) and class
    indices ``y``. ``clf.network`` is advanced (load a fresh classifier per call)."""
    if n_batches < 1 or batch_size < 1:
        raise BEPError(f"--batches and --batch-size must be >= 1, got {n_batches} and {batch_size}")
    if len(y) == 0:
        raise BEPError("the dataset has no training samples")
    spec, net = clf.spec_, clf.network
    gamma = [int(g) for g in clf.gamma_]
    q = epoch_q(spec, clf.hp.p_r)
    net.set_epoch_params(gamma, q)
    packed = pack_inputs(X, spec)
    initial, start_counter = net.hidden_weights(), net.batch_counter & rng.MASK32
    batches = []
    for idx in batch_indices(net.seed, len(y), batch_size, n_batches)[0]:
        result = net.train_batch(X[idx], y[idx])
        c = net.counters
        counters = np.array([c.samples, c.triggered, c.errors, c.updates, net.batch_counter & rng.MASK32],
                            dtype=np.uint32)
        batches.append(GoldenBatch(packed[idx], y[idx].astype(np.uint16), result.predictions.astype(np.uint16),
                                   counters, net.hidden_weights()))
    return Golden(
        config_hash32=int(config_hash(spec, clf.params_)[:8], 16), model=spec.model, hidden_bits=spec.hidden_bits,
        n_classes=spec.n_classes, steps=spec.steps, input_words=int(packed.shape[1]), seed=net.seed,
        batch_counter=start_counter, provenance=provenance,
        shapes=list(spec.layer_shapes()), gamma=gamma, q=q, initial_hidden=initial, batches=batches,
    )


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

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BEPError(f"{self.source}: truncated golden file (reading {what} at offset {self.pos})")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += _pad4(n)
        return chunk

    def array(self, dtype: str, shape: tuple[int, ...], what: str) -> np.ndarray:
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        raw = self.take(count * dt.itemsize, what)
        return np.frombuffer(raw, dtype=dt).reshape(shape).astype(dt.newbyteorder("="))


def from_bytes(data: bytes, source: str = "golden file") -> Golden:
    """Parse and check a golden file (BEPError on a foreign, newer or damaged file)."""
    r = _Reader(data, source)
    (magic, version, chash, model, hbits, n_layers, _reserved, n_classes, steps, input_words, seed, counter,
     n_batches, prov_len) = _HEADER.unpack(r.take(HEADER_BYTES, "the header"))
    if magic != MAGIC:
        raise BEPError(f"{source}: not a bep-mcu golden file (bad magic)")
    if version != FORMAT_VERSION:
        raise BEPError(f"{source}: golden format version {version}, this bep-mcu reads {FORMAT_VERSION}")
    models = {v: k for k, v in MODEL_CODES.items()}
    if model not in models or hbits not in (8, 16) or n_layers < 1:
        raise BEPError(f"{source}: bad header (model {model}, hidden bits {hbits}, layers {n_layers})")
    text = r.take(prov_len, "the provenance").decode("utf-8", "replace")
    provenance = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
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


def read_golden(path: str | os.PathLike) -> Golden:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BEPError(f"cannot read golden file '{path}': {e.strerror or e}") from None
    return from_bytes(data, str(path))


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


def load_training_data(dataset: str | None, data_path: str | None) -> Dataset:
    if (dataset is None) == (data_path is None):
        raise BEPError("give exactly one of --dataset NAME or --data PATH")
    return load_dataset(dataset) if dataset is not None else load_files(data_path, None, 0)


def command_line(model_path: str, dataset: str | None, data_path: str | None, batches: int, batch_size: int) -> str:
    """The canonical command that reproduces a file (no --out: it does not change the bytes)."""
    source = ["--dataset", dataset] if dataset is not None else ["--data", str(data_path)]
    args = ["bep-mcu", "golden", str(model_path), *source, "--batches", str(batches), "--batch-size", str(batch_size)]
    return " ".join(shlex.quote(a) for a in args)


def write_golden_file(model_path: str, out: str, dataset: str | None = None, data_path: str | None = None,
                      batches: int = DEFAULT_BATCHES, batch_size: int | None = None) -> dict:
    """``bep-mcu golden``: compute and write a golden file; returns a summary."""
    out_path = Path(out)
    if batches < 1 or (batch_size is not None and batch_size < 1):
        raise BEPError(f"--batches and --batch-size must be >= 1, got {batches} and {batch_size}")
    if (dataset is None) == (data_path is None):
        raise BEPError("give exactly one of --dataset NAME or --data PATH")
    check_writable(out_path)
    clf = BEPClassifier.load(model_path)
    data = load_training_data(dataset, data_path)
    batch_size = int(batch_size) if batch_size is not None else int(clf.batch_size_)
    X = clf.encode(np.asarray(data.X_train))
    y = clf.encode_labels(np.asarray(data.y_train))
    n_epochs = batch_indices(clf.network.seed, len(y), batch_size, batches)[1]
    spec = clf.spec_
    provenance = {
        "format": f"bep-mcu-golden {FORMAT_VERSION}",
        "generator": f"bep-mcu {__version__}",
        "config_hash": config_hash(spec, clf.params_),
        "model": str(model_path),
        "model_sha256": hashlib.sha256(Path(model_path).read_bytes()).hexdigest(),
        "dataset": data.name,
        "seed": str(clf.network.seed),
        "batch_counter": str(clf.network.batch_counter),
        "batch_size": str(batch_size),
        "batches": str(batches),
        "epochs": str(n_epochs),
        "gamma": ",".join(str(int(g)) for g in clf.gamma_),
        "q": ",".join(str(v) for v in epoch_q(spec, clf.hp.p_r)),
        "command": command_line(model_path, dataset, data_path, batches, batch_size),
    }
    assert tuple(provenance) == PROVENANCE_KEYS
    g = compute_golden(clf, X, y, batches, batch_size, provenance)
    payload = to_bytes(g)
    write_atomic(out_path, lambda f: f.write(payload))
    last = g.batches[-1].counters
    return {
        "out": str(out_path), "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
        "config_hash": provenance["config_hash"], "config_hash32": f"0x{g.config_hash32:08X}",
        "dataset": data.name, "model": str(model_path), "batches": len(g.batches), "batch_size": batch_size,
        "samples": int(last[0]), "triggered": int(last[1]), "errors": int(last[2]), "updates": int(last[3]),
        "gamma": g.gamma, "q": g.q, "seed": g.seed, "batch_counter": g.batch_counter,
    }
