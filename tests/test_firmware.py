"""Firmware for every board: planned, built, sized, booted in QEMU and trained over the link.

What is asserted about memory (bep_mcu/device/firmware.py documents the plan):

* RAM: the plan made before compiling (state buffer + sizeof(bep_link_t) + stack +
  receive ring) equals ``data + bss`` of ``arm-none-eabi-size`` run here on the ELF,
  for every board, exactly; and equals what the board reports in HELLO.
* flash: ``text + data`` of ``arm-none-eabi-size`` is the reported flash; the network's
  const tables (classifier, initial hidden weights, bep_config_t) predicted from the
  plan equal their symbol sizes in the ELF (``nm -S``), exactly. Code is measured only.
* stack: the deepest call chain from GCC's call graph (``-fcallgraph-info=su``) plus an
  interrupt on top stays within two thirds of the smallest board stack.

Test network: 64 inputs - 32 hidden - 4 classes, int8 hidden weights (MLP), which needs
4220 B of the micro:bit's 16 KB RAM (state 2440 + link 620 + stack 1024 + ring 136).
A 1000-64-4 network (state ~74 KB) is refused for the micro:bit in one line.

Emulated boards run in QEMU (skipped when qemu-system-arm is missing); every run is
inside ``EmulatedBoard``, and a fixture checks that no QEMU process outlives the tests.
The non-slow part builds an image for every board in the table (the real ones are built,
sized and laid out, never run: "builds, not run"), boots every emulated board and trains
three (a few minutes); ``-m slow`` trains on all of them.

netduinoplus2 (an STM32F405 in QEMU) runs port_stm32.c, the port of the real
NUCLEO-F401RE, and stm32vldiscovery (an STM32F100) port_stm32f1.c, the Blue Pill's, so
that code boots, receives by interrupt, stalls its flow control and faults here; their
clock set-up is run with and without the emulator detection. The nRF52840 boards' port
has no emulator (QEMU 7.2 has no nRF52); its UART driver is the micro:bit's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from bep_mcu.cgen import protocol, toolchain
from bep_mcu.device import boards
from bep_mcu.device.firmware import CONFIG_BYTES, fw_dir
from bep_mcu.data.datasets import load_dataset
from bep_mcu.device.emulate import EmulatedBoard, elf_board, qemu_command
from bep_mcu import modelio
from bep_mcu.device.link import Link
from bep_mcu.device.stream import DeviceTrainer
from bep_mcu.training import NumpyTrainer, Plan, encoded, run_epochs

from .conftest import (assert_ok, assert_one_error_line, binutil, board_params, invoke, last_json, needs_arm, needs_qemu,
                       our_qemus)

# The binary prototypes pass through, as the boards' RAM plans here were sized for (under "auto" binary
# rows of fewer than 256 features get copies of each bit: docs/accuracy.md, "Sixth held-out check").
DATASET = "prototypes:classes=4,features=64,samples=600"
SMALL = ["--dataset", DATASET, "--binarize", "passthrough", "--hidden", "32", "--hidden-bits", "8", "--epochs", "1"]
DEEP_DATASET = "prototypes:classes=4,features=100,samples=600"
DEEP = ["--dataset", DEEP_DATASET, "--binarize", "passthrough", "--hidden", "64,32", "--hidden-bits", "16",
        "--epochs", "1"]
BIG = ["--dataset", "prototypes:classes=4,features=1000,samples=240", "--hidden", "64", "--hidden-bits", "8",
       "--epochs", "1"]
JSON_KEYS = {"elf", "board", "ram_bytes", "flash_bytes", "ram_budget", "flash_budget", "fits", "predicted_ram_bytes"}
ALL_BOARDS = board_params(boards.BOARDS)
EMULATED = board_params(b for b in boards.BOARDS if boards.BOARDS[b].emulated)
FAST_TRAIN = board_params(["mps2-an386", "microbit", "stm32vldiscovery", "riscv32-virt"])
SMALLEST_STACK = [b for b in boards.BOARDS if boards.BOARDS[b].stack_bytes == min(x.stack_bytes for x in boards.BOARDS.values())]

pytestmark = [needs_arm, pytest.mark.usefixtures("no_stray_qemu")]


# ---------------------------------------------------------------------- helpers


def one_error_line(result, *words: str, status: int = 2) -> str:
    return assert_one_error_line(result.exit_code, result.stderr, words, status=status)


def berkeley(elf: Path) -> tuple[int, int, int]:
    out = subprocess.run([binutil(elf_board(elf), "size"), "-B", str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return text, data, bss


def symbol_sizes(elf: Path) -> dict[str, int]:
    out = subprocess.run([binutil(elf_board(elf), "nm"), "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def symbol_addresses(elf: Path) -> dict[str, int]:
    out = subprocess.run([binutil(elf_board(elf), "nm"), str(elf)], capture_output=True, text=True, check=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in (line.split() for line in out.splitlines()) if len(parts) == 3}


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fw_model") / "small.npz"
    assert_ok(invoke("train", *SMALL, "--out", path))
    return path


@pytest.fixture(scope="module")
def deep_model(tmp_path_factory) -> Path:
    """Two hidden layers, int16 weights: the backward pass through a layer, the transposes."""
    path = tmp_path_factory.mktemp("fw_model") / "deep.npz"
    assert_ok(invoke("train", *DEEP, "--out", path))
    return path


@pytest.fixture(scope="module")
def deep_builds(deep_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("fw_deep")
    cache: dict[str, dict] = {}

    def get(board: str) -> dict:
        if board not in cache:
            result = invoke("firmware", deep_model, "--board", board, "--out", root / board, "--json")
            assert_ok(result)
            cache[board] = last_json(result.stdout)
        return cache[board]

    return get


@pytest.fixture(scope="module")
def builds(small_model, tmp_path_factory) -> dict[str, dict]:
    """`bep-mcu firmware --json` for every board, run once per module."""
    root = tmp_path_factory.mktemp("fw_builds")
    cache: dict[str, dict] = {}

    def get(board: str) -> dict:
        if board not in cache:
            result = invoke("firmware", small_model, "--board", board, "--out", root / board, "--json")
            assert_ok(result)
            cache[board] = last_json(result.stdout)
        return cache[board]

    return get


# ---------------------------------------------------------------------- building


@pytest.mark.parametrize("board", ALL_BOARDS)
def test_firmware_image_has_no_float_and_no_heap(builds, board):
    """The linked image (board support + generated C + libgcc): no soft-float routine and
    no allocator or libc, so -lgcc cannot hide a float that slipped into bep_mcu/fw."""
    from tests.test_strict_build import FLOAT_HELPER, LIBC

    out = subprocess.run([binutil(board, "nm"), builds(board)["elf"]], capture_output=True, text=True, check=True)
    names = {line.split()[-1] for line in out.stdout.splitlines() if line.split()}
    assert not sorted(n for n in names if FLOAT_HELPER.search(n)), board
    assert not sorted(n for n in names if LIBC.match(n)), board


@pytest.mark.parametrize("board", ALL_BOARDS)
def test_build_plan_equals_size(builds, board):
    d = builds(board)
    b = boards.BOARDS[board]
    elf = Path(d["elf"])
    assert JSON_KEYS <= set(d)
    assert elf.is_file() and d["board"] == board and d["fits"] is True
    assert (d["ram_budget"], d["flash_budget"]) == (b.ram_bytes, b.flash_bytes)
    text, data, bss = berkeley(elf)
    # RAM: planned before the build == data + bss (the NOLOAD .stack is bss)
    planned = d["state_bytes"] + protocol.link_bytes(b.max_payload) + b.stack_bytes + boards.firmware_static_bytes(b)
    assert d["predicted_ram_bytes"] == planned == data + bss == d["ram_bytes"]
    # flash: text + data; the network tables exactly as planned
    assert d["flash_bytes"] == text + data
    sizes = symbol_sizes(elf)
    assert sizes["bep_net_config"] == CONFIG_BYTES
    tables = sizes["bep_net_classifier"] + sizes["bep_net_hidden0"] + sizes["bep_net_config"]
    assert tables == d["predicted_tables_bytes"]
    # the parts of the RAM plan, symbol by symbol
    assert sizes["bep_fw_state"] == d["state_bytes"]
    assert sizes["bep_fw_link"] == protocol.link_bytes(b.max_payload)
    assert elf_board(elf) == board


@pytest.mark.parametrize("board", ALL_BOARDS)
def test_image_layout_follows_the_board_table(builds, board):
    """Vector table at the flash origin (nano33ble: 0x10000, after Arduino's bootloader),
    initial SP = top of the stack at the bottom of RAM, reset vector inside the image (Thumb
    bit set), the UART's handler at vector 16 + its line. RISC-V: the reset entry (the ELF's
    entry) at the flash origin instead of a vector table."""
    b = boards.BOARDS[board]
    elf = Path(builds(board)["elf"])
    out = subprocess.run([binutil(board, "objdump"), "-h", str(elf)], capture_output=True, text=True, check=True).stdout
    vma = {m.group(1): int(m.group(2), 16) for m in re.finditer(r"^\s*\d+\s+(\S+)\s+[0-9a-f]+\s+([0-9a-f]+)", out, re.MULTILINE)}
    assert vma[".text"] == b.flash_origin and vma[".stack"] == b.ram_origin
    if b.arch == "riscv":
        from elftools.elf.elffile import ELFFile

        # the ESP32-C3's ROM jumps past the two direct-boot magic words at the start of flash
        magic = (elf.parent / "firmware.bin").read_bytes()[:8] == bytes.fromhex("1d04dbae" * 2)
        assert magic == (board == "esp32c3")
        with open(elf, "rb") as f:
            image = ELFFile(f)
            assert image["e_entry"] == b.flash_origin + 8 * magic == symbol_addresses(elf)["bep_reset_handler"]
            if magic:  # constants are read through the data mapping (0x3C000000) of their flash offset
                rodata = image.get_section_by_name(".rodata")
                load = next(seg["p_paddr"] for seg in image.iter_segments()
                            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] == rodata["sh_addr"])
                assert rodata["sh_addr"] - 0x3C000000 == load - b.flash_origin == vma[".rodata"] - 0x3C000000 > 0
        return
    raw = (elf.parent / "firmware.bin").read_bytes()
    vectors = np.frombuffer(raw[:4 * (16 + b.uart_irq + 1)], dtype="<u4")
    assert vectors[0] == b.ram_origin + b.stack_bytes
    assert vectors[1] & 1 and b.flash_origin <= vectors[1] < b.flash_origin + len(raw)
    assert vectors[16 + b.uart_irq] - 1 == symbol_addresses(elf)["bep_port_uart_irq"]


def test_microbit_fits_16k(builds):
    d = builds("microbit")
    assert d["ram_bytes"] <= 16 * 1024 and d["max_payload"] == 256
    assert d["ram_bytes"] == d["state_bytes"] + 620 + 1024 + 136


def test_too_big_for_microbit_is_refused(tmp_path):
    model = tmp_path / "big.npz"
    assert_ok(invoke("train", *BIG, "--out", model))
    result = invoke("firmware", model, "--board", "microbit", "--out", tmp_path / "fw", "--json")
    one_error_line(result, "microbit", "RAM", "16384", "--hidden", "--binarize", status=3)  # does not fit; what shrinks it
    assert not (tmp_path / "fw" / "firmware.elf").exists()
    assert_ok(invoke("firmware", model, "--board", "nucleo-f401re", "--out", tmp_path / "fw2"))  # 96 KB RAM: fits


def test_firmware_user_errors(small_model, tmp_path):
    assert invoke("firmware", small_model, "--board", "esp32", "--out", tmp_path).exit_code == 2
    one_error_line(invoke("firmware", tmp_path / "missing.npz", "--board", "microbit", "--out", tmp_path / "o"),
                   "missing.npz")


def call_graphs(flags: list[str], sources: list[Path], include: Path, out: Path,
                cc: str = "arm-none-eabi-gcc") -> list[Path]:
    """Compile ``sources`` with GCC's call graph and stack use (``-fcallgraph-info=su``) into
    ``out``; the .ci files for :func:`_call_graph_depth`."""
    for src in sources:
        subprocess.run([cc, *flags, "-fcallgraph-info=su", "-I", str(include), "-c", str(src),
                        "-o", str(out / (src.stem + ".o")), "-dumpbase", str(out / src.stem)], check=True)
    return sorted(out.glob("*.ci"))


def _call_graph_depth(ci_files: list[Path], root: str,
                      indirect: dict[str, tuple[str, ...]] | None = None) -> tuple[int, list[str]]:
    """Deepest stack use from ``root`` in GCC's .ci call graphs (bytes, path); a call
    through a pointer from function f may reach any of ``indirect[f]`` (the callbacks the
    image passes; by default any call through a pointer is the link's writer)."""
    frame, calls = {}, {}
    for f in ci_files:
        text = f.read_text()
        for m in re.finditer(r'node: \{ title: "([^"]+)" label: "([^"]*)"', text):
            name = m.group(1).split(":")[-1]
            su = re.search(r"\\n(\d+) bytes \((\w+)", m.group(2))
            if su:
                assert su.group(2) == "static", f"{name} uses a dynamic stack"
                frame[name] = max(frame.get(name, 0), int(su.group(1)))
        for m in re.finditer(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', text):
            target = m.group(2).split(":")[-1]
            calls.setdefault(m.group(1).split(":")[-1], set()).add(target)

    def callees(fn: str) -> set[str]:
        out = calls.get(fn, set())
        if "__indirect_call" not in out:
            return out
        known = {"bep_fw_write"} if indirect is None else indirect.get(fn.split(".")[0])
        assert known is not None, f"{fn} calls through a pointer: say what it may reach"
        return (out - {"__indirect_call"}) | set(known)

    def deepest(fn: str, seen: tuple[str, ...]) -> tuple[int, list[str]]:
        assert fn not in seen, f"recursion: {' -> '.join(seen + (fn,))}"
        best = (0, [])
        for callee in callees(fn):
            best = max(best, deepest(callee, seen + (fn,)))
        return frame.get(fn, 0) + best[0], [fn] + best[1]

    return deepest(root, ())


@pytest.mark.parametrize("board", [*SMALLEST_STACK, *board_params(["riscv32-virt"])])
def test_stack_holds_the_deepest_call_chain(builds, tmp_path, board):
    """The fixed stack of the smallest boards (Cortex-M0 and M3 code) holds the deepest
    chain + an interrupt, with room; so does the RISC-V board's, whose trap handler saves
    the registers in its own frame (its stack use is in the call graph)."""
    board = boards.BOARDS[board]
    d = builds(board.name)
    gen_dir = Path(d["elf"]).parent / "net" / "src"
    from bep_mcu.device.firmware import FW_SOURCES, build_flags

    flags, _ = build_flags(board, "net")
    sources = [fw_dir() / s for s in (*FW_SOURCES, board.startup_file, board.port_file)] + sorted(gen_dir.glob("*.c"))
    ci = call_graphs(flags, sources, gen_dir, tmp_path, toolchain.toolchain(board.cpu).cc)
    main_depth, path = _call_graph_depth(ci, "main")
    riscv = board.arch == "riscv"
    irq_depth, _ = _call_graph_depth(ci, "bep_trap_handler" if riscv else "bep_port_uart_irq")
    # the UART interrupt and a fault, 8-byte aligned, no FP context (M0, M3); RISC-V: in the handler's frame
    exception_frames = 0 if riscv else 2 * (32 + 4)
    libgcc_allowance = 64            # division helpers the call graph cannot see
    needed = main_depth + irq_depth + exception_frames + libgcc_allowance
    assert needed <= board.stack_bytes * 2 // 3, f"stack needs {needed} B ({' -> '.join(path)}), {board.name}'s " \
                                                 f"stack {board.stack_bytes} B"


def test_board_table_renders_consistently():
    for b in boards.BOARDS.values():
        script = boards.memory_script(b)
        assert f"ORIGIN = 0x{b.flash_origin:08X}, LENGTH = 0x{b.flash_bytes:08X}" in script
        assert f"ORIGIN = 0x{b.ram_origin:08X}, LENGTH = 0x{b.ram_bytes:08X}" in script
        assert b.stack_bytes % 8 == 0 and (fw_dir() / b.port_file).is_file() and (fw_dir() / b.startup_file).is_file()
        assert (fw_dir() / "ld" / b.linker_script).is_file()
        protocol.link_bytes(b.max_payload)  # within the protocol's range
        if b.emulated:
            cmd = qemu_command("x.elf", b, 5555)
            assert cmd[cmd.index("-M") + 1] == b.qemu and "-nographic" not in cmd
            assert cmd.count("-serial") == b.serial_index + 1


# ---------------------------------------------------------------------- emulation


@needs_qemu
def test_emulate_refuses_a_firmware_for_another_board(builds):
    elf = builds("microbit")["elf"]
    one_error_line(invoke("emulate", elf, "--board", "mps2-an386"), "built for microbit", "mps2-an386")
    one_error_line(invoke("emulate", builds("nucleo-f401re")["elf"], "--board", "nucleo-f401re"), "real board")
    with pytest.raises(Exception, match="built for microbit"):
        EmulatedBoard(elf, "mps2-an505")
    assert our_qemus() == []


def test_emulate_refuses_what_is_not_a_firmware_image(tmp_path):
    not_elf = tmp_path / "model.npz"
    not_elf.write_bytes(b"PK\x03\x04 not an ELF file")
    one_error_line(invoke("emulate", not_elf, "--board", "mps2-an386"), "not a readable ELF file")
    one_error_line(invoke("emulate", tmp_path / "missing.elf", "--board", "mps2-an386"), "missing.elf")


@needs_qemu
@pytest.mark.parametrize("board", EMULATED)
def test_hello(builds, board):
    d = builds(board)
    header = (Path(d["elf"]).parent / "net" / "src" / "bep_net.h").read_text()
    config_hash = int(re.search(r"#define BEP_NET_CONFIG_HASH 0x([0-9A-F]+)u", header).group(1), 16)
    emulated = EmulatedBoard(d["elf"], board)
    with emulated as url:
        assert url == f"socket://127.0.0.1:{emulated.port}"
        with Link(url, timeout=5.0) as link:
            info = link.hello()
            assert emulated.running()
    assert not emulated.running() and our_qemus() == []
    assert info.board == board and info.config_hash == config_hash
    assert (info.ram_bytes, info.flash_bytes) == (d["ram_bytes"], d["flash_bytes"])
    assert info.state_bytes == d["state_bytes"] and info.max_payload == d["max_payload"]
    assert info.fw_version == boards.FW_VERSION


def train_over_link(elf: str, board: str, model: Path, dataset: str = DATASET, epochs: int = 2, batch_size: int = 10,
                    n: int = 300) -> None:
    """Train on the board and with numpy on the same batches (the one driver); every
    hidden weight, prediction and counter is compared after every batch."""
    loaded = modelio.load(model)
    data = load_dataset(dataset)
    train = encoded(loaded, data.X_train[:n], data.y_train[:n])
    plan = Plan.continuing(loaded, epochs, batch_size, patience=1, stall_signal="training")
    with EmulatedBoard(elf, board) as url, Link(url, timeout=10.0) as link:
        link.hello()
        device = DeviceTrainer(link, loaded)
        report = run_epochs([NumpyTrainer(loaded), device], train, plan)
        assert report.bit_exact, f"{board}: {report.divergence}"
        assert report.batches == epochs * -(-len(train) // batch_size)
        assert any(any(rec["reinforce_q"]) for rec in report.history) and device.counters().updates > 0


@needs_qemu
@pytest.mark.parametrize("board", FAST_TRAIN)
def test_training_over_the_link_is_bit_exact(builds, small_model, board):
    train_over_link(builds(board)["elf"], board, small_model)
    assert our_qemus() == []


@needs_qemu
def test_two_layer_int16_training_is_bit_exact(deep_builds, deep_model):
    d = deep_builds("mps2-an386")
    assert d["state_bytes"] > 16 * 1024 - 2000  # too big for the micro:bit, fine for the MPS2 boards
    train_over_link(d["elf"], "mps2-an386", deep_model, DEEP_DATASET, epochs=2, batch_size=16, n=400)
    assert our_qemus() == []


@needs_qemu
@pytest.mark.slow
@pytest.mark.parametrize("board", EMULATED)
def test_training_bit_exact_on_every_board(builds, small_model, deep_builds, deep_model, board):
    train_over_link(builds(board)["elf"], board, small_model, epochs=3, batch_size=25, n=500)
    if boards.BOARDS[board].ram_bytes >= 32 << 10:  # the deep network's state alone is over 14 KB
        train_over_link(deep_builds(board)["elf"], board, deep_model, DEEP_DATASET, epochs=3, batch_size=20, n=500)
    assert our_qemus() == []


@needs_qemu
def test_emulate_command_serves_the_board_and_stops_qemu(builds):
    """The installed console script: JSON with the URL first, a working board behind it,
    and Ctrl-C (SIGINT) stops QEMU with it."""
    import signal
    import sys

    elf = builds("mps2-an385")["elf"]
    exe = shutil.which("bep-mcu") or sys.executable
    cmd = [exe] if exe.endswith("bep-mcu") else [exe, "-m", "bep_mcu.cli.main"]
    from bep_mcu.device.emulate import free_port

    tcp_port = free_port()
    # no --board: the image records the board it was built for
    proc = subprocess.Popen([*cmd, "emulate", elf, "--tcp-port", str(tcp_port), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        d = json.loads(proc.stdout.readline())
        assert d["url"] == f"socket://127.0.0.1:{tcp_port}" and d["board"] == "mps2-an385"
        qemu = [p for p in _children(proc.pid) if "qemu" in p[1]]
        assert len(qemu) == 1
        with Link(d["url"], timeout=5.0) as link:
            assert link.hello().board == "mps2-an385"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)  # a bound on "never stops", not a speed check: a loaded machine took > 10 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not Path(f"/proc/{qemu[0][0]}").exists() or "zombie" in Path(f"/proc/{qemu[0][0]}/status").read_text()


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                found.append((int(entry.name), stat[stat.index("(") + 1:stat.rindex(")")]))
    return found


@needs_qemu
@pytest.mark.parametrize("board", board_params(["mps2-an386", "microbit", "netduinoplus2", "stm32vldiscovery",
                                                "riscv32-virt"]))
def test_back_to_back_frames_are_not_lost(builds, board):
    """200 requests written at once, without waiting for replies: the receive ring fills
    while the board answers, the UART interrupt stalls (flow control) and every request
    is still answered, in order. The board is up first (one HELLO answered over a first
    connection): QEMU's STM32 USART drops bytes that arrive before the firmware enables
    it, which the host's retries absorb but a raw burst would not."""
    import socket
    import struct

    d = builds(board)
    n = 200
    wire = b"".join(protocol.encode_frame(protocol.Msg.HELLO, seq, struct.pack("<I", seq + 1)) for seq in range(n))
    with EmulatedBoard(d["elf"], board) as url:
        with Link(url, timeout=5.0) as link:
            link.hello()
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(wire)
            reader, frames = protocol.FrameReader(d["max_payload"]), []
            while len(frames) < n:
                chunk = sock.recv(65536)
                assert chunk, "board closed the connection"
                frames += reader.feed(chunk)
    assert all(isinstance(f, protocol.Frame) for f in frames)
    assert [f.seq for f in frames] == list(range(n))
    assert [protocol.parse_hello(f.payload).session for f in frames] == [seq + 1 for seq in range(n)]


@needs_qemu
@pytest.mark.parametrize("board", board_params(["mps2-an505", "microbit", "netduinoplus2", "riscv32-virt"]))
def test_a_fault_ends_qemu_with_status_3(small_model, tmp_path, monkeypatch, board):
    """A firmware that faults (here: an undefined instruction right after boot) stops QEMU
    through semihosting instead of hanging the host."""
    undefined = "unimp" if boards.BOARDS[board].arch == "riscv" else "udf #0"
    build = build_edited(small_model, board, "main.c", "    bep_port_init();\n",
                         f'    bep_port_init();\n    __asm__ volatile("{undefined}");\n', tmp_path, monkeypatch)
    emulated = EmulatedBoard(build.elf, board)
    with emulated as url:
        import serial

        port = serial.serial_for_url(url, timeout=1)  # the board starts when a client connects
        try:
            assert emulated.wait(timeout=30) == 3
        finally:
            port.close()


# The last access of bep_port_init to an unmodelled device before the USART: on the F4
# reading RCC_CFGR for the baud divisor; on the F1 (which reads RCC_CFGR while setting the
# clock too) configuring PA10 in GPIOA_CRH.
LAST_UNIMP = {"netduinoplus2": "RCC: unimplemented device read  (size 4, offset 0x008)",
              "stm32vldiscovery": "GPIOA: unimplemented device write (size 4, offset 0x004, value 0x00000800)"}


def unimplemented_accesses(elf: Path, log: Path, board: str = "netduinoplus2", timeout: float = 20.0) -> list[str]:
    """What an STM32 board's firmware does to devices QEMU does not model (``-d unimp``: one
    line per access to the RCC, the flash interface, the GPIOs), up to bep_port_init's
    last one before the USART (``LAST_UNIMP``)."""
    last = LAST_UNIMP[board]
    proc = subprocess.Popen(["qemu-system-arm", "-M", board, "-display", "none", "-monitor", "none",
                             "-kernel", str(elf), "-serial", "null", "-d", "unimp", "-D", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (log.is_file() and last in log.read_text()):
            time.sleep(0.05)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    lines = log.read_text().splitlines()
    assert last in lines, f"bep_port_init did not get to the USART within {timeout:g} s: {lines[-3:]}"
    return lines[:lines.index(last) + 1]


@needs_qemu
def test_stm32_port_detects_the_emulator_and_skips_the_clock_setup(builds, tmp_path):
    """QEMU's RCC reads 0: no oscillator is ready, so port_stm32.c sets no clock and waits
    for nothing; then the USART1 clock (APB2ENR bit 4) and PA9/PA10 as AF7."""
    lines = unimplemented_accesses(Path(builds("netduinoplus2")["elf"]), tmp_path / "unimp.log")
    assert lines[0] == "RCC: unimplemented device read  (size 4, offset 0x000)"  # RCC_CR, the detection
    assert not [line for line in lines if line.startswith("Flash Int") or "offset 0x004" in line]  # ACR, PLLCFGR
    assert "RCC: unimplemented device write (size 4, offset 0x044, value 0x00000010)" in lines
    assert "GPIOA: unimplemented device write (size 4, offset 0x024, value 0x00000700)" in lines  # AFRH: PA10 AF7


@needs_qemu
def build_edited(small_model, board: str, source: str, old: str, new: str, tmp_path, monkeypatch):
    """The board's firmware built from a copy of the firmware sources in which ``source``'s
    one ``old`` reads ``new``."""
    from bep_mcu.device import firmware as fw_cli

    src = tmp_path / "fw"
    shutil.copytree(fw_dir(), src)
    path = src / source
    assert path.read_text().count(old) == 1
    path.write_text(path.read_text().replace(old, new))
    monkeypatch.setattr(fw_cli, "fw_dir", lambda: src)
    return fw_cli.build(modelio.load(small_model), board, tmp_path / "out")


# An STM32 port that does not detect the emulator (its RCC reads 0 in QEMU): the clock set-up
# runs against registers that never answer.
EMULATOR_DETECTION = ("if ((BEP_STM32_RCC_CR & (BEP_STM32_CR_HSIRDY | BEP_STM32_CR_HSERDY | BEP_STM32_CR_PLLRDY)) == 0u) {",
                      "if (0) {")


def test_stm32_clock_setup_ends_without_an_rcc(small_model, tmp_path, monkeypatch):
    """port_stm32.c with its emulator detection removed: no ready flag ever rises in QEMU,
    so the bounded wait for the flash wait states must give up after exactly its 10000
    polls, the port fall back to the reset clock without touching the PLL, and the board
    answer (on silicon: a part whose clock never gets ready still boots, slower)."""
    build = build_edited(small_model, "netduinoplus2", "port_stm32.c", *EMULATOR_DETECTION, tmp_path, monkeypatch)
    lines = unimplemented_accesses(build.elf, tmp_path / "unimp.log")
    # 168 MHz: 5 wait states, prefetch and caches on; then 10000 reads of FLASH_ACR
    assert lines[0] == "Flash Int: unimplemented device write (size 4, offset 0x000, value 0x00000705)"
    assert lines.count("Flash Int: unimplemented device read  (size 4, offset 0x000)") == 10000
    assert not [line for line in lines if "RCC" in line and "offset 0x004" in line]  # the PLL left alone
    with EmulatedBoard(build.elf, "netduinoplus2") as url, Link(url, timeout=5.0) as link:
        assert link.hello().board == "netduinoplus2"


@needs_qemu
def test_stm32f1_port_detects_the_emulator_and_skips_the_clock_setup(builds, tmp_path):
    """port_stm32f1.c (the Blue Pill's) on QEMU's STM32F100: no oscillator ready, so no clock
    set-up and no wait; then GPIOA and USART1 clocked (RCC_APB2ENR at 0x18: IOPAEN bit 2,
    USART1EN bit 14), PA9 alternate-function push-pull and PA10 input pulled up in GPIOA_CRH,
    the pull-up through BSRR; the F4's registers (AHB1ENR, MODER, AFR) are never touched."""
    lines = unimplemented_accesses(Path(builds("stm32vldiscovery")["elf"]), tmp_path / "unimp.log",
                                   "stm32vldiscovery")
    assert lines[0] == "RCC: unimplemented device read  (size 4, offset 0x000)"  # RCC_CR, the detection
    assert not [line for line in lines if line.startswith("Flash Int")]
    writes = [line for line in lines if "write" in line]
    assert writes == ["RCC: unimplemented device write (size 4, offset 0x018, value 0x00004004)",
                      "GPIOA: unimplemented device write (size 4, offset 0x004, value 0x00000090)",   # CRH: PA9
                      "GPIOA: unimplemented device write (size 4, offset 0x010, value 0x00000400)",   # BSRR: PA10 up
                      "GPIOA: unimplemented device write (size 4, offset 0x004, value 0x00000800)"]   # CRH: PA10


@needs_qemu
def test_stm32f1_clock_setup_ends_without_an_rcc(small_model, tmp_path, monkeypatch):
    """port_stm32f1.c with its emulator detection removed: at 24 MHz no wait state is needed
    (the latency read back is 0 at once), so the PLL is started and its ready flag waited
    for: exactly 10000 reads of RCC_CR, then the PLL is switched off again, the core never
    switched to it, and the board answers (on silicon: a PLL that never locks leaves the
    board on HSI, slower, not hung)."""
    build = build_edited(small_model, "stm32vldiscovery", "port_stm32f1.c", *EMULATOR_DETECTION, tmp_path,
                         monkeypatch)
    lines = unimplemented_accesses(build.elf, tmp_path / "unimp.log", "stm32vldiscovery")
    assert lines[:2] == ["Flash Int: unimplemented device read  (size 4, offset 0x000)",  # FLASH_ACR: no wait state
                         "Flash Int: unimplemented device write (size 4, offset 0x000, value 0x00000000)"]
    # CFGR: PLLMUL = 6 - 2 at bits 21:18, HSI / 2 in, APB1 undivided at 24 MHz
    assert "RCC: unimplemented device write (size 4, offset 0x004, value 0x00100000)" in lines
    start = lines.index("RCC: unimplemented device write (size 4, offset 0x000, value 0x01000000)")  # PLLON
    assert lines[start + 1:start + 10001] == ["RCC: unimplemented device read  (size 4, offset 0x000)"] * 10000
    assert lines[start + 10001:start + 10003] == ["RCC: unimplemented device read  (size 4, offset 0x000)",
                                                  "RCC: unimplemented device write (size 4, offset 0x000, value 0x00000000)"]
    assert not [line for line in lines[start:] if line.startswith("RCC") and "offset 0x004, value" in line]  # no switch
    with EmulatedBoard(build.elf, "stm32vldiscovery") as url, Link(url, timeout=5.0) as link:
        assert link.hello().board == "stm32vldiscovery"
