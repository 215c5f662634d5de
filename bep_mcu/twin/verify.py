"""``bep-mcu verify``: the numpy engine and the C twin trained side by side.

Both start from the model file's state (hidden weights, seed, batch counter), see the
same batches in the same order with the same per-epoch integers (γ, Q from
:class:`EpochSchedule`), and after every batch their complete state is compared with
exact equality: every hidden weight of every layer, and the forward predictions.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bep_mcu.cgen.codegen import Generated, generate
from bep_mcu.errors import BEPError
from bep_mcu.estimator import BEPClassifier, epoch_order
from bep_mcu.engine.schedule import EpochSchedule
from bep_mcu.twin.cffi_twin import Twin, pack_inputs


@dataclass
class VerifyResult:
    bit_exact: bool
    batches: int
    epochs: int
    first_divergence: dict | None
    numpy_samples_per_second: float
    c_samples_per_second: float
    gammas: list[list[int]] = field(default_factory=list)
    reinforced_epochs: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def first_difference(numpy_hidden: list[np.ndarray], c_hidden: list[np.ndarray]) -> dict | None:
    """Layer, row and column of the first differing hidden weight, with both values."""
    for layer, (a, b) in enumerate(zip(numpy_hidden, c_hidden)):
        diff = np.argwhere(a != b)
        if len(diff):
            row, col = (int(v) for v in diff[0])
            return {"layer": layer, "row": row, "column": col, "numpy": int(a[row, col]), "c": int(b[row, col]),
                    "differing_weights": int(len(diff))}
    return None


def run_verify(clf: BEPClassifier, twin: Twin, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int,
               patience: int = 1, on_batch: Callable[[int], None] | None = None,
               grow_every: int | None = None) -> VerifyResult:
    """Train both sides on encoded inputs X (±1) and class indices y; stop at the first divergence.

    ``grow_every`` doubles γ every that many epochs whatever the accuracy does, to make
    sure a verification run crosses γ changes."""
    net = clf.network.copy()
    twin.init(net.seed, net.batch_counter)
    Xp = pack_inputs(X, clf.spec_)
    schedule = EpochSchedule(clf.spec_, list(clf.gamma_), clf.hp.p_r, patience, clf.hp.gamma_growth)
    seconds_np = seconds_c = 0.0
    batches = samples = reinforced = 0
    gammas = []
    for epoch in range(epochs):
        gamma, q = list(schedule.gamma), schedule.q()
        gammas.append(gamma)
        reinforced += int(any(q))
        net.set_epoch_params(gamma, q)
        twin.set_epoch(gamma, q)
        errors_before = net.counters.errors
        order = epoch_order(net.seed, epoch, len(y))
        for i in range(0, len(order), batch_size):
            b = order[i:i + batch_size]
            t0 = time.perf_counter()
            result = net.train_batch(X[b], y[b])
            t1 = time.perf_counter()
            c_pred = twin.train_batch(Xp[b], y[b])
            t2 = time.perf_counter()
            seconds_np += t1 - t0
            seconds_c += t2 - t1
            samples += len(b)
            batches += 1
            divergence = first_difference(net.hidden_weights(), twin.hidden_weights())
            if divergence is None and not np.array_equal(result.predictions, c_pred):
                k = int(np.flatnonzero(result.predictions != c_pred)[0])
                divergence = {"prediction_of_sample": int(b[k]), "numpy": int(result.predictions[k]),
                              "c": int(c_pred[k])}
            if on_batch:
                on_batch(batches)
            if divergence is not None:
                divergence.update(batch=batches - 1, epoch=epoch)
                return VerifyResult(False, batches, epoch + 1, divergence, samples / max(seconds_np, 1e-9),
                                    samples / max(seconds_c, 1e-9), gammas, reinforced)
        error_rate = (net.counters.errors - errors_before) / len(y)
        schedule.end_epoch(error_rate, 1.0 - error_rate)
        if grow_every and (epoch + 1) % grow_every == 0:
            schedule.gamma = [min(g * 2, k) for g, k in zip(schedule.gamma, clf.spec_.hidden)]
    return VerifyResult(True, batches, epochs, None, samples / max(seconds_np, 1e-9), samples / max(seconds_c, 1e-9),
                        gammas, reinforced)


def build_twin(model_path: str, clf: BEPClassifier, name: str, c_dir: str | None) -> Twin:
    """Generate the C into a temporary directory (or use an existing one) and compile it."""
    if c_dir is not None:
        directory = Path(c_dir)
        if not (directory / f"bep_{name}.h").is_file():
            raise BEPError(f"--c-dir '{c_dir}' holds no bep_{name}.h: generate it with bep-mcu generate --name {name}")
        files = sorted(p.name for p in directory.iterdir() if p.suffix in (".c", ".h"))
        from bep_mcu.cgen.layout import plan_state
        from bep_mcu.engine.spec import config_hash

        gen = Generated(directory, name, plan_state(clf.spec_, clf.params_.gate), config_hash(clf.spec_, clf.params_),
                        files)
        return Twin(gen, clf.spec_)
    with tempfile.TemporaryDirectory(prefix="bep-verify-") as tmp:
        gen = generate(model_path, tmp, name)
        return Twin(gen, clf.spec_)  # the compiled module is cached; sources may go
