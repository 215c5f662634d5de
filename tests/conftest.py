"""Helpers shared by the test files: small data, fitting, the CLI runner and its checks,
and the tool checks that skip what a machine cannot run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from bep_mcu import modelio, training
from bep_mcu.model import Model

HAVE_ARM = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm"))
HAVE_QEMU = shutil.which("qemu-system-arm") is not None
needs_arm = pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm not installed (apt-get install qemu-system-arm)")
HAVE_RISCV = all(shutil.which("riscv64-unknown-elf-" + t) for t in ("gcc", "size", "nm"))
HAVE_QEMU_RISCV = shutil.which("qemu-system-riscv32") is not None
needs_riscv = pytest.mark.skipif(not HAVE_RISCV,
                                 reason="riscv64-unknown-elf-gcc not installed (apt-get install gcc-riscv64-unknown-elf)")
needs_qemu_riscv = pytest.mark.skipif(not HAVE_QEMU_RISCV,
                                      reason="qemu-system-riscv32 not installed (apt-get install qemu-system-misc)")
TIMING_KEYS = ("seconds", "samples_per_second")


def board_params(names) -> list:
    """Board names for ``parametrize``, a RISC-V board's skipped where its toolchain (or, for
    an emulated one, its QEMU) is missing (a module's ``needs_arm``/``needs_qemu`` cover the
    Arm boards)."""
    from bep_mcu.device import boards

    def marks(b: boards.Board) -> list:
        return [needs_riscv, *([needs_qemu_riscv] if b.emulated else [])]

    return [pytest.param(n, marks=marks(boards.BOARDS[n])) if boards.BOARDS[n].arch == "riscv" else n for n in names]


def binutil(board: str, tool: str) -> str:
    """The binutils program ``tool`` (nm, size, objdump) of ``board``'s core."""
    from bep_mcu.cgen import toolchain
    from bep_mcu.device import boards

    return toolchain.ARCHES[boards.BOARDS[board].arch].prefix + tool


# ------------------------------------------------------------------ models and data


def fit(X, y, **settings) -> Model:
    """A model trained with ``training.fit`` (the settings are ``training.Settings``'s)."""
    return training.fit(X, y, training.Settings(**settings))


def planted_library(gen, directory: Path, *edits: tuple[str, str, str]):
    """A copy of the generated library ``gen`` in ``directory`` with bugs planted, each edit
    (file under src/, old, new) replacing the one occurrence of ``old`` (a negative control:
    the test's checks must catch it)."""
    import dataclasses

    shutil.copytree(gen.directory, directory)
    for file, old, new in edits:
        path = directory / "src" / file
        source = path.read_text()
        assert source.count(old) == 1, (file, old)
        path.write_text(source.replace(old, new))
    return dataclasses.replace(gen, directory=directory)


def saved(model: Model, path: Path) -> Path:
    modelio.save(model, path)
    return path


def series(n: int, length: int, channels: int | None = None, seed: int = 0):
    """Two classes of noisy sines (2 vs 5 periods per series), random phase."""
    g = np.random.default_rng(seed)
    y = g.integers(0, 2, n)
    t = np.linspace(0.0, 1.0, length)
    x = np.sin(2 * np.pi * np.where(y == 0, 2, 5)[:, None] * t + g.uniform(0, 2 * np.pi, (n, 1)))
    x = x + 0.3 * g.normal(size=(n, length))
    if channels is None:
        return x, y
    return np.stack([x * (c + 1) + 0.1 * g.normal(size=(n, length)) for c in range(channels)], axis=-1), y


def blobs(n: int, features: int = 6, classes: int = 3, seed: int = 0):
    """Well-separated Gaussian clusters: an easy tabular problem."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = g.normal(0, 4, (classes, features))
    return centres[y] + g.normal(0, 1, (n, features)), y


def timeless(history) -> list[dict]:
    return [{k: v for k, v in rec.items() if k not in TIMING_KEYS} for rec in history]


def assert_same_weights(a, b) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype and x.shape == y.shape, f"layer {i}"
        if not np.array_equal(x, y):
            where = np.argwhere(x != y)[0]
            raise AssertionError(f"layer {i} differs first at {tuple(where)}: {x[tuple(where)]} vs {y[tuple(where)]}")


# ------------------------------------------------------------------ the CLI


def invoke(*args) -> Result:
    from bep_mcu.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def last_json(stdout: str) -> dict:
    lines = stdout.strip().splitlines()
    assert lines, "no standard output"
    return json.loads(lines[-1])


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, (
        f"exit {result.exit_code}\nstderr: {result.stderr}\nexception: {result.exception!r}")


def assert_one_error_line(exit_code: int, stderr: str, words=(), status: int | None = None) -> str:
    assert exit_code != 0, "expected a failure"
    if status is not None:
        assert exit_code == status, f"exit status {exit_code}, expected {status}: {stderr}"
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one line on stderr, got {lines}"
    line = lines[0]
    assert line.startswith("error: "), line
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in {line!r}"
    return line


def assert_error_after_progress(exit_code: int, stderr: str, words=(), status: int = 2) -> str:
    """An error after some progress: the last line of stderr is the one `error:` line."""
    assert exit_code == status, f"exit status {exit_code}, expected {status}: {stderr}"
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    for word in words:
        assert word.lower() in errors[0].lower(), f"{word!r} not in {errors[0]!r}"
    return errors[0]


def assert_user_error(result: Result, *words: str) -> str:
    """Exit 2, one `error:` line naming the problem, no traceback; nothing on stdout but,
    under --json, the same error as one JSON object."""
    # Anything but SystemExit means an exception escaped: the real CLI prints a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"uncaught {type(result.exception).__name__}: {result.exception}")
    line = assert_one_error_line(result.exit_code, result.stderr, words, status=2)
    if result.stdout:
        assert result.stdout.count("\n") == 1, f"stdout: {result.stdout!r}"
        assert json.loads(result.stdout) == {"error": line[len("error: "):], "exit_status": 2}
    return line


# ---------------------------------------------------------------------- emulator processes


def assert_board_trains_as_host(model: Model, X, y, tmp_path: Path, board: str = "mps2-an386") -> None:
    """``model``, streamed to its firmware on an emulated ``board`` for two epochs of the first 300 rows
    of ``X``, ``y`` (the rest the test set), ends with the host's weights and test accuracy, bit for bit."""
    from bep_mcu.device.emulate import EmulatedBoard
    from bep_mcu.device.firmware import build

    np.savez(tmp_path / "d.npz", X_train=X[:300], y_train=y[:300], X_test=X[300:], y_test=y[300:])
    modelio.save(model, tmp_path / "m.npz")
    elf = build(model, board, tmp_path / "fw").elf
    with EmulatedBoard(str(elf), board) as url:
        result = invoke("stream", tmp_path / "m.npz", "--port", url, "--data", tmp_path / "d.npz", "--epochs", 2,
                        "--check-host", "--json")
    assert result.exit_code == 0, result.output
    streamed = last_json(result.stdout)
    assert streamed["bit_exact"] is True and streamed["board"] == board
    assert streamed["device_test_accuracy"] == streamed["host_test_accuracy"]


def our_qemus() -> list[int]:
    """PIDs of qemu-system-arm processes whose parent is this test process."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        if comm.startswith("qemu-system") and ppid == os.getpid():
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def no_stray_qemu():
    """Use in a module that boots boards: every QEMU it started is gone when it ends."""
    yield
    assert our_qemus() == [], "QEMU processes outlived the tests"


def run_ok(cmd: list, **kw) -> subprocess.CompletedProcess:
    """Run a program (compiler, cmake, emulator); a non-zero exit fails with its command and output."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"$ {' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}"
    return proc


# ------------------------------------------------------------------ sanitizer builds

SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1", "PATH": "/usr/bin:/bin"}


# What every sanitizer driver needs to read its input file and write its output, put before
# its own text by build_sanitized.
DRIVER_IO = r"""
#include <stdio.h>
#include <stdlib.h>

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void put(FILE *f, const void *p, size_t n) { if (fwrite(p, 1, n, f) != n) abort(); }

/* The whole file, in an exact-size heap buffer (NULL when it cannot be read). */
static uint8_t *read_input(const char *path)
{
    FILE *in = fopen(path, "rb");
    uint8_t *data = NULL;
    long size;
    if (in != NULL && fseek(in, 0, SEEK_END) == 0 && (size = ftell(in)) >= 0 && fseek(in, 0, SEEK_SET) == 0) {
        data = (uint8_t *)malloc(size ? (size_t)size : 1u);
        if (data != NULL && fread(data, 1, (size_t)size, in) != (size_t)size) {
            free(data);
            data = NULL;
        }
    }
    if (in != NULL) fclose(in);
    return data;
}
"""


def build_sanitized(gen, driver: str, out: Path, defines: list[str], parts: tuple[str, ...] | None = None) -> Path:
    """A host program: ``driver`` (C text, a test's harness) linked with the generated
    library's ``parts`` (default: all of them but the example), all under AddressSanitizer
    and UndefinedBehaviorSanitizer, any report fatal. A standalone binary rather than the
    sanitizers preloaded into Python: no LD_PRELOAD, no interpreter noise in the reports,
    and it can be rerun by hand on a saved corpus."""
    from bep_mcu.cgen import toolchain

    cc = shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    src = out.parent / f"{out.name}.c"
    src.write_text("#include <stdint.h>\n" + DRIVER_IO + driver)
    # the shipped sources with the strict set (SANITIZE's -O1 after the level wins); the
    # driver (test code, uses libc) without -Wconversion
    objects = [str(o) for o in toolchain.compile_objects(toolchain.toolchain("host", cc), gen.sources(parts), gen.src,
                                                         out.parent / f"{out.name}-objects", "O2", strict=True,
                                                         extra=SANITIZE)]
    proc = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", *SANITIZE, *defines, "-I", str(gen.src),
                           str(src), *objects, "-o", str(out)], capture_output=True, text=True)
    if proc.returncode != 0 and "asan" in proc.stderr.lower():
        pytest.skip(f"AddressSanitizer runtime not available: {proc.stderr.splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    return out
