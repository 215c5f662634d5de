"""On-device learning end to end: real firmware in QEMU, real pyserial over socket://.

`stream` trains the board while the numpy engine trains on the same batches; the final
hidden weights must be identical, bit for bit, and so must the test accuracy.
"""

import json
import socket
import subprocess
import threading

import numpy as np
import pytest

from bep_mcu import modelio
from bep_mcu.data.datasets import load_dataset
from bep_mcu.device.emulate import EmulatedBoard
from bep_mcu.device.firmware import build
from bep_mcu.device.link import FaultyTransport, Link, SerialTransport
from bep_mcu.device.stream import stream_train
from bep_mcu.engine.bits import pack_inputs
from bep_mcu.training import encoded

from .conftest import board_params, fit, saved

DATA = "prototypes:classes=4,features=100,samples=1200"


def run(*args, timeout=300):
    return subprocess.run(["bep-mcu", *args], capture_output=True, text=True, timeout=timeout)


def one_error_line(out):
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and lines and lines[-1].startswith("error:"), out.stderr
    assert "Traceback" not in out.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    data = load_dataset(DATA)
    return str(saved(fit(data.X_train, data.y_train, hidden=(48, 32), epochs=2, seed=1, binarize="passthrough"),
                     tmp_path_factory.mktemp("stream") / "m.npz"))


@pytest.fixture(scope="module")
def firmware(model, tmp_path_factory):
    out = {}
    for board in ("mps2-an386", "microbit", "netduinoplus2"):
        out[board] = str(build(modelio.load(model), board, tmp_path_factory.mktemp(board)).elf)
    return out


@pytest.mark.parametrize("board", ["mps2-an386", "microbit", "netduinoplus2"])
def test_stream_is_bit_exact_with_the_host_and_pull_round_trips(model, firmware, board, tmp_path):
    with EmulatedBoard(firmware[board], board) as url:
        # Boot the board before the measured run: QEMU's STM32 USART (netduinoplus2) drops
        # bytes that arrive before the firmware enables it, so the first frame after boot
        # is sometimes resent; frames_retried below counts the line, not the boot.
        with Link(url, timeout=5.0) as link:
            assert link.hello().board == board
        out = run("stream", model, "--port", url, "--dataset", DATA, "--epochs", "2", "--check-host", "--json")
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["bit_exact"] is True
        assert result["device_test_accuracy"] == result["host_test_accuracy"]
        assert result["board"] == board and result["samples_per_second"] > 0 and result["frames_retried"] == 0
        pulled = tmp_path / "pulled.npz"
        out = run("pull", model, "--port", url, "--out", str(pulled), "--json")
        assert out.returncode == 0, out.stderr
    # the pulled model is a normal model that says where it came from: eval gives the device's accuracy
    origin = modelio.load(pulled).training.origin
    assert (origin.kind, origin.board, origin.port) == ("board", board, url)
    assert origin.device_batches == 2 * -(-1000 // modelio.load(model).training.batch_size)
    out = run("eval", str(pulled), "--dataset", DATA, "--json")
    assert json.loads(out.stdout.strip().splitlines()[-1])["accuracy"] == result["device_test_accuracy"]
    out = run("train", "--dataset", DATA, "--init-from", str(pulled), "--epochs", "1", "--out", str(tmp_path / "c.npz"))
    assert out.returncode == 0, out.stderr


def test_faulty_line_still_ends_in_the_identical_state(model, firmware):
    """Drops, bit flips, truncation, duplicates and delays on ≥ 5 % of frames each way."""
    loaded = modelio.load(model)
    data = load_dataset(DATA)
    train = encoded(loaded, data.X_train[:300], data.y_train[:300])
    with EmulatedBoard(firmware["mps2-an386"], "mps2-an386") as url:
        faulty = FaultyTransport(SerialTransport.open(url), seed=7, drop=0.05, corrupt=0.05, truncate=0.05,
                                 duplicate=0.05, delay=0.05, delay_seconds=0.05)
        with Link(faulty, timeout=0.3, attempts=20) as link:
            link.hello()
            assert link.info.config_hash == loaded.config_hash32
            result, trained = stream_train(link, loaded, train, 2, 20, check_host=True)
    assert result.bit_exact, result.first_divergence
    assert trained.training.epochs == loaded.training.epochs + 2 and trained.training.origin.kind == "board"
    assert result.frames_retried > 0
    for direction in ("to_device", "to_host"):
        assert sum(faulty.faults[direction].values()) >= 0.05 * 5 * result.frames_sent / 2


def test_board_with_another_network_is_refused(model, firmware, tmp_path):
    data = load_dataset(DATA)
    other = saved(fit(data.X_train, data.y_train, hidden=(40,), epochs=1, binarize="passthrough"), tmp_path / "other.npz")
    with EmulatedBoard(firmware["mps2-an386"], "mps2-an386") as url:
        line = one_error_line(run("stream", str(other), "--port", url, "--dataset", DATA))
    assert "runs network" in line and "build the firmware from this model" in line


def test_dataset_with_other_features_is_refused(model, firmware):
    with EmulatedBoard(firmware["mps2-an386"], "mps2-an386") as url:
        line = one_error_line(run("stream", model, "--port", url, "--dataset", "digits"))
    assert "features" in line


def test_port_that_does_not_open(model):
    line = one_error_line(run("stream", model, "--port", "/dev/does-not-exist", "--dataset", DATA))
    assert "/dev/does-not-exist" in line


def test_board_that_does_not_answer(model):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    try:
        out = run("stream", model, "--port", f"socket://127.0.0.1:{port}", "--dataset", DATA, "--timeout", "0.2",
                  timeout=60)
        line = one_error_line(out)
        assert "did not answer" in line or "no answer" in line or "not answer" in line
    finally:
        server.close()


def test_device_reset_mid_epoch_is_reported(model, firmware):
    loaded = modelio.load(model)
    data = load_dataset(DATA)
    Xp, y = pack_inputs(loaded.encode(data.X_train[:200])), loaded.encode_labels(data.y_train[:200])
    board = EmulatedBoard(firmware["mps2-an386"], "mps2-an386")
    url = board.start()
    try:
        with Link(url, timeout=0.5, attempts=3) as link:
            link.hello()
            link.init(loaded.training.seed, 0)
            link.train(Xp[:20], y[:20])
            # Reset the board: QEMU's monitor is off, so restart the emulator on the same port.
            port = int(url.rsplit(":", 1)[1])
            board.stop()
            board = EmulatedBoard(firmware["mps2-an386"], "mps2-an386", port=port)
            board.start()
            link.transport.close()
            link.transport = SerialTransport.open(url)
            with pytest.raises(Exception) as err:
                link.train(Xp[20:40], y[20:40])
            assert "reset" in str(err.value)
    finally:
        board.stop()


@pytest.mark.slow
@pytest.mark.parametrize("board", board_params(["mps2-an386", "netduinoplus2", "riscv32-virt"]))
def test_demo_json(tmp_path, board):
    out = run("demo", "--board", board, "--out", str(tmp_path / "demo"), "--json", "--host-epochs", "3",
              "--device-epochs", "1", timeout=600)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("bit_exact", "host_test_accuracy", "device_test_accuracy", "samples_per_second", "ram_bytes",
                "flash_bytes", "board"):
        assert key in report
    assert report["bit_exact"] is True and report["board"] == board
    assert report["device_test_accuracy"] == report["host_test_accuracy"] > 0.8
    # the board met drifted data and got better on it (before and after both measured on the board)
    assert report["after"] == report["device_test_accuracy"] and report["after"] - report["before"] >= 0.05
    assert np.isfinite(report["samples_per_second"])
    # the pulled file is the board's weights with the stream's record: it continues where the board stopped
    assert report["pulled_equal"] is True
    host, device = modelio.load(report["model"]), modelio.load(report["device_model"])
    assert device.training.epochs == host.training.epochs + 1
    assert len(device.training.history) == len(host.training.history) + 1
    assert device.training.origin.kind == "board" and device.training.batch_counter > host.training.batch_counter
    evaluated = run("eval", report["device_model"], "--data", report["drifted_data"], "--json")
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["accuracy"] == report["device_test_accuracy"]
