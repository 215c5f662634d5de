"""The host twin: the generated C, compiled on the host through cffi (API mode).

The generated sources are compiled exactly as they ship, with the strict warning set
(any warning fails the build; ``cgen.toolchain`` is the one compile path), into
objects that cffi links into an extension module. The declarations cffi reads are
taken from the generated headers themselves (``cgen.abi.cdef``), never typed here.
Modules are cached by a digest of the sources and flags, so a network is compiled
once. numpy arrays cross the boundary without copies (``ffi.from_buffer``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from bep_mcu.cgen import abi, toolchain
from bep_mcu.cgen.codegen import Generated, snapshot_bytes
from bep_mcu.cgen.status import status_name
from bep_mcu.engine.network import Counters
from bep_mcu.engine.schedule import EpochStart
from bep_mcu.engine.spec import NetSpec
from bep_mcu.training import EncodedData

# The twin runs the shipped sources; only code generation differs from a device build:
# the host's own popcount instruction and vector units (BEP_POPCOUNT_BUILTIN, see
# bep_runtime.h). Results are identical by construction (integer code).
TWIN_DEFINES = {"BEP_POPCOUNT_BUILTIN": "1"}
TWIN_FLAGS = ["-fPIC", "-march=native"]


def cache_dir() -> Path:
    root = os.environ.get("BEP_MCU_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "bep-mcu")
    return Path(root) / "twin"


def generated_cdef(gen: Generated, board: bool = False, link: bool = False) -> str:
    """The declarations of a generated directory's public API, from its own headers
    (``board``: the board part's too; ``link``: the board side of the serial protocol,
    its structs left opaque)."""
    if gen.inference:
        return abi.cdef([(gen.src / h).read_text() for h in ("bep_status.h", f"bep_{gen.c_name}.h")])
    headers = ["bep_status.h", "bep_runtime.h", f"bep_{gen.name}.h",
               *(["bep_standalone.h", f"bep_{gen.name}_board.h"] if board else []), *(["bep_link.h"] if link else [])]
    opaque = "typedef struct { ...; } bep_config_t;\ntypedef struct bep_link { ...; } bep_link_t;\n" if link else ""
    return opaque + abi.cdef([(gen.src / h).read_text() for h in headers])


def build_extension(gen: Generated, module_prefix: str, cdef: str, source: str = "", *,
                    defines: dict[str, str] | None = None, extra_flags: list[str] | None = None,
                    level: str = "O3", link_args: list[str] | None = None, build_root: Path | None = None,
                    load: bool = True):
    """Compile ``gen``'s sources (strict) plus ``source`` into a cffi module and import it
    (``load=False``: return the path of the built module instead, e.g. for a sanitized
    build that only a child process with the sanitizer runtime preloaded can import).

    Cached under ``build_root`` (default: the twin cache) by a digest of everything
    that goes into the build; parallel builders publish atomically and race harmlessly."""
    import cffi

    defines = {**TWIN_DEFINES, **(defines or {})}
    flags = TWIN_FLAGS + (extra_flags or [])
    key = "\0".join([gen.digest(), cdef, source, repr(sorted(defines.items())), " ".join(flags), level,
                     " ".join(link_args or []), sys.version])
    module_name = f"{module_prefix}_{gen.name}_{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    build_dir = (build_root or cache_dir()) / module_name
    built = list(build_dir.glob(f"{module_name}*.so")) if build_dir.is_dir() else []
    if not built:
        tmp = build_dir.with_name(build_dir.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        objects = toolchain.compile_objects(toolchain.toolchain("host"), gen.sources(), gen.src, tmp, level,
                                            strict=True, defines=defines, extra=flags)
        ffi = cffi.FFI()
        ffi.cdef(cdef)
        ffi.set_source(module_name, source or f'#include "bep_{gen.c_name}.h"', include_dirs=[str(gen.src)],
                       extra_objects=[str(o) for o in objects],
                       extra_compile_args=flags + [f"-D{k}={v}" for k, v in defines.items()],
                       extra_link_args=link_args or [])
        ffi.compile(tmpdir=str(tmp), verbose=False)
        try:
            os.replace(tmp, build_dir)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        built = list(build_dir.glob(f"{module_name}*.so"))
    if not load:
        return built[0], module_name
    spec = importlib.util.spec_from_file_location(module_name, built[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Twin:
    """One network's generated C, with its own state buffer, driven from Python."""

    def __init__(self, gen: Generated, spec: NetSpec, defines: dict[str, str] | None = None) -> None:
        self.gen, self.spec, self.name = gen, spec, gen.name
        module = build_extension(gen, "_bep_twin", generated_cdef(gen, board=True), f'#include "bep_{gen.name}_board.h"',
                                 defines=defines)
        self.ffi, self.lib = module.ffi, module.lib
        self.state = np.zeros(gen.plan.state_bytes // 4, dtype=np.uint32)
        self._state_ptr = self.ffi.from_buffer("uint32_t[]", self.state)
        self.hidden_dtype = np.dtype(spec.hidden_dtype)

    def _fn(self, op: str):
        return getattr(self.lib, f"bep_{self.name}_{op}")

    def _call(self, op: str, *args) -> None:
        status = self._fn(op)(self._state_ptr, self.state.nbytes, *args)
        if status != 0:
            raise RuntimeError(f"bep_{self.name}_{op}: {status_name(status)}")

    def state_size(self) -> int:
        return int(self._fn("state_size")())

    def init(self, seed: int, batches: int = 0) -> None:
        self._call("init", seed & 0xFFFFFFFF, batches & 0xFFFFFFFF)

    def start(self, seed: int, batches: int = 0) -> None:
        """init, then the on-device schedule's first epoch (bep_<net>_start)."""
        self._call("start", seed & 0xFFFFFFFF, batches & 0xFFFFFFFF)

    def load_hidden(self, layer: int, hidden: np.ndarray) -> None:
        h = np.ascontiguousarray(hidden, dtype=self.hidden_dtype)
        self._call("load_hidden", layer, self.ffi.from_buffer(h), h.nbytes)

    def read_hidden(self, layer: int) -> np.ndarray:
        rows, cols = self.spec.layer_shapes()[layer]
        out = np.empty((rows, cols), dtype=self.hidden_dtype)
        self._call("read_hidden", layer, self.ffi.from_buffer(out), out.nbytes)
        return out

    def hidden_weights(self) -> list[np.ndarray]:
        return [self.read_hidden(i) for i in range(self.spec.n_layers)]

    def set_epoch(self, gamma, q) -> None:
        g = np.ascontiguousarray(gamma, dtype=np.uint16)
        qq = np.ascontiguousarray(q, dtype=np.uint32)
        self._call("set_epoch", self.ffi.from_buffer("uint16_t[]", g), len(g), self.ffi.from_buffer("uint32_t[]", qq),
                   len(qq))

    def train_batch(self, x_packed: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """x_packed: (n, input_words) uint32; returns the forward predictions."""
        x = np.ascontiguousarray(x_packed, dtype=np.uint32)
        y = np.ascontiguousarray(labels, dtype=np.uint16)
        out = np.empty(len(y), dtype=np.uint16)
        self._call("train_batch", self.ffi.from_buffer("uint32_t[]", x), x.size, self.ffi.from_buffer("uint16_t[]", y),
                   self.ffi.from_buffer("uint16_t[]", out), len(y))
        return out.astype(np.int64)

    def train_sample(self, x_packed: np.ndarray, label: int) -> int:
        x = np.ascontiguousarray(x_packed, dtype=np.uint32)
        out = self.ffi.new("uint16_t *")
        self._call("train_sample", self.ffi.from_buffer("uint32_t[]", x), x.size, label, out)
        return int(out[0])

    def end_batch(self) -> None:
        self._call("end_batch")

    def predict(self, x_packed: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x_packed, dtype=np.uint32)
        out = self.ffi.new("uint16_t *")
        preds = np.empty(len(x), dtype=np.int64)
        for i in range(len(x)):
            self._call("infer", self.ffi.from_buffer("uint32_t[]", x[i]), x.shape[1], out)
            preds[i] = out[0]
        return preds

    def set_classes(self, n: int) -> None:
        """Put classes up to ``n`` in use (``bep_<net>_set_classes``)."""
        self._call("set_classes", n)

    def classes(self) -> int:
        """The classes in use (``bep_<net>_read_classes``)."""
        out = self.ffi.new("uint16_t *")
        self._call("read_classes", out)
        return int(out[0])

    def scores(self, x_packed: np.ndarray) -> np.ndarray:
        """The integer logits of each sample, (n, classes in use) int32 (``bep_<net>_scores``)."""
        x = np.ascontiguousarray(x_packed, dtype=np.uint32)
        out = np.empty((len(x), self.classes()), dtype=np.int32)
        for i in range(len(x)):
            self._call("scores", self.ffi.from_buffer("uint32_t[]", x[i]), x.shape[1],
                       self.ffi.from_buffer("int32_t[]", out[i]), out.shape[1])
        return out

    def counters(self) -> Counters:
        c = self.ffi.new("bep_counters_t *")
        self._call("read_counters", c)
        return Counters(**{name: int(getattr(c, name)) for name in Counters.NAMES})

    # ------------------------------------------------ a board that learns on its own

    def _raw(self, raw: np.ndarray) -> tuple[np.ndarray, str]:
        """Device values as the C input type's array, and that type's name."""
        ctype = f"bep_{self.name}_input_t"
        return np.ascontiguousarray(raw, dtype=self.ffi.typeof(ctype).cname.removesuffix("_t")), f"{ctype}[]"

    def encode(self, raw: np.ndarray, calibrated: bool = False) -> np.ndarray:
        """Device values (n, values of a sample) → packed inputs (n, input words), by the C encoder
        (``calibrated``: with the thresholds where they stand, bep_<net>_encode_calibrated)."""
        raw, ctype = self._raw(raw)
        words = self.gen.plan.input_words
        out = np.zeros((len(raw), words), dtype=np.uint32)
        for i in range(len(raw)):
            args = (self.ffi.from_buffer(ctype, raw[i]), raw[i].size, self.ffi.from_buffer("uint32_t[]", out[i]), words)
            if calibrated:
                self._call("encode_calibrated", *args)
            else:
                status = self._fn("encode")(*args)
                if status != 0:
                    raise RuntimeError(f"bep_{self.name}_encode: {status_name(status)}")
        return out

    def calibrate(self, raw: np.ndarray, values_per_call: int | None = None) -> None:
        """bep_<net>_calibrate over device values (n, values of a sample), a sample per call
        (``values_per_call``: that many values instead, e.g. one point's for a stream)."""
        raw, ctype = self._raw(raw)
        flat = raw.reshape(-1)
        per = values_per_call or raw[0].size
        for start in range(0, flat.size, per):
            chunk = flat[start:start + per]
            self._call("calibrate", self.ffi.from_buffer(ctype, chunk), chunk.size)

    def calibration(self) -> tuple[np.ndarray, np.ndarray]:
        """(thresholds, accumulators) where they stand (bep_<net>_read_calibration)."""
        n = self.gen.plan.followed
        t, a = np.zeros(n, dtype=np.int32), np.zeros(n, dtype=np.int32)
        self._call("read_calibration", self.ffi.from_buffer("int32_t[]", t), self.ffi.from_buffer("int32_t[]", a), n)
        return t.astype(np.int64), a.astype(np.int64)

    def calibration_reset(self) -> None:
        self._call("calibration_reset")

    def end_epoch(self) -> None:
        self._call("end_epoch")

    def reset_counters(self) -> None:
        self._call("reset_counters")

    def schedule(self) -> dict:
        """Where the C schedule stands: epoch, level, stalled, best epoch, γ and Q in use."""
        info = self.ffi.new("bep_schedule_info_t *")
        self._call("read_schedule", info)
        n = self.spec.n_layers
        return {"epoch": info.epoch, "level": info.level, "stalled": info.stalled, "best_errors": info.best_errors,
                "best_samples": info.best_samples, "gamma": list(info.gamma)[:n], "q": list(info.q)[:n],
                "budget_epochs": info.budget_epochs, "marked_epoch": info.marked_epoch,
                "marked_errors": info.marked_errors}

    def should_stop(self, min_epochs: int) -> bool:
        """What the board's budget says after the epochs closed (bep_<net>_should_stop)."""
        out = self.ffi.new("uint32_t *")
        self._call("should_stop", min_epochs, out)
        return bool(out[0])

    def sample_index(self, n: int, i: int) -> int:
        out = self.ffi.new("uint32_t *")
        self._call("sample_index", n, i, out)
        return int(out[0])

    def snapshot(self, size: int | None = None) -> tuple[int, bytes]:
        """(status, bytes written) of bep_<net>_snapshot into a buffer of ``size`` bytes."""
        buf = bytearray(snapshot_bytes(self.gen.plan) if size is None else size)
        status = self._fn("snapshot")(self._state_ptr, self.state.nbytes, self.ffi.from_buffer(buf), len(buf))
        return status, bytes(buf)

    def restore(self, data: bytes) -> int:
        """Status of bep_<net>_restore from ``data``."""
        return self._fn("restore")(self._state_ptr, self.state.nbytes, self.ffi.from_buffer(bytearray(data)),
                                   len(data))


class TwinTrainer:
    """The C twin as a :class:`~bep_mcu.training.Trainer`, started from a model's state."""

    name = "c-twin"

    def __init__(self, twin: Twin, seed: int, batch_counter: int, own_schedule: bool = False) -> None:
        """``own_schedule``: the C schedules itself, as a board that learns alone does
        (bep_<net>_end_epoch between epochs); ``schedules`` then records the γ and Q it
        chose for every epoch, to compare with the host's."""
        self.twin, self.spec, self.own_schedule = twin, twin.spec, own_schedule
        self.schedules: list[dict] = []
        (twin.start if own_schedule else twin.init)(seed, batch_counter)

    def set_epoch(self, gamma, q, start: EpochStart | None = None) -> None:
        if not self.own_schedule:
            self.twin.set_epoch(gamma, q)
            return
        if self.schedules:  # every epoch but the first: init started the schedule
            self.twin.end_epoch()
        self.schedules.append(self.twin.schedule())

    def train_batch(self, batch: EncodedData) -> np.ndarray:
        return self.twin.train_batch(batch.packed, batch.y)

    def evaluate(self, data: EncodedData) -> np.ndarray:
        return self.twin.predict(data.packed)

    def counters(self) -> Counters:
        return self.twin.counters()

    def hidden_weights(self) -> list[np.ndarray]:
        return self.twin.hidden_weights()


class InferenceTwin:
    """Inference-only output (``generate --inference-only``) on the host: the packed
    weights in const tables, ``bep_<net>_infer_predict``/``_predict_raw`` and the scores
    of ``bep_<net>_infer_scores_raw``."""

    def __init__(self, gen: Generated) -> None:
        assert gen.inference is not None, "not an inference-only directory"
        self.gen, self.name = gen, gen.c_name
        module = build_extension(gen, "_bep_infer", generated_cdef(gen))
        self.ffi, self.lib = module.ffi, module.lib
        self.work = np.zeros(gen.inference.work_words, dtype=np.uint32)

    def _predict(self, op: str, samples: np.ndarray, ctype: str) -> np.ndarray:
        fn, out = getattr(self.lib, f"bep_{self.name}_{op}"), self.ffi.new("uint16_t *")
        work = self.ffi.from_buffer("uint32_t[]", self.work)
        preds = np.empty(len(samples), dtype=np.int64)
        for i, sample in enumerate(samples):
            if op == "predict":  # the packed input, then the scratch after it
                scratch = self.ffi.from_buffer("uint32_t[]", self.work[self.gen.inference.input_words:])
                status = fn(self.ffi.from_buffer(ctype, sample), sample.size, scratch,
                            self.gen.inference.scratch_words, out)
            else:
                status = fn(self.ffi.from_buffer(ctype, sample), sample.size, work, self.work.size, out)
            if status != 0:
                raise RuntimeError(f"bep_{self.name}_{op}: {status_name(status)}")
            preds[i] = out[0]
        return preds

    def predict(self, x_packed: np.ndarray) -> np.ndarray:
        """Class indices of packed samples (n, input words)."""
        return self._predict("predict", np.ascontiguousarray(x_packed, dtype=np.uint32), "uint32_t[]")

    def predict_raw(self, raw: np.ndarray) -> np.ndarray:
        """Class indices of raw device values (n, values of a sample), encoded by the C."""
        ctype = f"bep_{self.name}_input_t"
        raw = np.ascontiguousarray(raw, dtype=self.ffi.typeof(ctype).cname.removesuffix("_t"))
        return self._predict("predict_raw", raw, f"{ctype}[]")

    def scores_raw(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class indices, integer logits (n, classes)) of raw device values, from
        ``bep_<net>_infer_scores_raw``."""
        ctype = f"bep_{self.name}_input_t"
        raw = np.ascontiguousarray(raw, dtype=self.ffi.typeof(ctype).cname.removesuffix("_t"))
        n_classes = self.gen.inference.classifier_bytes // (4 * self.gen.inference.class_words)
        fn, out = getattr(self.lib, f"bep_{self.name}_scores_raw"), self.ffi.new("uint16_t *")
        scores = np.zeros((len(raw), n_classes), dtype=np.int32)
        preds = np.empty(len(raw), dtype=np.int64)
        work = self.ffi.from_buffer("uint32_t[]", self.work)
        for i, sample in enumerate(raw):
            status = fn(self.ffi.from_buffer(f"{ctype}[]", sample), sample.size, work, self.work.size,
                        self.ffi.from_buffer("int32_t[]", scores[i]), n_classes, out)
            if status != 0:
                raise RuntimeError(f"bep_{self.name}_scores_raw: {status_name(status)}")
            preds[i] = out[0]
        return preds, scores
