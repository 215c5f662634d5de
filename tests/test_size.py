"""``bep-mcu size``: flash/RAM of the generated training code, and RAM/flash budgets.

The numbers must be exactly what binutils ``size`` prints for the same objects (built
here independently with the documented flags), the state bytes exactly the layout plan
and the generated header's ``BEP_NET_STATE_BYTES``. Every user mistake (bad budget,
unknown target, missing model, missing toolchain, a network over budget) is a non-zero
exit with one ``error:`` line. The ARM cases skip when arm-none-eabi-gcc is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bep_mcu import modelio
from bep_mcu.cgen import toolchain
from bep_mcu.cgen.codegen import generate
from bep_mcu.cgen.layout import plan_state
from bep_mcu.cli.main import main

from .conftest import assert_ok, assert_one_error_line, invoke, last_json, needs_arm

MLP_TRAIN = ["--dataset", "prototypes:classes=4,features=100,samples=1200", "--hidden", "64,32", "--epochs", "1"]
LEVEL_KEYS = {"text", "rodata", "data", "bss", "flash", "ram"}
TARGETS = [pytest.param("cortex-m4", marks=needs_arm), "host"]


def one_error_line(exit_code: int, stderr: str, *words: str) -> str:
    return assert_one_error_line(exit_code, stderr, words)


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
    assert {"target", "state_bytes", "levels", "fits", "ram_budget", "flash_budget"} <= set(d)
    assert d["target"] == target and d["fits"] is None and d["ram_budget"] is None and d["flash_budget"] is None
    assert set(d["levels"]) == {"Os", "O2"}
    for level in d["levels"].values():
        assert set(level) == LEVEL_KEYS
        assert level["flash"] == level["text"] + level["rodata"] + level["data"]
        assert level["ram"] == level["data"] + level["bss"] + d["state_bytes"]
        # 64x100 + 32x64 int8 initial hidden weights are const tables: rodata, not text.
        assert level["rodata"] >= 64 * 100 + 32 * 64 and level["text"] > 0
    if target != "host":
        assert d["levels"]["Os"]["data"] == d["levels"]["Os"]["bss"] == 0  # all mutable state is the caller's


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
        objects = []
        for src in sorted(gen.directory.glob("*.c")):
            obj = tmp_path / f"{src.stem}.{level}.o"
            subprocess.run([cc, *flags, "-I", str(gen.directory), "-c", str(src), "-o", str(obj)], check=True)
            objects.append(obj)
        assert len(objects) == 7  # runtime, network, status strings, protocol parser; board: tables, encoder, schedule
        text, data, bss, rodata = _binutils_sizes(size_tool, objects)
        got = d["levels"][level]
        assert (got["text"] + got["rodata"], got["data"], got["bss"], got["rodata"]) == (text, data, bss, rodata), level
        assert got["flash"] == text + data  # Berkeley text already holds rodata: counted once


@pytest.mark.parametrize("target", TARGETS)
def test_state_bytes_equal_plan_and_header(reports, model, tmp_path, target):
    d = reports(target)
    gen = generate(modelio.load(model), tmp_path / "c", "net")
    header = (gen.directory / "bep_net.h").read_text()
    in_header = int(re.search(r"#define BEP_NET_STATE_BYTES (\d+)u", header).group(1))
    loaded = modelio.load(model)
    planned = plan_state(loaded.spec, loaded.params.gate)
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
    assert j["levels"] == d["levels"]
    human = invoke("size", model, "--target", "cortex-m4", "--ram", "64k")
    assert_ok(human)
    fits = [line for line in human.stdout.splitlines() if line.startswith("fits")]
    assert len(fits) == 1 and str(d["levels"]["Os"]["ram"]) in fits[0] and "65536" in fits[0]
    assert human.stderr == ""


@needs_arm
def test_budget_fail_names_what_and_by_how_much(model, reports):
    os_ = reports("cortex-m4")["levels"]["Os"]
    ram_budget, flash_budget = os_["ram"] - 100, os_["flash"] - 7
    result = invoke("size", model, "--target", "cortex-m4", "--ram", ram_budget, "--json")
    line = user_error(result, "RAM", "--ram", "by 100 B", str(os_["ram"]))
    assert "flash" not in line
    j = last_json(result.stdout)  # the report is still printed, saying it does not fit
    assert j["fits"] is False and j["ram_budget"] == ram_budget
    result = invoke("size", model, "--target", "cortex-m4", "--flash", flash_budget)
    line = user_error(result, "flash", "--flash", "by 7 B", str(os_["flash"]))
    assert "RAM" not in line
    both = user_error(invoke("size", model, "--target", "cortex-m4", "--ram", "1k", "--flash", "1k"),
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
