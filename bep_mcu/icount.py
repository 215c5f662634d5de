"""Count the instructions the generated C executes on a Cortex-M core, exactly.

A generated C directory (``bep_mcu.codegen.generate``) is cross-built with
``arm-none-eabi-gcc`` into a bare-metal measurement image: the generated sources
unchanged, plus a small harness (``icount_main.c``, written here) and a linker script
with code and constants at 0x00000000 and RAM at 0x20000000. No libc, no startup code:
the emulator is the loader, so every ELF segment is placed at its run address (``.data``
already initialised, ``.bss`` zero) and execution starts at ``icount_run`` with the stack
pointer at the top of RAM.

``icount_run`` reads its parameters from one struct, ``icount_io``, that the host writes
into emulated RAM (seed, initial batch counter, γ and Q per layer, and pointers to the
packed samples, labels and output buffers, which live in a separate host data region at
``DATA_BASE``). It calls ``bep_<net>_init``, ``bep_<net>_set_epoch``, then
``bep_<net>_train_batch`` on consecutive batches, copies the hidden weights out with
``bep_<net>_read_hidden`` and stops in ``icount_halt`` (the ``until`` address of the
emulation). Between phases it calls ``icount_mark(phase)``, a no-op function whose
entry the host watches with a one-address code hook to cut the count into phases.

Counting: unicorn (``UC_ARCH_ARM``, ``UC_MODE_THUMB | UC_MODE_MCLASS``, the CPU model
of the chosen core) with a block hook. Every translated block executes all its
instructions, so a block's instruction count (decoded once from its bytes: a halfword
whose top five bits are 0b11101, 0b11110 or 0b11111 starts a 32-bit Thumb-2
instruction, anything else is a 16-bit one) times its number of executions is exact.
Blocks are attributed to functions through ``arm-none-eabi-nm``; the harness's own
functions (``icount_*``) are excluded from every reported figure, so a phase's count is
what the generated code and libgcc execute. Counts are instructions, not cycles.

Example::

    from bep_mcu.icount import count_training
    r = count_training("out/net", "net", "cortex-m4", X_packed, labels, batch_size=100,
                       gamma=[8], q=[q0], seed=0)
    r["instructions_per_sample"], r["init_instructions"], r["hidden"]

``python -m bep_mcu.icount`` trains a 256-128-10 MLP briefly, generates it and prints
instructions per training sample on Cortex-M0 and M4 (batch 1 and 100, E = 1.0 and 0.1),
checking the emulated weights against the numpy engine bit for bit.
"""

from __future__ import annotations

import argparse
import bisect
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bep_mcu.errors import BEPError

CC = "arm-none-eabi-gcc"
NM = "arm-none-eabi-nm"
SIZE = "arm-none-eabi-size"

FLASH_BASE = 0x00000000
FLASH_SIZE = 4 << 20
RAM_BASE = 0x20000000
RAM_SIZE = 1 << 20
DATA_BASE = 0x20400000  # host-written samples, labels and outputs (outside the linked RAM)
PAGE = 0x1000

CPUS = {  # -mcpu → unicorn CPU model name in unicorn.arm_const
    "cortex-m0": "UC_CPU_ARM_CORTEX_M0",
    "cortex-m0plus": "UC_CPU_ARM_CORTEX_M0",  # same ARMv6-M instruction set
    "cortex-m3": "UC_CPU_ARM_CORTEX_M3",
    "cortex-m4": "UC_CPU_ARM_CORTEX_M4",
    "cortex-m7": "UC_CPU_ARM_CORTEX_M7",
    "cortex-m33": "UC_CPU_ARM_CORTEX_M33",
}
OPTS = ("-Os", "-O2", "-O3", "-O1", "-Oz")
# Warnings are collected (not fatal): a warning only on ARM is worth reporting, not a
# reason to refuse measuring.
WARN_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion", "-Wundef", "-Wshadow",
              "-pedantic"]
HARNESS_PREFIX = "icount_"
EMU_TIMEOUT_S = 1800

# Phases marked by icount_mark(phase) in the harness.
PH_INIT, PH_SET_EPOCH, PH_BATCH, PH_DONE = 1, 2, 3, 4
IO_MAGIC = 0x49434E54  # "ICNT"
# icount_io_t (pinned by a static assert in the harness): 8 words, q[4], gamma[4] (u16),
# status[4], done, hidden_out[4], hidden_len[4].
IO_FORMAT = "<8I4I4H4iI4I4I"
IO_BYTES = struct.calcsize(IO_FORMAT)  # 120

HARNESS = r"""/*
 * icount_main.c - bare-metal measurement entry for network "@NAME@" (bep_mcu/icount.py).
 * The host writes icount_io, runs icount_run in an emulator and stops at icount_halt;
 * icount_mark(phase) cuts the instruction count into phases.
 */
#include <stddef.h>
#include <stdint.h>

#include "bep_@NAME@.h"

typedef struct {
    uint32_t magic;          /*   0: ICOUNT_MAGIC, written by the host */
    uint32_t seed;           /*   4 */
    uint32_t batches;        /*   8: initial batch counter */
    uint32_t n_samples;      /*  12 */
    uint32_t batch_size;     /*  16 */
    const uint32_t *x;       /*  20: n_samples x INPUT_WORDS packed words */
    const uint16_t *labels;  /*  24 */
    uint16_t *pred;          /*  28 */
    uint32_t q[4];           /*  32 */
    uint16_t gamma[4];       /*  48 */
    int32_t status[4];       /*  56: init, set_epoch, train_batch, read_hidden */
    uint32_t done;           /*  72: batches trained */
    void *hidden_out[4];     /*  76 */
    uint32_t hidden_len[4];  /*  92 */
    uint32_t reserved[3];    /* 108 */
} icount_io_t;

typedef char icount_io_size_check[(sizeof(icount_io_t) == 120u && offsetof(icount_io_t, gamma) == 48u &&
                                   offsetof(icount_io_t, hidden_len) == 92u) ? 1 : -1];

#define ICOUNT_MAGIC 0x49434E54u

icount_io_t icount_io;
uint32_t icount_state[BEP_@UNAME@_STATE_WORDS];

/* Called between phases; the host watches its first instruction. */
void __attribute__((noinline)) icount_mark(uint32_t phase)
{
    __asm__ volatile("" : : "r"(phase) : "memory");
}

void __attribute__((noinline, noreturn)) icount_halt(void)
{
    for (;;) __asm__ volatile("nop");
}

/* gcc may emit calls to these even with -ffreestanding. */
void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}

void __attribute__((noreturn)) icount_run(void)
{
    icount_io_t *io = &icount_io;
    uint32_t k, l;
    if (io->magic == ICOUNT_MAGIC) {
        icount_mark(@PH_INIT@);
        io->status[0] = bep_@NAME@_init(icount_state, sizeof icount_state, io->seed, io->batches);
        icount_mark(@PH_SET_EPOCH@);
        io->status[1] = bep_@NAME@_set_epoch(icount_state, sizeof icount_state, io->gamma, BEP_@UNAME@_N_LAYERS,
                                          io->q, BEP_@UNAME@_N_LAYERS);
        for (k = 0; k < io->n_samples && io->status[2] == 0; k += io->batch_size) {
            uint32_t m = io->n_samples - k < io->batch_size ? io->n_samples - k : io->batch_size;
            icount_mark(@PH_BATCH@);
            io->status[2] = bep_@NAME@_train_batch(icount_state, sizeof icount_state,
                                                  io->x + (size_t)k * BEP_@UNAME@_INPUT_WORDS,
                                                  (size_t)m * BEP_@UNAME@_INPUT_WORDS, io->labels + k, io->pred + k, m);
            io->done++;
        }
        icount_mark(@PH_DONE@);
        for (l = 0; l < BEP_@UNAME@_N_LAYERS; ++l) {
            int32_t st = bep_@NAME@_read_hidden(icount_state, sizeof icount_state, l, io->hidden_out[l],
                                               io->hidden_len[l]);
            if (st != 0) io->status[3] = st;
        }
    }
    icount_halt();
}
"""

LINKER_SCRIPT = f"""/* icount measurement image: code and constants in flash, state in RAM. */
MEMORY
{{
    FLASH (rx)  : ORIGIN = 0x{FLASH_BASE:08X}, LENGTH = {FLASH_SIZE}
    RAM   (rwx) : ORIGIN = 0x{RAM_BASE:08X}, LENGTH = {RAM_SIZE}
}}
ENTRY(icount_run)
SECTIONS
{{
    .text : {{ *(.text .text.*) }} > FLASH
    .rodata : {{ *(.rodata .rodata.*) }} > FLASH
    .ARM.exidx : {{ *(.ARM.exidx .ARM.exidx.* .gnu.linkonce.armexidx.*) }} > FLASH
    .data : {{ *(.data .data.*) }} > RAM AT > FLASH
    .bss (NOLOAD) : {{ *(.bss .bss.*) *(COMMON) }} > RAM
    icount_stack_top = ORIGIN(RAM) + LENGTH(RAM);
}}
"""


# ------------------------------------------------------------------ availability


def missing_tools() -> list[str]:
    """What this module needs and cannot find (empty when it can run)."""
    missing = [tool for tool in (CC, NM) if shutil.which(tool) is None]
    try:
        import unicorn  # noqa: F401
    except ImportError:
        missing.append("unicorn (pip install unicorn)")
    return missing


def _check_tools() -> None:
    missing = missing_tools()
    if missing:
        raise BEPError(f"icount needs {', '.join(missing)} (apt-get install gcc-arm-none-eabi; pip install unicorn)")


# ------------------------------------------------------------- generated headers


@dataclass
class NetInfo:
    """What the generated header says about the network (BEP_<NET>_* macros)."""

    name: str
    state_bytes: int
    input_words: int
    n_layers: int
    n_classes: int
    hidden_bits: int
    seed: int
    batches: int
    shapes: list[tuple[int, int]]
    gamma: list[int]


def read_header(gen_dir, name: str) -> NetInfo:
    path = Path(gen_dir) / f"bep_{name}.h"
    if not path.is_file():
        raise BEPError(f"'{path}' not found: is '{gen_dir}' a directory generated for network '{name}'?")
    text = path.read_text()
    macros = {m.group(1): int(m.group(2)) for m in
              re.finditer(rf"#define BEP_{name.upper()}_(\w+) (-?\d+)u?\b", text)}
    try:
        n_layers = macros["N_LAYERS"]
        return NetInfo(
            name, macros["STATE_BYTES"], macros["INPUT_WORDS"], n_layers, macros["N_CLASSES"],
            macros["HIDDEN_BITS"], macros["SEED"], macros["BATCHES"],
            [(macros[f"LAYER{i}_ROWS"], macros[f"LAYER{i}_COLS"]) for i in range(n_layers)],
            [macros[f"LAYER{i}_GAMMA"] for i in range(n_layers)],
        )
    except KeyError as e:
        raise BEPError(f"'{path}' lacks the macro BEP_{name.upper()}_{e.args[0]}") from None


# ------------------------------------------------------------------------- ELF


def _elf_segments(path: Path) -> list[tuple[int, bytes, int]]:
    """PT_LOAD segments of an ELF file: (vaddr, file bytes, memsz)."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        return [(seg["p_vaddr"], seg.data(), seg["p_memsz"]) for seg in ELFFile(f).iter_segments()
                if seg["p_type"] == "PT_LOAD" and seg["p_memsz"]]


def _symbols(elf: Path) -> tuple[dict[str, tuple[int, int, str]], list[tuple[int, int, str]]]:
    """All defined symbols {name: (address, size, type)} and the functions sorted by address."""
    out = subprocess.run([NM, "-S", "-n", "--defined-only", str(elf)], capture_output=True, text=True, check=True)
    syms, funcs = {}, []
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            addr, size, kind, name = int(parts[0], 16), int(parts[1], 16), parts[2], parts[3]
        elif len(parts) == 3:
            addr, size, kind, name = int(parts[0], 16), 0, parts[1], parts[2]
        else:
            continue
        syms[name] = (addr, size, kind)
        if kind in "tTwW" and size and not name.startswith("$"):
            funcs.append((addr & ~1, size, name))
    funcs.sort()
    return syms, funcs


# ----------------------------------------------------------------------- build


@dataclass
class Image:
    """A built measurement ELF and what the host needs to run it."""

    elf: Path
    cpu: str
    opt: str
    info: NetInfo
    symbols: dict[str, tuple[int, int, str]]
    functions: list[tuple[int, int, str]]
    segments: list[tuple[int, bytes, int]]
    warnings: str = ""
    size: dict[str, int] = field(default_factory=dict)
    cflags: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list, repr=False)  # function start addresses (bisect)

    def __post_init__(self) -> None:
        self.starts = [f[0] for f in self.functions]

    def address(self, symbol: str) -> int:
        try:
            return self.symbols[symbol][0]
        except KeyError:
            raise BEPError(f"symbol '{symbol}' not in {self.elf}") from None

    def run(self, X_packed, labels, batch_size: int, gamma, q, seed: int, batches: int = 0,
            verify: bool = False) -> dict:
        """Train on the samples in the emulator; see :func:`count_training` for the result.

        ``verify`` also runs a per-instruction hook (several times slower) and checks
        the block-hook count against it instruction by instruction (see ``_verify``);
        the result's ``it_skipped`` then holds the condition-failed IT-block
        instructions, which are counted as executed.
        """
        return _run(self, X_packed, labels, batch_size, gamma, q, seed, batches, verify)


def build_image(gen_dir, name: str, cpu: str, opt: str = "-Os", build_dir=None,
                extra_cflags: list[str] | tuple[str, ...] = ()) -> Image:
    """Cross-build the measurement ELF of a generated library (``Generated.src``) for ``cpu``.

    ``build_dir`` keeps the artifacts (harness, linker script, objects, ELF); by
    default a temporary directory is used and removed (the returned image holds
    everything needed to run, so ``Image.elf`` then names a file that is gone).
    """
    _check_tools()
    if cpu not in CPUS:
        raise BEPError(f"cpu must be one of {', '.join(CPUS)}, got '{cpu}'")
    if opt not in OPTS:
        raise BEPError(f"opt must be one of {', '.join(OPTS)}, got '{opt}'")
    gen_dir = Path(gen_dir)
    info = read_header(gen_dir, name)
    if build_dir is None:
        with tempfile.TemporaryDirectory(prefix="bep-icount-") as tmp:
            return _build(gen_dir, info, cpu, opt, Path(tmp), list(extra_cflags))
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    return _build(gen_dir, info, cpu, opt, build_dir, list(extra_cflags))


def _build(gen_dir: Path, info: NetInfo, cpu: str, opt: str, out: Path, extra: list[str]) -> Image:
    name = info.name
    harness = HARNESS.replace("@NAME@", name).replace("@UNAME@", name.upper())
    for ph, value in (("INIT", PH_INIT), ("SET_EPOCH", PH_SET_EPOCH), ("BATCH", PH_BATCH), ("DONE", PH_DONE)):
        harness = harness.replace(f"@PH_{ph}@", f"{value}u")
    (out / "icount_main.c").write_text(harness)
    (out / "icount.ld").write_text(LINKER_SCRIPT)
    arch = [f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=soft"]
    cflags = [*arch, opt, "-ffreestanding", "-ffunction-sections", "-fdata-sections", "-g0", *extra]
    # Exactly the generated sources (a directory may hold other C files, e.g. a firmware main).
    sources = [gen_dir / f for f in (f"bep_{name}.c", "bep_runtime.c", "bep_status.c")]
    for src in sources:
        if not src.is_file():
            raise BEPError(f"'{src}' not found: regenerate '{gen_dir}' with bep-mcu generate")
    objects, warnings = [], []
    for src in sources:
        obj = out / (src.stem + ".o")
        proc = subprocess.run([CC, *cflags, *WARN_FLAGS, "-I", str(gen_dir), "-c", str(src), "-o", str(obj)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise BEPError(f"{CC} failed on {src.name} ({cpu} {opt}):\n{proc.stderr}")
        warnings.append(proc.stderr)
        objects.append(obj)
    # The harness's memcpy/memset loops must not be turned back into memcpy/memset calls.
    obj = out / "icount_main.o"
    proc = subprocess.run([CC, *cflags, "-std=c99", "-Wall", "-Wextra", "-fno-tree-loop-distribute-patterns",
                           "-I", str(gen_dir), "-c", str(out / "icount_main.c"), "-o", str(obj)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BEPError(f"{CC} failed on the icount harness ({cpu} {opt}):\n{proc.stderr}")
    warnings.append(proc.stderr)
    objects.append(obj)
    elf = out / f"icount_{name}_{cpu}{opt}.elf"
    proc = subprocess.run([CC, *arch, "-nostdlib", "-nostartfiles", "-T", str(out / "icount.ld"),
                           "-Wl,--gc-sections", *map(str, objects), "-lgcc", "-o", str(elf)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BEPError(f"linking the icount image failed ({cpu} {opt}):\n{proc.stderr}")
    symbols, functions = _symbols(elf)
    size = {}
    if shutil.which(SIZE):
        lines = subprocess.run([SIZE, str(elf)], capture_output=True, text=True).stdout.splitlines()
        if len(lines) >= 2:
            text, data, bss = (int(v) for v in lines[1].split()[:3])
            size = {"text": text, "data": data, "bss": bss}
    segments = _elf_segments(elf)
    image = Image(elf, cpu, opt, info, symbols, functions, segments, "".join(w for w in warnings if w.strip()),
                  size, cflags)
    return image


# ------------------------------------------------------------------------- run


def thumb_instructions(code: bytes) -> int:
    """Number of Thumb instructions in ``code`` (a whole number of instructions)."""
    n = pos = 0
    end = len(code)
    while pos < end:
        hw = code[pos] | (code[pos + 1] << 8)
        pos += 4 if (hw >> 11) in (0b11101, 0b11110, 0b11111) else 2
        n += 1
    if pos != end:
        raise BEPError(f"a block of {end} bytes does not end on an instruction boundary")
    return n


def _map(uc, base: int, size: int) -> None:
    start = base & ~(PAGE - 1)
    end = (base + size + PAGE - 1) & ~(PAGE - 1)
    uc.mem_map(start, max(PAGE, end - start))


def _emulator(image: Image):
    import unicorn
    from unicorn import arm_const

    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(getattr(arm_const, CPUS[image.cpu]))
    _map(uc, FLASH_BASE, FLASH_SIZE)
    _map(uc, RAM_BASE, RAM_SIZE)
    for vaddr, data, memsz in image.segments:
        inside = (FLASH_BASE <= vaddr and vaddr + memsz <= FLASH_BASE + FLASH_SIZE) or \
                 (RAM_BASE <= vaddr and vaddr + memsz <= RAM_BASE + RAM_SIZE)
        if not inside:
            raise BEPError(f"ELF segment at 0x{vaddr:08X} ({memsz} bytes) is outside flash and RAM")
        if data:
            uc.mem_write(vaddr, bytes(data))
    return uc


def _run(image: Image, X_packed, labels, batch_size: int, gamma, q, seed: int, batches: int,
         verify: bool = False) -> dict:
    import unicorn
    from unicorn import arm_const

    info = image.info
    X = np.ascontiguousarray(X_packed, dtype=np.uint32)
    if X.ndim != 2 or X.shape[1] != info.input_words:
        raise BEPError(f"X_packed must be (n, {info.input_words}) uint32 words, got shape {X.shape}")
    y = np.ascontiguousarray(labels, dtype=np.uint16).reshape(-1)
    n = len(y)
    if n != len(X) or n == 0:
        raise BEPError(f"{len(X)} samples and {n} labels: need the same positive number")
    if batch_size < 1:
        raise BEPError(f"batch size must be >= 1, got {batch_size}")
    gamma = [int(g) for g in gamma]
    q = [int(v) for v in q]
    if len(gamma) != info.n_layers or len(q) != info.n_layers:
        raise BEPError(f"gamma and q need one value per layer ({info.n_layers})")

    uc = _emulator(image)
    # Host data region: samples, labels, predictions, hidden-weight outputs.
    wbytes = info.hidden_bits // 8
    hidden_len = [r * c * wbytes for r, c in info.shapes]
    cursor = DATA_BASE
    layout = {}
    for key, nbytes in (("x", X.nbytes), ("labels", y.nbytes), ("pred", 2 * n),
                        *((f"h{i}", hidden_len[i]) for i in range(info.n_layers))):
        layout[key] = cursor
        cursor = (cursor + nbytes + 15) & ~15
    _map(uc, DATA_BASE, cursor - DATA_BASE)
    uc.mem_write(layout["x"], X.tobytes())
    uc.mem_write(layout["labels"], y.tobytes())
    pad = lambda v, fill=0: list(v) + [fill] * (4 - len(v))  # noqa: E731
    io = struct.pack(
        IO_FORMAT, IO_MAGIC, seed & 0xFFFFFFFF, batches & 0xFFFFFFFF, n, batch_size, layout["x"],
        layout["labels"], layout["pred"], *pad(q), *pad(gamma), 0, 0, 0, 0, 0,
        *pad([layout[f"h{i}"] for i in range(info.n_layers)]), *pad(hidden_len))
    io_addr = image.address("icount_io")
    uc.mem_write(io_addr, io + bytes(IO_BYTES - len(io)))

    # Counting: one dict {block key: executions} per segment between marks.
    segments: list[tuple[int, dict]] = [(0, {})]
    cur = [segments[0][1]]

    def on_block(_uc, address, size, _user):
        d = cur[0]
        key = (address << 16) | size
        d[key] = d.get(key, 0) + 1

    def on_mark(u, _address, _size, _user):
        d = {}
        segments.append((u.reg_read(arm_const.UC_ARM_REG_R0), d))
        cur[0] = d

    mark = image.address("icount_mark") & ~1
    halt = image.address("icount_halt") & ~1
    entry = image.address("icount_run") & ~1
    uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)
    uc.hook_add(unicorn.UC_HOOK_CODE, on_mark, begin=mark, end=mark)
    stepped: dict[int, int] = {}
    if verify:
        def on_insn(_uc, address, _size, _user):
            stepped[address] = stepped.get(address, 0) + 1

        uc.hook_add(unicorn.UC_HOOK_CODE, on_insn)
    uc.reg_write(arm_const.UC_ARM_REG_SP, image.address("icount_stack_top"))
    uc.reg_write(arm_const.UC_ARM_REG_LR, halt | 1)
    start = time.perf_counter()
    try:
        uc.emu_start(entry | 1, halt, timeout=EMU_TIMEOUT_S * 1_000_000)
    except unicorn.UcError as e:
        pc = uc.reg_read(arm_const.UC_ARM_REG_PC)
        raise BEPError(f"emulation failed at pc=0x{pc:08X} ({_function_at(image, pc)}): {e}") from None
    seconds = time.perf_counter() - start
    pc = uc.reg_read(arm_const.UC_ARM_REG_PC) & ~1
    if pc != halt:
        raise BEPError(f"emulation stopped at pc=0x{pc:08X} ({_function_at(image, pc)}), not at icount_halt "
                       f"(timeout after {EMU_TIMEOUT_S} s?)")

    fields = struct.unpack(IO_FORMAT, bytes(uc.mem_read(io_addr, IO_BYTES)))
    status, done = list(fields[16:20]), fields[20]
    if any(status):
        from bep_mcu.cgen.status import status_name

        phases = ("init", "set_epoch", "train_batch", "read_hidden")
        bad = "; ".join(f"{p}: {status_name(s)}" for p, s in zip(phases, status) if s)
        raise BEPError(f"the generated code refused the run on {image.cpu}: {bad}")

    # Attribute blocks to functions, decode their sizes once.
    decoded: dict[int, tuple[int, str]] = {}

    def block(key: int) -> tuple[int, str]:
        hit = decoded.get(key)
        if hit is None:
            address, size = key >> 16, key & 0xFFFF
            hit = decoded[key] = (thumb_instructions(bytes(uc.mem_read(address, size))),
                                  _function_at(image, address))
        return hit

    def tally(d: dict) -> dict[str, int]:
        per_fn: dict[str, int] = {}
        for key, times in d.items():
            count, fn = block(key)
            per_fn[fn] = per_fn.get(fn, 0) + count * times
        return per_fn

    def runtime(per_fn: dict[str, int]) -> int:
        return sum(v for fn, v in per_fn.items() if not fn.startswith(HARNESS_PREFIX))

    tallies = [(phase, tally(d)) for phase, d in segments]
    by_phase = lambda ph: [t for p, t in tallies if p == ph]  # noqa: E731
    init_fn = _merge(by_phase(PH_INIT))
    epoch_fn = _merge(by_phase(PH_SET_EPOCH))
    batch_fns = by_phase(PH_BATCH)
    train_fn = _merge(batch_fns)
    total = sum(sum(t.values()) for _, t in tallies)
    harness = sum(v for _, t in tallies for fn, v in t.items() if fn.startswith(HARNESS_PREFIX))
    it_skipped = _verify(image, uc, segments, stepped) if verify else None
    if done != len(batch_fns) or done != -(-n // batch_size):
        raise BEPError(f"trained {done} batches, marked {len(batch_fns)}, expected {-(-n // batch_size)}")

    state = image.address("icount_state")
    header = struct.unpack("<3I5I", bytes(uc.mem_read(state, 32)))
    counters = dict(zip(("samples", "triggered", "errors", "updates", "batches"), header[3:8]))
    dtype = np.int8 if info.hidden_bits == 8 else np.int16
    hidden = [np.frombuffer(bytes(uc.mem_read(layout[f"h{i}"], hidden_len[i])), dtype=dtype).reshape(shape).copy()
              for i, shape in enumerate(info.shapes)]
    pred = np.frombuffer(bytes(uc.mem_read(layout["pred"], 2 * n)), dtype=np.uint16).astype(np.int64)
    train = runtime(train_fn)
    return {
        "cpu": image.cpu, "opt": image.opt, "name": info.name, "samples": n, "batch_size": batch_size,
        "batches": int(done), "gamma": gamma, "q": q,
        "instructions_per_sample": train / n,
        "init_instructions": runtime(init_fn),
        "set_epoch_instructions": runtime(epoch_fn),
        "train_instructions": train,
        "batch_instructions": [runtime(t) for t in batch_fns],
        "harness_instructions": harness,
        "total_instructions": total,
        "functions": {"init": _runtime_only(init_fn), "train": _runtime_only(train_fn)},
        "counters": counters,
        "predictions": pred,
        "hidden": hidden,
        "size": dict(image.size),
        "code_bytes": sum(size for _, size, fn in image.functions if not fn.startswith(HARNESS_PREFIX)),
        "emulation_seconds": seconds,
        "instructions_per_second": total / seconds if seconds > 0 else float("inf"),
        "warnings": image.warnings,
        "verified": bool(verify),
        "it_skipped": it_skipped,
    }


def thumb_decode(code: bytes, base: int) -> list[tuple[int, bool]]:
    """(address, inside an IT block) of every Thumb instruction in ``code`` at ``base``."""
    out, pos, it_left = [], 0, 0
    while pos < len(code):
        hw = code[pos] | (code[pos + 1] << 8)
        out.append((base + pos, it_left > 0))
        it_left = max(0, it_left - 1)
        if (hw & 0xFF00) == 0xBF00 and (hw & 0xF):  # IT{x{y{z}}}: the mask's lowest set bit ends it
            it_left = 4 - ((hw & 0xF) & -(hw & 0xF)).bit_length() + 1
        pos += 4 if (hw >> 11) in (0b11101, 0b11110, 0b11111) else 2
    return out


def _verify(image: Image, uc, segments, stepped: dict[int, int]) -> int:
    """Check the block-hook count against a per-instruction hook; returns the number of
    condition-failed instructions in IT blocks.

    QEMU/unicorn does not call the code hook for an instruction of an IT block whose
    condition fails; the block hook counts it (on the core it still takes its issue slot
    and is "architecturally executed" as a NOP). So: every instruction outside an IT
    block must be seen exactly as often as its block ran; inside one, at most as often.
    A translated block may start inside an IT block, so IT membership comes from
    decoding whole functions, not blocks.
    """
    expected: dict[int, int] = {}
    conditional: set[int] = set()
    for start, size, _name in image.functions:
        conditional.update(a for a, in_it in thumb_decode(bytes(uc.mem_read(start, size & ~1)), start) if in_it)
    for _, d in segments:
        for key, times in d.items():
            address, size = key >> 16, key & 0xFFFF
            for addr, in_it in thumb_decode(bytes(uc.mem_read(address, size)), address):
                expected[addr] = expected.get(addr, 0) + times
                if in_it:
                    conditional.add(addr)
    for addr in stepped:
        if addr not in expected:
            raise BEPError(f"instruction at 0x{addr:08X} ran but is not an instruction start of any counted block")
    skipped = 0
    for addr, want in expected.items():
        got = stepped.get(addr, 0)
        if got == want:
            continue
        if addr in conditional and got < want:
            skipped += want - got
            continue
        raise BEPError(f"instruction at 0x{addr:08X}: block hook counts {want} executions, the per-instruction "
                       f"hook {got}")
    return skipped


def _merge(parts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for fn, v in part.items():
            out[fn] = out.get(fn, 0) + v
    return out


def _runtime_only(per_fn: dict[str, int]) -> dict[str, int]:
    return dict(sorted(((fn, v) for fn, v in per_fn.items() if not fn.startswith(HARNESS_PREFIX)),
                       key=lambda kv: -kv[1]))


def _function_at(image: Image, address: int) -> str:
    i = bisect.bisect_right(image.starts, address & ~1) - 1
    if i >= 0:
        start, size, name = image.functions[i]
        if address < start + size:
            return name
    return f"?0x{address:08X}"


# ------------------------------------------------------------------ public API


def count_training(gen_dir, name: str, cpu: str, X_packed, labels, batch_size: int, gamma, q, seed: int,
                   opt: str = "-Os", batches: int = 0, extra_cflags: list[str] | tuple[str, ...] = (),
                   build_dir=None, verify: bool = False) -> dict:
    """Build the measurement image of ``gen_dir`` for ``cpu`` and train on the samples.

    ``X_packed`` is (n, input_words) uint32 (``twin.pack_inputs``), ``labels`` class
    indices; batches are consecutive slices of ``batch_size`` samples (the last may be
    shorter). ``gamma`` and ``q`` are the epoch parameters per layer (``bep_set_epoch``),
    ``seed`` and ``batches`` go to ``bep_init``.

    Returns a dict: ``instructions_per_sample`` (training phase / samples),
    ``init_instructions``, ``set_epoch_instructions``, ``train_instructions``,
    ``batch_instructions`` (per batch), ``functions`` (per-function instructions of init
    and training), ``counters`` (the state header after training), ``predictions``,
    ``hidden`` (the trained hidden weights read back from emulated RAM), ``size``
    (text/data/bss of the whole image), ``code_bytes`` (executable code without the
    harness), ``warnings`` (compiler output). All counts exclude
    the harness (``icount_*``).
    """
    image = build_image(gen_dir, name, cpu, opt, build_dir, extra_cflags)
    return image.run(X_packed, labels, batch_size, gamma, q, seed, batches, verify)


def unpack_inputs(X_packed: np.ndarray, spec) -> np.ndarray:
    """Packed C input words → the ±1 float32 network input (inverse of ``twin.pack_inputs``)."""
    from bep_mcu.engine import bits

    X = np.asarray(X_packed, dtype=np.uint32)
    if spec.model == "rnn":
        X = X.reshape(len(X), spec.steps, -1)
    return np.where(bits.unpack(X, spec.n_inputs), np.float32(1), np.float32(-1)).astype(np.float32)


def reference_training(model_path, X_packed, labels, batch_size: int, gamma, q, seed: int | None = None,
                       batches: int | None = None, hidden_bits: int | None = None) -> dict:
    """The numpy engine on the same batches, from the same model: hidden weights,
    counters and forward predictions.

    ``seed`` and ``batches`` default to the model's (what the generated header holds);
    ``hidden_bits`` mirrors ``generate(..., hidden_bits=)``.
    """
    from bep_mcu import modelio
    from bep_mcu.cgen.codegen import with_hidden_bits
    from bep_mcu.engine.network import Network

    model = with_hidden_bits(modelio.load(model_path), hidden_bits)
    spec, t = model.spec, model.training
    net = Network(spec, model.params, [h.copy() for h in model.hidden], model.classifier,
                  t.seed if seed is None else seed, t.batch_counter if batches is None else batches)
    net.set_epoch_params(gamma, q)
    X = unpack_inputs(X_packed, spec)
    y = np.asarray(labels, dtype=np.int64)
    preds = []
    for i in range(0, len(y), batch_size):
        preds.append(net.train_batch(X[i:i + batch_size], y[i:i + batch_size]).predictions)
    return {"hidden": net.hidden_weights(), "counters": {**net.counters.as_dict(), "batches": net.batch_counter},
            "predictions": np.concatenate(preds).astype(np.int64)}


def epoch_q(spec, error_rate: float, p_r: float = 0.5) -> list[int]:
    """Fixed-point reinforcement count Q per layer for a training error rate E (as the estimator does)."""
    from bep_mcu.engine.schedule import reinforcement_counts

    return reinforcement_counts(spec, p_r, error_rate)


# ------------------------------------------------------------------------ main

DEMO_DATA = "prototypes:classes=10,features=256,samples=3000"


def _demo_model(work: Path, epochs: int, seed: int):
    from bep_mcu import modelio, training
    from bep_mcu.data.datasets import load_dataset

    data = load_dataset(DEMO_DATA)
    trained = training.fit(data.X_train, data.y_train, training.Settings(hidden=(128,), epochs=epochs, seed=seed))
    model = work / "model.npz"
    modelio.save(trained, model)
    return trained, model, data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bep_mcu.icount",
        description="Instructions per BEP training sample of the generated C on emulated Cortex-M cores "
                    "(256-128-10 MLP, int8 hidden weights, trained briefly on Random Prototypes).")
    parser.add_argument("--cpus", default="cortex-m0,cortex-m4", help="comma-separated -mcpu values")
    parser.add_argument("--batch-sizes", default="1,100")
    parser.add_argument("--errors", default="1.0,0.1", help="training error rates E that set Q")
    parser.add_argument("--samples", type=int, default=300, help="training samples per measurement")
    parser.add_argument("--opt", default="-Os", type=lambda v: v if v.startswith("-") else f"-{v}",
                        choices=OPTS, help="optimisation level: Os, O2, ... (or --opt=-O2)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default=None, help="keep model, generated C and ELF files in this directory")
    parser.add_argument("--cflags", default="", help="extra compiler flags, e.g. --cflags=-DBEP_POPCOUNT_TABLE=1")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-function breakdown")
    parser.add_argument("--profile-no-inline", action="store_true",
                        help="also profile a -fno-inline build (static helpers get their own rows)")
    args = parser.parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"error: icount needs {', '.join(missing)}", file=sys.stderr)
        return 2
    from bep_mcu.cgen.codegen import generate
    from bep_mcu.engine.bits import pack_inputs

    cpus = [c.strip() for c in args.cpus.split(",") if c.strip()]
    sizes = [int(v) for v in args.batch_sizes.split(",")]
    extra = args.cflags.split()
    errors = [float(v) for v in args.errors.split(",")]
    tmp = None
    if args.keep:
        work = Path(args.keep)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bep-icount-")
        work = Path(tmp.name)
    try:
        t0 = time.perf_counter()
        clf, model, data = _demo_model(work, args.epochs, args.seed)
        gen = generate(clf, work / "c", "net")
        spec = clf.spec
        n = min(args.samples, len(data.y_train))
        X_packed = pack_inputs(clf.encode(data.X_train[:n]))
        y = clf.encode_labels(data.y_train[:n])
        gamma = list(clf.training.gamma)
        seed, batches = clf.training.seed, clf.training.batch_counter
        print(f"network {spec.n_inputs}-{'-'.join(map(str, spec.hidden))}-{spec.n_classes} MLP, "
              f"int{spec.hidden_bits} hidden weights, trained {args.epochs} epochs on {DEMO_DATA} "
              f"(train error {clf.training.error_rate:.3f}) in {time.perf_counter() - t0:.1f} s; "
              f"gamma {gamma}, trigger margin R = {clf.params.trigger_margin}")
        print(f"measured: {n} training samples (the first of the training set), {' '.join([args.opt, *extra])}, "
              f"continuing from the saved model (seed {seed}, batch counter {batches}); "
              f"counts are instructions, not cycles\n")
        header = (f"{'cpu':<11} {'batch':>5} {'E':>4} {'Q (draws/batch)':>15} {'trig':>5} "
                  f"{'instr/sample':>12} {'init':>9} {'code B':>7}  bit-exact")
        print(header)
        print("-" * len(header))
        results = []
        for cpu in cpus:
            image = build_image(gen.src, gen.name, cpu, args.opt,
                                work / f"elf-{cpu}" if args.keep else None, extra)
            for err in errors:
                q = epoch_q(spec, err, clf.hyper.p_r)
                for bs in sizes:
                    r = image.run(X_packed, y, bs, gamma, q, seed, batches)
                    ref = reference_training(model, X_packed, y, bs, gamma, q, seed, batches)
                    exact = all(np.array_equal(a, b) for a, b in zip(r["hidden"], ref["hidden"])) and \
                        np.array_equal(r["predictions"], ref["predictions"]) and r["counters"] == ref["counters"]
                    r["bit_exact"] = exact
                    results.append((cpu, err, bs, r))
                    c = r["counters"]
                    print(f"{cpu:<11} {bs:>5} {err:>4.2f} {q[0] / 65536:>15.1f} {c['triggered'] / n:>5.2f} "
                          f"{r['instructions_per_sample']:>12,.0f} {r['init_instructions']:>9,} "
                          f"{r['code_bytes']:>7,}  {'yes' if exact else 'NO'}", flush=True)
        print("\ntrig = fraction of samples whose margin was below R (they run backward + update);"
              " init = bep_net_init (copy and pack the hidden weights) once;\n"
              "code B = bytes of executable code (runtime + generated wrappers + libgcc, without the const tables"
              " and the harness); bit-exact = trained weights and predictions read back from emulated RAM equal"
              " the numpy engine's (and so do the counters).")
        for bs in sizes:
            m4 = [(err, r["instructions_per_sample"]) for cpu, err, b, r in results if cpu == "cortex-m4" and b == bs]
            if m4:
                figures = ", ".join(f"{v:,.0f} at E = {err:g}" for err, v in m4)
                verdict = "meets" if max(v for _, v in m4) <= 50_000 else "misses"
                print(f"issue target <= 50,000 instructions per sample on M4, batch {bs}: {figures} ({verdict} it)")
        if not args.no_profile and results:
            done = {(cpu, err, bs): r for cpu, err, bs, r in results}
            _print_profile(gen, X_packed, y, gamma, spec, clf, seed, batches, args.opt, extra,
                           args.profile_no_inline, work if args.keep else None, done)
        if any(not r["bit_exact"] for *_, r in results):
            print("error: emulated training differs from the numpy engine", file=sys.stderr)
            return 1
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()


def _print_profile(gen, X_packed, y, gamma, spec, clf, seed, batches, opt, extra, no_inline, keep,
                   done: dict) -> None:
    """Where the training instructions go, per function, on M4 (as built; optionally -fno-inline)."""
    q = epoch_q(spec, 1.0, clf.hyper.p_r)
    variants = [(" ".join([opt, *extra]), list(extra))]
    if no_inline:
        variants.append((" ".join([opt, *extra, "-fno-inline"]), [*extra, "-fno-inline"]))
    for k, (label, flags) in enumerate(variants):
        image = None
        for bs in (1, 100):
            r = done.get(("cortex-m4", 1.0, bs)) if k == 0 else None
            if r is None:
                if image is None:
                    image = build_image(gen.src, gen.name, "cortex-m4", opt,
                                        keep / f"elf-profile-{k}" if keep else None, flags)
                r = image.run(X_packed, y, bs, gamma, q, seed, batches)
            total = r["train_instructions"]
            print(f"\nwhere training instructions go: cortex-m4 {label}, batch {bs}, E = 1.0 "
                  f"({r['instructions_per_sample']:,.0f} per sample)")
            for fn, v in list(r["functions"]["train"].items())[:12]:
                print(f"  {fn:<28} {v / r['samples']:>10,.0f} per sample  {100 * v / total:5.1f} %")


if __name__ == "__main__":
    sys.exit(main())
