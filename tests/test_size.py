"""``bep-mcu size``: flash/RAM of the generated code per part (training, link, example),
and RAM/flash budgets on the training part.

The numbers of each part must be exactly what binutils ``size`` prints for that part's
objects (built here independently with the documented flags), the parts must add up to
the total and to ``size`` on all the objects together, the training part must hold no
link code, the state bytes must be exactly the layout plan and the generated header's
``BEP_NET_STATE_BYTES``, the link's buffer ``sizeof(bep_link_t)``. Every user mistake (bad budget,
unknown target, missing model, missing toolchain, a network over budget) is a non-zero
exit with one ``error:`` line. The ARM cases skip when arm-none-eabi-gcc is missing.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from bep_mcu import modelio
from bep_mcu.cgen import package, protocol, toolchain
from bep_mcu.cgen.codegen import generate
from bep_mcu.cgen.layout import plan_model
from bep_mcu.cli.main import main

from .conftest import assert_ok, assert_one_error_line, invoke, last_json, needs_arm

MLP_TRAIN = ["--dataset", "prototypes:classes=4,features=100,samples=1200", "--hidden", "64,32", "--epochs", "1"]
LEVEL_KEYS = {"text", "rodata", "data", "bss", "flash", "ram"}
PART_FILES = {"training": ["src/bep_kernels.c", "src/bep_net.c", "src/bep_runtime.c", "src/bep_status.c"],
              "board": ["src/bep_calibrate.c", "src/bep_encode.c", "src/bep_net_board.c", "src/bep_standalone.c",
                        "src/bep_store.c"],
              "link": ["src/bep_link.c"], "example": ["examples/net_train/bep_net_trainer.c"]}
TARGETS = [pytest.param("cortex-m4", marks=needs_arm), "host"]


def one_error_line(exit_code: int, stderr: str, *words: str) -> str:
    return assert_one_error_line(exit_code, stderr, words)


def does_not_fit(result, *words: str) -> str:
    """Exit status 3 (does not fit), one error line."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return assert_one_error_line(result.exit_code, result.stderr, words, status=3)


def user_error(result, *words: str) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return assert_one_error_line(result.exit_code, result.stderr, words, status=2)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("size_model") / "mlp.npz"
    assert_ok(invoke("train", *MLP_TRAIN, "--out", path))
    return path


@pytest.fixture(scope="module")
def reports(model):
    """`size --json` per target, run once per module."""
    cache: dict[str, dict] = {}

    def get(target: str) -> dict:
        if target not in cache:
            result = invoke("size", model, "--target", target, "--json")
            assert_ok(result)
            cache[target] = last_json(result.stdout)
        return cache[target]

    return get


# ---------------------------------------------------------------------- numbers


@pytest.mark.parametrize("target", TARGETS)
def test_json_report_shape_and_definitions(reports, target):
    d = reports(target)
    assert {"target", "state_bytes", "parts", "total", "fits", "ram_budget", "flash_budget"} <= set(d)
    assert d["target"] == target and d["fits"] is None and d["ram_budget"] is None and d["flash_budget"] is None
    assert set(d["parts"]) == set(package.PARTS) == {"training", "board", "link", "example"}
    assert {part: p["files"] for part, p in d["parts"].items()} == PART_FILES
    pointer = 4 if target != "host" else struct.calcsize("P")
    assert d["parts"]["training"]["buffer_bytes"] == d["state_bytes"]
    assert d["parts"]["link"]["buffer_bytes"] == protocol.link_bytes(protocol.MAX_PAYLOAD, pointer)
    assert d["parts"]["example"]["buffer_bytes"] == 0  # the trainer's state is static: its bss
    assert d["parts"]["board"]["buffer_bytes"] == 0  # it works in the training state
    for part in d["parts"].values():
        assert set(part["levels"]) == {"Os", "O2"}
        for level in part["levels"].values():
            assert set(level) == LEVEL_KEYS
            assert level["flash"] == level["text"] + level["rodata"] + level["data"]
            assert level["ram"] == level["data"] + level["bss"] + part["buffer_bytes"]
            assert level["text"] > 0
    for level in d["parts"]["training"]["levels"].values():
        # 64x100 + 32x64 int8 initial hidden weights are const tables: rodata, not text.
        assert level["rodata"] >= 64 * 100 + 32 * 64
    if target != "host":
        for part in ("training", "board", "link"):  # all mutable state is the caller's
            assert d["parts"][part]["levels"]["Os"]["data"] == d["parts"][part]["levels"]["Os"]["bss"] == 0
    assert d["parts"]["example"]["levels"]["Os"]["bss"] > 0


@pytest.mark.parametrize("target", TARGETS)
def test_parts_add_up_to_the_total(reports, target):
    d = reports(target)
    assert set(d["total"]) == {"Os", "O2"}
    for level, got in d["total"].items():
        assert got == {k: sum(p["levels"][level][k] for p in d["parts"].values()) for k in LEVEL_KEYS}, level


@needs_arm
def test_human_output_has_every_part(model, reports):
    d = reports("cortex-m4")
    result = invoke("size", model, "--target", "cortex-m4")
    assert_ok(result)
    rows = {tuple(line.split()[:2]): [int(v) for v in line.split()[2:]] for line in result.stdout.splitlines()
            if line.split()[:1] in (["training"], ["board"], ["link"], ["example"], ["total"])
            and len(line.split()) == 8}
    columns = ("text", "rodata", "data", "bss", "flash", "ram")
    for part, p in d["parts"].items():
        for level, want in p["levels"].items():
            assert rows[part, f"-{level}"] == [want[k] for k in columns]
    for level, want in d["total"].items():
        assert rows["total", f"-{level}"] == [want[k] for k in columns]
    assert f"link bep_link_t {d['parts']['link']['buffer_bytes']} B" in result.stdout
    assert "example: examples/net_train/bep_net_trainer.c" in result.stdout


def _binutils_sizes(size_tool: str, objects: list[Path]) -> tuple[int, int, int, int]:
    """(Berkeley text, data, bss, .rodata* bytes) summed over objects, parsed here on purpose."""
    names = [str(o) for o in objects]
    berkeley = subprocess.run([size_tool, *names], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in berkeley.splitlines()[1:] if line.strip()]
    assert len(rows) == len(objects)
    text, data, bss = (sum(int(r[i]) for r in rows) for i in range(3))
    sysv = subprocess.run([size_tool, "-A", *names], capture_output=True, text=True, check=True).stdout
    rodata = sum(int(m.group(1)) for m in re.finditer(r"^\.rodata(?:\.\S*)?\s+(\d+)\s", sysv, re.MULTILINE))
    return text, data, bss, rodata


@pytest.mark.parametrize("target", TARGETS)
def test_numbers_equal_binutils_size_on_the_same_objects(reports, model, tmp_path, target):
    d = reports(target)
    gen = generate(modelio.load(model), tmp_path / "c", "net")
    if target == "host":
        cc, size_tool = toolchain.toolchain("host").cc, "size"
    else:
        cc, size_tool = "arm-none-eabi-gcc", "arm-none-eabi-size"
    for level in ("Os", "O2"):
        flags = toolchain.cflags(target, level)
        for flag in ("-ffreestanding", "-ffunction-sections", "-fdata-sections", f"-{level}"):
            assert flag in flags
        if target != "host":
            assert f"-mcpu={target}" in flags and "-mthumb" in flags
        every = []
        for part, files in PART_FILES.items():
            objects = []
            for src in files:
                obj = tmp_path / f"{Path(src).stem}.{level}.o"
                subprocess.run([cc, *flags, "-I", str(gen.src), "-c", str(gen.directory / src), "-o", str(obj)],
                               check=True)
                objects.append(obj)
            text, data, bss, rodata = _binutils_sizes(size_tool, objects)
            got = d["parts"][part]["levels"][level]
            assert (got["text"] + got["rodata"], got["data"], got["bss"], got["rodata"]) == (text, data, bss, rodata), \
                (part, level)
            assert got["flash"] == text + data  # Berkeley text already holds rodata: counted once
            every += objects
        # every .c file generate wrote is in exactly one part, and the parts together are size on all of them
        assert sorted(f for files in PART_FILES.values() for f in files) == [f for f in gen.files if f.endswith(".c")]
        text, data, bss, rodata = _binutils_sizes(size_tool, every)
        total = d["total"][level]
        assert (total["text"] + total["rodata"], total["data"], total["bss"], total["rodata"]) == (text, data, bss, rodata)


def test_training_part_holds_no_link_code(reports):
    """The link's code is in the link part only: the training figures exclude it."""
    d = reports("host")
    assert not any("link" in f or "proto" in f for f in d["parts"]["training"]["files"])


@pytest.mark.parametrize("target", TARGETS)
def test_state_bytes_equal_plan_and_header(reports, model, tmp_path, target):
    d = reports(target)
    gen = generate(modelio.load(model), tmp_path / "c", "net")
    header = (gen.src / "bep_net.h").read_text()
    in_header = int(re.search(r"#define BEP_NET_STATE_BYTES (\d+)u", header).group(1))
    loaded = modelio.load(model)
    planned = plan_model(loaded)
    assert d["state_bytes"] == in_header == planned.state_bytes == gen.plan.state_bytes
    assert sum(planned.bytes_by_kind().values()) == d["state_bytes"]


def test_name_option_names_the_symbols(model):
    result = invoke("size", model, "--target", "host", "--name", "kws")
    assert_ok(result)
    assert "'kws'" in result.stdout and "-Os" in result.stdout and "-O2" in result.stdout
    user_error(invoke("size", model, "--target", "host", "--name", "9lives"), "9lives")


# ---------------------------------------------------------------------- budgets


@pytest.mark.parametrize("value, expected", [("64k", 65536), ("64K", 65536), ("65536", 65536), ("1m", 1 << 20),
                                             ("1M", 1 << 20), (" 256kB ", 262144), ("512", 512)])
def test_budget_strings(value, expected):
    assert toolchain.parse_bytes(value, "--ram") == expected


@pytest.mark.parametrize("value", ["abc", "1.5k", "-5", "0", "64q", "", "k", "64 k m", "0x100"])
def test_bad_budget_string_is_one_line(model, value):
    for option in ("--ram", "--flash"):
        line = user_error(invoke("size", model, "--target", "host", option, value), option)
        assert f"'{value}'" in line


@needs_arm
def test_budget_pass(model, reports):
    d = reports("cortex-m4")
    result = invoke("size", model, "--target", "cortex-m4", "--ram", "64k", "--flash", "256K", "--json")
    assert_ok(result)
    j = last_json(result.stdout)
    assert (j["fits"], j["ram_budget"], j["flash_budget"]) == (True, 65536, 262144)
    assert j["parts"] == d["parts"]
    human = invoke("size", model, "--target", "cortex-m4", "--ram", "64k")
    assert_ok(human)
    fits = [line for line in human.stdout.splitlines() if line.startswith("training code fits")]
    assert len(fits) == 1 and str(d["parts"]["training"]["levels"]["Os"]["ram"]) in fits[0] and "65536" in fits[0]
    assert human.stderr == ""


@needs_arm
def test_budget_fail_names_what_and_by_how_much(model, reports):
    os_ = reports("cortex-m4")["parts"]["training"]["levels"]["Os"]
    ram_budget, flash_budget = os_["ram"] - 100, os_["flash"] - 7
    result = invoke("size", model, "--target", "cortex-m4", "--ram", ram_budget, "--json")
    line = does_not_fit(result, "RAM", "--ram", "by 100 B", str(os_["ram"]))
    assert "flash" not in line
    j = last_json(result.stdout)  # the report is still the last line, saying it does not fit and why
    assert j["fits"] is False and j["ram_budget"] == ram_budget and j["exit_status"] == 3 and "by 100 B" in j["error"]
    result = invoke("size", model, "--target", "cortex-m4", "--flash", flash_budget)
    line = does_not_fit(result, "flash", "--flash", "by 7 B", str(os_["flash"]))
    assert "RAM" not in line
    both = does_not_fit(invoke("size", model, "--target", "cortex-m4", "--ram", "1k", "--flash", "1k"),
                        "RAM", "flash", f"by {os_['ram'] - 1024} B", f"by {os_['flash'] - 1024} B")
    assert both.count("exceeds") == 2


# ---------------------------------------------------------------------- user mistakes


def _run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """The console entry point in-process: click usage errors are formatted by main()."""
    monkeypatch.setattr(sys, "argv", ["bep-mcu", *[str(a) for a in args]])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_unknown_target_is_one_line(model, monkeypatch, capsys):
    code, out, err = _run_main(monkeypatch, capsys, "size", model, "--target", "cortex-m9")
    assert out == ""
    one_error_line(code, err, "cortex-m9", "--target", "cortex-m4")


def test_target_is_required(model, monkeypatch, capsys):
    code, _, err = _run_main(monkeypatch, capsys, "size", model)
    one_error_line(code, err, "--target")


def test_missing_model(tmp_path):
    user_error(invoke("size", tmp_path / "nope.npz", "--target", "host"), "nope.npz")


def test_corrupted_model(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a model")
    user_error(invoke("size", bad, "--target", "host"), "bad.npz")


def test_missing_arm_toolchain_names_the_apt_package(model, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no compiler anywhere
    user_error(invoke("size", model, "--target", "cortex-m0", "--json"), "arm-none-eabi-gcc", "gcc-arm-none-eabi")
