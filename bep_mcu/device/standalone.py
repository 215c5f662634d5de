"""A board that learns on its own (``bep-mcu firmware --standalone-data``): what it learns
from, the host's simulation of its run, and the comparison with what it reports.

The board encodes raw device values, visits its own sample order, schedules its own
epochs and snapshots and restores itself once midway (bep_mcu/fw/standalone.c). The host
runs the same training through the one driver, ``training.run_epochs``, with the plan a
board implies (``stall_signal="training"``: the integer schedule; ``sample_order=
"counter"``) on the same device values, encoded by ``data.inputformat`` with integers
only. Then every line the board printed must equal the host's: each epoch's samples,
errors, γ and Q, the CRC of the snapshot taken midway and of one of the final state
(hidden weights, counters, schedule), and the test predictions.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from bep_mcu.cgen import snapshot
from bep_mcu.data import inputformat
from bep_mcu.data.datasets import Dataset
from bep_mcu.data.encoder import as_model_shape
from bep_mcu.data.inputformat import InputFormat
from bep_mcu.device.emulate import run_image
from bep_mcu.device.firmware import STANDALONE_EXIT, StandaloneBuild, StandaloneData
from bep_mcu.engine.schedule import q_table
from bep_mcu.errors import BEPError
from bep_mcu.model import Model
from bep_mcu.training import EncodedData, NumpyTrainer, Plan, run_epochs

_EPOCH = re.compile(r"^EPOCH (\d+) samples (\d+) errors (\d+) gamma ([\d,]+) q ([\d,]+)$")
_SNAPSHOT = re.compile(r"^SNAPSHOT after (\d+) bytes (\d+) crc 0x([0-9A-F]{8})$")
_TEST = re.compile(r"^TEST correct (\d+) of (\d+) predictions_crc 0x([0-9A-F]{8})$")
_RESULT = re.compile(r"^RESULT epochs (\d+) samples (\d+) batches (\d+) snapshot_crc 0x([0-9A-F]{8})$")


def standalone_data(model: Model, dataset: Dataset, fmt: InputFormat) -> StandaloneData:
    """A dataset's train and test parts as device values of ``fmt`` (saturating) and class
    indices; data of another shape than the model reads, or unknown labels, are refused."""
    enc = model.encoder
    want = (enc.n_features,) if enc.model == "mlp" else (enc.length, enc.n_features)
    parts = []
    for X, y in ((dataset.X_train, dataset.y_train), (dataset.X_test, dataset.y_test)):
        X = as_model_shape(X, enc.model)
        if X.shape[1:] != want:
            raise BEPError(f"{dataset.name}: samples of shape {X.shape[1:]}, the model reads {want}")
        parts += [fmt.to_device(X).reshape(len(X), -1), model.encode_labels(y)]
    return StandaloneData(fmt, *parts, source=dataset.name)


def device_encoded(model: Model, data: StandaloneData, part: str) -> EncodedData:
    """What the board's encoder makes of a part (integers only, as in C)."""
    V, y = (data.train_x, data.train_y) if part == "train" else (data.test_x, data.test_y)
    enc = model.encoder
    shape = (len(V), enc.length, enc.n_features) if enc.model == "rnn" else V.shape
    return EncodedData(inputformat.encode(enc, data.fmt, V.reshape(shape)), y)


@dataclass
class RunRecord:
    """What a standalone run reports (the board's lines, or the host's simulation)."""

    epochs: list[dict] = field(default_factory=list)  # epoch, samples, errors, gamma, q
    snapshots: dict[int, int] = field(default_factory=dict)  # after epoch k of the run -> CRC
    test_correct: int = 0
    test_n: int = 0
    predictions_crc: int = 0
    samples: int = 0
    batches: int = 0
    final_crc: int = 0

    def comparable(self) -> dict:
        return {"epochs": self.epochs, "snapshots": self.snapshots, "test": (self.test_correct, self.test_n,
                self.predictions_crc), "result": (self.samples, self.batches, self.final_crc)}


def board_plan(model: Model, epochs: int, batch_size: int | None) -> Plan:
    """The run a board makes of ``epochs`` more epochs (continuing the model's record)."""
    return Plan.continuing(model, epochs, batch_size, stall_signal="training", sample_order="counter",
                           compare="never")


def simulate(model: Model, data: StandaloneData, plan: Plan, snapshot_after: int) -> tuple[RunRecord, np.ndarray]:
    """The board's run on the host: the record it must print and the host's test predictions."""
    train = device_encoded(model, data, "train")
    trainer = NumpyTrainer(model)
    record, captured, before = RunRecord(), {}, [trainer.counters()]

    def on_epoch(rec: dict) -> None:
        c = trainer.counters()
        k = rec["epoch"] - model.training.epochs  # epochs of this run so far
        record.epochs.append({"epoch": rec["epoch"] - 1, "samples": c.samples - before[0].samples,
                              "errors": c.errors - before[0].errors, "gamma": rec["gamma"], "q": rec["reinforce_q"]})
        before[0] = c
        if k in (snapshot_after, plan.epochs):
            captured[k] = (c, trainer.hidden_weights())

    report = run_epochs([trainer], train, plan, on_epoch=on_epoch)
    table = q_table(model.spec, plan.p_r)
    for k, (counters, hidden) in captured.items():
        state = report.schedule_states[k - 1]
        gamma = report.history[k]["gamma"] if k < plan.epochs else list(report.gamma)
        q = [row[state["level"]] for row in table]
        schedule = {**state, "epoch": model.training.epochs + k, "start_errors": counters.errors,
                    "start_samples": counters.samples}
        blob = snapshot.compose(model.config_hash32, model.training.seed, counters, gamma, q, schedule, hidden)
        crc = int.from_bytes(blob[-4:], "little")  # the CRC a snapshot ends with, as the board reports it
        if k == snapshot_after:
            record.snapshots[k] = crc
        if k == plan.epochs:
            record.final_crc = crc
    test = device_encoded(model, data, "test")
    predictions = trainer.evaluate(test)
    record.test_correct, record.test_n = int(np.sum(predictions == test.y)), len(test)
    record.predictions_crc = zlib.crc32(predictions.astype(np.uint8).tobytes())
    counters = trainer.counters()
    record.samples, record.batches = counters.samples, counters.batches
    return record, predictions


def parse_output(text: str) -> RunRecord:
    """The lines a standalone image printed (anything else, e.g. a QEMU message, is ignored)."""
    record = RunRecord()
    for line in text.splitlines():
        line = line.strip()
        if m := _EPOCH.match(line):
            record.epochs.append({"epoch": int(m[1]), "samples": int(m[2]), "errors": int(m[3]),
                                  "gamma": [int(v) for v in m[4].split(",")], "q": [int(v) for v in m[5].split(",")]})
        elif m := _SNAPSHOT.match(line):
            record.snapshots[int(m[1])] = int(m[3], 16)
        elif m := _TEST.match(line):
            record.test_correct, record.test_n, record.predictions_crc = int(m[1]), int(m[2]), int(m[3], 16)
        elif m := _RESULT.match(line):
            record.samples, record.batches, record.final_crc = int(m[2]), int(m[3]), int(m[4], 16)
    return record


def first_difference(host: RunRecord, device: RunRecord) -> dict | None:
    """The first part of the board's report that differs from the host's, with both."""
    a, b = host.comparable(), device.comparable()
    for key in a:
        if a[key] != b[key]:
            return {"part": key, "host": a[key], "device": b[key]}
    return None


def run(build: StandaloneBuild, model: Model, plan: Plan, timeout: float) -> dict:
    """Run the image in QEMU, simulate it on the host, compare: the ``--run --json`` keys."""
    ran = run_image(build.firmware.elf, build.firmware.board, timeout)
    device = parse_output(ran.output)
    host, _ = simulate(model, build.data, plan, build.snapshot_after)
    diff = first_difference(host, device) if ran.status == 0 else {"part": "exit", "device": ran.status}
    samples = plan.epochs * len(build.data.train_y)
    return {"bit_exact": diff is None, "first_difference": diff, "exit_status": ran.status,
            "exit_result": STANDALONE_EXIT.get(ran.status, "unexpected QEMU exit status"),
            "device_test_accuracy": device.test_correct / device.test_n if device.test_n else None,
            "host_test_accuracy": host.test_correct / host.test_n, "epochs": plan.epochs, "samples": samples,
            "seconds": round(ran.seconds, 3), "samples_per_second": samples / ran.seconds if ran.seconds else None,
            "device_output": ran.output}
