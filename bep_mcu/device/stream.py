"""On-device training over the serial link: ``stream``, ``pull`` and their checks.

The host owns everything that needs floating point or the whole dataset: binarising,
packing, the sample order and the per-epoch schedule (Q from the device's own error
counter, γ growth when the training accuracy stalls). The board runs the integer
training step on what it receives. A board is a :class:`~bep_mcu.training.Trainer`
(:class:`DeviceTrainer`), so a stream is ``training.run_epochs`` like every other run;
with ``check_host`` the numpy engine trains on the same batches beside it and the
final states are compared.

The host sends where its schedule stands with every epoch's γ and Q (SET_EPOCH), so
the board, the one survivor of a host crash, holds it: ``pull`` reads it back with the
weights and counters into the model file (``training.resume``), and a ``stream`` of
that file continues at the very sample where the board stopped, bit for bit the run
that was interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bep_mcu.device.link import Link
from bep_mcu.engine.network import Counters
from bep_mcu.engine.schedule import Q_LEVELS, EpochStart, q_table
from bep_mcu.errors import BEPError, BoardError
from bep_mcu.model import Model, Origin
from bep_mcu.training import EncodedData, Lockstep, NumpyTrainer, Plan, run_epochs, sum_counters


def connect(url: str, model: Model, timeout: float = 2.0, attempts: int = 8) -> Link:
    """Open the port, say HELLO and make sure the board runs this model's network."""
    link = Link(url, timeout=timeout, attempts=attempts)
    try:
        info = link.hello()
        if info.config_hash != model.config_hash32:
            raise BoardError(
                f"{url}: the board ({info.board}) runs network 0x{info.config_hash:08X}, but the model is "
                f"0x{model.config_hash32:08X}: build the firmware from this model (bep-mcu firmware)")
    except BaseException:
        link.close()
        raise
    return link


class DeviceTrainer:
    """A board behind a link, as a Trainer: it starts from the model's state (seed, batch
    counter and hidden weights)."""

    name = "device"

    def __init__(self, link: Link, model: Model, start: bool = True) -> None:
        """``start``: INIT the board, load the model's hidden weights (INIT alone restores
        those the firmware was built with, which the model's may not be: a model trained on
        or pulled since) and put its classes in use (a class given a reserved prototype since
        the firmware was built: SET_CLASSES); False reads a running board, whose classes in
        use must be the model's."""
        self.link, self.spec = link, model.spec
        if start:
            built = link.info.n_classes  # what INIT puts in use: classes are never taken away
            if model.spec.n_classes < built:
                raise BEPError(f"{link.port}: the board's firmware was built with {built} classes in use, the "
                               f"model has {model.spec.n_classes}: give the model it was built from or adapted to")
            link.init(model.training.seed, model.training.batch_counter)
            for layer, hidden in enumerate(model.hidden):
                link.load_hidden(layer, hidden)
            if model.spec.n_classes > built:
                link.set_classes(model.spec.n_classes)
        elif link.classes_in_use not in (0, model.spec.n_classes):  # 0: no INIT yet, which reading it reports
            # A board that learnt a class keeps no label names: the model that gave it the class has them.
            raise BEPError(f"{link.port}: the board has {link.classes_in_use} classes in use, the model "
                           f"{model.spec.n_classes}: give the model the board was adapted to (adapt --out)")

    def set_epoch(self, gamma, q, start: EpochStart | None = None) -> None:
        self.link.set_epoch(gamma, q, start)

    def train_batch(self, batch: EncodedData) -> np.ndarray:
        return self.link.train(batch.packed, batch.y, end_batch=True)

    def evaluate(self, data: EncodedData) -> np.ndarray:
        return self.link.evaluate(data.packed, data.y)[1]

    def counters(self) -> Counters:
        return Counters(**self.link.counters())

    def hidden_weights(self) -> list[np.ndarray]:
        dtype = np.dtype(self.spec.hidden_dtype)
        return [self.link.read_hidden(i, shape, dtype) for i, shape in enumerate(self.spec.layer_shapes())]


@dataclass
class StreamResult:
    device_test_accuracy: float | None
    samples_per_second: float
    frames_retried: int
    frames_sent: int
    epochs: int
    batches: int
    seconds: float
    train_errors: list[float] = field(default_factory=list)
    gammas: list[list[int]] = field(default_factory=list)
    link_seconds_estimate: float = 0.0
    host_test_accuracy: float | None = None
    bit_exact: bool | None = None
    first_divergence: dict | None = None
    resumed: dict | None = None  # the epoch (1-based) and sample a pulled model's record continued at

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["link_share_estimate"] = self.link_seconds_estimate / self.seconds if self.seconds > 0 else None
        return d


def ping_seconds(link: Link, n: int = 20) -> float:
    """Median round trip of the smallest request (READ_COUNTERS): the link's cost per frame."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        link.counters()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def stream_train(link: Link, model: Model, data: EncodedData, epochs: int, batch_size: int | None = None,
                 test: EncodedData | None = None, check_host: bool = False,
                 on_batch: Callable[[], None] | None = None,
                 every_batch: bool = False, layers: str = "all") -> tuple[StreamResult, Model]:
    """Train on the board for ``epochs`` epochs, continuing ``model``'s schedule: from the
    sample where a pulled model's board stopped (``training.resume``; the rest of that
    epoch counts as one of ``epochs``). With ``check_host``, the board's state is compared
    with the numpy engine's at the end, or after ``every_batch`` (its weights read back
    each time: slower, and the run stops at the first difference). ``layers``: which hidden layers
    learn (``training.Plan.layers``); the board is left with the schedule's γ of every layer.

    Returns the result and the model as the board now holds it (weights read back)."""
    resume = model.training.resume
    device = DeviceTrainer(link, model)
    trainers = [device, NumpyTrainer(model)] if check_host else [device]
    plan = Plan.continuing(model, epochs, batch_size, stall_signal="training", resume=resume, layers=layers)
    frames_before = link.frames_sent
    start = time.perf_counter()
    report = run_epochs(trainers, data, plan, on_batch=(lambda *_: on_batch()) if on_batch else None,
                        observers=[Lockstep(at_end=not every_batch)])
    seconds = time.perf_counter() - start
    if report.next_epoch is not None:  # the board keeps where the next epoch starts, for a later pull
        device.set_epoch(report.gamma, report.q, report.next_epoch)
    result = StreamResult(None, report.samples / seconds if seconds > 0 else float("inf"), 0, 0, report.epochs,
                          report.batches, seconds, [rec["train_error"] for rec in report.history],
                          [rec["gamma"] for rec in report.history])
    result.link_seconds_estimate = min(seconds, (link.frames_sent - frames_before) * ping_seconds(link))
    if test is not None and len(test):
        result.device_test_accuracy = float(np.mean(device.evaluate(test) == test.y))
        if check_host:
            result.host_test_accuracy = float(np.mean(trainers[1].evaluate(test) == test.y))
    if check_host:
        result.bit_exact = report.bit_exact
        result.first_divergence = None if report.bit_exact else report.divergence.as_dict()
    result.frames_retried, result.frames_sent = link.frames_retried, link.frames_sent
    if resume is not None:
        result.resumed = {"epoch": resume.epoch + 1, "sample": resume.samples}
    trained = report.advance(model, device, batch_size=plan.batch_size,
                             origin=Origin("board", link.info.board, link.port, report.batches))
    return result, trained


def pull_model(link: Link, model: Model, batch_size: int | None = None) -> Model:
    """The board's current weights as a model that continues where the board stopped: the
    epoch record of its last SET_EPOCH (epochs done, the schedule's state, γ), its batch
    counter, and the samples and errors of the open epoch so far (``training.resume``), with
    the counters it added since its INIT; recorded as coming from that board with the
    number of batches it ran since then. ``model``: the one the board was streamed from;
    ``batch_size``: the stream's (default: the model's)."""
    device = DeviceTrainer(link, model, start=False)
    counters = device.counters()
    record = link.read_schedule()
    if record is None:
        raise BoardError(f"{link.port}: the board holds no epoch record: no stream opened an epoch since its INIT, "
                         "so its weights continue nothing (stream the model again)")
    start, gamma, q = record
    expected = [row[start.level] for row in q_table(model.spec, model.hyper.p_r)]
    if q != expected:
        raise BoardError(f"{link.port}: the board trains with Q {q}, this model's schedule gives {expected} at "
                         f"level {start.level}: pull with the model the board was streamed from")
    t = model.training
    ran = (counters.batches - t.batch_counter) & 0xFFFFFFFF
    # γ 0 is a layer frozen by `adapt --layers last` (a run cut short): its weights are the
    # model's, and so is the γ it resumes with (a model file's γ is at least 1).
    gamma = [g or model_g for g, model_g in zip(gamma, t.gamma)]
    return model.replace(hidden=tuple(device.hidden_weights())).with_training(
        epochs=start.epoch, gamma=tuple(gamma), error_rate=start.level / Q_LEVELS, batch_counter=counters.batches,
        batch_size=batch_size or t.batch_size, counters=sum_counters(t.counters, counters), resume=start,
        origin=Origin("board", link.info.board, link.port, ran))
