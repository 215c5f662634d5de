"""The host twin: the generated C, compiled on the host through cffi (API mode).

The generated sources are compiled exactly as they ship, with the strict warning set
(any warning fails the build), into objects that cffi links into an extension module.
Modules are cached by a digest of the sources and flags, so a network is compiled once.
numpy arrays cross the boundary without copies (``ffi.from_buffer``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from bep_mcu.cgen.codegen import Generated, source_digest
from bep_mcu.errors import BEPError
from bep_mcu.cgen.status import STATUS, status_name

STRICT_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion", "-Wundef", "-Wshadow",
                "-pedantic", "-Werror"]
# The twin runs the shipped sources; only code generation differs from a device build:
# the host's own popcount instruction and vector units (BEP_POPCOUNT_BUILTIN, see
# bep_runtime.h). Results are identical by construction (integer code).
OPT_FLAGS = ["-O3", "-fPIC", "-march=native", "-DBEP_POPCOUNT_BUILTIN=1"]


def cache_dir() -> Path:
    root = os.environ.get("BEP_MCU_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "bep-mcu")
    return Path(root) / "twin"


def compiler() -> str:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise BEPError(f"C compiler '{cc}' not found (set CC or install gcc)")
    return cc


def _cdef(name: str) -> str:
    enum = ",\n".join(f"    BEP_{n} = {v}" for n, v, _ in STATUS)
    return f"""
typedef enum {{
{enum}
}} bep_status_t;
typedef struct {{
    uint32_t samples; uint32_t triggered; uint32_t errors; uint32_t updates; uint32_t batches;
}} bep_counters_t;
const char *bep_status_str(bep_status_t status);
size_t bep_{name}_state_size(void);
bep_status_t bep_{name}_init(void *state, size_t state_len, uint32_t seed, uint32_t batches);
bep_status_t bep_{name}_load_hidden(void *state, size_t state_len, uint32_t layer, const void *hidden, size_t hidden_len);
bep_status_t bep_{name}_read_hidden(const void *state, size_t state_len, uint32_t layer, void *out, size_t out_len);
bep_status_t bep_{name}_set_epoch(void *state, size_t state_len, const uint16_t *gamma, size_t n_gamma,
                                  const uint32_t *q, size_t n_q);
bep_status_t bep_{name}_infer(void *state, size_t state_len, const uint32_t *x, size_t x_words, uint16_t *out_class);
bep_status_t bep_{name}_train_sample(void *state, size_t state_len, const uint32_t *x, size_t x_words,
                                     uint16_t label, uint16_t *out_class);
bep_status_t bep_{name}_end_batch(void *state, size_t state_len);
bep_status_t bep_{name}_train_batch(void *state, size_t state_len, const uint32_t *x, size_t x_words,
                                    const uint16_t *labels, uint16_t *out_class, size_t n_samples);
bep_status_t bep_{name}_read_counters(const void *state, size_t state_len, bep_counters_t *out);
bep_status_t bep_{name}_reset_counters(void *state, size_t state_len);
"""


def compile_strict(sources: list[Path], include: Path, out_dir: Path, extra: list[str] | None = None) -> list[Path]:
    """Compile each source to an object with the strict flag set; a warning is an error."""
    objects = []
    for src in sources:
        obj = out_dir / (src.stem + ".o")
        cmd = [compiler(), *STRICT_FLAGS, *OPT_FLAGS, *(extra or []), "-I", str(include), "-c", str(src), "-o", str(obj)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling {src.name} failed:\n{proc.stderr}")
        objects.append(obj)
    return objects


def build_module(gen: Generated, extra_cflags: list[str] | None = None):
    """Compile (or reuse) the twin extension of a generated directory; returns its module."""
    import cffi

    c_sources = [gen.directory / f for f in gen.files if f.endswith(".c")]
    flags = " ".join(STRICT_FLAGS + OPT_FLAGS + (extra_cflags or []))
    digest = hashlib.sha256((source_digest(gen.directory, gen.files) + flags + sys.version).encode()).hexdigest()[:16]
    module_name = f"_bep_twin_{gen.name}_{digest}"
    build_dir = cache_dir() / module_name
    built = list(build_dir.glob(f"{module_name}*.so")) if build_dir.is_dir() else []
    if not built:
        tmp = build_dir.with_name(build_dir.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        objects = compile_strict(c_sources, gen.directory, tmp, extra_cflags)
        ffi = cffi.FFI()
        ffi.cdef(_cdef(gen.name))
        ffi.set_source(module_name, f'#include "bep_{gen.name}.h"', include_dirs=[str(gen.directory)],
                       extra_objects=[str(o) for o in objects])
        ffi.compile(tmpdir=str(tmp), verbose=False)
        try:
            os.replace(tmp, build_dir)  # atomic publish: parallel builders race harmlessly
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        built = list(build_dir.glob(f"{module_name}*.so"))
    spec = importlib.util.spec_from_file_location(module_name, built[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Twin:
    """One network's generated C, with its own state buffer, driven from Python."""

    def __init__(self, gen: Generated, spec, extra_cflags: list[str] | None = None) -> None:
        self.gen, self.spec, self.name = gen, spec, gen.name
        module = build_module(gen, extra_cflags)
        self.ffi, self.lib = module.ffi, module.lib
        self.state = np.zeros(gen.plan.state_bytes // 4, dtype=np.uint32)
        self._state_ptr = self.ffi.from_buffer("uint32_t[]", self.state)
        self._fn = lambda op: getattr(self.lib, f"bep_{self.name}_{op}")
        self.hidden_dtype = np.int8 if spec.hidden_bits == 8 else np.int16

    def _call(self, op: str, *args) -> None:
        status = self._fn(op)(self._state_ptr, self.state.nbytes, *args)
        if status != 0:
            raise RuntimeError(f"bep_{self.name}_{op}: {status_name(status)}")

    def state_size(self) -> int:
        return int(self._fn("state_size")())

    def init(self, seed: int, batches: int = 0) -> None:
        self._call("init", seed & 0xFFFFFFFF, batches & 0xFFFFFFFF)

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

    def counters(self) -> dict[str, int]:
        c = self.ffi.new("bep_counters_t *")
        self._call("read_counters", c)
        return {"samples": c.samples, "triggered": c.triggered, "errors": c.errors, "updates": c.updates,
                "batches": c.batches}


def pack_inputs(encoded: np.ndarray, spec) -> np.ndarray:
    """Encoded ±1 network inputs → packed C input words, one row per sample."""
    from bep_mcu.engine.bits import pack

    packed = pack(encoded)  # mlp: (n, words); rnn: (n, T, words_x)
    return np.ascontiguousarray(packed.reshape(len(encoded), -1))
