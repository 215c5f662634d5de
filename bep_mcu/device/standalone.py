"""A board that learns on its own (``bep-mcu firmware --standalone-data``): what it learns
from, the host's simulation of its run, and the comparison with what it reports.

The board encodes raw device values, visits its own sample order, schedules its own
epochs and snapshots and restores itself once midway (bep_mcu/fw/standalone.c). The host
runs the same training through the one driver, ``training.run_epochs``, with the plan a
board implies (``stall_signal="training"``: the integer schedule; ``sample_order=
"counter"``) on the same device values, encoded by ``data.inputformat`` with integers
only; with ``--follow-progress`` both end the run where the training budget says
(``engine.schedule.ProgressBudget``, ``bep_<net>_should_stop``). Then every line the board
printed must equal the host's: each epoch's samples, errors, γ and Q, the CRC of the
snapshot taken midway and of one of the final state (hidden weights, counters, schedule and
budget), the epochs run and the test predictions.

With power cuts the board saves into a flash store every N samples and is reset at
planned flash operations of its saves (:func:`plan_cuts`); each boot restores the newest
whole save and trains again from there. Training is deterministic, so the run it ends
with is the uninterrupted one: the host simulates that run once, composes the snapshot of
every save (its CRC is what the board reports), and knows what each boot must restore
(the save before the one the cut interrupted). Every line must still equal the host's:
an epoch or a save the board repeats after a cut must repeat it exactly.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from bep_mcu.cgen import snapshot
from bep_mcu.data import inputformat, recalibration
from bep_mcu.data.datasets import Dataset
from bep_mcu.data.encoder import as_model_shape
from bep_mcu.data.inputformat import InputFormat
from bep_mcu.data.recalibration import Calibration
from bep_mcu.device.emulate import run_image
from bep_mcu.device.firmware import STANDALONE_EXIT, StandaloneBuild, StandaloneData
from bep_mcu.device.persistence import StorePlan
from bep_mcu.engine.network import Counters
from bep_mcu.engine.schedule import ProgressBudget, ProgressMarks, q_table, rate_level
from bep_mcu.errors import BEPError
from bep_mcu.model import Model
from bep_mcu.training import EncodedData, FollowProgress, NumpyTrainer, Plan, default_epochs, \
    run_epochs

_EPOCH = re.compile(r"^EPOCH (\d+) samples (\d+) errors (\d+) gamma ([\d,]+) q ([\d,]+)$")
_SNAPSHOT = re.compile(r"^SNAPSHOT after (\d+) bytes (\d+) crc 0x([0-9A-F]{8})$")
_TEST = re.compile(r"^TEST correct (\d+) of (\d+) predictions_crc 0x([0-9A-F]{8})$")
_RESULT = re.compile(r"^RESULT epochs (\d+) samples (\d+) batches (\d+) snapshot_crc 0x([0-9A-F]{8})$")
_BOOT = re.compile(r"^BOOT (\d+) restored (\d+) epoch (\d+) position (\d+)$")
_SAVE = re.compile(r"^SAVE (\d+) crc 0x([0-9A-F]{8})$")
_CUT = re.compile(r"^CUT (\d+) generation (\d+) op (\d+)$")


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
    """What a standalone run reports (the board's lines, or the host's simulation). The
    board may print an epoch or a save more than once (again after a power cut)."""

    epochs: list[dict] = field(default_factory=list)  # epoch, samples, errors, gamma, q
    snapshots: dict[int, int] = field(default_factory=dict)  # after epoch k of the run -> CRC
    saves: list[tuple[int, int]] = field(default_factory=list)  # (generation, CRC) of each completed save
    boots: list[dict] = field(default_factory=list)  # boot, restored, epoch, position
    cuts: list[tuple[int, int]] = field(default_factory=list)  # (generation, op) of each cut
    test_correct: int = 0
    test_n: int = 0
    predictions_crc: int = 0
    epochs_run: int = 0
    samples: int = 0
    batches: int = 0
    final_crc: int = 0

    def comparable(self) -> dict:
        """Each epoch and save once, in order (a repeat must equal the first: see :func:`repeats_differ`)."""
        epochs = list({e["epoch"]: e for e in self.epochs}.values())
        return {"epochs": epochs, "snapshots": self.snapshots, "saves": sorted(dict(self.saves).items()),
                "boots": self.boots, "cuts": self.cuts,
                "test": (self.test_correct, self.test_n, self.predictions_crc),
                "result": (self.epochs_run, self.samples, self.batches, self.final_crc)}

    def repeats_differ(self) -> dict | None:
        """An epoch or a save printed twice with other values: a restored board did not redo its work."""
        for key, items in (("epochs", [(e["epoch"], e) for e in self.epochs]), ("saves", self.saves)):
            first: dict = {}
            for k, v in items:
                if first.setdefault(k, v) != v:
                    return {"part": f"repeated {key}", "first": first[k], "again": v}
        return None


@dataclass(frozen=True)
class SavePoint:
    """Where the uninterrupted run saves: generation, the epoch (the schedule's count) and
    the samples of it done."""

    generation: int
    epoch: int
    position: int


def plan_cuts(saves: int, ops_per_save: int, k: int) -> tuple[tuple[int, int], ...]:
    """``k`` power cuts spread evenly over the flash operations of saves 2..``saves``:
    (generation being written, operation within the save). The first save is left alone:
    a cut there can only fall back to the model's weights, as nothing was saved before it."""
    total = (saves - 1) * ops_per_save
    if saves < 2:
        raise BEPError(f"--power-cuts needs at least two saves in the run, this one makes {saves}: lower "
                       f"--snapshot-every or run more epochs")
    if k > total:
        raise BEPError(f"--power-cuts {k}: the saves of this run have only {total} flash operations to cut")
    points = sorted({(2 * j + 1) * total // (2 * k) for j in range(k)})
    return tuple((2 + p // ops_per_save, p % ops_per_save) for p in points)


def expected_boots(model: Model, points: list[SavePoint], cuts) -> list[dict]:
    """What each boot must restore: nothing at the first, then the save before the one each cut interrupted."""
    at = {p.generation: p for p in points}
    boots = [{"boot": 0, "restored": 0, "epoch": model.training.epochs, "position": 0}]
    for j, (generation, _) in enumerate(cuts, start=1):
        p = at[generation - 1]
        boots.append({"boot": j, "restored": p.generation, "epoch": p.epoch, "position": p.position})
    return boots


def board_plan(model: Model, epochs: int, batch_size: int | None) -> Plan:
    """The run a board makes of ``epochs`` more epochs (continuing the model's record)."""
    return Plan.continuing(model, epochs, batch_size, stall_signal="training", sample_order="counter")


def budget(min_epochs: int | None, n_train: int) -> ProgressBudget:
    """A board's budget (``--follow-progress``): at least ``min_epochs`` (``--epochs``) or,
    without it, the host's default minimum for ``n_train`` samples (``training.default_epochs``,
    as ``train`` does)."""
    return ProgressBudget(n_train, default_epochs(n_train) if min_epochs is None else min_epochs)


def simulate(model: Model, data: StandaloneData, plan: Plan, snapshot_after: int,
             store: StorePlan | None = None, min_epochs: int = 0) -> tuple[RunRecord, np.ndarray, list[SavePoint]]:
    """The board's run on the host: the record it must print, the host's test predictions
    and, with a ``store``, where each save falls. ``min_epochs``: the run ends where the
    budget of that minimum says (at most ``plan.epochs``); 0: all ``plan.epochs`` epochs."""
    train = device_encoded(model, data, "train")
    trainer = NumpyTrainer(model)
    record, captured, before = RunRecord(), {}, [trainer.counters()]
    saves: list[tuple[int, int, Counters, Counters, list[np.ndarray]]] = []  # epoch of the run, position, ...
    position, last_save = [0], [trainer.counters().samples]

    def on_batch(_batch: int, index: np.ndarray, _predictions) -> None:
        position[0] += len(index)
        c = trainer.counters()
        if store and store.every_samples and (c.samples - last_save[0]) & 0xFFFFFFFF >= store.every_samples:
            saves.append((len(record.epochs), position[0], c, before[0], [h.copy() for h in trainer.hidden_weights()]))
            last_save[0] = c.samples

    def on_epoch(rec: dict) -> None:
        c = trainer.counters()
        k = rec["epoch"] - model.training.epochs  # epochs of this run so far
        record.epochs.append({"epoch": rec["epoch"] - 1, "samples": c.samples - before[0].samples,
                              "errors": c.errors - before[0].errors, "gamma": rec["gamma"], "q": rec["reinforce_q"]})
        before[0], position[0] = c, 0
        if k == snapshot_after:
            captured[k] = (c, trainer.hidden_weights())

    n = len(train)
    follow = [FollowProgress(ProgressBudget(n, min_epochs), n)] if min_epochs else []
    report = run_epochs([trainer], train, plan, on_batch=on_batch, on_epoch=on_epoch, observers=follow)
    record.epochs_run = len(record.epochs)
    captured[record.epochs_run] = (trainer.counters(), trainer.hidden_weights())
    table = q_table(model.spec, plan.p_r)
    followed = Calibration(recalibration.plan(model.encoder, data.fmt)).followed()  # the image never recalibrates
    initial = {"level": rate_level(plan.error_rate), "stalled": 0, "best_errors": 0, "best_samples": 0}

    def crc(k: int, counters: Counters, marks: Counters, hidden, generation: int = 0) -> int:
        """The CRC a snapshot ends with, taken in epoch k of the run (0-based: k epochs closed),
        that epoch begun at ``marks``."""
        state = report.schedule_states[k - 1] if k > 0 else initial
        gamma = report.history[k]["gamma"] if k < len(report.history) else list(report.gamma)
        progress = ProgressMarks(n)  # the budget's marks: the board keeps them whether it follows them or not
        for epoch in record.epochs[:k]:
            progress.end_epoch(epoch["errors"])
        schedule = {**state, **progress.state(), "epoch": model.training.epochs + k, "start_errors": marks.errors,
                    "start_samples": marks.samples}
        blob = snapshot.compose(model.config_hash32, model.training.seed, counters, gamma,
                                [row[state["level"]] for row in table], schedule, hidden, followed, generation,
                                classes=model.spec.n_classes)
        return int.from_bytes(blob[-4:], "little")

    for k, (counters, hidden) in captured.items():  # after epoch k closed: epoch k + 1 about to begin
        if k == snapshot_after:
            record.snapshots[k] = crc(k, counters, counters, hidden)
        if k == record.epochs_run:
            record.final_crc = crc(k, counters, counters, hidden)
    points = []
    for generation, (k, pos, counters, marks, hidden) in enumerate(saves, start=1):
        record.saves.append((generation, crc(k, counters, marks, hidden, generation)))
        points.append(SavePoint(generation, model.training.epochs + k, pos))
    test = device_encoded(model, data, "test")
    predictions = trainer.evaluate(test)
    record.test_correct, record.test_n = int(np.sum(predictions == test.y)), len(test)
    record.predictions_crc = zlib.crc32(predictions.astype(np.uint8).tobytes())
    counters = trainer.counters()
    record.samples, record.batches = counters.samples, counters.batches
    return record, predictions, points


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
            record.epochs_run, record.samples, record.batches = int(m[1]), int(m[2]), int(m[3])
            record.final_crc = int(m[4], 16)
        elif m := _BOOT.match(line):
            record.boots.append({"boot": int(m[1]), "restored": int(m[2]), "epoch": int(m[3]), "position": int(m[4])})
        elif m := _SAVE.match(line):
            record.saves.append((int(m[1]), int(m[2], 16)))
        elif m := _CUT.match(line):
            record.cuts.append((int(m[2]), int(m[3])))
    return record


def first_difference(host: RunRecord, device: RunRecord) -> dict | None:
    """The first part of the board's report that differs from the host's, with both."""
    a, b = host.comparable(), device.comparable()
    for key in a:
        if a[key] != b[key]:
            return {"part": key, "host": a[key], "device": b[key]}
    return device.repeats_differ()


def run(build: StandaloneBuild, model: Model, plan: Plan, timeout: float) -> dict:
    """Run the image in QEMU, simulate it on the host, compare: the ``--run --json`` keys."""
    ran = run_image(build.firmware.elf, build.firmware.board, timeout)
    device = parse_output(ran.output)
    cuts = build.power_cuts
    host, _, points = simulate(model, build.data, plan, build.snapshot_after, cuts.store if cuts else None,
                               build.min_epochs)
    if cuts:
        host.boots, host.cuts = expected_boots(model, points, cuts.cuts), list(cuts.cuts)
    diff = first_difference(host, device) if ran.status == 0 else {"part": "exit", "device": ran.status}
    samples = host.epochs_run * len(build.data.train_y)
    out = {"bit_exact": diff is None, "first_difference": diff, "exit_status": ran.status,
           "exit_result": STANDALONE_EXIT.get(ran.status, "unexpected QEMU exit status"),
           "device_test_accuracy": device.test_correct / device.test_n if device.test_n else None,
           "host_test_accuracy": host.test_correct / host.test_n, "epochs": host.epochs_run,
           "device_epochs": device.epochs_run, "samples": samples,
           "seconds": round(ran.seconds, 3), "samples_per_second": samples / ran.seconds if ran.seconds else None,
           "device_output": ran.output}
    if cuts:
        # a reset resumed from a snapshot newer than the model's weights: what was learnt before it survived
        out.update({"saves": len(points), "resets": len(device.boots) - 1,
                    "learning_kept": sum(1 for b in device.boots[1:] if b["restored"] >= 1)})
    return out
