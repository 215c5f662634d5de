"""On-device training over the serial link: ``stream``, ``pull`` and their checks.

The host owns everything that needs floating point or the whole dataset: binarising,
packing, the sample order and the per-epoch schedule (Q from the device's own error
counter, γ growth when the training accuracy stalls). The board only runs the
integer training step on what it receives. With ``mirror`` the same batches also go
through the numpy engine on the host, so a run can prove the device learnt exactly
what the host would have.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from bep_mcu.errors import BEPError
from bep_mcu.estimator import BEPClassifier, epoch_order
from bep_mcu.device.link import Link
from bep_mcu.engine.schedule import EpochSchedule
from bep_mcu.engine.spec import config_hash
from bep_mcu.twin.cffi_twin import pack_inputs


def expected_hash(clf: BEPClassifier) -> int:
    """The 32-bit config hash a board built from this model reports."""
    return int(config_hash(clf.spec_, clf.params_)[:8], 16)


def connect(url: str, clf: BEPClassifier, model_path: str, timeout: float = 2.0, attempts: int = 8) -> Link:
    """Open the port, say HELLO and make sure the board runs this model's network."""
    link = Link(url, timeout=timeout, attempts=attempts)
    try:
        info = link.hello()
        if info.config_hash != expected_hash(clf):
            raise BEPError(
                f"{url}: the board ({info.board}) runs network 0x{info.config_hash:08X}, but '{model_path}' is "
                f"0x{expected_hash(clf):08X}: build the firmware from this model (bep-mcu firmware)")
    except BaseException:
        link.close()
        raise
    return link


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


def stream_train(link: Link, clf: BEPClassifier, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int,
                 X_test: np.ndarray | None = None, y_test: np.ndarray | None = None, mirror: bool = False,
                 on_batch: Callable[[], None] | None = None) -> StreamResult:
    """Train on the board for ``epochs`` epochs from the firmware's initial state.

    X, X_test are encoded ±1 inputs, y, y_test class indices. With ``mirror`` the numpy
    engine trains on the same batches and the final hidden weights are compared.
    """
    spec = clf.spec_
    net = clf.network
    Xp = pack_inputs(X, spec)
    link.init(net.seed, net.batch_counter)  # the firmware's tables hold this model's weights
    host = net.copy() if mirror else None
    # Continue the model's schedule: its last γ, and Q from its last epoch's training error.
    schedule = EpochSchedule(spec, list(clf.gamma_), clf.hp.p_r, clf.hp.patience, clf.hp.gamma_growth,
                             error_rate=clf.error_rate_)
    first_epoch = int(getattr(clf, "epochs_", 0))  # continue the model's own sequence of orders
    frames_before = link.frames_sent
    start = time.perf_counter()
    batches = 0
    result = StreamResult(None, 0.0, 0, 0, epochs, 0, 0.0)
    for epoch in range(epochs):
        gamma, q = list(schedule.gamma), schedule.q()
        result.gammas.append(gamma)
        link.set_epoch(gamma, q)
        if host is not None:
            host.set_epoch_params(gamma, q)
        errors_before = link.counters()["errors"]
        order = epoch_order(net.seed, first_epoch + epoch, len(y))
        for i in range(0, len(order), batch_size):
            b = order[i:i + batch_size]
            link.train(Xp[b], y[b], end_batch=True)
            if host is not None:
                host.train_batch(X[b], y[b])
            batches += 1
            if on_batch:
                on_batch()
        error_rate = (link.counters()["errors"] - errors_before) / len(y)
        result.train_errors.append(error_rate)
        schedule.end_epoch(error_rate, 1.0 - error_rate)
    seconds = time.perf_counter() - start
    result.seconds = seconds
    result.batches = batches
    result.samples_per_second = epochs * len(y) / seconds if seconds > 0 else float("inf")
    frames = link.frames_sent - frames_before
    result.link_seconds_estimate = min(seconds, frames * ping_seconds(link))
    if X_test is not None and y_test is not None and len(y_test):
        correct, _ = link.evaluate(pack_inputs(X_test, spec), y_test)
        result.device_test_accuracy = correct / len(y_test)
        if host is not None:
            result.host_test_accuracy = float((host.predict(X_test) == y_test).mean())
    if host is not None:
        from bep_mcu.twin.verify import first_difference

        device = read_hidden(link, clf)
        result.first_divergence = first_difference(host.hidden_weights(), device)
        result.bit_exact = result.first_divergence is None
    result.frames_retried = link.frames_retried
    result.frames_sent = link.frames_sent
    return result


def read_hidden(link: Link, clf: BEPClassifier) -> list[np.ndarray]:
    dtype = np.int8 if clf.spec_.hidden_bits == 8 else np.int16
    return [link.read_hidden(i, shape, dtype) for i, shape in enumerate(clf.spec_.layer_shapes())]


def pull_model(link: Link, clf: BEPClassifier, out: str, source: str) -> dict:
    """Read the board's hidden weights and counters into a normal model file."""
    hidden = read_hidden(link, clf)
    counters = link.counters()
    clf.network = clf.network.copy(hidden, counters["batches"])
    clf.save(out, extra_meta={"pulled_from": source, "board": link.info.board, "device_counters": counters})
    return {"model": out, "board": link.info.board, "counters": counters,
            "synapses": clf.spec_.synapses}
