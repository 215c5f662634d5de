"""Bad values and paths on the command line: every case is one ``error:`` line, exit
status 2, no traceback, and nothing that existed is replaced or damaged.

(Hostile model files are tests/test_hostile_model.py; data files tests/test_data.py.)
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import stat
import subprocess
import sys
import threading
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


@pytest.mark.parametrize("url,value", [
    ("socket://127.0.0.1:99999", "'99999'"), ("socket://127.0.0.1:0", "'0'"), ("rfc2217://127.0.0.1:65536", "'65536'"),
    ("socket://127.0.0.1:-1", "'-1'"), ("socket://127.0.0.1:http", "'http'"), ("socket://127.0.0.1:٣٣", "'٣٣'"),
    ("socket://127.0.0.1", "no TCP port"), ("socket://[::1]", "no TCP port"),
])
@pytest.mark.parametrize("command", ["stream", "pull"])
def test_port_url_with_a_bad_tcp_port_is_named(model, tmp_path, command, url, value):
    extra = ["--dataset", DATA] if command == "stream" else ["--out", tmp_path / "p.npz"]
    assert_user_error(invoke(command, model, "--port", url, *extra), url, value)  # before anything is opened
    assert not (tmp_path / "p.npz").exists()


@contextlib.contextmanager
def rfc2217_peer(negotiate: bool):
    """A loopback TCP server thread that breaks the telnet stream pyserial's rfc2217:// reader
    thread parses (IAC SE with no IAC SB before it): at once, or (``negotiate``) after
    answering the RFC 2217 negotiation, when the host's first frame arrives. Yields its port."""
    import serial
    from serial import rfc2217

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    class Connection:  # what PortManager writes its telnet answers to
        def __init__(self, sock: socket.socket) -> None:
            self.write = sock.sendall

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.2)
                manager = rfc2217.PortManager(serial.serial_for_url("loop://"), Connection(conn)) if negotiate \
                    else None
                if manager is None:
                    conn.sendall(b"junk\xff\xf0junk")
                while not stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    if manager is not None and b"".join(manager.filter(data)):  # data past the telnet layer
                        conn.sendall(b"\xff\xf0")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(10)
        server.close()


@pytest.mark.parametrize("negotiate", [False, True], ids=["on-connect", "mid-session"])
def test_rfc2217_peer_sending_garbage_is_one_line_without_thread_traceback(model, tmp_path, negotiate):
    with rfc2217_peer(negotiate) as port:
        url = f"rfc2217://127.0.0.1:{port}"
        proc = subprocess.run([sys.executable, "-m", "bep_mcu", "pull", str(model), "--port", url, "--out",
                               str(tmp_path / "p.npz"), "--timeout", "1"], capture_output=True, text=True, timeout=120)
        assert "Exception in thread" not in proc.stderr, proc.stderr
        assert_one_error_line(proc.returncode, proc.stderr, (url, "RFC 2217 reader"), status=4)
        # in process: the hook that keeps the reader thread's death lives as long as the port
        before = threading.excepthook
        result = invoke("pull", model, "--port", url, "--out", tmp_path / "p.npz", "--timeout", "1")
        assert_one_error_line(result.exit_code, result.stderr, ("RFC 2217 reader",), status=4)
        assert threading.excepthook is before
    assert not (tmp_path / "p.npz").exists()


def test_golden_file_damage_is_damage_and_truncation_is_truncation(model, tmp_path):
    """The golden file's reader (``firmware --self-test``) tells a file cut short from one
    whose sizes, counts or provenance were changed (values are the replay's to check)."""
    import struct

    from bep_mcu.twin import golden

    good = tmp_path / "g.bin"
    assert_ok(invoke("golden", model, "--dataset", DATA, "--out", good, "--batches", "3"))
    data = good.read_bytes()
    g = golden.from_bytes(data)
    def pad4(n: int) -> int:
        return (n + 3) & ~3

    layer_records = golden.HEADER_BYTES + pad4(struct.unpack_from("<I", data, 40)[0])  # after the provenance
    first_batch = layer_records + golden.LAYER_RECORD_BYTES * len(g.shapes) \
        + sum(pad4(rows * cols * g.hidden_bits // 8) for rows, cols in g.shapes)  # after the initial weights
    assert struct.unpack_from("<I", data, first_batch)[0] == len(g.batches[0].labels)
    flips = {"hidden bits": 17, "layers": 18, "reserved": 19, "input words": 26, "batch count": 38,
             "provenance length": 40, "provenance text": 50, "provenance newline": 44 + data[44:].index(b"\n"),
             "layer rows": layer_records + 1, "layer columns": layer_records + 6, "batch 0 samples": first_batch + 2,
             "end marker": len(data) - 2}

    def refusal(payload: bytes, label: str) -> str:
        bad = tmp_path / f"{label}.bin"
        bad.write_bytes(payload)
        result = invoke("firmware", model, "--board", "mps2-an386", "--self-test", bad, "--out", tmp_path / "fw")
        return assert_user_error(result, f"{label}.bin")

    for what, offset in flips.items():
        flipped = bytearray(data)
        flipped[offset] ^= 0x10
        line = refusal(bytes(flipped), what.replace(" ", "-"))
        assert "damaged golden file" in line and "truncated" not in line, (what, line)
    for cut in (0, 30, 44 + 10, layer_records + 8, first_batch + 2, len(data) // 2 + 1, len(data) - 8, len(data) - 1):
        line = refusal(data[:cut], f"cut-{cut}")
        assert "truncated golden file" in line and "damaged" not in line, (cut, line)
    assert not (tmp_path / "fw").exists()


def test_boards_lists_every_board():
    from bep_mcu.device import boards

    result = invoke("boards", "--json")
    assert_ok(result)
    from .conftest import last_json

    listed = {b["name"]: b for b in last_json(result.stdout)["boards"]}
    assert set(listed) == set(boards.BOARDS)
    assert listed["microbit"]["ram_bytes"] == 16 << 10 and listed["microbit"]["emulated"] is True
    assert listed["nucleo-f401re"]["emulated"] is False and "pyocd" in listed["nucleo-f401re"]["how_to_run"]
    rv = listed["riscv32-virt"]  # the RISC-V board: QEMU virt, an ESP32-C3's memory
    assert (rv["cpu"], rv["qemu_machine"], rv["emulated"]) == ("rv32imac", "virt", True)
    assert (rv["ram_bytes"], rv["flash_bytes"]) == (400 << 10, 4 << 20)
    assert listed["esp32c3"]["cpu"] == "rv32imc" and "esptool.py" in listed["esp32c3"]["how_to_run"]
    # every board is either run in QEMU by the tests or only built: none is claimed to run on hardware
    for name, b in listed.items():
        assert b["status"] == ("runs in QEMU" if b["emulated"] else "builds, not run"), name
    assert {n for n, b in listed.items() if not b["emulated"]} == {"nucleo-f401re", "nano33ble", "nrf52840dk",
                                                                    "bluepill", "esp32c3"}
    assert "bossac" in listed["nano33ble"]["how_to_run"] and "stm32f1x" in listed["bluepill"]["how_to_run"]
    human = invoke("boards")
    assert_ok(human)
    assert "netduinoplus2" in human.stdout and "cortex-m4" in human.stdout
    assert [line.split()[0] for line in human.stdout.splitlines() if "builds, not run" in line] == \
        ["nucleo-f401re", "nano33ble", "nrf52840dk", "bluepill", "esp32c3"]


# ------------------------------------------------------------------ numbers are ASCII digits


# int() and float() read other scripts' digits: each of these is 3 to Python.
NON_ASCII_THREES = {"arabic-indic": "٣", "fullwidth": "３", "nko": "߃"}


@pytest.mark.parametrize("three", NON_ASCII_THREES.values(), ids=NON_ASCII_THREES.keys())
def test_integers_in_option_text_are_ascii_digits_only(model, tmp_path, three):
    gen = tmp_path / "gen"
    for scale in (three, f"1{three}", "1_0"):
        assert_user_error(invoke("generate", model, "--out", gen, "--input-type", "int16", "--input-scale", scale),
                          "--input-scale", scale)
    assert not gen.exists()
    assert_user_error(invoke("train", *FAST, "--hidden", three, "--out", tmp_path / "m.npz"), "--hidden")
    assert_user_error(invoke("train", "--dataset", f"prototypes:classes={three}", "--out", tmp_path / "m.npz"),
                      "classes", "not an integer")
    result = invoke("train", *FAST, "--binarize", f"thermometer:{three}", "--out", tmp_path / "m.npz")
    assert_error_after_progress(result.exit_code, result.stderr, ("thermometer bits",))
    assert_user_error(invoke("size", model, "--board", "microbit", "--ram", f"{three}k"), "--ram")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("args,option", [
    (["train", *FAST, "--epochs", "٣"], "--epochs"),
    (["train", *FAST, "--seed", "３"], "--seed"),
    (["pull", "m.npz", "--port", "socket://127.0.0.1:9", "--timeout", "߃", "--out", "p.npz"], "--timeout"),
    (["emulate", "fw.elf", "--tcp-port", "٣٣٣٣"], "--tcp-port"),
])
def test_numeric_options_refuse_non_ascii_digits(tmp_path, args, option):
    proc = subprocess.run([sys.executable, "-m", "bep_mcu", *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert_one_error_line(proc.returncode, proc.stderr, (option, "ASCII"), status=2)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- exit status 3: it does not fit

HUGE = "prototypes:samples=1000000000000"  # refused by memory.require before anything is allocated
# Commands with no way not to fit: they neither plan a network on a board or a budget nor load data.
NOTHING_TO_FIT = {
    "info": "reads one model file (bounded by the file format's limits: exit 2)",
    "plot": "draws what a model file stores",
    "boards": "lists the boards",
    "presets": "lists the presets (a table in the code)",
    "emulate": "boots an image already built (and planned) by firmware",
    "pull": "reads a board's weights into the model the board runs",
}


def does_not_fit_cases(model: Path, big: Path, tmp_path: Path) -> dict[str, list]:
    """One invocation per command that can fail to fit, each on its own does-not-fit path."""
    return {
        "train": ["train", "--dataset", HUGE, "--out", tmp_path / "m.npz"],
        "eval": ["eval", model, "--dataset", HUGE],
        "generate": ["generate", model, "--out", tmp_path / "g", "--dataset", HUGE],
        "verify": ["verify", model, "--dataset", HUGE],
        "golden": ["golden", model, "--dataset", HUGE, "--out", tmp_path / "golden.bin"],
        "size": ["size", model, "--target", "host", "--ram", "1"],
        "firmware": ["firmware", big, "--board", "microbit", "--out", tmp_path / "fw"],
        "firmware --standalone-data": ["firmware", model, "--board", "microbit", "--standalone-data",
                                       "prototypes:classes=3,features=40,samples=30000", "--out", tmp_path / "sa"],
        "stream": ["stream", model, "--port", "socket://127.0.0.1:9", "--dataset", HUGE],
        "adapt": ["adapt", model, "--dataset", HUGE],
        "adapt --board": ["adapt", big, "--board", "microbit", "--dataset",
                          "prototypes:classes=3,features=40,samples=60"],
        "demo": ["demo", "--board", "microbit", "--hidden", "4096", "--out", tmp_path / "demo"],
        "sweep": ["sweep", "--dataset", "prototypes:classes=3,features=20000,samples=60", "--board", "microbit"],
    }


def test_every_command_that_can_fail_to_fit_exits_3(model, tmp_path):
    """Walk every command of the CLI: each one that plans a network on a board or a budget,
    or loads data into this machine's memory, is driven down its does-not-fit path and
    exits with status 3 and one ``error:`` line (README: exit statuses), writing nothing;
    the others are named, with why they have no such path. A new command must join one
    of the two."""
    from bep_mcu.cli.main import cli

    big = tmp_path / "big.npz"  # 40 bits x 512 neurons: 20 KB of hidden weights, the micro:bit has 16 KB of RAM
    assert_ok(invoke("train", *FAST, "--hidden", "512", "--out", big))
    cases = does_not_fit_cases(model, big, tmp_path)
    assert {c.split()[0] for c in cases} | set(NOTHING_TO_FIT) == set(cli.commands)
    assert not {c.split()[0] for c in cases} & set(NOTHING_TO_FIT)
    before = sorted(p.name for p in tmp_path.iterdir())
    for what, args in cases.items():
        result = invoke(*args)
        assert result.exit_code == 3, f"{what}: exit {result.exit_code}: {result.stderr}"
        line = assert_error_after_progress(result.exit_code, result.stderr, status=3)
        assert any(w in line for w in ("does not fit", "memory", "exceed", "fits")), f"{what}: {line}"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing is written"
