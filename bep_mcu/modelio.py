"""Model files: the one place a :class:`~bep_mcu.model.Model` becomes a file and back.

A model file is an uncompressed ``.npz`` (a zip of ``.npy`` arrays, readable by any
numpy with ``allow_pickle=False``) holding:

- ``__meta__``: a JSON document (format name and version, network spec,
  hyperparameters, the integers of the training step, the training record, the input
  shape), stored as a uint8 array;
- the arrays: ``hidden_<i>`` (int8/int16), ``classifier`` (int8 ±1), ``classes``
  (label names), ``reserved_prototypes`` (int8 ±1, the classifier's rows kept for classes
  not seen yet; absent when none are), ``input_means`` (int16 in [-256, 256], the first layer's
  input centring; absent when the network reads its bits as they are), ``input_keep`` (bool),
  ``binarizer_spec``, ``binarizer_n_features`` and the binariser's ``binarizer_thresholds``;
  ``input_below`` and ``input_spread`` (float64, the encoder's training statistics; absent from
  older files and for binary inputs);
- ``__checksum__``: SHA-256 over the metadata and every array's name, dtype, shape
  and bytes. It detects damage, not tampering: anyone can recompute it.

A model file is untrusted input, so reading it never trusts it (docs/security.md):

1. only a regular file of at most ``MAX_FILE_BYTES`` is opened;
2. every member must be stored uncompressed (as ``np.savez`` writes it), so no file
   can unpack to more than its own size;
3. the metadata (at most ``MAX_META_BYTES``) is parsed and checked field by field
   against the schema below (type and range of every value) *before* any array is
   read; it fixes the dtype and shape of every array;
4. each array's ``.npy`` header is checked against that expectation before its data
   is read; unknown members are refused;
5. the checksum is compared;
6. the :class:`Model` is built, which checks what spans fields (shapes against the
   spec, the encoder against the network's inputs, labels distinct).

Any failure is one ``BEPError`` line naming the file and the field. Files are written
atomically (``files.write_atomic``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from dataclasses import asdict

import numpy as np

from bep_mcu import __version__, files, validate
from bep_mcu.data.binarize import MAX_THERMOMETER_BITS, binarizer_from_arrays
from bep_mcu.data.encoder import MAX_FEATURES, MAX_LENGTH, Encoder
from bep_mcu.engine.network import Counters
from bep_mcu.engine.schedule import EPOCH_MAX_SAMPLES, Q_LEVELS, EpochStart
from bep_mcu.engine.spec import HIDDEN_BITS, MAX_CLASSES, MAX_FAN_IN, MAX_LAYERS, MAX_PATIENCE, MAX_STEPS, MAX_WIDTH, \
    MODELS, HyperParams, IntParams, NetSpec
from bep_mcu.errors import BEPError
from bep_mcu.model import COUNTER_MAX, MAX_BATCH_SIZE, MAX_EPOCHS, MAX_LABEL_CHARS, Model, Origin, \
    TrainingRecord
from bep_mcu.settings import REQUIRED, stored_in

FORMAT_NAME = "bep-mcu-model"
FORMAT_VERSION = 2
READS_VERSIONS = (1, 2)  # version 1 kept provenance keys loose in "training"; mapped on read
MAX_FILE_BYTES = 1 << 30  # a model file may be at most 1 GiB
MAX_META_BYTES = 16 << 20  # metadata JSON (the per-epoch history dominates)
MAX_HISTORY = 100_000
_META = "__meta__"
_CHECKSUM = "__checksum__"
_V1_NOTE_KEYS = ("dataset", "test_accuracy", "train_accuracy")
_HISTORY_REQUIRED = ("epoch", "train_error", "val_accuracy", "gamma", "reinforce_q", "triggered", "updates", "seconds",
                     "samples_per_second")  # every epoch record training.run_epochs has written
_HISTORY_OPTIONAL = ("best", "restored_epoch")  # with a schedule; with restore_best, the last record


# ------------------------------------------------------------------ writing


def _contiguous(a) -> np.ndarray:
    """C-contiguous without promoting 0-d arrays to 1-d (np.ascontiguousarray does)."""
    a = np.asarray(a)
    return a if a.flags.c_contiguous else a.copy(order="C")


def _digest(meta_bytes: bytes, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(meta_bytes)
    for name in sorted(arrays):
        a = _contiguous(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _json_number(x: float) -> float | None:
    return x if math.isfinite(x) else None


def document(model: Model) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata document and the arrays of a model file."""
    t = model.training
    arrays = {f"hidden_{i}": h for i, h in enumerate(model.hidden)}
    arrays["classifier"] = model.classifier
    arrays["classes"] = model.labels
    if len(model.reserved):
        arrays["reserved_prototypes"] = model.reserved
    if model.input_means is not None:
        arrays["input_means"] = model.input_means
    arrays["input_keep"] = model.encoder.input_keep
    if model.encoder.below is not None:
        arrays.update({"input_below": model.encoder.below, "input_spread": model.encoder.spread})
    arrays.update({f"binarizer_{k}": v for k, v in model.encoder.binarizer.to_arrays().items()})
    history = [{k: (_json_number(v) if isinstance(v, float) else v) for k, v in rec.items()} for rec in t.history]
    meta = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "generator": f"bep-mcu {__version__}",
        "spec": {**asdict(model.spec), "hidden": list(model.spec.hidden)},
        "hyperparams": {**asdict(model.hyper), "gamma": None if model.hyper.gamma is None else list(model.hyper.gamma)},
        "int_params": {"trigger_margin": model.params.trigger_margin, "gate": list(model.params.gate),
                       "gamma": list(model.params.gamma)},
        "training": {"seed": t.seed, "epochs": t.epochs, "batch_size": t.batch_size,
                     "batch_counter": t.batch_counter, "gamma": list(t.gamma), "error_rate": t.error_rate,
                     "val_fraction": t.val_fraction, "counters": t.counters.as_dict(), "history": history,
                     "origin": {k: v for k, v in asdict(t.origin).items() if v is not None}, "notes": dict(t.notes),
                     **({} if t.resume is None else {"resume": {k: v for k, v in t.resume.as_dict().items()
                                                                if k != "epoch"}})},
        "input": {"n_features": model.encoder.n_features, "length": model.encoder.length,
                  **{s.name: getattr(model.encoder, s.name) for s in stored_in("input")}},
    }
    return meta, arrays


def save(model: Model, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` atomically (only over a regular file or nothing)."""
    meta, arrays = document(model)
    meta_bytes = json.dumps(meta, sort_keys=True, allow_nan=False).encode()
    payload = {name: _contiguous(a) for name, a in arrays.items()}
    payload[_META] = np.frombuffer(meta_bytes, dtype=np.uint8)
    payload[_CHECKSUM] = np.frombuffer(_digest(meta_bytes, arrays).encode(), dtype=np.uint8)
    files.write_atomic(path, lambda f: np.savez(f, **payload))


# ------------------------------------------------------------------ reading


class _Fields:
    """A JSON object whose reads name their path ('training.batch_counter') in errors."""

    def __init__(self, doc: object, path: str) -> None:
        self.doc = validate.mapping(doc, f"field '{path}'" if path else "the metadata")
        self.path = path

    def _name(self, key: str) -> str:
        return f"field '{self.path}.{key}'" if self.path else f"field '{key}'"

    def _get(self, key: str, optional: bool = False):
        if key not in self.doc:
            if optional:
                return None
            raise BEPError(f"{self._name(key)} is missing")
        return self.doc[key]

    def obj(self, key: str) -> "_Fields":
        return _Fields(self._get(key), f"{self.path}.{key}" if self.path else key)

    def int(self, key: str, lo: int, hi: int, optional: bool = False) -> int | None:
        value = self._get(key, optional)
        return None if value is None and optional else validate.integer(value, self._name(key), lo, hi)

    def num(self, key: str, lo: float, hi: float, nullable: bool = False) -> float | None:
        value = self._get(key)
        return None if value is None and nullable else validate.number(value, self._name(key), lo, hi)

    def ints(self, key: str, lo: int, hi: int, length: int | None = None, max_len: int = MAX_LAYERS):
        return validate.integers(self._get(key), self._name(key), lo, hi, length=length, max_len=max_len)

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise BEPError(f"{self._name(key)} must be true or false, got {validate.show(value)}")
        return value

    def choice(self, key: str, choices) -> str:
        return validate.choice(self._get(key), self._name(key), choices)

    def text(self, key: str, max_len: int = 256, optional: bool = False) -> str | None:
        value = self._get(key, optional)
        return None if value is None and optional else validate.text(value, self._name(key), max_len)


def _spec(f: _Fields) -> NetSpec:
    s = f.obj("spec")
    model = s.choice("model", MODELS)
    return NetSpec(model=model, n_inputs=s.int("n_inputs", 1, MAX_FAN_IN),
                   hidden=s.ints("hidden", 1, MAX_WIDTH), n_classes=s.int("n_classes", 2, MAX_CLASSES),
                   hidden_bits=s.int("hidden_bits", min(HIDDEN_BITS), max(HIDDEN_BITS)),
                   steps=s.int("steps", 1, MAX_STEPS))


def _settings(f: _Fields) -> dict:
    """The settings object ``f`` keeps (bep_mcu/settings.py), each checked as ``bep-mcu train``
    checks it, the error naming the field; one the file leaves out is its ``file_default``."""
    values = {}
    for s in stored_in(f.path):
        if s.name in f.doc or s.file_default is REQUIRED:
            values[s.name] = s.check(f._get(s.name), f._name(s.name), nullable=s.file_default is None)
        else:
            values[s.name] = s.file_default
    return values


def _hyper(f: _Fields) -> HyperParams:
    h = f.obj("hyperparams")
    return HyperParams(alpha=h.num("alpha", 0, 1e6), **_settings(h))


def _params(f: _Fields, spec: NetSpec) -> IntParams:
    p = f.obj("int_params")
    n = spec.n_layers
    return IntParams(trigger_margin=p.int("trigger_margin", 0, 2 * spec.hidden[-1]),
                     gate=p.ints("gate", 0, MAX_FAN_IN, length=n), gamma=p.ints("gamma", 1, MAX_WIDTH, length=n))


def _epoch_record(r: _Fields, n_layers: int) -> dict:
    """One epoch of the training history, each field checked for what reads it (``bep-mcu
    plot``, ``train --init-from``, the estimator's ``history_``): γ and Q per layer."""
    unknown = [key for key in r.doc if key not in _HISTORY_REQUIRED + _HISTORY_OPTIONAL]
    if unknown:
        raise BEPError(f"field '{r.path}.{validate.show(unknown[0], 24)}' is not an epoch record field")
    rec = {"epoch": r.int("epoch", 1, MAX_EPOCHS), "train_error": r.num("train_error", 0, 1),
           "val_accuracy": r.num("val_accuracy", 0, 1, nullable=True),  # null: no validation set
           "gamma": list(r.ints("gamma", 1, MAX_WIDTH, length=n_layers)),
           "reinforce_q": list(r.ints("reinforce_q", 0, validate.UINT32_MAX, length=n_layers)),
           "triggered": r.int("triggered", 0, COUNTER_MAX), "updates": r.int("updates", 0, COUNTER_MAX),
           # timings: null when not finite (written as JSON, which has no inf)
           "seconds": r.num("seconds", 0, math.inf, nullable=True),
           "samples_per_second": r.num("samples_per_second", 0, math.inf, nullable=True)}
    if "best" in r.doc:  # the epoch set a new best stall criterion
        rec["best"] = r.flag("best")
    if "restored_epoch" in r.doc:
        rec["restored_epoch"] = r.int("restored_epoch", 1, MAX_EPOCHS)
    return rec


def _history(value: object, path: str, spec: NetSpec) -> tuple[dict, ...]:
    if not isinstance(value, list) or len(value) > MAX_HISTORY:
        raise BEPError(f"field '{path}' must be a list of at most {MAX_HISTORY} epoch records")
    return tuple(_epoch_record(_Fields(rec, f"{path}[{i}]"), spec.n_layers) for i, rec in enumerate(value))


def _notes(value: object, path: str) -> dict:
    notes = validate.mapping(value, f"field '{path}'")
    if len(notes) > 32:
        raise BEPError(f"field '{path}' holds more than 32 notes")
    for key, v in notes.items():
        name = f"field '{path}.{validate.show(key, 24)}'"
        validate.text(key, name, 64)
        if isinstance(v, str):
            validate.text(v, name, 1024)
        elif v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise BEPError(f"{name} must be text or a number, got {validate.show(v)}")
    return dict(notes)


def _training(f: _Fields, version: int, spec: NetSpec) -> TrainingRecord:
    t = f.obj("training")
    c = t.obj("counters")
    counters = Counters(**{name: c.int(name, 0, COUNTER_MAX, optional=version == 1 and name == "batches") or 0
                           for name in Counters.NAMES})
    if version == 1:  # provenance lived beside the record
        notes = {k: t.doc[k] for k in _V1_NOTE_KEYS if k in t.doc}
        origin = Origin()
        if "pulled_from" in t.doc:
            device = t.obj("device_counters")
            origin = Origin("board", t.text("board", 64), t.text("pulled_from", 256),
                            device.int("batches", 0, validate.UINT32_MAX))
    else:
        notes = t.doc.get("notes", {})
        o = t.obj("origin")
        origin = Origin(o.choice("kind", ("host", "board")), o.text("board", 64, optional=True),
                        o.text("port", 256, optional=True),
                        o.int("device_batches", 0, validate.UINT32_MAX, optional=True))
    epochs = t.int("epochs", 0, MAX_EPOCHS)
    return TrainingRecord(
        seed=t.int("seed", 0, validate.UINT32_MAX), epochs=epochs,
        batch_size=t.int("batch_size", 1, MAX_BATCH_SIZE), batch_counter=t.int("batch_counter", 0, validate.UINT32_MAX),
        gamma=t.ints("gamma", 1, MAX_WIDTH), error_rate=t.num("error_rate", 0, 1),
        val_fraction=t.num("val_fraction", 0, 0.5), counters=counters,
        history=_history(t._get("history"), "training.history", spec), origin=origin,
        notes=_notes(notes, "training.notes"), resume=_resume(t, epochs) if "resume" in t.doc else None)


def _resume(t: _Fields, epochs: int) -> EpochStart:
    """Where a stream stopped inside epoch ``epochs`` (files written before it have none)."""
    r = t.obj("resume")
    best_samples = r.int("best_samples", 0, validate.UINT32_MAX)
    samples = r.int("samples", 0, EPOCH_MAX_SAMPLES - 1)
    return EpochStart(epochs, level=r.int("level", 0, Q_LEVELS), stalled=r.int("stalled", 0, MAX_PATIENCE - 1),
                      best_errors=r.int("best_errors", 0, best_samples), best_samples=best_samples,
                      samples=samples, errors=r.int("errors", 0, samples))


class _Expected:
    """What each array member must be, from the checked metadata (before reading it)."""

    def __init__(self, spec: NetSpec, n_features: int, length: int) -> None:
        hidden = np.dtype(spec.hidden_dtype)
        self.fixed = {f"hidden_{i}": (hidden, shape) for i, shape in enumerate(spec.layer_shapes())}
        self.fixed["classifier"] = (np.dtype("i1"), (spec.n_classes, spec.hidden[-1]))
        self.fixed["binarizer_n_features"] = (np.dtype("<i8"), ())
        self.n_classes, self.n_features, self.length = spec.n_classes, n_features, length
        self.width, self.n_inputs = spec.hidden[-1], spec.n_inputs
        self.seen: set[str] = set()

    def check(self, name: str, header: files.NpyHeader) -> None:
        dtype, shape = header.dtype, header.shape
        if name in self.fixed:
            want_dtype, want_shape = self.fixed[name]
            ok = dtype == want_dtype and shape == want_shape
            what = f"{want_dtype} of shape {want_shape}"
        elif name == "classes":
            ok = shape == (self.n_classes,) and (dtype in (np.dtype("<i8"), np.dtype("<f8")) or
                                                 (dtype.kind == "U" and dtype.itemsize <= 4 * MAX_LABEL_CHARS))
            what = f"{self.n_classes} int64, float64 or text labels"
        elif name == "reserved_prototypes":
            ok = dtype == np.dtype("i1") and len(shape) == 2 and 1 <= shape[0] <= MAX_CLASSES - self.n_classes \
                and shape[1] == self.width
            what = f"int8 of shape (1..{MAX_CLASSES - self.n_classes}, {self.width})"
        elif name == "input_means":
            ok = dtype == np.dtype("<i2") and shape == (self.n_inputs,)
            what = f"int16 of shape ({self.n_inputs},)"
        elif name == "input_keep":
            ok = dtype == np.bool_ and len(shape) == 1 and shape[0] <= self.n_features * MAX_THERMOMETER_BITS
            what = f"a boolean vector of at most {self.n_features * MAX_THERMOMETER_BITS} entries"
        elif name in ("input_below", "input_spread"):
            bound = self.n_features * (MAX_THERMOMETER_BITS if name == "input_below" else 1)
            ok = dtype == np.dtype("<f8") and len(shape) == 1 and shape[0] <= bound
            what = f"a float64 vector of at most {bound} entries"
        elif name == "binarizer_spec":
            ok = dtype.kind == "U" and dtype.itemsize <= 4 * 64 and shape == ()
            what = "a short text"
        elif name == "binarizer_thresholds":  # rows: features, or features at every point (per time point)
            rows = (self.n_features, self.n_features * self.length)
            ok = dtype == np.dtype("<f8") and shape[:1] in ((rows[0],), (rows[1],)) and len(shape) <= 2 \
                and (len(shape) == 1 or shape[1] <= MAX_THERMOMETER_BITS)
            what = f"float64 of shape ({self.n_features},) or (F, N), F {self.n_features} or {rows[1]}"
        elif name in (_META, _CHECKSUM):
            limit = MAX_META_BYTES if name == _META else 64
            ok = dtype == np.uint8 and len(shape) == 1 and shape[0] <= limit
            what = f"at most {limit} bytes"
        else:
            raise BEPError(f"array {validate.show(name, 40)} does not belong in a model file")
        if not ok:
            raise BEPError(f"array '{name}' must be {what}, got {dtype} of shape {shape}")
        self.seen.add(name)

    def missing(self) -> list[str]:
        required = set(self.fixed) | {"classes", "input_keep", "binarizer_spec"}
        return sorted(required - self.seen)


def _read_meta(z: zipfile.ZipFile, path) -> tuple[bytes, dict]:
    """The metadata document, read and parsed before anything else (bounded in size)."""
    for info in z.infolist():
        if info.compress_type != zipfile.ZIP_STORED:
            raise BEPError(f"array {validate.show(info.filename, 40)} is compressed; model files store arrays "
                           "uncompressed (so no file unpacks to more than its own size)")
    names = set(z.namelist())
    if f"{_META}.npy" not in names or f"{_CHECKSUM}.npy" not in names:
        raise BEPError(f"'{path}' is not a bep-mcu model file (no metadata)")

    def metadata_only(name: str, header: files.NpyHeader) -> None:
        if header.dtype != np.uint8 or len(header.shape) != 1:
            raise BEPError(f"'{path}' is corrupted: damaged metadata array")

    meta_bytes = files.read_members(z, f"'{path}' is corrupted", metadata_only,
                                    MAX_META_BYTES, only={_META})[_META]
    meta_bytes = meta_bytes.tobytes()
    try:
        meta = json.loads(meta_bytes)
    except (ValueError, RecursionError):
        raise BEPError(f"'{path}' is corrupted: its metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        fmt = validate.show(meta.get("format")) if isinstance(meta, dict) else "unknown"
        raise BEPError(f"'{path}' is not a bep-mcu model file (format {fmt})")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BEPError(f"field 'version' must be a positive integer, got {validate.show(version)}")
    if version > FORMAT_VERSION:
        raise BEPError(f"'{path}' has model format version {version}; this bep-mcu reads up to {FORMAT_VERSION}: "
                       "upgrade bep-mcu")
    if version not in READS_VERSIONS:
        raise BEPError(f"model format version {version} cannot be read by this bep-mcu")
    return meta_bytes, meta


def load(path: str | os.PathLike) -> Model:
    """Read, check and rebuild a model (module docstring); one ``BEPError`` line on any fault."""
    try:
        return _load(path)
    except BEPError as e:
        message = str(e)  # schema errors name the field; say which file too
        raise BEPError(message if f"'{path}'" in message else f"'{path}': {message}") from None


def _load(path) -> Model:
    with files.open_regular(path, "model", MAX_FILE_BYTES) as f:
        try:
            z = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError, NotImplementedError):
            raise BEPError(f"'{path}' is not a bep-mcu model file (not an npz archive)") from None
        with z:
            return _read_model(path, z)


def _read_model(path, z: zipfile.ZipFile) -> Model:
    meta_bytes, meta = _read_meta(z, path)
    fields = _Fields(meta, "")
    fields.text("generator", 128)
    spec = _spec(fields)
    hyper = _hyper(fields)
    params = _params(fields, spec)
    training = _training(fields, meta["version"], spec)
    inp = fields.obj("input")
    n_features = inp.int("n_features", 1, MAX_FEATURES)
    length = inp.int("length", 1, MAX_LENGTH, optional=True)
    kept = _settings(inp)  # the window and bias bits
    expected = _Expected(spec, n_features, length or 1)
    arrays = files.read_members(z, f"'{path}' is corrupted", expected.check, MAX_FILE_BYTES)
    missing = expected.missing()
    if missing:
        raise BEPError(f"array '{missing[0]}' is missing")
    arrays.pop(_META)
    checksum = arrays.pop(_CHECKSUM).tobytes().decode("ascii", "replace")
    if _digest(meta_bytes, arrays) != checksum:
        raise BEPError(f"'{path}' is corrupted: checksum mismatch")
    binarizer = binarizer_from_arrays({k[len("binarizer_"):]: v for k, v in arrays.items()
                                       if k.startswith("binarizer_")})
    encoder = Encoder(spec.model, binarizer, arrays["input_keep"], n_features, length, **kept,
                      below=arrays.get("input_below"), spread=arrays.get("input_spread"))
    return Model(spec, hyper, params, tuple(arrays[f"hidden_{i}"] for i in range(spec.n_layers)),
                 arrays["classifier"], encoder, arrays["classes"], training, arrays.get("reserved_prototypes"),
                 arrays.get("input_means"))
