"""The firmware self-test: a golden file replayed on the board (bep_mcu/fw/selftest.c).

``bep-mcu firmware MODEL --board B --self-test GOLDEN`` embeds GOLDEN in flash and builds
an image whose ``main`` replays it with the host driver's checks (config hash, initial
weights, per-batch predictions, counters, every hidden weight) and ends QEMU through
semihosting: 0 match, 1 first mismatch, 2 foreign or damaged file. The same golden files
as tests/test_host_driver.py's, from ``bep-mcu golden``.

Asserted here, on mps2-an386 (Cortex-M4) and microbit (Cortex-M0, 16 KB RAM); the pass
and the RAM plan also on netduinoplus2 (STM32F405, Cortex-M4, semihosting exit there too):

* a golden file of the model passes (exit 0, one "OK" line);
* one expected hidden weight changed (found with ``golden.hidden_offset``) fails with
  exit 1 and a line naming that batch, layer, row, column and file offset;
* a golden file of another network configuration is refused at build time in one line;
  one of another model with the same configuration fails on the board (exit 1, at the
  initial weights); one forced into the image anyway is refused by the board (exit 2);
* the RAM plan (state + stack + receive ring + self-test buffers, no link) equals
  ``data + bss`` of ``arm-none-eabi-size``, and the deepest call chain fits the
  micro:bit's stack;
* QEMU never outlives a run, a timeout included.

About 10 s (a dozen small builds; every QEMU run takes well under a second).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bep_mcu.device import boards
from bep_mcu.twin import golden
from bep_mcu.device.firmware import (
    FW_SOURCES,
    SELFTEST_CHUNK,
    SELFTEST_SOURCES,
    build_flags,
    build_selftest,
    build_selftest_generated,
    fw_dir,
)
from bep_mcu.cgen.codegen import generate as generate_c
from bep_mcu.device.emulate import run_image, run_to_exit
from bep_mcu.errors import BEPError
from bep_mcu import modelio
from .conftest import assert_ok, board_params, invoke, needs_arm, needs_qemu, our_qemus
from .test_firmware import berkeley, one_error_line, symbol_sizes

# The binary prototypes pass through, as the boards' RAM plans here were sized for (under "auto" binary
# rows of fewer than 256 features get copies of each bit: docs/accuracy.md, "Sixth held-out check").
DATASET = "prototypes:classes=4,features=100,samples=1200"
TRAIN = ["--dataset", DATASET, "--binarize", "passthrough", "--hidden", "32", "--epochs", "1"]
GOLDEN = ["--dataset", DATASET, "--batches", "4", "--batch-size", "10"]
BOARDS = ["mps2-an386", "microbit"]
# netduinoplus2 (STM32F405, port_stm32.c) passes and keeps its RAM plan too; the other
# checks are about the file and the runtime, not the board, and run on BOARDS only.
PASSING_BOARDS = [*BOARDS, "netduinoplus2", *board_params(["riscv32-virt"])]

pytestmark = [needs_arm, needs_qemu, pytest.mark.usefixtures("no_stray_qemu")]


# ---------------------------------------------------------------------- helpers


def corrupt_weight(src: Path, dst: Path, batch: int, layer: int, row: int, col: int) -> tuple[int, int, int]:
    """Copy of ``src`` with one expected hidden weight changed: (file offset, file value, true value)."""
    g = golden.read_golden(src)
    assert g.hidden_bits == 8
    off = golden.hidden_offset(g, batch, layer, row, col)
    true = int(g.batches[batch].hidden[layer][row, col])
    wrong = true + 1 if true < 127 else true - 1
    data = bytearray(src.read_bytes())
    data[off] = wrong & 0xFF
    dst.write_bytes(bytes(data))
    assert int(golden.read_golden(dst).batches[batch].hidden[layer][row, col]) == wrong
    return off, wrong, true


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("selftest")


@pytest.fixture(scope="module")
def model(work) -> Path:
    path = work / "model.npz"
    assert_ok(invoke("train", *TRAIN, "--out", path))
    return path


@pytest.fixture(scope="module")
def golden_file(work, model) -> Path:
    path = work / "golden.bin"
    assert_ok(invoke("golden", model, *GOLDEN, "--out", path))
    return path


@pytest.fixture(scope="module")
def other_config_golden(work) -> Path:
    """A golden file of a network with another configuration (16 hidden neurons, not 32)."""
    other = work / "other-config.npz"
    assert_ok(invoke("train", *TRAIN[:4], "--hidden", "16", "--epochs", "1", "--out", other))
    path = work / "other-config.bin"
    assert_ok(invoke("golden", other, *GOLDEN, "--out", path))
    return path


@pytest.fixture(scope="module")
def passing(work, model, golden_file):
    """`bep-mcu firmware --self-test --run --json` per board, once per module."""
    cache: dict[str, dict] = {}

    def get(board: str) -> dict:
        if board not in cache:
            result = invoke("firmware", model, "--board", board, "--self-test", golden_file, "--out",
                            work / f"ok-{board}", "--run", "--json")
            assert_ok(result)
            cache[board] = json.loads(result.stdout.strip().splitlines()[-1])
        return cache[board]

    return get


# ---------------------------------------------------------------------- tests


@pytest.mark.parametrize("board", PASSING_BOARDS)
def test_golden_file_of_the_model_passes(passing, golden_file, board):
    d = passing(board)
    assert d["self_test_passed"] is True and d["self_test_exit"] == 0
    assert d["self_test_output"].startswith(f"OK self-test on {board}: 4 batches")
    assert our_qemus() == []
    # the image runs the same way outside the command
    assert run_to_exit(d["elf"], board, timeout=30) == 0


@pytest.mark.parametrize("board", PASSING_BOARDS)
def test_ram_plan_is_exact_and_the_golden_file_is_in_flash(passing, golden_file, board):
    d = passing(board)
    b = boards.BOARDS[board]
    elf = Path(d["elf"])
    text, data, bss = berkeley(elf)
    buffers = 4 * 10 * 4 + 2 * 2 * 10 + SELFTEST_CHUNK  # inputs (10 x 4 words), labels + predictions, read-back
    assert d["self_test_buffer_bytes"] == buffers and d["link_bytes"] == 0
    planned = d["state_bytes"] + b.stack_bytes + boards.firmware_static_bytes(b) + buffers
    assert d["predicted_ram_bytes"] == planned == data + bss == d["ram_bytes"]
    assert d["flash_bytes"] == text + data <= b.flash_bytes
    sizes = symbol_sizes(elf)
    assert sizes["bep_st_golden"] == golden_file.stat().st_size == d["golden_bytes"]
    assert sizes["bep_fw_state"] == d["state_bytes"] and sizes["bep_st_buf"] == buffers
    assert "bep_fw_link" not in sizes and "bep_link_rx" not in sizes  # the link is not linked in


@pytest.mark.parametrize("board", BOARDS)
def test_one_corrupted_weight_fails_with_exit_1(work, model, golden_file, board):
    bad = work / f"corrupt-{board}.bin"
    off, wrong, true = corrupt_weight(golden_file, bad, batch=2, layer=0, row=5, col=17)
    st = build_selftest(modelio.load(model), board, str(bad), work / f"bad-{board}")
    ran = run_image(st.firmware.elf, board, timeout=30)
    assert ran.status == 1, ran.output
    assert ran.output.strip() == (f"MISMATCH batch 2 layer 0 row 5 col 17: expected {wrong}, got {true} "
                                  f"(file offset {off})")
    assert our_qemus() == []


def test_golden_file_of_another_configuration_is_refused_at_build_time(work, model, other_config_golden):
    out = work / "refused"
    line = one_error_line(invoke("firmware", model, "--board", "microbit", "--self-test", other_config_golden,
                                 "--out", out), "other-config.bin", "config", "model.npz")
    assert "0x" in line and not out.exists()


def test_golden_file_of_another_model_fails_on_the_board(work, model):
    """Same configuration (the config hash cannot tell), other weights: the board finds
    it at the initial hidden weights, exit 1."""
    other = work / "other-model.npz"
    assert_ok(invoke("train", "--dataset", DATASET + ",seed=1", *TRAIN[2:], "--out", other))
    foreign = work / "other-model.bin"
    assert_ok(invoke("golden", other, *GOLDEN, "--out", foreign))
    result = invoke("firmware", model, "--board", "mps2-an386", "--self-test", foreign, "--out",
                    work / "other-model", "--run", "--json")
    assert result.exit_code == 1, result.stderr
    d = json.loads(result.stdout.strip().splitlines()[-1])
    assert d["self_test_passed"] is False and d["self_test_exit"] == 1
    assert d["self_test_output"].startswith("MISMATCH after init (before batch 0) layer 0 row 0 col 0")


def test_board_refuses_a_foreign_golden_file_with_exit_2(work, model, other_config_golden):
    """What the build-time check guards against: forced into an image through the API,
    a golden file of another configuration is refused by the board itself."""
    other = other_config_golden
    loaded = modelio.load(model)
    gen = generate_c(loaded, work / "forced" / "net", "net")
    st = build_selftest_generated(gen, loaded.spec, "mps2-an386", other.read_bytes(), work / "forced")
    ran = run_image(st.firmware.elf, "mps2-an386", timeout=30)
    assert ran.status == 2
    assert ran.output.startswith("ERROR golden file for config 0x") and "this image was built for" in ran.output
    # a damaged file never gets that far: refused by the build, like bep_host_driver would
    with pytest.raises(BEPError, match="truncated|damaged"):
        build_selftest_generated(gen, loaded.spec, "mps2-an386", other.read_bytes()[:-8], work / "forced2")


def test_refusals(work, model, golden_file):
    one_error_line(invoke("firmware", model, "--board", "nucleo-f401re", "--self-test", golden_file, "--out",
                          work / "real"), "real board", "semihosting")
    one_error_line(invoke("firmware", model, "--board", "microbit", "--run", "--out", work / "norun"), "--self-test")
    big = work / "big.bin"
    assert_ok(invoke("golden", model, "--dataset", DATASET, "--batches", "80", "--batch-size", "10", "--out", big))
    assert big.stat().st_size > 256 * 1024
    one_error_line(invoke("firmware", model, "--board", "microbit", "--self-test", big, "--out", work / "big"),
                   "big.bin", "flash", "--batches", status=3)
    assert not (work / "big").exists()
    one_error_line(invoke("firmware", model, "--board", "microbit", "--self-test", work / "missing.bin", "--out",
                          work / "missing"), "missing.bin")


def test_a_hanging_image_is_killed_after_the_timeout(work, model):
    """The training firmware never ends by itself: run_image gives up and stops QEMU."""
    out = work / "training"
    assert_ok(invoke("firmware", model, "--board", "microbit", "--out", out))
    with pytest.raises(BEPError, match="did not end QEMU within 1 s"):
        run_image(out / "firmware.elf", "microbit", timeout=1.0)
    assert our_qemus() == []
    with pytest.raises(BEPError, match="built for microbit"):
        run_to_exit(out / "firmware.elf", "mps2-an386")


def test_stack_holds_the_deepest_call_chain(passing, tmp_path):
    """As tests/test_firmware.py for the training firmware: GCC's call graph of the
    self-test image, deepest chain from main + a fault's exception frame + libgcc
    helpers within two thirds of the micro:bit's 1024-byte stack."""
    from tests.test_firmware import _call_graph_depth, call_graphs

    board = boards.BOARDS["microbit"]
    d = passing(board.name)
    gen_dir = Path(d["elf"]).parent / "net" / "src"
    build_dir = Path(d["elf"]).parent / "build"
    flags, _ = build_flags(board, "net")
    flags += [f"-DBEP_ST_GOLDEN_BYTES={d['golden_bytes']}u", "-DBEP_ST_MAX_N=10u", f"-DBEP_ST_CHUNK={SELFTEST_CHUNK}u"]
    assert "main.c" in FW_SOURCES and "main.c" not in SELFTEST_SOURCES
    sources = [fw_dir() / s for s in (*SELFTEST_SOURCES, board.port_file)] + sorted(gen_dir.glob("*.c"))
    sources.append(build_dir / "bep_selftest_golden.c")
    depth, path = _call_graph_depth(call_graphs(flags, sources, gen_dir, tmp_path), "main")
    needed = depth + (32 + 4) + 64
    assert needed <= board.stack_bytes * 2 // 3, f"stack needs {needed} B ({' -> '.join(path)})"


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("variant", ["rnn", "rnn16", "mlp16"])
def test_rnn_and_16_bit_networks_are_bit_exact_on_the_board(work, board, variant):
    """The RNN path (two weight segments per row, W_h^T, steps backwards) and 16-bit
    weights, run by the Cortex-M code: QADD8 on the M4, the plain C path on the M0.
    Widths are not multiples of 4 or 32, so the unaligned and tail paths run too."""
    model = work / f"{variant}.npz"
    if not model.exists():
        if variant.startswith("rnn"):
            args = ["--dataset", "ucr:ItalyPowerDemand", "--model", "rnn", "--hidden", "30", "--window", "3",
                    "--binarize", "thermometer:3", "--hidden-bits", "16" if variant == "rnn16" else "8"]
        else:
            args = [*TRAIN[:4], "--hidden", "30,18", "--hidden-bits", "16"]
        assert_ok(invoke("train", *args, "--epochs", "1", "--out", model))
        data = ["--dataset", args[1]]
        assert_ok(invoke("golden", model, *data, "--batches", "6", "--batch-size", "5", "--out",
                         work / f"{variant}.bin"))
    spec = modelio.load(model).spec
    if variant.startswith("rnn"):
        assert spec.n_inputs % 4 != 0 and spec.steps > 1
    result = invoke("firmware", model, "--board", board, "--self-test", work / f"{variant}.bin", "--out",
                    work / f"{variant}-{board}", "--run", "--json")
    assert_ok(result)
    d = json.loads(result.stdout.strip().splitlines()[-1])
    assert d["self_test_passed"] is True and d["self_test_output"].startswith(f"OK self-test on {board}: 6 batches")
