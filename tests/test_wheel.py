"""The package as users install it: ``pip wheel --no-deps .`` builds a wheel that, installed
into a fresh virtualenv (its dependencies from this machine's site-packages), works outside
the checkout: ``bep-mcu train``, ``generate`` (training and inference-only code into one
directory: the templates ship in the wheel), ``verify`` (the host C compiler on the shipped
runtime) and, with the Arm toolchain, ``firmware`` (the board sources ship too); without it,
``firmware`` is one line naming the missing tool and its package.

The wheel is built from a copy of the sources (setuptools writes build/ and *.egg-info beside
them), without build isolation (setuptools and wheel from this machine, not an index)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import HAVE_ARM, last_json

ROOT = Path(__file__).resolve().parent.parent
DATA = "prototypes:classes=3,features=40,samples=300"


def run(args: list, cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    if check:
        assert proc.returncode == 0, f"$ {' '.join(map(str, args))}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_virtualenv_and_works_outside_the_checkout(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "bep_mcu", src / "bep_mcu", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CC")}
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist",
         "./src"], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("bep_mcu-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("bep_mcu/templates/package/CMakeLists.txt.j2", "bep_mcu/templates/example/predict.ino.j2",
                    "bep_mcu/templates/runtime/bep_infer.c", "bep_mcu/templates/link/bep_link.c",
                    "bep_mcu/fw/main.c", "bep_mcu/fw/ld/bep_cortexm.ld", "bep_mcu/icount/c/float_sgd.c",
                    "bep_mcu/icount/c/float_sgd_tuned.c"):
        assert shipped in names, shipped

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp_path, env)
    python, cli = venv / "bin" / "python", venv / "bin" / "bep-mcu"
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], tmp_path, env)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = run([python, "-c", "import bep_mcu; print(bep_mcu.__file__)"], work, env).stdout.strip()
    assert Path(where).is_relative_to(venv), f"imported {where}, not the installed wheel"

    run([cli, "train", "--dataset", DATA, "--hidden", "16", "--epochs", "1", "--out", "m.npz"], work, env)
    gen = json.loads(run([cli, "generate", "m.npz", "--out", "gen", "--json"], work, env).stdout.splitlines()[-1])
    run([cli, "generate", "m.npz", "--out", "gen", "--inference-only"], work, env)
    for f in [*gen["files"], "src/bep_net_infer.c", "examples/net_predict/net_predict.ino"]:
        assert (work / "gen" / f).is_file(), f
    verified = last_json(run([cli, "verify", "m.npz", "--dataset", DATA, "--epochs", "1", "--json"], work, env).stdout)
    assert verified["bit_exact"] is True
    if HAVE_ARM:
        built = last_json(run([cli, "firmware", "m.npz", "--board", "mps2-an386", "--out", "fw", "--json"], work,
                              env).stdout)
        assert built["ram_bytes"] > 0 and (work / "fw" / "firmware.elf").is_file()
    # without the Arm toolchain on PATH: one line naming the tool and its package
    bare = {**env, "PATH": str(venv / "bin")}
    proc = run([cli, "firmware", "m.npz", "--board", "mps2-an386", "--out", "fw2"], work, bare, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: 'arm-none-eabi-gcc' not found: install the Arm GNU toolchain (apt-get install gcc-arm-none-eabi)"]
    assert not (work / "fw2").exists()
