"""Measurement: build a bare-metal image, run it in unicorn, count per function and phase.

An image is cross-built with ``arm-none-eabi-gcc`` (RISC-V: ``riscv64-unknown-elf-gcc``) from
``c/icount_main.c`` (the entry, ``icount_run``), the linker script ``c/icount.ld`` and a workload: the training part of a
generated BEP directory (``bep_mcu.cgen.codegen.generate``; its sources as ``Generated``
lists them, unchanged), or a float32 SGD baseline: ``c/float_sgd.c`` as first written or
``c/float_sgd_tuned.c``, the same step tuned for fixed shapes. Every object is
compiled through ``bep_mcu.cgen.toolchain`` with the strict flags of every other build
(any warning fails it), so the code counted is the code a firmware links; the network's
shapes come from the ``Generated`` plan. No libc, no start-up code: the emulator is the loader, so every
ELF segment is placed at its run address and execution starts at ``icount_run`` with the
stack at the top of RAM. The host writes ``icount_io`` (parameters, pointers to samples
and outputs in a data region of their own) and stops at ``icount_halt``; the harness calls
``icount_mark(phase)`` between phases, and a one-address code hook cuts the count there.

Instructions: a block hook counts executions per translated block; every block executes
all its instructions, so executions times the block's instruction count (a halfword whose
top five bits are 0b11101/0b11110/0b11111 starts a 32-bit Thumb-2 instruction; on RISC-V one
whose low two bits are 0b11 starts a 32-bit one, any other a compressed one) is exact.
Blocks are attributed to functions through the toolchain's ``nm``; the harness's functions
(``icount_*``) are left out of every figure.

Cycles (Cortex-M4 only, ``cycles=True``): every executed instruction is priced with the
Cortex-M4 TRM's table for zero wait states (``_M4`` below; P = 2 per taken branch or other
write to PC, a branch being taken when the next block does not start where its block
ends). An estimate, not a measurement: the model and what it leaves out are in
docs/performance.md.
"""

from __future__ import annotations

import bisect
import re
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from bep_mcu.cgen import toolchain
from bep_mcu.cgen.codegen import Generated
from bep_mcu.cgen.layout import StatePlan
from bep_mcu.device.emulate import open_elf
from bep_mcu.errors import BEPError

TOOLS = ("gcc", "size", "nm", "objdump")  # of each core's toolchain.ARCHES prefix
CPUS = tuple(toolchain.CORES)  # the cores it counts (toolchain.CORES: their unicorn models and FPUs)
OPTS = tuple(f"-{level}" for level in toolchain.LEVELS)
# The harness's memcpy/memset loops (icount_main.c) must not be turned back into calls to themselves.
HARNESS_FLAGS = ["-fno-tree-loop-distribute-patterns"]
HARNESS_PREFIX = "icount_"
DATA_BASE = 0x20400000  # samples, labels and outputs, outside the linked RAM
PAGE = 0x1000
EMU_TIMEOUT_S = 1800
PH_INIT, PH_SET_EPOCH, PH_BATCH, PH_DONE = 1, 2, 3, 4  # icount_mark phases (icount_main.c)
IO_MAGIC = 0x49434E54
IO_FORMAT = "<8I4I4H4iI4I4I"  # icount_io_t, pinned by a static assert in icount_main.c
IO_BYTES = struct.calcsize(IO_FORMAT)  # 120
FLOAT_STATE = ("icount_w1", "icount_b1", "icount_w2", "icount_b2", "icount_hidden", "icount_delta", "icount_prob")


def c_dir() -> Path:
    return Path(str(resources.files("bep_mcu.icount") / "c"))


def _memory() -> dict[str, tuple[int, int]]:
    """FLASH and RAM (origin, length) from the linker script, the one place they are set."""
    text = (c_dir() / "icount.ld").read_text()
    return {m[1]: (int(m[2], 16), int(m[3], 16))
            for m in re.finditer(r"(\w+)\s+\(\w+\)\s*: ORIGIN = (0x[0-9A-Fa-f]+), LENGTH = (0x[0-9A-Fa-f]+)", text)}


def _tool(cpu: str, tool: str) -> str:
    return toolchain.arch(cpu).prefix + tool


def missing_tools(cpus: tuple[str, ...] | list[str] = ("cortex-m4",)) -> list[str]:
    """What this module needs to count ``cpus`` and cannot find (empty when it can run)."""
    missing = [_tool(cpu, tool) for cpu in cpus if cpu in CPUS for tool in TOOLS
               if shutil.which(_tool(cpu, tool)) is None]
    missing = list(dict.fromkeys(missing))
    try:
        import unicorn  # noqa: F401
    except ImportError:
        missing.append("unicorn (pip install unicorn)")
    return missing


# ----------------------------------------------------------------------- build


@dataclass
class Image:
    """A built measurement ELF and what the host needs to run it."""

    elf: Path
    cpu: str
    opt: str
    plan: StatePlan | None  # the network's state plan (Generated.plan); None: the float baseline
    symbols: dict[str, tuple[int, int]]  # name → (address, size)
    functions: list[tuple[int, int, str]]  # (start, size, name), by address
    segments: list[tuple[int, bytes, int]]  # PT_LOAD: (address, file bytes, memory size)
    disassembly: str = field(repr=False, default="")
    cflags: list[str] = field(default_factory=list)

    def address(self, symbol: str) -> int:
        try:
            return self.symbols[symbol][0]
        except KeyError:
            raise BEPError(f"symbol '{symbol}' not in {self.elf}") from None

    def function_at(self, address: int) -> str:
        i = bisect.bisect_right(self._starts, address & ~1) - 1
        if i >= 0 and address < self.functions[i][0] + self.functions[i][1]:
            return self.functions[i][2]
        return f"?0x{address:08X}"

    @cached_property
    def _starts(self) -> list[int]:
        return [f[0] for f in self.functions]

    @cached_property
    def instructions(self) -> dict[int, tuple[str, str]]:
        """address → (mnemonic, operands), from objdump (for the cycle model)."""
        out = {}
        line = re.compile(r"^\s*([0-9a-f]+):\t(?:[0-9a-f]{4} ?){1,2}\s*\t(\S+)\s*([^\n;@]*)", re.M)
        for m in line.finditer(self.disassembly):
            out[int(m[1], 16)] = (m[2], m[3].strip())
        return out

    def run(self, X_packed, labels, batch_size: int, gamma, q, seed: int, batches: int = 0, verify: bool = False,
            cycles: bool = False) -> dict:
        """Train the BEP network on the samples; see :func:`count_training`."""
        return _run_bep(self, X_packed, labels, batch_size, gamma, q, seed, batches, verify, cycles)


def build_image(gen: Generated, cpu: str, opt: str = "-Os", build_dir=None,
                extra_cflags: list[str] | tuple[str, ...] = ()) -> Image:
    """Cross-build the measurement ELF of the generated directory ``gen`` for ``cpu``.

    ``build_dir`` keeps the objects and the ELF; by default a temporary directory is used
    and removed (the image holds everything needed to run it)."""
    _check(cpu, opt)
    if "training" not in gen.parts:
        raise BEPError(f"'{gen.directory}' holds inference-only code: icount measures training")
    sources = gen.sources(("training",))
    for src in sources:
        if not src.is_file():
            raise BEPError(f"'{src}' not found: regenerate '{gen.directory}' with bep-mcu generate")
    defines = {"ICOUNT_NET": gen.name, "ICOUNT_NET_UPPER": gen.name.upper(), "ICOUNT_NET_HEADER": f'"bep_{gen.name}.h"'}
    return _build(sources, gen.src, defines, cpu, opt, "soft", gen.plan, gen.name, build_dir, list(extra_cflags))


def build_float_image(cpu: str, shape: tuple[int, int, int], opt: str = "-Os", build_dir=None,
                      tuned: bool = False) -> Image:
    """The float32 SGD baseline (c/float_sgd.c, shapes at run time; with ``tuned``
    c/float_sgd_tuned.c, the same step with ``shape`` compiled in) for an MLP of ``shape`` =
    (in, hidden, out): hard-float where the core has an FPU (Cortex-M4F/M7/M33), soft-float
    (libgcc) elsewhere."""
    _check(cpu, opt)
    dims = dict(zip(("IN", "HIDDEN", "OUT"), map(str, shape)))
    defines = {"ICOUNT_FLOAT": "1", **{f"ICOUNT_{k}": v for k, v in dims.items()}}
    abi = "hard" if toolchain.CORES[cpu].fpu else "soft"
    source, extra = ("float_sgd_tuned", [f"-DFSGD_{k}={v}" for k, v in dims.items()]) if tuned else ("float_sgd", [])
    return _build([c_dir() / f"{source}.c"], c_dir(), defines, cpu, opt, abi, None, source, build_dir, extra)


def _check(cpu: str, opt: str) -> None:
    if cpu not in CPUS:
        raise BEPError(f"cpu must be one of {', '.join(CPUS)}, got '{cpu}'")
    missing = missing_tools([cpu])
    if missing:
        raise BEPError(f"icount needs {', '.join(missing)} (apt-get install {toolchain.arch(cpu).apt_package}; "
                       f"pip install unicorn)")
    if opt not in OPTS:
        raise BEPError(f"opt must be one of {', '.join(OPTS)}, got '{opt}'")


def _build(sources: list[Path], include: Path, defines: dict[str, str], cpu: str, opt: str, abi: str,
           plan: StatePlan | None, name: str, build_dir, extra: list[str]) -> Image:
    """Compile the workload's ``sources`` (``include``: their include directory) and the
    harness (``defines`` select its workload) with the strict flags of toolchain.cflags, link."""
    if build_dir is None:
        with tempfile.TemporaryDirectory(prefix="bep-icount-") as tmp:
            return _build(sources, include, defines, cpu, opt, abi, plan, name, Path(tmp), extra)
    out = Path(build_dir)
    tools = toolchain.toolchain(cpu)
    level = opt.removeprefix("-")
    # RISC-V: -mabi=ilp32 (toolchain.core_flags) is the soft-float ABI; there is nothing to choose
    arm = toolchain.CORES[cpu].arch == "arm"
    arch = [f"-mfloat-abi={abi}", *([f"-mfpu={toolchain.CORES[cpu].fpu}"] if abi == "hard" else [])] if arm else []
    try:
        objects = toolchain.compile_objects(tools, sources, include, out, level, strict=True, extra=[*arch, *extra])
        objects += toolchain.compile_objects(tools, [c_dir() / "icount_main.c"], include, out, level, strict=True,
                                             defines=defines, extra=[*arch, *extra, *HARNESS_FLAGS])
    except toolchain.BuildError as e:
        raise BEPError(f"building the icount image failed ({cpu} {opt}): {e}") from None
    elf = out / f"icount_{name}_{cpu}{opt}.elf"
    proc = subprocess.run([tools.cc, *toolchain.core_flags(cpu), *arch, "-nostdlib", "-nostartfiles", "-T",
                           str(c_dir() / "icount.ld"), "-Wl,--gc-sections", *map(str, objects), "-lgcc", "-o", str(elf)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BEPError(f"linking the icount image failed ({cpu} {opt}):\n{proc.stderr}")
    symbols, functions = _symbols(elf, cpu)
    segments = _segments(elf)
    dis = subprocess.run([_tool(cpu, "objdump"), "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    return Image(elf, cpu, opt, plan, symbols, functions, segments, dis,
                 toolchain.cflags(cpu, level, strict=True, extra=[*arch, *extra]))


def _segments(elf: Path) -> list[tuple[int, bytes, int]]:
    """The PT_LOAD segments (address, file bytes, memory size), each checked to lie in
    flash or RAM before its bytes are read."""
    regions = list(_memory().values())
    segments = []
    with open_elf(elf, "icount") as image:
        for s in image.iter_segments():
            vaddr, memsz = s["p_vaddr"], s["p_memsz"]
            if s["p_type"] != "PT_LOAD" or not memsz:
                continue
            if s["p_filesz"] > memsz or not any(base <= vaddr and vaddr + memsz <= base + size
                                                for base, size in regions):
                raise BEPError(f"ELF segment at 0x{vaddr:08X} ({memsz} bytes) is outside flash and RAM")
            segments.append((vaddr, s.data(), memsz))
    return segments


def _symbols(elf: Path, cpu: str):
    out = subprocess.run([_tool(cpu, "nm"), "-S", "-n", "--defined-only", str(elf)], capture_output=True, text=True, check=True)
    symbols, functions = {}, []
    for parts in (line.split() for line in out.stdout.splitlines()):
        if len(parts) not in (3, 4):
            continue
        addr, size, kind, name = int(parts[0], 16), int(parts[1], 16) if len(parts) == 4 else 0, parts[-2], parts[-1]
        symbols[name] = (addr, size)
        if kind in "tTwW" and size and not name.startswith("$"):
            functions.append((addr & ~1, size, name))
    return symbols, sorted(functions)


# ------------------------------------------------------------------------- run


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


def rv_decode(code: bytes, base: int) -> list[tuple[int, bool]]:
    """(address, False) of every RISC-V instruction in ``code`` at ``base``: 16 bits (C
    extension) unless the low two bits of its first halfword are 0b11 (no conditional
    execution, so never inside an IT block)."""
    out, pos = [], 0
    while pos < len(code):
        out.append((base + pos, False))
        pos += 4 if code[pos] & 0b11 == 0b11 else 2
    return out


def decode(cpu: str, code: bytes, base: int) -> list[tuple[int, bool]]:
    """(address, inside an IT block) of every instruction of ``cpu`` in ``code`` at ``base``."""
    return rv_decode(code, base) if toolchain.CORES[cpu].arch == "riscv" else thumb_decode(code, base)


def block_instructions(cpu: str, code: bytes) -> int:
    """Number of instructions of ``cpu`` in ``code`` (a whole number of instructions)."""
    if toolchain.CORES[cpu].arch == "arm":
        return thumb_instructions(code)
    decoded = rv_decode(code, 0)
    if decoded and decoded[-1][0] + (4 if code[decoded[-1][0]] & 0b11 == 0b11 else 2) != len(code):
        raise BEPError(f"a block of {len(code)} bytes does not end on an instruction boundary")
    return len(decoded)


def thumb_instructions(code: bytes) -> int:
    """Number of Thumb instructions in ``code`` (a whole number of instructions)."""
    decoded = thumb_decode(code, 0)
    last = decoded[-1][0] if decoded else 0
    hw = code[last] | (code[last + 1] << 8) if decoded else 0
    if decoded and last + (4 if (hw >> 11) in (0b11101, 0b11110, 0b11111) else 2) != len(code):
        raise BEPError(f"a block of {len(code)} bytes does not end on an instruction boundary")
    return len(decoded)


@dataclass
class Trace:
    """Per phase segment: block executions and how often each block fell through to the
    next one (a fall-through is counted in the segment it happened in)."""

    segments: list[tuple[int, dict[int, int], dict[int, int]]]  # (phase, {address << 16 | size: executions}, falls)
    uc: object
    stepped: dict[int, int]
    seconds: float


def _emulate(image: Image, data: list[tuple[str, bytes]], io, cycles: bool, verify: bool,
             state: dict[str, bytes] | None = None):
    """Run ``icount_run`` with ``data`` blobs in the data region, ``io(addresses)`` in
    icount_io and ``state`` written over the image's symbols of those names; returns the
    trace and the data region's addresses."""
    import unicorn
    from unicorn import arm_const, riscv_const

    core = toolchain.CORES[image.cpu]
    if core.arch == "riscv":
        uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)
        uc.ctl_set_cpu_model(getattr(riscv_const, core.unicorn))
        arg0, sp, ret, pc_reg, thumb = (riscv_const.UC_RISCV_REG_A0, riscv_const.UC_RISCV_REG_SP,
                                        riscv_const.UC_RISCV_REG_RA, riscv_const.UC_RISCV_REG_PC, 0)
    else:
        uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        uc.ctl_set_cpu_model(getattr(arm_const, core.unicorn))
        arg0, sp, ret, pc_reg, thumb = (arm_const.UC_ARM_REG_R0, arm_const.UC_ARM_REG_SP, arm_const.UC_ARM_REG_LR,
                                        arm_const.UC_ARM_REG_PC, 1)
    for base, size in _memory().values():
        uc.mem_map(base, size)
    for vaddr, blob, _ in image.segments:  # inside flash or RAM: _segments
        uc.mem_write(vaddr, bytes(blob))
    where, cursor = {}, DATA_BASE
    for key, blob in data:
        where[key] = cursor
        cursor = (cursor + len(blob) + 15) & ~15
    uc.mem_map(DATA_BASE, max(PAGE, (cursor - DATA_BASE + PAGE - 1) & ~(PAGE - 1)))
    for key, blob in data:
        uc.mem_write(where[key], blob)
    uc.mem_write(image.address("icount_io"), io(where))
    for name, blob in (state or {}).items():
        uc.mem_write(image.address(name), blob)

    segments = [(0, {}, {})]
    cur, last = [segments[0]], [0, -1]

    def on_block(_uc, address, size, _user):
        key = (address << 16) | size
        _, counts, falls = cur[0]
        counts[key] = counts.get(key, 0) + 1
        if cycles:
            if address == last[1]:
                falls[last[0]] = falls.get(last[0], 0) + 1
            last[0], last[1] = key, address + size

    def on_mark(u, _address, _size, _user):
        segments.append((u.reg_read(arg0), {}, {}))
        cur[0] = segments[-1]

    uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)
    mark, halt = image.address("icount_mark") & ~1, image.address("icount_halt") & ~1
    uc.hook_add(unicorn.UC_HOOK_CODE, on_mark, begin=mark, end=mark)
    stepped: dict[int, int] = {}
    if verify:
        def on_insn(_uc, address, _size, _user):
            stepped[address] = stepped.get(address, 0) + 1

        uc.hook_add(unicorn.UC_HOOK_CODE, on_insn)
    uc.reg_write(sp, image.address("icount_stack_top"))
    uc.reg_write(ret, halt | thumb)
    start = time.perf_counter()
    try:
        uc.emu_start(image.address("icount_run") | thumb, halt, timeout=EMU_TIMEOUT_S * 1_000_000)
    except unicorn.UcError as e:
        pc = uc.reg_read(pc_reg)
        raise BEPError(f"emulation failed at pc=0x{pc:08X} ({image.function_at(pc)}): {e}") from None
    seconds = time.perf_counter() - start
    pc = uc.reg_read(pc_reg) & ~1
    if pc != halt:
        raise BEPError(f"emulation stopped at pc=0x{pc:08X} ({image.function_at(pc)}), not at icount_halt "
                       f"(timeout after {EMU_TIMEOUT_S} s?)")
    return Trace(segments, uc, stepped, seconds), where


# ------------------------------------------------------------------ counting

_COND = "(?:eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?"
_M4 = [  # (mnemonic pattern, cycles); first match wins, anything else costs 1
    (re.compile(rf"^ldr(?:b|h|sb|sh|ex|exb|exh|t|bt|ht|sbt|sht)?{_COND}$"), "load"),
    (re.compile(rf"^str(?:b|h|ex|exb|exh|t|bt|ht)?{_COND}$"), "load"),
    (re.compile(rf"^(?:ldrd|strd){_COND}$"), 3),
    (re.compile(rf"^(?:(?:ldm|stm)(?:ia|db|fd|ea)?|push|pop|(?:vldm|vstm)(?:ia|db)?|vpush|vpop){_COND}$"), "multiple"),
    (re.compile(rf"^(?:vldr|vstr){_COND}$"), 2),
    (re.compile(rf"^(?:vmla|vmls|vfma|vfms|vfnma|vfnms|vnmla|vnmls){_COND}$"), 3),
    (re.compile(rf"^(?:vdiv|vsqrt){_COND}$"), 14),
    (re.compile(rf"^(?:sdiv|udiv){_COND}$"), 12),
    (re.compile(r"^(?:tbb|tbh)$"), 2),
]
_BRANCH = re.compile(rf"^(?:(?:b|bl|blx|bx){_COND}|cbz|cbnz|tbb|tbh)$")
REFILL = 2  # P of the Cortex-M4 TRM


def _list_size(operands: str) -> int:
    """Words a register list moves: r4, r5 / s16-s31 / d8-d9 (a d register is two words)."""
    inner = operands[operands.find("{") + 1:operands.find("}")]
    words = 0
    for item in (s.strip() for s in inner.split(",") if s.strip()):
        lo, _, hi = item.partition("-")
        n = int(hi[1:]) - int(lo[1:]) + 1 if hi else 1
        words += n * (2 if lo.startswith("d") else 1)
    return words


def m4_block_cycles(image: Image, code: bytes, address: int) -> tuple[int, bool]:
    """Cycles of one pass through the block ``code`` at ``address``, and whether its last
    instruction writes PC."""
    total, pipelined, writes_pc = 0, False, False
    for addr, _ in thumb_decode(code, address):
        mnemonic, operands = image.instructions.get(addr, ("?", ""))
        base = mnemonic.split(".")[0]
        cost = next((c for pattern, c in _M4 if pattern.match(base)), 1)
        writes_pc = bool(_BRANCH.match(base)) or re.match(r"^pc\b", operands) is not None or \
            ("pc" in operands and cost == "multiple" and base.startswith(("pop", "ldm")))
        if cost == "load":
            cost, pipelined = (1 if pipelined else 2), True
        else:
            cost, pipelined = (1 + _list_size(operands) if cost == "multiple" else cost), False
        total += cost
    return total, writes_pc


def _tally(image: Image, trace: Trace, cycles: bool):
    """Per phase segment: {function: instructions} and, with ``cycles``, {function: cycles}."""
    decoded: dict[int, tuple[int, str, int, bool]] = {}

    def block(key: int):
        hit = decoded.get(key)
        if hit is None:
            address, size = key >> 16, key & 0xFFFF
            code = bytes(trace.uc.mem_read(address, size))
            n = block_instructions(image.cpu, code)
            cyc, writes_pc = m4_block_cycles(image, code, address) if cycles else (0, False)
            hit = decoded[key] = (n, image.function_at(address), cyc, writes_pc)
        return hit

    out = []
    for phase, d, falls in trace.segments:
        ins: dict[str, int] = {}
        cyc: dict[str, int] = {}
        for key, times in d.items():
            n, fn, c, writes_pc = block(key)
            ins[fn] = ins.get(fn, 0) + n * times
            if cycles:
                taken = times - falls.get(key, 0) if writes_pc else 0
                cyc[fn] = cyc.get(fn, 0) + c * times + REFILL * max(0, min(taken, times))
        out.append((phase, ins, cyc))
    return out


def _merged(tallies, phase: int, which: int) -> dict[str, int]:
    """Sum over the segments of ``phase`` without the harness (which: 1 instructions, 2 cycles)."""
    out: dict[str, int] = {}
    for ph, *parts in tallies:
        if ph == phase:
            for fn, v in parts[which - 1].items():
                if not fn.startswith(HARNESS_PREFIX):
                    out[fn] = out.get(fn, 0) + v
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _verify(image: Image, trace: Trace) -> int:
    """Check the block-hook count against a per-instruction hook; returns the number of
    condition-failed instructions in IT blocks.

    QEMU/unicorn does not call the code hook for an instruction of an IT block whose
    condition fails; the block hook counts it (on the core it still takes its issue slot
    and is "architecturally executed" as a NOP). So: every instruction outside an IT
    block must be seen exactly as often as its block ran; inside one, at most as often.
    A block may start inside an IT block, so IT membership comes from whole functions.
    """
    uc, expected, conditional = trace.uc, {}, set()
    for start, size, _name in image.functions:
        conditional.update(a for a, in_it in decode(image.cpu, bytes(uc.mem_read(start, size & ~1)), start) if in_it)
    for _, d, _ in trace.segments:
        for key, times in d.items():
            for addr, in_it in decode(image.cpu, bytes(uc.mem_read(key >> 16, key & 0xFFFF)), key >> 16):
                expected[addr] = expected.get(addr, 0) + times
                if in_it:
                    conditional.add(addr)
    unknown = set(trace.stepped) - set(expected)
    if unknown:
        raise BEPError(f"instruction at 0x{min(unknown):08X} ran but starts no counted block")
    skipped = 0
    for addr, want in expected.items():
        got = trace.stepped.get(addr, 0)
        if got != want and not (addr in conditional and got < want):
            raise BEPError(f"instruction at 0x{addr:08X}: block hook counts {want} executions, the per-instruction "
                           f"hook {got}")
        skipped += want - got
    return skipped


def _io(**kw) -> bytes:
    pad = lambda v: list(v) + [0] * (4 - len(v))  # noqa: E731
    return struct.pack(IO_FORMAT, IO_MAGIC, kw.get("seed", 0) & 0xFFFFFFFF, kw.get("batches", 0) & 0xFFFFFFFF,
                       kw["n"], kw.get("batch_size", 1), kw["x"], kw["labels"], kw["pred"], *pad(kw.get("q", ())),
                       *pad(kw.get("gamma", ())), 0, 0, 0, 0, 0, *pad(kw.get("hidden", ())),
                       *pad(kw.get("hidden_len", ())))


def _run_bep(image: Image, X_packed, labels, batch_size, gamma, q, seed, batches, verify, cycles) -> dict:
    plan = image.plan
    if plan is None:
        raise BEPError("this image is the float baseline; use run_float")
    n_layers = len(plan.layers)
    X = np.ascontiguousarray(X_packed, dtype=np.uint32)
    if X.ndim != 2 or X.shape[1] != plan.input_words:
        raise BEPError(f"X_packed must be (n, {plan.input_words}) uint32 words, got shape {X.shape}")
    y = np.ascontiguousarray(labels, dtype=np.uint16).reshape(-1)
    n = len(y)
    if n != len(X) or n == 0:
        raise BEPError(f"{len(X)} samples and {n} labels: need the same positive number")
    if batch_size < 1:
        raise BEPError(f"batch size must be >= 1, got {batch_size}")
    gamma, q = [int(g) for g in gamma], [int(v) for v in q]
    if len(gamma) != n_layers or len(q) != n_layers:
        raise BEPError(f"gamma and q need one value per layer ({n_layers})")
    hidden_len = [p.n_weights * plan.hidden_bits // 8 for p in plan.layers]  # what bep_read_hidden copies
    data = [("x", X.tobytes()), ("labels", y.tobytes()), ("pred", bytes(2 * n)),
            *((f"h{i}", bytes(size)) for i, size in enumerate(hidden_len))]
    io = lambda at: _io(seed=seed, batches=batches, n=n, batch_size=batch_size, x=at["x"],  # noqa: E731
                        labels=at["labels"], pred=at["pred"], q=q, gamma=gamma,
                        hidden=[at[f"h{i}"] for i in range(n_layers)], hidden_len=hidden_len)
    trace, at = _emulate(image, data, io, cycles, verify)
    uc = trace.uc
    fields = struct.unpack(IO_FORMAT, bytes(uc.mem_read(image.address("icount_io"), IO_BYTES)))
    status, done = list(fields[16:20]), fields[20]
    if any(status):
        from bep_mcu.cgen.status import status_name

        bad = "; ".join(f"{p}: {status_name(s)}" for p, s in zip(("init", "set_epoch", "train_batch", "read_hidden"),
                                                                status) if s)
        raise BEPError(f"the generated code refused the run on {image.cpu}: {bad}")
    tallies = _tally(image, trace, cycles)
    batch_fns = [ins for ph, ins, _ in tallies if ph == PH_BATCH]
    if done != len(batch_fns) or done != -(-n // batch_size):
        raise BEPError(f"trained {done} batches, marked {len(batch_fns)}, expected {-(-n // batch_size)}")
    runtime = lambda d: sum(v for fn, v in d.items() if not fn.startswith(HARNESS_PREFIX))  # noqa: E731
    train = _merged(tallies, PH_BATCH, 1)
    header = struct.unpack("<3I5I", bytes(uc.mem_read(image.address("icount_state"), 32)))
    dtype = np.int8 if plan.hidden_bits == 8 else np.int16
    result = {
        "cpu": image.cpu, "opt": image.opt, "samples": n, "batch_size": batch_size, "batches": int(done),
        "instructions_per_sample": sum(train.values()) / n,
        "init_instructions": sum(_merged(tallies, PH_INIT, 1).values()),
        "set_epoch_instructions": sum(_merged(tallies, PH_SET_EPOCH, 1).values()),
        "train_instructions": sum(train.values()),
        "batch_instructions": [runtime(ins) for ins in batch_fns],
        "harness_instructions": sum(v for _, ins, _ in tallies for fn, v in ins.items()
                                    if fn.startswith(HARNESS_PREFIX)),
        "functions": {"init": _merged(tallies, PH_INIT, 1), "train": train},
        "counters": dict(zip(("samples", "triggered", "errors", "updates", "batches"), header[3:8])),
        "predictions": np.frombuffer(bytes(uc.mem_read(at["pred"], 2 * n)), dtype=np.uint16).astype(np.int64),
        "hidden": [np.frombuffer(bytes(uc.mem_read(at[f"h{i}"], size)), dtype=dtype).reshape(p.rows, p.cols).copy()
                   for i, (size, p) in enumerate(zip(hidden_len, plan.layers))],
        "state_bytes": image.symbols["icount_state"][1],
        "code_bytes": sum(size for _, size, fn in image.functions if not fn.startswith(HARNESS_PREFIX)),
        "emulation_seconds": trace.seconds, "verified": verify,
        "it_skipped": _verify(image, trace) if verify else None,
    }
    if cycles:
        result["functions_cycles"] = _merged(tallies, PH_BATCH, 2)
        result["cycles_per_sample"] = sum(result["functions_cycles"].values()) / n
    return result


def count_training(gen: Generated, cpu: str, X_packed, labels, batch_size: int, gamma, q, seed: int,
                   opt: str = "-Os", batches: int = 0, extra_cflags=(), build_dir=None, verify: bool = False,
                   cycles: bool = False) -> dict:
    """Build the image of the generated directory ``gen`` for ``cpu`` and train on consecutive batches of
    ``X_packed`` ((n, input_words) uint32, ``twin.pack_inputs``) with epoch parameters
    ``gamma``, ``q`` from ``seed``/``batches``. Returns the counts (instructions per sample,
    per batch, per function; init; with ``cycles`` on Cortex-M4 the cycle estimate), the
    state's counters, predictions and trained hidden weights read back from emulated RAM."""
    image = build_image(gen, cpu, opt, build_dir, extra_cflags)
    return image.run(X_packed, labels, batch_size, gamma, q, seed, batches, verify, cycles)


def run_float(image: Image, X, labels, params: list[np.ndarray], lr: float, cycles: bool = False) -> dict:
    """The float SGD baseline, one step per sample: ``params`` = [w1, b1, w2, b2] (float32,
    shapes of the image's MLP) are written into the image, trained, and read back."""
    if image.plan is not None:
        raise BEPError("this image trains a BEP network; use Image.run")
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(labels, dtype=np.uint16).reshape(-1)
    n = len(y)
    blobs = [np.ascontiguousarray(p, dtype=np.float32) for p in params]
    for name, blob in zip(FLOAT_STATE, blobs):
        if image.symbols[name][1] != blob.nbytes:
            raise BEPError(f"{name}: the image holds {image.symbols[name][1]} bytes, got {blob.nbytes}")
    seed = struct.unpack("<I", struct.pack("<f", lr))[0]  # the learning rate travels in the seed word
    data = [("x", X.tobytes()), ("labels", y.tobytes()), ("pred", bytes(2 * n))]
    io = lambda at: _io(seed=seed, n=n, x=at["x"], labels=at["labels"], pred=at["pred"])  # noqa: E731
    state = {name: blob.tobytes() for name, blob in zip(FLOAT_STATE, blobs)}
    trace, at = _emulate(image, data, io, cycles, False, state)
    tallies = _tally(image, trace, cycles)
    train = _merged(tallies, PH_BATCH, 1)
    result = {
        "cpu": image.cpu, "samples": n, "instructions_per_sample": sum(train.values()) / n, "functions": train,
        "predictions": np.frombuffer(bytes(trace.uc.mem_read(at["pred"], 2 * n)), dtype=np.uint16).astype(np.int64),
        "params": [np.frombuffer(bytes(trace.uc.mem_read(image.address(name), b.nbytes)), dtype=np.float32)
                   .reshape(b.shape).copy() for name, b in zip(FLOAT_STATE, blobs)],
        "state_bytes": sum(image.symbols[name][1] for name in FLOAT_STATE),
        "weights": blobs[0].size + blobs[2].size,
    }
    if cycles:
        result["cycles_per_sample"] = sum(_merged(tallies, PH_BATCH, 2).values()) / n
    return result
