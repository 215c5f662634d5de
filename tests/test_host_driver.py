"""The standalone C driver (host/bep_host_driver.c) against golden vectors.

Models are trained with the CLI, rendered with ``bep-mcu generate``, recorded with
``bep-mcu golden`` (numpy engine), and the driver, built by host/Makefile with the
strict flag set, replays every batch through the generated C and compares
predictions, counters and all hidden weights with exact equality: in a normal build,
an ASan/UBSan build and under valgrind. A corrupted copy of a golden file must make
it exit 1 naming the batch, layer, row and column that was changed; damaged files
must be refused (under ASan, so the parser is checked to stay in bounds).

Skips (with the reason) when make, a C compiler, sanitizer runtimes or valgrind are
missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from bep_mcu.twin import golden as golden_mod
from bep_mcu.cli.main import cli

HOST_DIR = Path(__file__).resolve().parents[1] / "host"
PROTOTYPES = "prototypes:classes=4,features=100,samples=1200"
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
                 "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
SANITIZER_REPORT = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:")


@dataclass(frozen=True)
class CaseSpec:
    train: tuple[str, ...]
    dataset: str
    golden: tuple[str, ...]


# Names double as the C network name (bep_<name>_*). The *_sat cases start with most
# hidden weights at the B-bit limits, so update and reinforcement saturation run.
CASES = {
    "mlp8": CaseSpec(("--hidden", "64,32", "--epochs", "1"), PROTOTYPES, ("--batches", "12", "--batch-size", "25")),
    "mlp16": CaseSpec(("--hidden", "64,32", "--epochs", "1", "--hidden-bits", "16"), PROTOTYPES,
                      ("--batches", "12", "--batch-size", "25")),
    # GunPoint has 50 training series, 5 batches of 10 per epoch: 8 batches cross into epoch 1.
    "rnn": CaseSpec(("--model", "rnn", "--hidden", "32", "--epochs", "1"), "ucr:GunPoint", ("--batches", "8")),
    "mlp8_sat": CaseSpec(("--hidden", "48,32", "--epochs", "1", "--sigma", "300"), PROTOTYPES,
                         ("--batches", "10", "--batch-size", "20")),
    "mlp16_sat": CaseSpec(("--hidden", "48,32", "--epochs", "1", "--hidden-bits", "16", "--sigma", "80000"),
                          PROTOTYPES, ("--batches", "10", "--batch-size", "20")),
}


@dataclass(frozen=True)
class Built:
    name: str
    spec: CaseSpec
    model: Path
    gen: Path
    golden: Path
    build: Path

    @property
    def driver(self) -> Path:
        return self.build / "bep_host_driver"

    @property
    def asan_driver(self) -> Path:
        return self.build / "bep_host_driver_asan"


# ---------------------------------------------------------------------- helpers


def invoke(*args) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstderr: {result.stderr}\nexception: {result.exception!r}"


def make(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-C", str(HOST_DIR), *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def run(cmd: list, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def pad4(n: int) -> int:
    return (n + 3) & ~3


def first_batch_offset(data: bytes) -> int:
    """Where batch 0 starts, from the documented layout and the header fields alone
    (independent of bep_mcu.golden's reader)."""
    hbits, n_layers = data[17], data[18]
    (prov,) = struct.unpack_from("<I", data, 40)
    pos = 44 + pad4(prov)
    shapes = [struct.unpack_from("<II", data, pos + 16 * i) for i in range(n_layers)]
    return pos + 16 * n_layers + sum(pad4(r * c * hbits // 8) for r, c in shapes)


def weight_offset_from_layout(data: bytes, batch: int, layer: int, row: int, col: int) -> int:
    hbits, n_layers = data[17], data[18]
    (input_words,) = struct.unpack_from("<I", data, 24)
    (prov,) = struct.unpack_from("<I", data, 40)
    shapes = [struct.unpack_from("<II", data, 44 + pad4(prov) + 16 * i) for i in range(n_layers)]
    wb = hbits // 8
    layer_bytes = [pad4(r * c * wb) for r, c in shapes]
    pos = first_batch_offset(data)
    for b in range(batch + 1):
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4 + 4 * n * input_words + 2 * pad4(2 * n) + 4 * 5
        if b == batch:
            return pos + sum(layer_bytes[:layer]) + (row * shapes[layer][1] + col) * wb
        pos += sum(layer_bytes)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def toolchain() -> str:
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        pytest.skip(f"C compiler '{cc}' not found (set CC or install gcc/clang)")
    return cc


@pytest.fixture(scope="module")
def sanitizers(toolchain, tmp_path_factory) -> None:
    """Skip the sanitizer tests when the compiler has no ASan/UBSan runtime."""
    d = tmp_path_factory.mktemp("probe")
    (d / "probe.c").write_text("int main(void) { return 0; }\n")
    proc = run([toolchain, "-fsanitize=address,undefined", str(d / "probe.c"), "-o", str(d / "probe")])
    if proc.returncode != 0 or run([d / "probe"], SANITIZER_ENV).returncode != 0:
        pytest.skip(f"{toolchain} cannot build or run -fsanitize=address,undefined: {proc.stderr.strip()[:200]}")


@pytest.fixture(scope="module")
def valgrind() -> str:
    path = shutil.which("valgrind")
    if path is None:
        pytest.skip("valgrind not installed")
    return path


def _build_case(name: str, root: Path) -> Built:
    spec = CASES[name]
    model, gen, golden, build = root / "model.npz", root / "gen", root / "golden.bin", root / "build"
    assert_ok(invoke("train", "--dataset", spec.dataset, *spec.train, "--out", model))
    assert_ok(invoke("generate", model, "--out", gen, "--name", name))
    assert_ok(invoke("golden", model, "--dataset", spec.dataset, *spec.golden, "--out", golden))
    proc = make(f"GEN={gen}", f"NET={name}", f"BUILD={build}", "all")
    assert proc.returncode == 0, f"host driver build failed:\n{proc.stdout}\n{proc.stderr}"
    return Built(name, spec, model, gen, golden, build)


class _Lazy(dict):
    """A dict that builds a missing entry on first use, so a module-scoped fixture
    prepares only the cases the selected tests need."""

    def __init__(self, build) -> None:
        super().__init__()
        self._build = build

    def __missing__(self, name: str):
        self[name] = value = self._build(name)
        return value


@pytest.fixture(scope="module")
def cases(toolchain, tmp_path_factory) -> dict[str, Built]:
    """Every case trained, generated, recorded and built once."""
    return _Lazy(lambda name: _build_case(name, tmp_path_factory.mktemp(name)))


@pytest.fixture(scope="module")
def asan_built(cases, sanitizers) -> dict[str, Path]:
    """The ASan/UBSan driver of each case, built once."""
    def build(name: str) -> Path:
        c = cases[name]
        proc = make(f"GEN={c.gen}", f"NET={name}", f"BUILD={c.build}", "asan")
        assert proc.returncode == 0, f"asan build failed:\n{proc.stdout}\n{proc.stderr}"
        return c.asan_driver

    return _Lazy(build)


# ------------------------------------------------------------------------ tests


@pytest.mark.parametrize("name", list(CASES))
def test_driver_matches_numpy(cases, name):
    c = cases[name]
    proc = run([c.driver, c.golden])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    n_batches = int(c.spec.golden[c.spec.golden.index("--batches") + 1])
    assert proc.stdout.startswith(f"OK {c.golden}: {n_batches} batches"), proc.stdout
    assert proc.stdout.count("\n") == 1 and proc.stderr == ""


@pytest.mark.parametrize("name", list(CASES))
def test_driver_asan_ubsan_clean(asan_built, cases, name):
    proc = run([asan_built[name], cases[name].golden], SANITIZER_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not SANITIZER_REPORT.search(proc.stderr), proc.stderr
    assert proc.stdout.startswith("OK ")


@pytest.mark.parametrize("name", list(CASES))
def test_driver_valgrind_clean(valgrind, cases, name):
    c = cases[name]
    proc = run([valgrind, "--error-exitcode=1", "--leak-check=full", "--errors-for-leak-kinds=all",
                c.driver, c.golden])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ERROR SUMMARY: 0 errors" in proc.stderr, proc.stderr
    assert "All heap blocks were freed" in proc.stderr, proc.stderr
    assert proc.stdout.startswith("OK ")


@pytest.mark.parametrize("name", ["mlp8", "mlp16", "rnn"])
def test_corrupted_weight_is_named(cases, asan_built, tmp_path, name):
    c = cases[name]
    data = bytearray(c.golden.read_bytes())
    g = golden_mod.from_bytes(bytes(data))
    batch, layer = len(g.batches) // 2, len(g.shapes) - 1
    rows, cols = g.shapes[layer]
    row, col = rows // 2 + 1, cols - 2
    offset = weight_offset_from_layout(bytes(data), batch, layer, row, col)
    assert offset == golden_mod.hidden_offset(g, batch, layer, row, col)
    dtype = g.hidden_dtype
    original = int(np.frombuffer(bytes(data[offset:offset + dtype.itemsize]), dtype=dtype)[0])
    assert original == int(g.batches[batch].hidden[layer][row, col])
    corrupt = original + 1 if original < np.iinfo(dtype).max else original - 1
    data[offset:offset + dtype.itemsize] = np.array([corrupt], dtype=dtype).tobytes()
    bad = tmp_path / "corrupt.bin"
    bad.write_bytes(bytes(data))
    expected = (f"MISMATCH batch {batch} layer {layer} row {row} col {col}: expected {corrupt}, got {original} "
                f"(file offset {offset})")
    for driver, env in ((c.driver, None), (asan_built[name], SANITIZER_ENV)):
        proc = run([driver, bad], env)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stdout.strip() == expected
        assert not SANITIZER_REPORT.search(proc.stderr), proc.stderr


def test_corrupted_prediction_and_counter_are_named(cases, tmp_path):
    c = cases["mlp8"]
    data = c.golden.read_bytes()
    g = golden_mod.from_bytes(data)
    w = g.input_words
    start = first_batch_offset(data)
    n = struct.unpack_from("<I", data, start)[0]
    assert n == len(g.batches[0].labels)
    pred_off = start + 4 + 4 * n * w + pad4(2 * n) + 2 * 3  # sample 3's prediction
    bad = bytearray(data)
    want = (g.batches[0].predictions[3] + 1) % g.n_classes
    struct.pack_into("<H", bad, pred_off, want)
    (tmp_path / "pred.bin").write_bytes(bytes(bad))
    proc = run([c.driver, tmp_path / "pred.bin"])
    assert proc.returncode == 1
    assert proc.stdout.strip() == (f"MISMATCH batch 0 sample 3 prediction: expected {want}, got "
                                   f"{g.batches[0].predictions[3]} (file offset {pred_off})")

    counter_off = start + 4 + 4 * n * w + 2 * pad4(2 * n) + 4 * 1  # "triggered"
    bad = bytearray(data)
    struct.pack_into("<I", bad, counter_off, int(g.batches[0].counters[1]) + 7)
    (tmp_path / "counter.bin").write_bytes(bytes(bad))
    proc = run([c.driver, tmp_path / "counter.bin"])
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"MISMATCH batch 0 counter triggered: expected {int(g.batches[0].counters[1]) + 7}")


@pytest.mark.parametrize("original, broken", [
    # another mixing constant: only the reinforcement draws change, so only hidden weights
    ("x *= 0x7FEB352Du;", "x *= 0x7FEB352Fu;"),
    # ties of the winner-takes-update go to the highest index instead of the lowest
    ("return key < best ? key : best;", "return (key >> 16) <= (best >> 16) ? key : best;"),
], ids=["rng-constant", "winner-ties"])
def test_broken_runtime_copy_is_caught(cases, tmp_path, original, broken):
    """A one-token bug in a copy of the generated runtime makes the driver exit 1."""
    c = cases["mlp8"]
    gen = tmp_path / "gen"
    shutil.copytree(c.gen, gen)
    source = (gen / "src" / "bep_runtime.c").read_text()
    assert source.count(original) == 1, f"bep_runtime.c changed: update this mutation ({original!r})"
    (gen / "src" / "bep_runtime.c").write_text(source.replace(original, broken))
    proc = make(f"GEN={gen}", f"NET={c.name}", f"BUILD={tmp_path / 'build'}", "all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run([tmp_path / "build" / "bep_host_driver", c.golden])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.fullmatch(r"MISMATCH batch \d+ (layer \d+ row \d+ col \d+|sample \d+ prediction|counter \w+): "
                        r"expected -?\d+, got -?\d+ \(file offset \d+\)\n", proc.stdout), proc.stdout


def test_damaged_files_are_refused_in_bounds(cases, asan_built, tmp_path):
    """Truncated, foreign and padded files: exit 2, one line, no sanitizer report."""
    c = cases["mlp8"]
    data = c.golden.read_bytes()
    variants = {
        "empty": (b"", "truncated"),
        "header": (data[:30], "truncated"),
        "provenance": (data[:60], "truncated"),
        "mid-batch": (data[: len(data) // 2 + 1], "truncated"),
        "no-end-marker": (data[:-8], "truncated"),
        "bad-end-marker": (data[:-1] + b"X", "end marker"),
        "trailing": (data + b"\0\0\0\0", "end marker"),
        "magic": (b"XEPGOLD\0" + data[8:], "magic"),
        "version": (data[:8] + struct.pack("<I", 99) + data[12:], "version 99"),
        "hash": (data[:12] + struct.pack("<I", struct.unpack_from("<I", data, 12)[0] ^ 1) + data[16:], "config hash"),
        "batches": (data[:36] + struct.pack("<I", 0xFFFFFFFF) + data[40:], "truncated"),
    }
    for label, (payload, words) in variants.items():
        path = tmp_path / f"{label}.bin"
        path.write_bytes(payload)
        proc = run([asan_built["mlp8"], path], SANITIZER_ENV)
        assert proc.returncode == 2, (label, proc.stdout, proc.stderr)
        assert not SANITIZER_REPORT.search(proc.stderr), (label, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (label, lines)
    proc = run([c.driver, tmp_path / "missing.bin"])
    assert proc.returncode == 2 and "cannot open" in proc.stderr
    proc = run([c.driver])
    assert proc.returncode == 2 and "usage" in proc.stderr


def test_golden_of_another_network_is_refused(cases):
    proc = run([cases["mlp8"].driver, cases["mlp16"].golden])
    assert proc.returncode == 2
    assert "config hash" in proc.stderr and proc.stdout == ""


def test_golden_file_is_reproducible(cases, tmp_path):
    """Same command, another output path (and the real console script): same bytes."""
    c = cases["mlp8"]
    again = tmp_path / "again.bin"
    args = ["golden", str(c.model), "--dataset", c.spec.dataset, *c.spec.golden, "--out", str(again)]
    exe = shutil.which("bep-mcu")
    if exe is not None:
        proc = run([exe, *args])
        assert proc.returncode == 0, proc.stderr
    else:
        assert_ok(invoke(*args))
    assert again.read_bytes() == c.golden.read_bytes()


def test_golden_from_data_file_equals_dataset(cases, tmp_path):
    """--data PATH with the same training part gives the same vectors (only the
    provenance differs)."""
    from bep_mcu.data.datasets import load_dataset

    c = cases["mlp8"]
    ds = load_dataset(c.spec.dataset)
    npz = tmp_path / "data.npz"
    np.savez(npz, X_train=ds.X_train, y_train=ds.y_train, X_test=ds.X_test, y_test=ds.y_test)
    out = tmp_path / "from_file.bin"
    result = invoke("golden", c.model, "--data", npz, *c.spec.golden, "--out", out, "--json")
    assert_ok(result)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["out"] == str(out) and summary["bytes"] == out.stat().st_size
    a, b = golden_mod.read_golden(c.golden), golden_mod.read_golden(out)
    assert b.provenance["dataset"] == str(npz) and f"--data {npz}" in b.provenance["command"]
    for x, y in zip(a.batches, b.batches, strict=True):
        for field in ("x", "labels", "predictions", "counters"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))
        for hx, hy in zip(x.hidden, y.hidden, strict=True):
            np.testing.assert_array_equal(hx, hy)


@pytest.mark.parametrize("name", ["mlp8", "rnn"])
def test_golden_contents(cases, name):
    c = cases[name]
    data = c.golden.read_bytes()
    g = golden_mod.from_bytes(data)
    assert golden_mod.to_bytes(g) == data
    # The header's hash is the one the generated code was built for.
    header = (c.gen / "src" / f"bep_{name}.h").read_text()
    macro = re.search(rf"#define BEP_{name.upper()}_CONFIG_HASH 0x([0-9A-F]{{8}})u", header)
    assert macro and int(macro.group(1), 16) == g.config_hash32
    assert tuple(g.provenance) == golden_mod.PROVENANCE_KEYS
    assert g.provenance["config_hash"].startswith(macro.group(1).lower())
    assert g.provenance["command"].startswith(f"bep-mcu golden {c.model} --dataset")
    assert "--out" not in g.provenance["command"]
    # Reinforcement fires: Q > 0 on every layer and samples trigger.
    assert all(q > 0 for q in g.q)
    assert g.batches[-1].counters[1] > 0
    assert g.batches[-1].counters[0] == sum(len(b.labels) for b in g.batches)
    assert g.batches[-1].counters[4] == g.batch_counter + len(g.batches)
    if name == "rnn":
        assert g.provenance["epochs"] == "2"  # 8 batches of 10 from 50 series


def test_golden_cli_user_errors(cases, tmp_path):
    c = cases["mlp8"]
    out = tmp_path / "g.bin"
    for args, words in (
        ((c.model, "--out", out), "exactly one of"),
        ((c.model, "--dataset", PROTOTYPES, "--data", "x.csv", "--out", out), "exactly one of"),
        ((c.model, "--dataset", PROTOTYPES, "--batches", "0", "--out", out), "--batches"),
        ((tmp_path / "nope.npz", "--dataset", PROTOTYPES, "--out", out), "nope.npz"),
        ((c.model, "--dataset", "prototypes:classes=4,features=50,samples=1200", "--out", out), "features"),
    ):
        result = invoke("golden", *args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
        assert not out.exists()


def test_clang_build_passes(cases, tmp_path):
    if shutil.which("clang") is None:
        pytest.skip("clang not installed")
    c = cases["rnn"]
    proc = make(f"GEN={c.gen}", f"NET={c.name}", f"BUILD={tmp_path}", "CC=clang", "all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run([tmp_path / "bep_host_driver", c.golden])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_makefile_needs_a_generated_directory(toolchain, tmp_path):
    proc = make(f"BUILD={tmp_path}")
    assert proc.returncode != 0 and "GEN is not set" in proc.stderr
    proc = make(f"GEN={tmp_path}", "NET=net", f"BUILD={tmp_path}")
    assert proc.returncode != 0 and "bep_net.h not found" in proc.stderr
