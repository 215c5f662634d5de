"""``bep-mcu demo``: the whole toolchain in one command, on an emulated board.

1. pre-train a network on the host (numpy engine) on a quarter of the training set;
   then the deployed sensor drifts (``data.shift.SensorDrift``: gain, offset, noise per
   feature), and the board meets the drifted data (written to ``drifted.npz``);
2. generate its C and verify the host twin bit for bit against numpy;
3. build the firmware and boot it in QEMU;
4. evaluate the drifted test set on the device (``before``), keep training on the device
   on the drifted training set, streamed over the serial link (on-device learning), while
   the numpy engine trains on the same batches; evaluate on the device again (``after``);
5. pull the device's weights into a model file (with the stream's training record) and
   check that they are the weights the stream ended with.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from bep_mcu import files, modelio, training
from bep_mcu.data.datasets import load_dataset, stratified_split
from bep_mcu.data.shift import SensorDrift
from bep_mcu.device import boards
from bep_mcu.device.emulate import EmulatedBoard
from bep_mcu.device.firmware import build, refuse_model_if_too_big
from bep_mcu.device.stream import DeviceTrainer, connect, pull_model, stream_train
from bep_mcu.errors import BEPError
from bep_mcu.twin.verify import build_twin, verify

DEFAULT_BOARD = "mps2-an386"
DEFAULT_DATASET = "digits"
MODEL_FILE, DEVICE_MODEL_FILE, DRIFTED_FILE = "model.npz", "device_model.npz", "drifted.npz"


def default_hidden(board: boards.Board) -> int:
    """A network that leaves room on the board: 128 neurons, 32 on a 16 KB part."""
    return 128 if board.ram_bytes >= 64 * 1024 else 32


def run_demo(board_name: str = DEFAULT_BOARD, dataset: str = DEFAULT_DATASET, hidden: int | None = None,
             host_epochs: int = 10, device_epochs: int = 3, seed: int = 0, out_dir: str | None = None,
             pretrain_fraction: float = 0.25,
             say: Callable[[str], None] = print) -> dict:
    board = boards.board(board_name)
    if not board.emulated:
        raise BEPError(f"board '{board_name}' cannot be emulated here; demo boards: "
                       f"{', '.join(b for b, v in boards.BOARDS.items() if v.emulated)}")
    width = hidden or default_hidden(board)
    data = load_dataset(dataset)
    start = time.perf_counter()

    # A stratified part of the training set, so every class is known before the device.
    pre, _ = stratified_split(data.y_train, 1.0 - pretrain_fraction, seed)
    settings = training.Settings(hidden=(width,), epochs=host_epochs, seed=seed)
    # the network must fit the board: judged on every untrained shape fit may keep, before minutes of work
    for shape in training.fit_shapes(data.X_train[pre], data.y_train[pre], settings):
        refuse_model_if_too_big(shape, board)
    work = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="bep-demo-"))
    files.check_tree(work, [MODEL_FILE, DEVICE_MODEL_FILE, DRIFTED_FILE])  # a planted symlink would be followed
    work.mkdir(parents=True, exist_ok=True)
    say(f"[1/5] pre-training on the host: {dataset}, {len(pre)} of {len(data.y_train)} training samples, mlp, "
        f"hidden {width}, {host_epochs} epochs")
    model = training.fit(data.X_train[pre], data.y_train[pre], settings)
    model_path = work / MODEL_FILE
    modelio.save(model, model_path)
    pretrained_accuracy = model.score(data.X_test, data.y_test)
    # Deployed, the sensor drifts: the board meets the drifted readings (its training and test data from now on).
    drift = SensorDrift()
    X_train, X_test = drift.apply(data.X_train, data.X_train, seed + 1), drift.apply(data.X_test, data.X_train, seed + 2)
    drifted = work / DRIFTED_FILE
    files.write_atomic(drifted, lambda f: np.savez(f, X_train=X_train, y_train=data.y_train, X_test=X_test,
                                                   y_test=data.y_test))
    train, test = training.encoded(model, X_train, data.y_train), training.encoded(model, X_test, data.y_test)

    say("[2/5] generating C and verifying the host twin against numpy (1 epoch, every batch)")
    twin_check = verify(model, build_twin(model), train, 1)
    if not twin_check.bit_exact:
        raise RuntimeError(f"host twin diverged from numpy: {twin_check.divergence}")

    say(f"[3/5] building the {board.name} firmware ({board.cpu})")
    fw = build(model, board.name, work / "firmware")

    say(f"[4/5] booting {board.name} in QEMU; the board meets drifted data ({drift.describe()}) and trains on it "
        f"for {device_epochs} epoch(s)")
    with EmulatedBoard(fw.elf, board.name) as url:
        with connect(url, model) as link:
            before = float(np.mean(DeviceTrainer(link, model).evaluate(test) == test.y))
            result, trained = stream_train(link, model, train, device_epochs, None, test, check_host=True)
            say("[5/5] pulling the trained weights back from the board")
            device_weights = pull_model(link, model).hidden
            pulled_equal = all(np.array_equal(a, b) for a, b in zip(device_weights, trained.hidden))
            pulled = work / DEVICE_MODEL_FILE
            # The pulled weights with the stream's record (epochs, history, batch counter), so the
            # file continues where the board stopped (train --init-from, stream again).
            modelio.save(trained.replace(hidden=device_weights), pulled)
    report = {
        "board": board.name, "cpu": board.cpu, "dataset": dataset, "network": f"{model.spec.n_inputs}-{width}-"
        f"{model.spec.n_classes}", "host_pretrained_test_accuracy": pretrained_accuracy,
        "host_test_accuracy": result.host_test_accuracy, "device_test_accuracy": result.device_test_accuracy,
        "bit_exact": bool(result.bit_exact and twin_check.bit_exact and pulled_equal),
        "twin_bit_exact": twin_check.bit_exact, "pulled_equal": pulled_equal,
        "device_bit_exact": result.bit_exact, "samples_per_second": result.samples_per_second,
        "frames_retried": result.frames_retried, "link_share_estimate": result.as_dict()["link_share_estimate"],
        "ram_bytes": fw.ram_bytes, "flash_bytes": fw.flash_bytes, "ram_budget": fw.ram_budget,
        "flash_budget": fw.flash_budget, "state_bytes": fw.plan.state_bytes, "device_epochs": device_epochs,
        "model": str(model_path), "device_model": str(pulled), "firmware": str(work / "firmware" / fw.elf.name),  # as given, like the other two
        "drift": drift.describe(), "drifted_data": str(drifted), "before": before, "after": result.device_test_accuracy,
        "seconds": time.perf_counter() - start,
    }
    return report


def human_report(r: dict) -> str:
    return "\n".join([
        f"bep-mcu demo on {r['board']} ({r['cpu']}, emulated): {r['dataset']}, network {r['network']}",
        f"  drifted sensor  {r['drift']}",
        f"  on the board    test accuracy {r['before']:.4f} before on-device learning, {r['after']:.4f} after "
        f"({r['after'] - r['before']:+.4f})",
        f"  test accuracy   host {r['host_test_accuracy']:.4f}   device {r['device_test_accuracy']:.4f}   "
        f"(after host pre-training, undrifted data: {r['host_pretrained_test_accuracy']:.4f})",
        f"  bit-exact       {'yes' if r['bit_exact'] else 'NO'} (numpy = C twin = device hidden weights)",
        f"  on-device       {r['samples_per_second']:.0f} samples/s over the emulated UART, "
        f"{r['frames_retried']} frames retried",
        f"  memory          RAM {r['ram_bytes']} B of {r['ram_budget']} (training state {r['state_bytes']} B), "
        f"flash {r['flash_bytes']} B of {r['flash_budget']}",
        f"  files           {r['model']}, {r['device_model']}, {r['firmware']}",
    ])
