"""Bad values and paths on the command line: every case is one ``error:`` line, exit
status 2, no traceback, and nothing that existed is replaced or damaged.

(Hostile model files are tests/test_hostile_model.py; data files tests/test_data.py.)
"""

from __future__ import annotations

import os
import resource
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bep_mcu import modelio

from .conftest import assert_error_after_progress, assert_ok, assert_one_error_line, assert_user_error, invoke, \
    needs_arm

DATA = "prototypes:classes=3,features=40,samples=300"
FAST = ["--dataset", DATA, "--hidden", "8", "--epochs", "1"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hardening") / "m.npz"
    assert_ok(invoke("train", *FAST, "--out", path))
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("seed", ["-1", str(2 ** 70), str(2 ** 32)])
def test_seed_outside_uint32(tmp_path, seed):
    assert_user_error(invoke("train", *FAST, "--seed", seed, "--out", tmp_path / "m.npz"), "--seed")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("hidden", ["1000000000", "1000000", "0", "8,8,8,8,8"])
def test_hidden_outside_the_documented_bounds(tmp_path, hidden):
    assert_user_error(invoke("train", *FAST, "--hidden", hidden, "--out", tmp_path / "m.npz"), "--hidden")


@pytest.mark.parametrize("dataset", ["prototypes:samples=1000000000000", "prototypes:features=1000000000000"])
def test_generated_data_that_cannot_fit_in_memory(tmp_path, dataset):
    result = invoke("train", "--dataset", dataset, "--out", tmp_path / "m.npz")
    line = assert_one_error_line(result.exit_code, result.stderr, ("memory",), status=3)  # 3: does not fit
    assert "GiB" in line or "TiB" in line


def test_network_that_cannot_fit_in_memory(tmp_path):
    result = invoke("train", "--dataset", "prototypes:features=30000,samples=60", "--hidden", "32000,32000,32000",
                    "--out", tmp_path / "m.npz")
    assert_error_after_progress(result.exit_code, result.stderr, ("memory", "GiB"), status=3)


def test_out_through_a_symlink_writes_its_target(model, tmp_path):
    target = tmp_path / "real.npz"
    shutil.copyfile(model, target)
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    assert_ok(invoke("train", *FAST, "--seed", "5", "--out", link))
    assert link.is_symlink() and modelio.load(target).training.seed == 5


def test_out_that_is_a_fifo_is_refused_and_kept(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    assert_user_error(invoke("train", *FAST, "--out", fifo), "not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_out_that_is_a_device_node_is_refused_and_kept(tmp_path):
    node = tmp_path / "full.npz"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # what /dev/full is
    except PermissionError:
        pytest.skip("creating a device node needs root")
    assert_user_error(invoke("train", *FAST, "--out", node), "not a regular file")
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    assert_user_error(invoke("train", *FAST, "--out", "/dev/full"), "not a regular file")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_file_size_limit_while_writing_keeps_the_old_file(model, tmp_path):
    out = tmp_path / "m.npz"
    shutil.copyfile(model, out)
    before = out.read_bytes()

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    proc = subprocess.run([sys.executable, "-m", "bep_mcu", "train", *FAST, "--seed", "9", "--out", str(out)],
                          capture_output=True, text=True, preexec_fn=small_files, timeout=300)
    assert_error_after_progress(proc.returncode, proc.stderr, ("cannot write", "m.npz", "too large"))
    assert out.read_bytes() == before and leftovers(tmp_path) == []


def test_unwritable_places(model, tmp_path):
    assert_user_error(invoke("train", *FAST, "--out", "/proc/x.npz"), "/proc/x.npz")
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert_user_error(invoke("generate", model, "--out", afile / "sub"), "afile")
    assert afile.read_text() == "keep"
    assert_user_error(invoke("golden", model, "--dataset", DATA, "--out", afile / "g.bin"), "afile")


@needs_arm
def test_firmware_out_that_looks_like_an_option(model, tmp_path, monkeypatch):
    """`--out -x` is a directory called -x, never an option for gcc."""
    monkeypatch.chdir(tmp_path)
    assert_ok(invoke("firmware", model, "--board", "microbit", "--out", "-x"))
    assert (tmp_path / "-x" / "firmware.elf").is_file()


@pytest.mark.parametrize("timeout", ["nan", "inf", "0", "-1", "1e300"])
@pytest.mark.parametrize("command", ["stream", "pull"])
def test_timeout_must_be_a_finite_positive_number(model, tmp_path, command, timeout):
    extra = ["--dataset", DATA] if command == "stream" else ["--out", tmp_path / "p.npz"]
    # nothing listens on the port: the value is refused before anything is opened
    assert_user_error(invoke(command, model, "--port", "socket://127.0.0.1:9", "--timeout", timeout, *extra),
                      "--timeout")
    assert not (tmp_path / "p.npz").exists()


@pytest.mark.parametrize("size", ["0", "-3", str((1 << 20) + 1)])
def test_pull_batch_size_is_checked_before_the_port_opens(model, tmp_path, size):
    assert_user_error(invoke("pull", model, "--port", "socket://127.0.0.1:9", "--batch-size", size,
                             "--out", tmp_path / "p.npz"), "--batch-size")
    assert not (tmp_path / "p.npz").exists()


@pytest.mark.parametrize("args,words", [
    (["--epochs", "0"], ("--epochs",)),
    (["--batch-size", "-5"], ("--batch-size",)),
    (["--val-fraction", "nan"], ("val fraction",)),
    (["--r", "inf"], ("r must be",)),
    (["--gamma", "0"], ("--gamma",)),
    (["--window", "0"], ("--window",)),
])
def test_bad_training_options(tmp_path, args, words):
    assert_user_error(invoke("train", *FAST, *args, "--out", tmp_path / "m.npz"), *words)


# ------------------------------------------------------------------ exit statuses and JSON errors


def test_json_errors_are_a_json_object_too(tmp_path):
    result = invoke("train", *FAST, "--seed", "-1", "--out", tmp_path / "m.npz", "--json")
    assert result.exit_code == 2
    from .conftest import last_json

    d = last_json(result.stdout)
    assert d["exit_status"] == 2 and "--seed" in d["error"] and "\n" not in d["error"]
    assert result.stderr.strip() == f"error: {d['error']}"


def test_usage_errors_are_json_too_under_json(tmp_path):
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "bep_mcu", "train", "--no-such-option", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    d = json.loads(proc.stdout.strip().splitlines()[-1])
    assert d["exit_status"] == 2 and "no-such-option" in d["error"]


def test_board_errors_have_their_own_status(model, tmp_path):
    result = invoke("pull", model, "--port", "/dev/ttyNOPE", "--out", tmp_path / "p.npz", "--timeout", "0.2")
    from .conftest import assert_one_error_line as one_line

    one_line(result.exit_code, result.stderr, ("/dev/ttyNOPE",), status=4)  # 4: the board or its port


def test_boards_lists_every_board():
    from bep_mcu.device import boards

    result = invoke("boards", "--json")
    assert_ok(result)
    from .conftest import last_json

    listed = {b["name"]: b for b in last_json(result.stdout)["boards"]}
    assert set(listed) == set(boards.BOARDS)
    assert listed["microbit"]["ram_bytes"] == 16 << 10 and listed["microbit"]["emulated"] is True
    assert listed["nucleo-f401re"]["emulated"] is False and "pyocd" in listed["nucleo-f401re"]["how_to_run"]
    human = invoke("boards")
    assert_ok(human)
    assert "netduinoplus2" in human.stdout and "cortex-m4" in human.stdout
