"""The generated C builds without a single warning, everywhere it is meant to run.

For an MLP with two hidden layers and an RNN, training code (the library and the
example trainer) and inference-only code (``generate --inference-only``), every
generated ``.c`` file compiles with
the strict set (``-std=c99 -Wall -Wextra -Wconversion -Wsign-conversion -Wundef
-Wshadow -pedantic -Werror``) under host gcc and clang, under arm-none-eabi-gcc for
Cortex-M0, M0+, M3, M4, M7 and M33 and under riscv64-unknown-elf-gcc for rv32imac and rv32imc, at ``-Os`` and ``-O2``, and with every ``-D`` option
of ``bep_runtime.h`` on the hosts, a Cortex-M0 and a Cortex-M4. The objects must need
nothing from outside but integer libgcc helpers: no soft-float routine (``__aeabi_f*``, ``__aeabi_d*``, ``__addsf3``-style names), no
``malloc``/``free``/``printf`` (checked with ``nm`` on the undefined symbols), and the
sources use no ``float``/``double`` at all. Allowed and expected: ``__aeabi_lmul`` on
Cortex-M0/M0+ (a 64-bit multiply; ARMv6-M has no UMULL), which libgcc provides.

Negative controls prove the checks can fail: a warning breaks a strict build, and a
float operation shows up as a soft-float helper. Tests skip, with the reason, when
clang or arm-none-eabi-gcc is not installed (both are in CI).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from bep_mcu import modelio
from bep_mcu.cgen import toolchain
from bep_mcu.cli.main import cli
from bep_mcu.cgen.codegen import generate

MODELS = {
    "mlp": ["--dataset", "prototypes:classes=4,features=100,samples=1200", "--hidden", "64,32", "--epochs", "1"],
    "rnn": ["--dataset", "ucr:GunPoint", "--model", "rnn", "--hidden", "32", "--epochs", "1"],
}
REQUIRED_WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion", "-Wundef", "-Wshadow",
                     "-pedantic", "-Werror"]
# (compiler, target): host gcc and clang, then every Cortex-M core with arm-none-eabi-gcc and
# every RV32 core with riscv64-unknown-elf-gcc.
BUILDS = [("gcc", "host"), ("clang", "host"), *[("arm-none-eabi-gcc", t) for t in toolchain.ARM_TARGETS],
          *[("riscv64-unknown-elf-gcc", t) for t in toolchain.RISCV_TARGETS]]
BUILD_IDS = ["gcc", "clang", *toolchain.ARM_TARGETS, *toolchain.RISCV_TARGETS]
KINDS = [*MODELS, *(f"{kind}-inference" for kind in MODELS)]

FLOAT_HELPER = re.compile(r"^__aeabi_(?:f|d|u?i2[fd]|u?l2[fd])|^__[a-z]*(?:sf|df|tf|hf|xf)[a-z]*\d*$")
LIBC = re.compile(r"^_*(?:malloc|calloc|realloc|free|printf|sprintf|snprintf|fprintf|vprintf|puts|putchar|abort|exit)$")
# Everything an ARM object may need from outside: integer libgcc helpers and the
# memory primitives gcc may emit calls to (a freestanding firmware provides those).
ARM_ALLOWED = {
    "__aeabi_lmul", "__aeabi_idiv", "__aeabi_uidiv", "__aeabi_idivmod", "__aeabi_uidivmod", "__aeabi_ldivmod",
    "__aeabi_uldivmod", "__aeabi_llsl", "__aeabi_llsr", "__aeabi_lasr", "__aeabi_lcmp", "__aeabi_ulcmp",
    "memcpy", "memset", "memmove", "__aeabi_memcpy", "__aeabi_memcpy4", "__aeabi_memset", "__aeabi_memset4",
    "__aeabi_memclr", "__aeabi_memclr4",
}
# The same for RV32 (libgcc's integer helpers by their generic names).
RISCV_ALLOWED = {"__mulsi3", "__muldi3", "__divsi3", "__udivsi3", "__modsi3", "__umodsi3", "__divdi3", "__udivdi3",
                 "__moddi3", "__umoddi3", "__ashldi3", "__lshrdi3", "__ashrdi3", "memcpy", "memset", "memmove"}
C_SOURCE_FORBIDDEN = re.compile(r"\b(?:float|double|malloc|calloc|realloc|free|printf|sprintf|snprintf|fprintf)\b")
FLOAT_LITERAL = re.compile(r"(?<![\w.])(?:\d+\.\d*|\.\d+|\d+[eE][+-]?\d+)")
_COMMENT_OR_LITERAL = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.DOTALL)


def tools_for(compiler: str, target: str) -> toolchain.Toolchain:
    if shutil.which(compiler) is None:
        package = toolchain.arch(target).apt_package if target != "host" else compiler
        pytest.skip(f"{compiler} not installed (apt-get install {package})")
    return toolchain.toolchain(target, cc=compiler)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict:
    """The two networks, trained briefly and generated once per module (names = model kinds),
    as training code and as inference-only code."""
    root = tmp_path_factory.mktemp("strict")
    out = {}
    for kind, args in MODELS.items():
        model = root / f"{kind}.npz"
        result = CliRunner().invoke(cli, ["train", *args, "--out", str(model)])
        assert result.exit_code == 0, result.stderr
        out[kind] = generate(modelio.load(model), root / kind, kind)
        out[f"{kind}-inference"] = generate(modelio.load(model), root / f"{kind}-inference", kind,
                                            inference_only=True)
    return out


def strict_build(tools: toolchain.Toolchain, gen, out_dir: Path, level: str,
                 defines: dict[str, str] | None = None) -> list[Path]:
    try:
        return toolchain.compile_objects(tools, gen.sources(tuple(gen.parts)), gen.src, out_dir, level,
                                        strict=True, defines=defines)
    except toolchain.BuildError as e:
        pytest.fail(f"{tools.cc} {tools.target} -{level} {defines or ''}: {e}")


def assert_only_integer_helpers(tools: toolchain.Toolchain, objects: list[Path], where: str) -> None:
    external = toolchain.undefined_symbols(tools, objects)
    floats = sorted(s for s in external if FLOAT_HELPER.search(s))
    libc = sorted(s for s in external if LIBC.match(s))
    assert not floats, f"{where}: floating-point helpers {floats}"
    assert not libc, f"{where}: libc calls {libc}"
    if tools.target != "host":
        allowed = ARM_ALLOWED if toolchain.arch(tools.target).name == "arm" else RISCV_ALLOWED
        assert external <= allowed, f"{where}: unexpected external symbols {sorted(external - allowed)}"


# ---------------------------------------------------------------------- the builds


def test_strict_flags_are_the_documented_set():
    assert set(REQUIRED_WARNINGS) <= set(toolchain.STRICT_FLAGS)
    for target in toolchain.TARGETS:
        flags = toolchain.cflags(target, "Os", strict=True)
        assert set(REQUIRED_WARNINGS) <= set(flags) and "-ffreestanding" in flags


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("compiler, target", BUILDS, ids=BUILD_IDS)
def test_strict_build_without_warnings(generated, tmp_path, kind, compiler, target):
    tools = tools_for(compiler, target)
    gen = generated[kind]
    for level in toolchain.OPT_LEVELS:
        objects = strict_build(tools, gen, tmp_path / level, level)
        assert sorted(o.name for o in objects) == sorted(f"{Path(f).stem}.o" for f in gen.files if f.endswith(".c"))
        net = kind.removesuffix("-inference")
        want = {f"bep_{net}_infer.o", "bep_infer.o", "bep_encode.o"} if kind != net else \
            {"bep_runtime.o", f"bep_{net}.o", "bep_link.o", f"bep_{net}_board.o", "bep_standalone.o", f"bep_{net}_trainer.o"}
        assert want <= {o.name for o in objects}
        assert_only_integer_helpers(tools, objects, f"{kind} {compiler} {target} -{level}")


# Every -D option of bep_runtime.h, where it applies: the portable variants on the hosts,
# the ARM ones on an ARMv6-M and an ARMv7E-M core (trained bit-exactly: test_verify.py
# on the host, test_icount.py in the emulator).
VARIANTS = {
    "host": [{"BEP_POPCOUNT_TABLE": "1"}, {"BEP_POPCOUNT_BUILTIN": "1"}, {"BEP_UPDATE8": "1"}, {"BEP_UPDATE8": "2"},
             {"BEP_MULHI_PORTABLE": "1"}, {"BEP_MEASURE": "1"}],
    "cortex-m0": [{"BEP_POPCOUNT_TABLE": "1"}, {"BEP_USE_ASM": "0"}, {"BEP_UPDATE8": "1"}, {"BEP_MEASURE": "1"}],
    "cortex-m4": [{"BEP_POPCOUNT_TABLE": "1"}, {"BEP_USE_ASM": "0"}, {"BEP_USE_DSP": "0"}, {"BEP_UPDATE8": "1"},
                  {"BEP_USE_DSP": "0", "BEP_USE_ASM": "0"}, {"BEP_MEASURE": "1"}],
}


@pytest.mark.parametrize("compiler, target", [("gcc", "host"), ("clang", "host"),
                                              ("arm-none-eabi-gcc", "cortex-m0"), ("arm-none-eabi-gcc", "cortex-m4")],
                         ids=["gcc", "clang", "cortex-m0", "cortex-m4"])
def test_every_runtime_option_builds_cleanly(generated, tmp_path, compiler, target):
    tools = tools_for(compiler, target)
    gen = generated["mlp"]
    for k, defines in enumerate(VARIANTS[target]):
        for level in toolchain.OPT_LEVELS:
            objects = strict_build(tools, gen, tmp_path / f"v{k}{level}", level, defines)
            assert_only_integer_helpers(tools, objects, f"{compiler} {target} -{level} {defines}")
            kernels = next(o for o in objects if o.name == "bep_kernels.o")
            # The define took effect: exactly the table builds hold the popcount table, and
            # on the DSP core exactly the builds that keep the extension use QADD8.
            assert ("bep_pop8" in const_object_names(tools, kernels)) == ("BEP_POPCOUNT_TABLE" in defines)
            if target == "cortex-m4":
                assert ("qadd8" in disassembly(kernels)) == (defines.get("BEP_USE_DSP") != "0"), defines


def const_object_names(tools: toolchain.Toolchain, obj: Path) -> set[str]:
    """Names of the read-only data objects defined in ``obj`` (nm, types r/R)."""
    out = subprocess.run([tools.nm, "--defined-only", str(obj)], capture_output=True, text=True, check=True)
    return {p[2] for p in (line.split() for line in out.stdout.splitlines()) if len(p) == 3 and p[1] in "rR"}


def disassembly(obj: Path) -> str:
    return subprocess.run(["arm-none-eabi-objdump", "-d", str(obj)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("kind", KINDS)
def test_sources_are_integer_only_and_libc_free(generated, kind):
    gen = generated[kind]
    for filename in gen.files:
        if not filename.endswith((".c", ".h")):
            continue
        path = gen.directory / filename
        code = _COMMENT_OR_LITERAL.sub(" ", path.read_text())
        assert not C_SOURCE_FORBIDDEN.findall(code), f"{filename}: {sorted(set(C_SOURCE_FORBIDDEN.findall(code)))}"
        assert not FLOAT_LITERAL.findall(code), f"{filename}: float literals {FLOAT_LITERAL.findall(code)[:5]}"
        system = set(re.findall(r"#\s*include\s*<([^>]+)>", code))
        assert system <= {"stdint.h", "stddef.h"}, f"{filename} includes {sorted(system)}"
        # a quoted include is found beside the file or in src/, the one include directory
        local = set(re.findall(r'#\s*include\s*"([^"]+)"', path.read_text()))
        found = {p.name for p in (*path.parent.iterdir(), *gen.src.iterdir())}
        assert local <= found, f"{filename} includes {sorted(local - found)}"


# ---------------------------------------------------------------------- the checks can fail


def test_symbol_patterns():
    for name in ("__aeabi_fadd", "__aeabi_dmul", "__aeabi_i2f", "__aeabi_ul2d", "__addsf3", "__fixdfsi",
                 "__floatsisf", "__extendsfdf2", "__truncdfsf2", "__eqsf2"):
        assert FLOAT_HELPER.search(name), name
    for name in ("__aeabi_lmul", "__aeabi_uidivmod", "__aeabi_uldivmod", "__udivmoddi4", "__divsi3", "__popcountsi2",
                 "__ffsdi2", "__clzsi2", "memcpy"):
        assert not FLOAT_HELPER.search(name), name
    assert LIBC.match("malloc") and LIBC.match("printf") and not LIBC.match("bep_free_rows")
    code = _COMMENT_OR_LITERAL.sub(" ", '/* no float */ const char *s = "double"; // malloc\nint x = 1;')
    assert not C_SOURCE_FORBIDDEN.findall(code)
    assert FLOAT_LITERAL.findall("x = 1.5f; y = 2e3; z = .5;") == ["1.5", "2e3", ".5"]
    assert not FLOAT_LITERAL.findall("a = 0x1E3u; b = 12u; c = s.x1;")


def test_a_warning_fails_the_strict_build(tmp_path):
    tools = tools_for("gcc", "host")
    src = tmp_path / "narrow.c"
    src.write_text("#include <stdint.h>\nuint8_t narrow(uint32_t x) { return x; }\n")
    with pytest.raises(toolchain.BuildError, match="Wconversion"):
        toolchain.compile_objects(tools, [src], tmp_path, tmp_path / "o", "Os", strict=True)


def test_float_code_shows_up_as_a_soft_float_helper(tmp_path):
    tools = tools_for("arm-none-eabi-gcc", "cortex-m0")
    src = tmp_path / "f.c"
    src.write_text("#include <stdint.h>\nint32_t scale(int32_t x, float k) { return (int32_t)((float)x * k); }\n")
    objects = toolchain.compile_objects(tools, [src], tmp_path, tmp_path / "o", "Os")
    external = toolchain.undefined_symbols(tools, objects)
    assert any(FLOAT_HELPER.search(s) for s in external), external
    with pytest.raises(AssertionError, match="floating-point helpers"):
        assert_only_integer_helpers(tools, objects, "control")
