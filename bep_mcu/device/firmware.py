"""Bootable training firmware for one board: planned, built and sized (``bep-mcu firmware``).

MODEL is rendered into ``OUT/net`` (``bep-mcu generate``), then compiled together with
the board support in ``bep_mcu/fw`` (start-up code, linker script, UART driver, port
file, ``main.c``) into ``OUT/firmware.elf`` (and a raw ``OUT/firmware.bin``).

The memory plan comes first, from numbers known before any compiler runs:

* RAM   = state buffer (``bep_mcu/cgen/layout.py``)
        + link (``sizeof(bep_link_t)``, ``bep_mcu/cgen/protocol.py:link_bytes`` at the board's
          ``BEP_LINK_MAX_PAYLOAD``)
        + stack (fixed per board in the linker script)
        + the firmware's own static data (the receive ring, ``boards.firmware_static_bytes``).
  A network that does not fit is refused in one line before anything is compiled. After
  the link, the prediction must equal ``data + bss`` of ``arm-none-eabi-size`` (the
  stack is a NOLOAD section and counts as bss); a mismatch is a bep-mcu bug and fails
  the build.
* flash = the network's const tables (classifier, initial hidden weights, the
  ``bep_config_t``), predicted from the plan, + code and the runtime's own tables,
  measured: ``text + data`` of ``arm-none-eabi-size``. The tables are predicted exactly
  (a test compares them with ``nm -S`` of the ELF); the code is not predicted.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from bep_mcu import files
from bep_mcu.cgen import abi, cformat, protocol, toolchain
from bep_mcu.cgen.codegen import STANDALONE_DATA_C, Generated, check_name, render_standalone_data, snapshot_bytes
from bep_mcu.cgen.codegen import generate as generate_c
from bep_mcu.cgen.layout import StatePlan, plan_model
from bep_mcu.data.inputformat import InputFormat
from bep_mcu.device import boards
from bep_mcu.device.persistence import StorePlan
from bep_mcu.engine.spec import NetSpec
from bep_mcu.errors import BEPError, DoesNotFit
from bep_mcu.model import Model
from bep_mcu.twin import golden

ELF_NAME = "firmware.elf"
BIN_NAME = "firmware.bin"
MAP_NAME = "firmware.map"
NET_DIR = "net"
BUILD_DIR = "build"
LEVEL = toolchain.BUDGET_LEVEL  # -Os
FW_SOURCES = ("main.c", "mem.c")  # and the board's start-up and port files
LINK_FLAGS = ["-nostdlib", "-Wl,--gc-sections", "-Wl,--fatal-warnings"]
CONFIG_BYTES = abi.CONFIG_BYTES_32  # sizeof(bep_config_t) on Cortex-M (pinned in bep_runtime.c)
# What shrinks a network's training state: its hidden weights are hidden units x input bits,
# and tabular data gets about 256 input bits by default (data/binarize.py TABULAR_INPUT_BITS).
SMALLER_NETWORK = (": train a smaller network (fewer --hidden units, or fewer input bits: a coarser --binarize, "
                   "e.g. thermometer:2 or median)")


def fw_dir() -> Path:
    """The board-support sources shipped inside the package (bep_mcu/fw)."""
    return Path(str(resources.files("bep_mcu") / "fw"))


@dataclass(frozen=True)
class MemoryPlan:
    """What the firmware of one network needs on one board, before it is built."""

    board: str
    state_bytes: int
    link_bytes: int
    stack_bytes: int
    firmware_static_bytes: int
    table_bytes: dict[str, int]   # const tables of the network, by C symbol

    @property
    def ram_bytes(self) -> int:
        return self.state_bytes + self.link_bytes + self.stack_bytes + self.firmware_static_bytes

    @property
    def tables_bytes(self) -> int:
        return sum(self.table_bytes.values())


def plan_memory(state: StatePlan, spec: NetSpec, board: boards.Board, name: str = "net") -> MemoryPlan:
    """RAM and the network's flash tables of a network on ``board`` (see the module docstring)."""
    wbytes = spec.hidden_bits // 8
    tables = {f"bep_{name}_classifier": state.max_classes * state.class_words * 4}
    for i, (rows, cols) in enumerate(spec.layer_shapes()):
        tables[f"bep_{name}_hidden{i}"] = rows * cols * wbytes
    tables[f"bep_{name}_config"] = CONFIG_BYTES
    return MemoryPlan(board.name, state.state_bytes, protocol.link_bytes(board.max_payload, 4), board.stack_bytes,
                      boards.firmware_static_bytes(board), tables)


def refuse_if_too_big(plan: MemoryPlan, board: boards.Board, name: str) -> None:
    """One-line ``BEPError`` when the planned RAM, or the tables alone, exceed the board."""
    if plan.ram_bytes > board.ram_bytes:
        raise DoesNotFit(
            f"network '{name}' does not fit {board.name}: RAM {plan.ram_bytes} B (state {plan.state_bytes} + link "
            f"{plan.link_bytes} + stack {plan.stack_bytes} + firmware {plan.firmware_static_bytes}) exceeds "
            f"{board.ram_bytes} B by {plan.ram_bytes - board.ram_bytes} B{SMALLER_NETWORK}")
    if plan.tables_bytes > board.flash_bytes:
        raise DoesNotFit(f"network '{name}' does not fit {board.name}: its tables alone need {plan.tables_bytes} B "
                       f"of flash, the board has {board.flash_bytes} B")


def refuse_model_if_too_big(model: Model, board: boards.Board, name: str = "net") -> None:
    """``refuse_if_too_big`` for ``model``'s network (its shape is all that counts: an
    untrained model of the same settings is judged as the trained one)."""
    refuse_if_too_big(plan_memory(plan_model(model), model.spec, board, name), board, name)


@dataclass(frozen=True)
class FirmwareBuild:
    """A built image and its sizes (``arm-none-eabi-size``: Berkeley text/data/bss)."""

    elf: Path
    board: str
    text: int
    data: int
    bss: int
    plan: MemoryPlan
    ram_budget: int
    flash_budget: int
    config_hash: str
    compiler: str

    @property
    def ram_bytes(self) -> int:
        return self.data + self.bss

    @property
    def flash_bytes(self) -> int:
        return self.text + self.data

    @property
    def fits(self) -> bool:
        return self.ram_bytes <= self.ram_budget and self.flash_bytes <= self.flash_budget

    def to_dict(self) -> dict:
        b = boards.board(self.board)
        return {"elf": str(self.elf), "board": self.board, "ram_bytes": self.ram_bytes,
                "flash_bytes": self.flash_bytes, "ram_budget": self.ram_budget, "flash_budget": self.flash_budget,
                "fits": self.fits, "predicted_ram_bytes": self.plan.ram_bytes,
                "predicted_tables_bytes": self.plan.tables_bytes, "text": self.text, "data": self.data,
                "bss": self.bss, "state_bytes": self.plan.state_bytes, "link_bytes": self.plan.link_bytes,
                "stack_bytes": self.plan.stack_bytes, "firmware_static_bytes": self.plan.firmware_static_bytes,
                "max_payload": b.max_payload, "cpu": b.cpu, "qemu": b.qemu, "config_hash": self.config_hash,
                "compiler": self.compiler}


def build_flags(board: boards.Board, name: str) -> tuple[list[str], dict[str, str]]:
    """Compiler flags (strict warnings, -Os, sections) and macros of a firmware build."""
    defines = boards.c_defines(board)
    defines.update({"BEP_FW_NET": name, "BEP_FW_NET_UPPER": name.upper(), "BEP_FW_NET_HEADER": f'"bep_{name}.h"'})
    return toolchain.cflags(board.cpu, LEVEL, strict=True, defines=defines), defines


def _link(tools: toolchain.Toolchain, board: boards.Board, objects: list[Path], build_dir: Path, elf: Path,
          plan: MemoryPlan, name: str) -> None:
    script = fw_dir() / "ld" / board.linker_script
    cmd = [tools.cc, *toolchain.core_flags(board.cpu), *LINK_FLAGS, "-T", str(script), "-L", str(build_dir),
           f"-Wl,-Map={elf.parent / MAP_NAME}", *[str(o) for o in objects], "-lgcc", "-o", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return
    for line in proc.stderr.splitlines():
        if "region `FLASH' overflowed by" in line:
            over = int(line.rsplit("overflowed by", 1)[1].split()[0])
            raise DoesNotFit(f"network '{name}' does not fit {board.name}: flash {board.flash_bytes + over} B "
                           f"(tables {plan.tables_bytes} B + code) exceeds {board.flash_bytes} B by {over} B")
    raise toolchain.BuildError(f"linking the firmware failed:\n$ {' '.join(cmd)}\n{proc.stderr}")


def build_generated(gen: Generated, spec: NetSpec, board_name: str, out_dir: str | Path,
                    tools: toolchain.Toolchain | None = None) -> FirmwareBuild:
    """Plan, compile and link the firmware of an already generated directory ``gen``."""
    board = boards.board(board_name)
    plan = plan_memory(gen.plan, spec, board, gen.name)
    refuse_if_too_big(plan, board, gen.name)
    tools = tools or toolchain.toolchain(board.cpu)
    _, defines = build_flags(board, gen.name)
    return _build_image(tools, board, gen, FW_SOURCES, [], defines, output_dir(out_dir), plan, "RAM plan")


def _build_dir(out: Path, board: boards.Board, store_bytes: int = 0) -> Path:
    return files.write_text_files(out / BUILD_DIR, {"memory.ld": boards.memory_script(board, store_bytes)})


def output_dir(out_dir: str | Path) -> Path:
    """The output directory as an absolute path: a name such as ``-x`` must never reach
    the compiler's command line as an option. Refused (one line) when it, or a file the
    linker and objcopy write there, is a symlink: they would follow it (``net/`` and
    ``build/`` are checked where they are written)."""
    return files.check_tree(Path(out_dir).absolute(), [ELF_NAME, BIN_NAME, MAP_NAME])


def _build_image(tools: toolchain.Toolchain, board: boards.Board, gen: Generated, fw_sources: tuple[str, ...],
                 extra_sources: list[Path], defines: dict[str, str], out: Path, plan: "MemoryPlan",
                 what: str, link_hint: str = "", store_bytes: int = 0) -> FirmwareBuild:
    """Compile the board sources, ``extra_sources`` and the generated C, link (the last
    ``store_bytes`` of flash kept out of the image for a store), size the ELF and hold it
    to the RAM plan (a mismatch is a bep-mcu bug), write the .bin."""
    build_dir = _build_dir(out, board, store_bytes)
    src = fw_dir()
    sources = [src / f for f in (*fw_sources, board.startup_file, board.port_file)] + extra_sources + gen.sources()
    objects = toolchain.compile_objects(tools, sources, gen.src, build_dir, LEVEL, strict=True, defines=defines)
    elf = out / ELF_NAME
    try:
        _link(tools, board, objects, build_dir, elf, plan, gen.name)
    except DoesNotFit as e:
        raise DoesNotFit(f"{e}{link_hint}") from None
    sizes = toolchain.object_sizes(tools, [elf])[elf]
    result = FirmwareBuild(elf=elf, board=board.name, text=sizes.text + sizes.rodata, data=sizes.data, bss=sizes.bss,
                           plan=plan, ram_budget=board.ram_bytes, flash_budget=board.flash_bytes,
                           config_hash=gen.config_hash, compiler=tools.version())
    if result.ram_bytes != plan.ram_bytes:
        raise toolchain.BuildError(f"{what} {plan.ram_bytes} B != data + bss {result.ram_bytes} B of {elf}: "
                                  f"bep_mcu/fw or the generated C gained static data the plan does not count "
                                  f"(see {elf.parent / MAP_NAME})")
    objcopy = tools.binutil("objcopy")
    if objcopy:
        subprocess.run([objcopy, "-O", "binary", str(elf), str(out / BIN_NAME)], check=True)
    return result


def build(model: Model, board_name: str, out_dir: str | Path, name: str = "net",
          on_progress: Callable[[str], None] | None = None) -> FirmwareBuild:
    """Plan ``model`` on ``board_name`` (refusing it before anything is written when it
    does not fit), generate its C into ``out_dir/net`` and build the firmware."""
    board = boards.board(board_name)
    check_name(name)
    out = output_dir(out_dir)
    refuse_model_if_too_big(model, board, name)
    tools = toolchain.toolchain(board.cpu)
    if on_progress:
        on_progress(f"building {board.name} firmware in {out_dir}")
    gen = generate_c(model, out / NET_DIR, name)
    return build_generated(gen, model.spec, board.name, out, tools)


# ---------------------------------------------------------------------- self-test
#
# ``bep-mcu firmware MODEL --board B --self-test GOLDEN``: the same build with
# bep_mcu/fw/selftest.c as main and the golden file rendered into the build directory as
# a const byte array. RAM = state + stack + receive ring + selftest.c's buffers (no
# link), checked against arm-none-eabi-size like the training image; flash must hold the
# golden file too. QEMU's exit status is the verdict (SELFTEST_EXIT).

SELFTEST_SOURCES = ("selftest.c", "mem.c")
SELFTEST_GOLDEN_C = "bep_selftest_golden.c"
SELFTEST_OUT = "selftest-{board}"
SELFTEST_CHUNK = 64  # BEP_ST_CHUNK: hidden-weight bytes selftest.c reads back per bep_read_hidden_bytes
SELFTEST_EXIT = {0: "pass: predictions, counters and hidden weights match after every batch",
                 1: "mismatch", 2: "foreign or damaged golden file, or a runtime call failed", 3: "fault"}
"""QEMU exit status of a self-test image (bep_mcu/fw/selftest.c; 3 from startup.c)."""


@dataclass(frozen=True)
class SelfTestPlan:
    """What an embedded golden file adds: its bytes in flash, selftest.c's buffers in RAM."""

    golden_bytes: int
    batches: int
    max_samples: int   # the largest batch: sizes the input, label and prediction buffers
    input_words: int   # of the compiled network

    @property
    def buffer_bytes(self) -> int:
        """sizeof(bep_st_buf) in selftest.c: inputs, labels and predictions (slots
        rounded up to even, so each is a multiple of 4 bytes) and the read-back chunk."""
        slots = (self.max_samples + 1) & ~1
        return 4 * self.max_samples * self.input_words + 2 * 2 * slots + SELFTEST_CHUNK


@dataclass(frozen=True)
class SelfTestMemoryPlan(MemoryPlan):
    """RAM of a self-test image: state + stack + receive ring (linked through the
    vector table's UART handler, never enabled) + selftest.c's buffers; no link."""

    selftest_bytes: int = 0

    @property
    def ram_bytes(self) -> int:
        return super().ram_bytes + self.selftest_bytes


def plan_selftest_memory(state: StatePlan, spec: NetSpec, board: boards.Board, st: SelfTestPlan,
                         name: str = "net") -> SelfTestMemoryPlan:
    base = plan_memory(state, spec, board, name)
    return SelfTestMemoryPlan(board.name, base.state_bytes, 0, base.stack_bytes, base.firmware_static_bytes,
                              base.table_bytes, st.buffer_bytes)


def refuse_selftest_if_too_big(plan: SelfTestMemoryPlan, st: SelfTestPlan, board: boards.Board, name: str,
                               golden_name: str) -> None:
    """One-line ``BEPError`` when the self-test's RAM, or the golden file with the
    network's tables, exceed the board."""
    if plan.ram_bytes > board.ram_bytes:
        raise DoesNotFit(
            f"self-test of '{name}' does not fit {board.name}: RAM {plan.ram_bytes} B (state {plan.state_bytes} + "
            f"stack {plan.stack_bytes} + firmware {plan.firmware_static_bytes} + self-test buffers "
            f"{plan.selftest_bytes} for batches of {st.max_samples}) exceeds {board.ram_bytes} B by "
            f"{plan.ram_bytes - board.ram_bytes} B: write the golden file with a smaller --batch-size")
    if plan.tables_bytes + st.golden_bytes > board.flash_bytes:
        raise DoesNotFit(
            f"golden file '{golden_name}' ({st.golden_bytes} B) and the network's tables ({plan.tables_bytes} B) "
            f"exceed {board.name}'s flash of {board.flash_bytes} B: write it with fewer --batches")


def render_golden_c(data: bytes, source: str) -> str:
    """``bep_selftest_golden.c``: the golden file as the const byte array selftest.c reads
    (``bep_st_golden``, 4-byte aligned like the file's sections; in flash)."""
    label = cformat.ctext(source)
    lines = [f"/* {SELFTEST_GOLDEN_C}: rendered by bep_mcu/device/firmware.py from {label}, do not edit.",
             f" * {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()} */",
             f"extern const unsigned char bep_st_golden[{len(data)}];",
             f"const unsigned char bep_st_golden[{len(data)}] __attribute__((aligned(4))) = {{"]
    for i in range(0, len(data), 16):
        lines.append("    " + ", ".join(f"0x{b:02X}" for b in data[i:i + 16]) + ",")
    lines.append("};")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SelfTestBuild:
    """A built self-test image, and the golden file inside it."""

    firmware: FirmwareBuild
    selftest: SelfTestPlan
    golden: str

    def to_dict(self) -> dict:
        d = self.firmware.to_dict()
        d.update({"self_test": True, "golden": self.golden, "golden_bytes": self.selftest.golden_bytes,
                  "golden_batches": self.selftest.batches, "golden_max_batch": self.selftest.max_samples,
                  "self_test_buffer_bytes": self.selftest.buffer_bytes})
        return d


def check_golden_for_model(g: golden.Golden, model: Model, golden_name: str, model_name: str) -> None:
    """Refuse, in one line, a golden file written for another network configuration
    (a golden file of another model *with the same configuration* passes here and
    fails on the board, exit 1, at the initial hidden weights)."""
    want = model.config_hash32
    if g.config_hash32 != want or g.shapes != list(model.spec.layer_shapes()):
        raise BEPError(f"golden file '{golden_name}' was written for network config 0x{g.config_hash32:08X}, "
                       f"'{model_name}' is 0x{want:08X}: write it from this model (bep-mcu golden {model_name} ...)")


def _selftest_board(board_name: str, what: str = "the self-test") -> boards.Board:
    board = boards.board(board_name)
    if not board.emulated:
        emulated = ", ".join(b.name for b in boards.BOARDS.values() if b.emulated)
        raise BEPError(f"{board.name} is a real board: {what} reports through semihosting, which bep-mcu "
                       f"only drives in QEMU; choose one of {emulated}")
    return board


def build_selftest_generated(gen: Generated, spec: NetSpec, board_name: str, golden_data: bytes,
                             out_dir: str | Path, tools: toolchain.Toolchain | None = None,
                             golden_name: str = "golden file") -> SelfTestBuild:
    """Build the self-test image of an already generated directory with ``golden_data``
    embedded. The file's format is validated here; whether it belongs to this network
    is left to the board (exit status 2 on another configuration, see selftest.c):
    :func:`build_selftest` refuses that earlier."""
    board = _selftest_board(board_name)
    g = golden.from_bytes(golden_data, golden_name)
    st = SelfTestPlan(len(golden_data), len(g.batches), max((len(b.labels) for b in g.batches), default=1),
                      gen.plan.input_words)
    plan = plan_selftest_memory(gen.plan, spec, board, st, gen.name)
    refuse_selftest_if_too_big(plan, st, board, gen.name, golden_name)
    tools = tools or toolchain.toolchain(board.cpu)
    out = output_dir(out_dir)
    build_dir = _build_dir(out, board)
    files.write_text_files(build_dir, {SELFTEST_GOLDEN_C: render_golden_c(golden_data, golden_name)})
    golden_c = build_dir / SELFTEST_GOLDEN_C
    _, defines = build_flags(board, gen.name)
    defines.update({"BEP_ST_GOLDEN_BYTES": f"{st.golden_bytes}u", "BEP_ST_MAX_N": f"{st.max_samples}u",
                    "BEP_ST_CHUNK": f"{SELFTEST_CHUNK}u"})
    result = _build_image(tools, board, gen, SELFTEST_SOURCES, [golden_c], defines, out, plan, "self-test RAM plan",
                          f" (the golden file takes {st.golden_bytes} B of it: write fewer --batches)")
    return SelfTestBuild(result, st, golden_name)


def build_selftest(model: Model, board_name: str, golden_path: str, out_dir: str | Path, name: str = "net",
                   on_progress: Callable[[str], None] | None = None, model_name: str = "the model") -> SelfTestBuild:
    """``bep-mcu firmware MODEL --self-test GOLDEN``: an image that replays GOLDEN on the
    board (bep_mcu/fw/selftest.c) instead of serving the link. Refuses, in one line and
    before anything is written, a golden file of another network configuration, a board
    without semihosting, and a self-test that does not fit."""
    board = _selftest_board(board_name)
    check_name(name)
    out = output_dir(out_dir)
    data = files.read_regular(golden_path, "golden file", golden.MAX_GOLDEN_BYTES)
    g = golden.from_bytes(data, str(golden_path))
    check_golden_for_model(g, model, str(golden_path), model_name)
    state = plan_model(model)
    st = SelfTestPlan(len(data), len(g.batches), max((len(b.labels) for b in g.batches), default=1),
                      state.input_words)
    refuse_selftest_if_too_big(plan_selftest_memory(state, model.spec, board, st, name), st, board, name,
                               str(golden_path))
    tools = toolchain.toolchain(board.cpu)
    if on_progress:
        on_progress(f"building {board.name} self-test of {golden_path} in {out_dir}")
    gen = generate_c(model, out / NET_DIR, name)
    return build_selftest_generated(gen, model.spec, board.name, data, out, tools, str(golden_path))


# ---------------------------------------------------------------------- standalone
#
# ``bep-mcu firmware MODEL --board B --standalone-data DATA``: a board that learns on its
# own. bep_mcu/fw/standalone.c as main, the training and test sets rendered into the build
# directory as const arrays of device values (bep_sa_data.c, flash), no link. RAM = state
# + stack + receive ring (linked through the vector table, never enabled) + one packed
# sample and one snapshot (bep_sa_buf), checked against arm-none-eabi-size like the
# training image. QEMU's exit status: STANDALONE_EXIT.

STANDALONE_SOURCES = ("standalone.c", "mem.c")
STANDALONE_OUT = "standalone-{board}"
STANDALONE_EXIT = {0: "done", 2: "a runtime call failed", 3: "fault"}
"""QEMU exit status of a standalone image (bep_mcu/fw/standalone.c; 3 from startup.c)."""


@dataclass(frozen=True)
class StandaloneData:
    """What a standalone image learns from: device values (n, values of a sample) of
    ``fmt`` and class indices, for training and test."""

    fmt: InputFormat
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str

    @property
    def flash_bytes(self) -> int:
        values = (len(self.train_x) + len(self.test_x)) * self.train_x.shape[1]
        return values * self.fmt.itemsize + len(self.train_y) + len(self.test_y)


@dataclass(frozen=True)
class PowerCuts:
    """A standalone image that keeps its learning in a flash store and is reset at ``cuts``
    ((generation being written, flash operation within that save), in order)."""

    store: StorePlan
    cuts: tuple[tuple[int, int], ...]

    # bep_store_t and standalone.c's three counters of the cuts
    RAM_BYTES = abi.STORE_BYTES + 12

    @property
    def flash_bytes(self) -> int:
        """The store's slots and the boot log's page, kept out of the image."""
        return self.store.store_bytes + self.store.page_bytes


@dataclass(frozen=True)
class StandaloneMemoryPlan(MemoryPlan):
    """RAM of a standalone image: state + stack + receive ring + bep_sa_buf (one packed
    sample and one snapshot) + with power cuts, the store's; no link. Flash: the store's
    pages besides the image."""

    standalone_bytes: int = 0
    store_flash_bytes: int = 0

    @property
    def ram_bytes(self) -> int:
        return super().ram_bytes + self.standalone_bytes


def plan_standalone_memory(state: StatePlan, spec: NetSpec, board: boards.Board, name: str = "net",
                           power_cuts: PowerCuts | None = None) -> StandaloneMemoryPlan:
    base = plan_memory(state, spec, board, name)
    buffers = 4 * state.input_words + snapshot_bytes(state) + (PowerCuts.RAM_BYTES if power_cuts else 0)
    return StandaloneMemoryPlan(board.name, base.state_bytes, 0, base.stack_bytes, base.firmware_static_bytes,
                                base.table_bytes, buffers, power_cuts.flash_bytes if power_cuts else 0)


def refuse_standalone_if_too_big(plan: StandaloneMemoryPlan, data: StandaloneData, board: boards.Board,
                                 name: str) -> None:
    if plan.ram_bytes > board.ram_bytes:
        raise DoesNotFit(
            f"standalone image of '{name}' does not fit {board.name}: RAM {plan.ram_bytes} B (state "
            f"{plan.state_bytes} + stack {plan.stack_bytes} + firmware {plan.firmware_static_bytes} + sample and "
            f"snapshot {plan.standalone_bytes}) exceeds {board.ram_bytes} B by {plan.ram_bytes - board.ram_bytes} B"
            f"{SMALLER_NETWORK}")
    store = f" and the store ({plan.store_flash_bytes} B)" if plan.store_flash_bytes else ""
    if plan.tables_bytes + data.flash_bytes + plan.store_flash_bytes > board.flash_bytes:
        raise DoesNotFit(f"the data of '{data.source}' ({data.flash_bytes} B as {data.fmt.input_type}), the "
                         f"network's tables ({plan.tables_bytes} B){store} exceed {board.name}'s flash of "
                         f"{board.flash_bytes} B: use fewer samples")


@dataclass(frozen=True)
class StandaloneBuild:
    firmware: FirmwareBuild
    data: StandaloneData
    epochs: int
    batch_size: int
    snapshot_after: int  # the image snapshots, wipes and restores its state after this epoch (0: never)
    power_cuts: PowerCuts | None = None
    min_epochs: int = 0  # --follow-progress: the budget's minimum, ``epochs`` its cap (0: ``epochs`` epochs)

    def to_dict(self) -> dict:
        d = self.firmware.to_dict()
        d.update({"standalone": True, "data": self.data.source, "train_samples": len(self.data.train_y),
                  "test_samples": len(self.data.test_y), "data_bytes": self.data.flash_bytes,
                  "epochs": self.epochs, "max_epochs": self.epochs,  # "epochs" becomes the epochs run with --run
                  "follow_progress": bool(self.min_epochs), "min_epochs": self.min_epochs,
                  "batch_size": self.batch_size, "snapshot_after": self.snapshot_after,
                  "standalone_buffer_bytes": self.firmware.plan.standalone_bytes, **self.data.fmt.describe()})
        if self.power_cuts:
            d.update({"power_cuts": len(self.power_cuts.cuts), "store": self.power_cuts.store.to_dict()})
        return d


def standalone_defines(board: boards.Board, name: str, n_train: int, n_test: int, epochs: int, batch_size: int,
                       snapshot_after: int, power_cuts: PowerCuts | None = None, min_epochs: int = 0) -> dict[str, str]:
    """The macros standalone.c compiles with (besides the board's and the network's)."""
    _, defines = build_flags(board, name)
    defines.update({"BEP_SA_TRAIN_N": f"{n_train}u", "BEP_SA_TEST_N": f"{n_test}u", "BEP_SA_EPOCHS": f"{epochs}u",
                    "BEP_SA_MIN_EPOCHS": f"{min_epochs}u",
                    "BEP_SA_BATCH": f"{batch_size}u", "BEP_SA_SNAPSHOT_EPOCH": f"{snapshot_after}u",
                    "BEP_SA_BOARD_HEADER": f'"bep_{name}_board.h"'})
    if power_cuts:
        store = power_cuts.store
        defines.update({"BEP_SA_POWER_CUTS": f"{len(power_cuts.cuts)}u", "BEP_SA_SLOTS": f"{store.slots}u",
                        "BEP_SA_SLOT_PAGES": f"{store.slot_pages}u", "BEP_SA_SAVE_EVERY": f"{store.every_samples}u",
                        "BEP_SA_CUT_LIST": ", ".join(f"{{{g}u, {o}u}}" for g, o in power_cuts.cuts)})
    return defines


def build_standalone(model: Model, board_name: str, data: StandaloneData, epochs: int, batch_size: int,
                     out_dir: str | Path, name: str = "net", on_progress: Callable[[str], None] | None = None,
                     power_cuts: PowerCuts | None = None, min_epochs: int = 0) -> StandaloneBuild:
    """``bep-mcu firmware MODEL --standalone-data DATA``: an image that trains on ``data``
    for ``epochs`` epochs with the on-device schedule, no link, and reports through
    semihosting (bep_mcu/fw/standalone.c); with ``min_epochs`` (``--follow-progress``) at
    least that many, then until the training budget says stop, at most ``epochs``; with ``power_cuts``, it keeps its learning in a
    flash store and is reset at the planned flash operations. Refuses, in one line and
    before anything is written, a board without semihosting (or without a flash driver
    for power cuts) and an image that does not fit."""
    board = _selftest_board(board_name, "the standalone image")
    if power_cuts and board.flash_driver is None:
        raise BEPError(f"--power-cuts: {board.name} has no flash driver for a store (boards with one: "
                       f"{', '.join(b.name for b in boards.BOARDS.values() if b.flash_driver and b.emulated)})")
    check_name(name)
    out = output_dir(out_dir)
    state = plan_model(model)
    plan = plan_standalone_memory(state, model.spec, board, name, power_cuts)
    refuse_standalone_if_too_big(plan, data, board, name)
    tools = toolchain.toolchain(board.cpu)
    if on_progress:
        on_progress(f"building {board.name} standalone image of {data.source} in {out_dir}")
    gen = generate_c(model, out / NET_DIR, name, data.fmt)
    build_dir = _build_dir(out, board, plan.store_flash_bytes)
    files.write_text_files(build_dir, {STANDALONE_DATA_C: render_standalone_data(
        data.fmt, (data.train_x, data.train_y), (data.test_x, data.test_y), data.source)})
    snapshot_after = 0 if power_cuts else (min_epochs or epochs) // 2  # within the epochs the run makes
    defines = standalone_defines(board, gen.name, len(data.train_y), len(data.test_y), epochs, batch_size,
                                 snapshot_after, power_cuts, min_epochs)
    result = _build_image(tools, board, gen, STANDALONE_SOURCES, [build_dir / STANDALONE_DATA_C], defines, out, plan,
                          "standalone RAM plan", f" (the data takes {data.flash_bytes} B of it: use fewer samples)",
                          plan.store_flash_bytes)
    return StandaloneBuild(result, data, epochs, batch_size, snapshot_after, power_cuts, min_epochs)
