"""Cross builds of the generated C, and what they cost in flash and RAM.

What is measured, and why this way
----------------------------------
``bep-mcu size`` measures each part of a generated directory (``cgen/package``) on its
own: the *training* code (``bep_<net>.c``, ``bep_runtime.c``, ``bep_kernels.c``, ``bep_status.c``), the
*board* code for learning alone (``bep_<net>_board.c``, ``bep_encode.c``,
``bep_standalone.c``), the *link* (``bep_link.c``, the serial protocol) and the *example* code
(``bep_<net>_trainer.c``; the Arduino sketch around it needs an Arduino core and is not
measured). Every ``.c`` file of a part is compiled to an object file, with no link, at
``-Os`` and at ``-O2``::

    arm-none-eabi-gcc -std=c99 -mcpu=<target> -mthumb -ffreestanding
                      -ffunction-sections -fdata-sections -O<level> -c ...

(a RISC-V target, ``riscv64-unknown-elf-gcc -march=<target> -mabi=ilp32``, :data:`ARCHES`;
``host`` uses the host C compiler, ``$CC`` or ``cc``, without the core's flags.)
Objects rather than a linked image because a link needs a start-up file, a vector
table, a linker script and libgcc, all of which belong to the caller's firmware, and
because the numbers then are exactly what ``arm-none-eabi-size`` prints for the same
objects (a test checks this). The numbers are an upper bound for the training code:
every public function of the runtime is counted, including ones a firmware might never
call (``--gc-sections`` would drop those). Not counted: libgcc integer helpers the
objects call (``__aeabi_lmul`` on Cortex-M0, a few dozen bytes), start-up code, and
the caller's stack.

The sizes come from binutils ``size`` on the objects:

* ``text``   code: ``size``'s (Berkeley) text minus ``rodata``. Berkeley text counts
  every allocated read-only section, const tables included, so the tables are taken
  out here to be reported on their own (on the host, ``.eh_frame`` stays in text).
* ``rodata`` the ``.rodata*`` sections of ``size -A`` (the section headers): the
  generated const tables (config, classifier, initial hidden weights) and strings.
* ``data``, ``bss`` as ``size`` prints them (the generated code has none of either:
  all mutable state lives in the caller's buffer).
* ``flash = text + rodata + data`` (``data`` has its initial values in flash).
* ``RAM = data + bss + buffer``, where ``buffer`` is the caller-owned memory the part
  works in: for training the state buffer, ``BEP_<NET>_STATE_BYTES`` from the host's
  layout plan (bep_mcu/cgen/layout.py); for the link ``sizeof(bep_link_t)`` with the
  default payload (``cgen/protocol.py:link_bytes``, at the target's pointer size); for
  inference-only code (``generate --inference-only``) the work buffer,
  ``BEP_<NET>_WORK_WORDS`` words (the packed input and two activation vectors). The
  board part works in the training state (a snapshot buffer, if kept in RAM, is the
  caller's: ``BEP_<NET>_SNAPSHOT_BYTES``); the example trainer keeps its state static
  (in its ``bss``).

The parts add up: ``total`` is their sum, field by field, and equals ``size`` on all the
objects together. A RAM/flash budget is judged on one part, ``training`` (what learning
needs; the JSON has the others to add) or, for inference-only code, ``inference``, at
``-Os`` (``BUDGET_LEVEL``): the build one ships when space is tight.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bep_mcu import files
from bep_mcu.cgen import protocol
from bep_mcu.errors import BEPError

@dataclass(frozen=True)
class Arch:
    """One instruction-set family, the one place its tools are named: the GNU cross
    toolchain's ``prefix`` and Debian package, the flags that name a core to it
    (``core_flags``, ``{core}`` replaced), and the QEMU system emulator of its boards."""

    name: str
    title: str  # as messages name it
    prefix: str
    apt_package: str
    core_flags: tuple[str, ...]
    qemu: str
    qemu_apt_package: str

    def flags(self, core: str) -> list[str]:
        return [flag.format(core=core) for flag in self.core_flags]


ARCHES = {a.name: a for a in (
    Arch("arm", "Arm", "arm-none-eabi-", "gcc-arm-none-eabi", ("-mcpu={core}", "-mthumb"), "qemu-system-arm",
         "qemu-system-arm"),
    # Plain -march=rv32imac: "_zicsr" matches none of Debian's multilibs (the link finds no
    # libgcc); the firmware's few CSR instructions enable Zicsr in their own asm (bep_riscv.h).
    Arch("riscv", "RISC-V", "riscv64-unknown-elf-", "gcc-riscv64-unknown-elf", ("-march={core}", "-mabi=ilp32"),
         "qemu-system-riscv32", "qemu-system-misc"),
)}


@dataclass(frozen=True)
class Core:
    """One microcontroller core, the one place its facts live: ``name`` is its -mcpu (Arm)
    or -march (RISC-V); ``cost_core`` the measured core whose instruction model it uses
    (cgen.cost: Thumb-2 cores run the M4's instruction stream but for QADD8; the M3 updates
    with the C SWAR loop, so its update_bytes term is underestimated); ``unicorn`` the
    emulator's CPU model (icount); ``fpu`` its hard float's -mfpu (icount's float
    baseline), None for soft float; ``arch`` its :data:`ARCHES` entry."""

    name: str
    cost_core: str
    unicorn: str
    fpu: str | None = None
    arch: str = "arm"


CORES = {c.name: c for c in (
    Core("cortex-m0", "cortex-m0", "UC_CPU_ARM_CORTEX_M0"),       # ARMv6-M: Thumb-1 assembly, SWAR32 update
    Core("cortex-m0plus", "cortex-m0", "UC_CPU_ARM_CORTEX_M0"),   # the same ARMv6-M
    Core("cortex-m3", "cortex-m4", "UC_CPU_ARM_CORTEX_M3"),
    Core("cortex-m4", "cortex-m4", "UC_CPU_ARM_CORTEX_M4", "fpv4-sp-d16"),
    Core("cortex-m7", "cortex-m4", "UC_CPU_ARM_CORTEX_M7", "fpv5-d16"),
    Core("cortex-m33", "cortex-m4", "UC_CPU_ARM_CORTEX_M33", "fpv5-sp-d16"),
    # RV32: the runtime's portable C (no kernel assembly), soft float, its own measured cost
    # model. The SiFive E31 is an rv32imac core; rv32imc (ESP32-C3) links the rv32im multilib.
    Core("rv32imac", "rv32imac", "UC_CPU_RISCV32_SIFIVE_E31", arch="riscv"),
    Core("rv32imc", "rv32imac", "UC_CPU_RISCV32_SIFIVE_E31", arch="riscv"),  # no atomics in the runtime: the same code
)}
ARM_TARGETS = tuple(c.name for c in CORES.values() if c.arch == "arm")
RISCV_TARGETS = tuple(c.name for c in CORES.values() if c.arch == "riscv")
TARGETS = (*CORES, "host")
OPT_LEVELS = ("Os", "O2")  # what ``size`` reports
LEVELS = (*OPT_LEVELS, "O3", "O1", "Oz")  # -O3: the host twin; all five: python -m bep_mcu.icount --opt
# Every build of the generated C, on every compiler, passes these: any warning fails it.
STRICT_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion", "-Wundef", "-Wshadow",
                "-pedantic", "-Werror"]
BUDGET_LEVEL = "Os"
ARM_PREFIX = ARCHES["arm"].prefix
COMMON_FLAGS = ["-ffreestanding", "-ffunction-sections", "-fdata-sections"]

_BYTES = re.compile(r"([0-9]+)\s*([km]?)(i?b)?", re.ASCII | re.IGNORECASE)  # ASCII: \d takes '٣' too
_MULTIPLIER = {"": 1, "k": 1024, "m": 1024 * 1024}


class BuildError(RuntimeError):
    """The compiler rejected generated code: a bug in bep-mcu, reported with its output."""


# ---------------------------------------------------------------------- tools


@dataclass(frozen=True)
class Toolchain:
    """The programs that build and inspect objects for one target."""

    target: str
    cc: str
    size: str
    nm: str
    prefix: str = ""  # of the binutils beside cc (objcopy, objdump): "" on the host

    def binutil(self, name: str) -> str | None:
        """Path of another binutils program of this toolchain (``objcopy``), None when missing."""
        return shutil.which(self.prefix + name)

    def version(self) -> str:
        """First line of ``cc --version`` (e.g. 'arm-none-eabi-gcc (...) 12.2.1 20221205')."""
        proc = subprocess.run([self.cc, "--version"], capture_output=True, text=True)
        lines = proc.stdout.strip().splitlines()
        return lines[0] if lines else self.cc


def _require(program: str, hint: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise BEPError(f"'{program}' not found: {hint}")
    return path


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise BEPError(f"unknown target '{target}': choose one of {', '.join(TARGETS)}")
    return target


def toolchain(target: str, cc: str | None = None) -> Toolchain:
    """Find the tools for ``target``; a missing one is a ``BEPError`` naming the package.

    ``cc`` overrides the compiler (the host default is ``$CC`` or ``cc``).
    """
    check_target(target)
    if target == "host":
        binutils = "install binutils (apt-get install binutils)"
        compiler = cc or os.environ.get("CC", "cc")
        return Toolchain(target, _require(compiler, "set CC or install gcc (apt-get install gcc)"),
                         _require("size", binutils), _require("nm", binutils))
    a = arch(target)
    hint = f"install the {a.title} GNU toolchain (apt-get install {a.apt_package})"
    return Toolchain(target, _require(cc or a.prefix + "gcc", hint), _require(a.prefix + "size", hint),
                     _require(a.prefix + "nm", hint), a.prefix)


def arch(target: str) -> Arch:
    """The instruction-set family of a cross target (a :data:`CORES` name)."""
    return ARCHES[CORES[check_target(target)].arch]


def core_flags(target: str) -> list[str]:
    """The flags that name ``target``'s core to its compiler (none on the host)."""
    return [] if target == "host" else arch(target).flags(target)


def cflags(target: str, level: str, strict: bool = False, defines: dict[str, str] | None = None,
           extra: list[str] | None = None) -> list[str]:
    """The flags of every build: ``strict`` adds the warning set with -Werror."""
    check_target(target)
    if level not in LEVELS:
        raise BEPError(f"optimisation level '{level}' is not one of {', '.join(LEVELS)}")
    warnings = list(STRICT_FLAGS) if strict else ["-std=c99"]
    macros = [f"-D{k}={v}" for k, v in (defines or {}).items()]
    return [*warnings, *core_flags(target), *COMMON_FLAGS, f"-{level}", *macros, *(extra or [])]


def compile_objects(tools: Toolchain, sources: list[Path], include: Path, out_dir: Path, level: str,
                    strict: bool = False, defines: dict[str, str] | None = None,
                    extra: list[str] | None = None) -> list[Path]:
    """Compile each source to ``out_dir/<stem>.o`` (all at once, in parallel).

    Raises ``BuildError`` with the compiler's output when any source fails (with
    ``strict``, any warning fails).
    """
    objects = [Path(src).stem + ".o" for src in sources]
    files.check_tree(out_dir, objects)  # the compiler would write through a symlink planted there
    out_dir.mkdir(parents=True, exist_ok=True)
    flags = cflags(tools.target, level, strict, defines, extra)
    jobs = []
    for src, name in zip(sources, objects):
        obj = out_dir / name
        cmd = [tools.cc, *flags, "-I", str(include), "-c", str(src), "-o", str(obj)]
        jobs.append((cmd, obj, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    failures = []
    for cmd, _, proc in jobs:
        output, _ = proc.communicate()
        if proc.returncode != 0:
            failures.append(f"$ {' '.join(cmd)}\n{output}")
    if failures:
        raise BuildError("compiling the generated C failed:\n" + "\n".join(failures))
    return [obj for _, obj, _ in jobs]


# ---------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class ObjectSizes:
    """Bytes of one object, or of several summed (see the module docstring)."""

    text: int
    rodata: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data

    @property
    def static_ram(self) -> int:
        return self.data + self.bss

    def __add__(self, other: ObjectSizes) -> ObjectSizes:
        return ObjectSizes(self.text + other.text, self.rodata + other.rodata, self.data + other.data,
                           self.bss + other.bss)


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"$ {' '.join(cmd)}\n{proc.stderr}")
    return proc.stdout


def parse_berkeley(output: str) -> dict[str, tuple[int, int, int]]:
    """``size -B`` output → {filename: (text, data, bss)}."""
    result = {}
    for line in output.splitlines()[1:]:
        parts = line.split(None, 5)
        if len(parts) == 6:
            result[parts[5]] = (int(parts[0]), int(parts[1]), int(parts[2]))
    return result


def parse_sysv(output: str) -> dict[str, dict[str, int]]:
    """``size -A`` output → {filename: {section: bytes}}."""
    result: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    for line in output.splitlines():
        if line.rstrip().endswith(":") and not line.startswith((" ", ".")):
            current = result.setdefault(line.rstrip()[:-1].rstrip(), {})
            continue
        parts = line.split()
        if current is not None and len(parts) == 3 and parts[1].isdigit() and parts[0] != "section":
            current[parts[0]] = current.get(parts[0], 0) + int(parts[1])
    return result


def is_rodata(section: str) -> bool:
    return section == ".rodata" or section.startswith(".rodata.")


def object_sizes(tools: Toolchain, objects: list[Path]) -> dict[Path, ObjectSizes]:
    """Sizes of each object, from ``size -B`` (text/data/bss) and ``size -A`` (rodata)."""
    names = [str(o) for o in objects]
    berkeley = parse_berkeley(_run([tools.size, "-B", *names]))
    sections = parse_sysv(_run([tools.size, "-A", *names]))
    sizes = {}
    for obj, name in zip(objects, names):
        text, data, bss = berkeley[name]
        rodata = sum(n for s, n in sections[name].items() if is_rodata(s))
        sizes[obj] = ObjectSizes(text - rodata, rodata, data, bss)
    return sizes


def total(sizes: dict[Path, ObjectSizes]) -> ObjectSizes:
    result = ObjectSizes(0, 0, 0, 0)
    for s in sizes.values():
        result = result + s
    return result


def undefined_symbols(tools: Toolchain, objects: list[Path]) -> set[str]:
    """Symbols the objects need from outside themselves (``nm``: undefined in one, defined in none)."""
    undefined, defined = set(), set()
    for line in _run([tools.nm, "-A", "-P", "-g", *[str(o) for o in objects]]).splitlines():
        _, _, rest = line.rpartition(": ")
        parts = rest.split()
        if len(parts) >= 2:
            (undefined if parts[1] in ("U", "w", "v") else defined).add(parts[0])
    return undefined - defined


# ---------------------------------------------------------------------- budgets


def parse_bytes(value: str, option: str) -> int:
    """'64k' / '65536' / '1m' (case-insensitive; k = 1024) → bytes; else a one-line BEPError."""
    m = _BYTES.fullmatch(str(value).strip())
    if not m or int(m.group(1)) == 0:
        raise BEPError(f"{option} must be a positive number of bytes such as 65536, 64k or 1m, got '{value}'")
    return int(m.group(1)) * _MULTIPLIER[m.group(2).lower()]


def _level_dict(s: ObjectSizes, ram: int) -> dict[str, int]:
    return {"text": s.text, "rodata": s.rodata, "data": s.data, "bss": s.bss, "flash": s.flash, "ram": ram}


@dataclass(frozen=True)
class PartSizes:
    """One part's objects, summed per optimisation level, and the caller-owned memory it
    works in (``buffer_bytes``: see the module docstring)."""

    files: tuple[str, ...]
    buffer_bytes: int
    levels: dict[str, ObjectSizes]

    def ram(self, level: str) -> int:
        return self.levels[level].static_ram + self.buffer_bytes

    def to_dict(self) -> dict:
        return {"files": list(self.files), "buffer_bytes": self.buffer_bytes,
                "levels": {level: _level_dict(s, self.ram(level)) for level, s in self.levels.items()}}


@dataclass(frozen=True)
class SizeReport:
    """What one network's generated code costs on one target, per part and optimisation
    level; budgets are judged on one part (``judged``)."""

    target: str
    name: str
    compiler: str
    state_bytes: int
    state_by_kind: dict[str, int]
    parts: dict[str, PartSizes]
    judged: str = "training"
    ram_budget: int | None = None
    flash_budget: int | None = None

    def ram(self, level: str) -> int:
        return self.parts[self.judged].ram(level)

    def flash(self, level: str) -> int:
        return self.parts[self.judged].levels[level].flash

    def excess(self, level: str = BUDGET_LEVEL) -> list[tuple[str, int, int]]:
        """(what, used, budget) for each budget the ``level`` build of the judged part exceeds."""
        over = []
        if self.ram_budget is not None and self.ram(level) > self.ram_budget:
            over.append(("RAM", self.ram(level), self.ram_budget))
        if self.flash_budget is not None and self.flash(level) > self.flash_budget:
            over.append(("flash", self.flash(level), self.flash_budget))
        return over

    @property
    def fits(self) -> bool | None:
        """None without a budget, else whether the ``BUDGET_LEVEL`` build fits every budget."""
        if self.ram_budget is None and self.flash_budget is None:
            return None
        return not self.excess()

    def to_dict(self) -> dict:
        total = {}
        for level in OPT_LEVELS:
            summed = sum((p.levels[level] for p in self.parts.values()), ObjectSizes(0, 0, 0, 0))
            total[level] = _level_dict(summed, sum(p.ram(level) for p in self.parts.values()))
        return {"target": self.target, "name": self.name, "compiler": self.compiler,
                "state_bytes": self.state_bytes, "state_by_kind": dict(self.state_by_kind),
                "parts": {name: p.to_dict() for name, p in self.parts.items()}, "total": total,
                "judged": self.judged, "fits": self.fits, "ram_budget": self.ram_budget, "flash_budget": self.flash_budget}


def buffer_bytes(gen, part: str, target: str) -> int:
    """Caller-owned RAM a part works in (see the module docstring)."""
    if part == "training":
        return gen.plan.state_bytes
    if part == "inference":
        return 4 * gen.inference.work_words
    if part == "link":
        return protocol.link_bytes(protocol.MAX_PAYLOAD, struct.calcsize("P") if target == "host" else 4)
    return 0


def measure(gen, target: str, work_dir: Path, ram_budget: int | None = None,
            flash_budget: int | None = None, tools: Toolchain | None = None) -> SizeReport:
    """Compile each part of ``gen`` for ``target`` at every level under ``work_dir`` and size it."""
    tools = tools or toolchain(target)
    parts = {}
    for part in gen.parts:
        sources = gen.sources((part,))
        if not sources:  # a sketch alone (the inference output's example): nothing to compile
            continue
        levels = {level: total(object_sizes(tools, compile_objects(tools, sources, gen.src,
                                                                   Path(work_dir) / part / level, level)))
                  for level in OPT_LEVELS}
        files = tuple(src.relative_to(gen.directory).as_posix() for src in sources)
        parts[part] = PartSizes(files, buffer_bytes(gen, part, target), levels)
    if gen.inference is not None:
        infer = gen.inference
        state_bytes = 4 * infer.work_words
        kinds = {"packed_input": 4 * infer.input_words, "activations": 4 * infer.scratch_words}
    else:
        state_bytes, kinds = gen.plan.state_bytes, gen.plan.bytes_by_kind()
    return SizeReport(target=target, name=gen.name, compiler=tools.version(), state_bytes=state_bytes,
                      state_by_kind=kinds, parts=parts, judged="inference" if gen.inference else "training",
                      ram_budget=ram_budget, flash_budget=flash_budget)


if __name__ == "__main__":  # `python -m bep_mcu.cgen.toolchain`: the strict flags, for Makefiles (host/)
    print(" ".join(STRICT_FLAGS))
