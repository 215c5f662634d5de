"""A model on drifting inputs, adapted without labels: the host's simulation of a board that
lets its input thresholds follow the raw values it sees (docs/adaptation.md).

A sensor's gain or offset changes over months; a frozen quantile code then gives the network
bits it never saw. :class:`Recalibrated` does on the host, bit for bit, what a board does with
``bep_<net>_calibrate`` and ``bep_<net>_encode_calibrated`` (data/recalibration.py): real
values become the board's integers (its input format), every point moves its feature's
thresholds, and the network reads the bits of the thresholds where they stand::

    board = adapt.recalibrate(model, X_unlabelled_drifted, X_train=X_train)
    board.score(X_test_drifted, y_test)     # the frozen model: adapt.Recalibrated(model, ...).score

:func:`adapt` is ``bep-mcu adapt``: a model meets the data of its deployment (the target), with
labels for some of it, on a board over the serial link or in the host's simulation of one, and
is measured before and after, on the target and, for forgetting, on the data it came from::

    report = adapt.adapt(model, target, epochs=3, labels=0.5, recalibrate=True, source=source)
    report["before"], report["after"], report["source_after"]
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bep_mcu import validate
from bep_mcu.cgen import cost
from bep_mcu.cgen.layout import plan_model
from bep_mcu.data import inputformat, recalibration
from bep_mcu.data.datasets import Dataset
from bep_mcu.data.encoder import as_model_shape
from bep_mcu.data.inputformat import InputFormat
from bep_mcu.data.recalibration import Calibration
from bep_mcu.device import boards
from bep_mcu.device.emulate import EmulatedBoard
from bep_mcu.device.firmware import build, refuse_model_if_too_big
from bep_mcu.device.stream import DeviceTrainer, connect, stream_train
from bep_mcu.errors import BEPError
from bep_mcu.model import MAX_EPOCHS, Model, new_labels, plain_labels
from bep_mcu.training import LAYERS, EncodedData, NumpyTrainer, Plan, epoch_order, learning, run_epochs


class Recalibrated:
    """``model`` on a board whose input thresholds follow its raw values.

    ``fmt``: the board's input format (default: ``inputformat.choose`` on ``X_train``, what
    ``bep-mcu generate --data`` picks); ``window``: the adaptation rate, values of a feature in
    which a threshold moves one training standard deviation when all fall on one side."""

    def __init__(self, model: Model, fmt: InputFormat | None = None, X_train=None,
                 window: int = recalibration.DEFAULT_WINDOW) -> None:
        if not recalibration.follows(model.encoder):
            raise BEPError("the model's inputs have no thresholds to follow: binary inputs, or a model file written "
                           "before the training statistics recalibration needs (train it again)")
        self.model = model
        self.fmt = fmt or inputformat.choose(model.encoder, X_train)
        self.calibration = Calibration(recalibration.plan(model.encoder, self.fmt, window))

    def _device(self, X) -> np.ndarray:
        """Real values in the model's shape → the board's integers (saturating, as its ADC)."""
        return self.fmt.to_device(as_model_shape(X, self.model.encoder.model))

    def observe(self, X) -> "Recalibrated":
        """Let the thresholds follow unlabelled samples ``X`` (real values), in their order
        (a series' points in time order). Returns self."""
        self.calibration.observe(self._device(X))
        return self

    def encode(self, X) -> np.ndarray:
        """The ±1 network input of ``X`` with the thresholds where they stand."""
        return self.calibration.encode(self.model.encoder, self.fmt, self._device(X))

    def predict(self, X) -> np.ndarray:
        return self.model.labels[self.model.network().predict(self.encode(X))]

    def score(self, X, y) -> float:
        y = plain_labels(np.asarray(y))
        if len(y) == 0:
            raise BEPError("no samples to score")
        return float((self.predict(X) == y).mean())


def recalibrate(model: Model, X, fmt: InputFormat | None = None, X_train=None,
                window: int = recalibration.DEFAULT_WINDOW) -> Recalibrated:
    """``model`` after its board has followed the unlabelled samples ``X`` (see :class:`Recalibrated`)."""
    return Recalibrated(model, fmt, X_train, window).observe(X)


# ------------------------------------------------------------------ adapt: a model meets its deployment

DEFAULT_EPOCHS = 3
DEFAULT_CPU = "cortex-m4"  # the core the host simulation's figures are predicted for
LABELS_KEY = 0xADA9  # keys which target samples come with their labels (and which replay samples are kept)
MAX_REPLAY = 1 << 16


def labelled(n: int, fraction: float, seed: int) -> np.ndarray:
    """Which of ``n`` target training samples come with their label: ``round(fraction * n)`` of
    them, drawn in a seeded order (sorted indices); the others only recalibrate."""
    fraction = validate.number(fraction, "--labels", 0.0, 1.0)
    order = np.random.default_rng([seed & 0xFFFFFFFF, LABELS_KEY]).permutation(n)
    return np.sort(order[:int(round(fraction * n))])


def replay_bytes(model: Model, k: int) -> int:
    """RAM of ``k`` stored samples: each sample's packed input words and a uint16 label."""
    return k * (4 * plan_model(model).input_words + 2)


def with_new_classes(model: Model, y, what: str) -> tuple[Model, list]:
    """``model`` with every label of ``y`` it has no prototype for given the next reserved one (the
    new labels in sorted order, each after the model's classes), and those labels. More of them than reserved prototypes: one line naming the first
    left without; a model with none reserved is returned as it is (its labels refuse them)."""
    new = new_labels(y, model.labels)
    if len(new) == 0 or len(model.reserved) == 0:
        return model, []
    if len(new) > len(model.reserved):
        raise BEPError(f"{what}: label {validate.show(new[len(model.reserved)].item())} has no prototype: the model "
                       f"reserved {len(model.reserved)} for new classes and the data has {len(new)} "
                       f"({validate.show(new.tolist(), 120)})")
    try:
        for label in new:
            model = model.with_class(label)
    except BEPError as err:
        raise BEPError(f"{what}: {err}") from None
    return model, new.tolist()


@dataclass(eq=False)
class Prepared:
    """Everything :func:`adapt` measures with, checked and encoded on the host before a board is
    touched: the batches the board trains on and the test sets before and after."""

    model: Model
    epochs: int
    train: EncodedData | None  # the labelled target samples (and the replayed ones); None: nothing to train
    before: EncodedData  # the target's test part, with the model's thresholds
    after: EncodedData  # the same, with the thresholds where recalibration left them
    source_before: EncodedData | None
    source_after: EncodedData | None
    report: dict
    new: np.ndarray | None = None  # which target test samples are of classes given a prototype here
    layers: str = "all"  # which hidden layers learn (training.Plan.layers)


def _encoded(model: Model, encode: Callable[[np.ndarray], np.ndarray], X, y, what: str) -> EncodedData:
    """``X`` as ``encode`` gives it and ``y`` as class indices; a feature count or a class the
    model does not know is one line naming ``what``."""
    try:
        return EncodedData(encode(X), model.encode_labels(y))
    except BEPError as err:
        raise BEPError(f"{what}: {err}") from None


def instructions(model: Model, trains: bool, recalibrate: bool, cpu: str, layers: str = "all") -> dict:
    """Predicted instructions per sample on ``cpu``: BEP's training step when it ``trains``
    (``cgen.cost``, every sample triggering; ``layers`` "last": the others frozen) and, when
    recalibrating, the estimate of following one sample's raw values."""
    spec, t = model.spec, model.training
    step = cost.instructions_per_sample(spec, learning(t.gamma, layers), cpu, t.batch_size) if trains else 0
    calibration = cost.calibration_instructions_per_sample(
        plan_model(model).followed, model.encoder.n_features, spec.steps, cpu) if recalibrate else 0
    return {"cpu": cpu, "instructions_per_sample": step + calibration,
            "calibration_instructions_per_sample": calibration}


def prepare(model: Model, target: Dataset, epochs: int = DEFAULT_EPOCHS, labels: float = 1.0,
            recalibrate: bool = False, source: Dataset | None = None, replay: int = 0,
            window: int = recalibration.DEFAULT_WINDOW, cpu: str = DEFAULT_CPU, layers: str = "all") -> Prepared:
    """Check the inputs and encode what :func:`adapt` trains and tests on (see there)."""
    epochs = validate.integer(epochs, "--epochs", 1, MAX_EPOCHS)
    layers = validate.choice(layers, "--layers", LAYERS)
    replay = validate.integer(replay, "--replay", 0, MAX_REPLAY)
    window = recalibration.check_window(window)
    seed = model.training.seed
    lab = labelled(len(target.y_train), labels, seed)
    if replay and source is None:
        raise BEPError("--replay needs --source-data: the samples it keeps come from the source's training part")
    # checked before anything runs: the target's and the source's features and classes. A class the model
    # has no prototype for takes a reserved one (the board runs the model with it: it learns it from its labels).
    model, new_classes = with_new_classes(model, np.concatenate([plain_labels(np.asarray(target.y_train)),
                                                                 plain_labels(np.asarray(target.y_test))]),
                                          f"target data ({target.name})")
    frozen = model.encode
    before = _encoded(model, frozen, target.X_test, target.y_test, f"target test data ({target.name})")
    target_train = _encoded(model, frozen, target.X_train, target.y_train, f"target training data ({target.name})")
    encode = frozen
    if recalibrate:
        # The board's input format as `generate --data` chooses it, on the data it will read: the target's
        # (and the source's) training inputs. Its thresholds follow every target training input, labelled
        # or not, one pass per epoch in the epoch's order, before training: a calibration phase.
        seen = target.X_train if source is None else np.concatenate([as_model_shape(target.X_train, model.spec.model),
                                                                     as_model_shape(source.X_train, model.spec.model)])
        board = Recalibrated(model, inputformat.choose(model.encoder, seen), window=window)
        for e in range(epochs):
            board.observe(target.X_train[epoch_order(seed, model.training.epochs + e, len(target.y_train))])
        encode = board.encode
    after = _encoded(model, encode, target.X_test, target.y_test, f"target test data ({target.name})")
    source_before = source_after = None
    parts = []
    if len(lab):
        parts.append(target_train.take(lab) if encode is frozen else
                     EncodedData(encode(target.X_train[lab]), target_train.y[lab]))
    if source is not None:
        what = f"source data ({source.name})"
        source_before = _encoded(model, frozen, source.X_test, source.y_test, what)
        source_after = _encoded(model, encode, source.X_test, source.y_test, what)
        if replay:
            if replay > len(source.y_train):
                raise BEPError(f"--replay {replay}: the source's training part has {len(source.y_train)} samples")
            # stored at deployment as the network read them then (packed bits, the model's thresholds)
            kept = np.sort(np.random.default_rng([seed & 0xFFFFFFFF, LABELS_KEY, 1]).permutation(
                len(source.y_train))[:replay])
            parts.append(_encoded(model, frozen, source.X_train[kept], source.y_train[kept], what))
    train = EncodedData(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts])) if parts else None
    state = plan_model(model).state_bytes
    report = {
        "target": target.name, "source": source.name if source is not None else None, "source_before": None,
        "source_after": None, "epochs": epochs,
        "labels": float(labels), "labels_used": int(len(lab)), "recalibrated": bool(recalibrate),
        "calibration_window": window if recalibrate else None, "replay": replay,
        "samples_seen": epochs * (len(target.y_train) if recalibrate else len(lab)),
        "samples_trained": epochs * (len(lab) + replay) if train is not None else 0,
        "state_bytes": state, "replay_bytes": replay_bytes(model, replay),
        "ram_bytes": state + replay_bytes(model, replay),
        **instructions(model, train is not None, recalibrate, cpu, layers), "new_classes": new_classes,
        "layers": layers,
    }
    new = np.isin(before.y, model.encode_labels(new_classes)) if new_classes else None
    return Prepared(model, epochs, train, before, after, source_before, source_after, report, new, layers)


def _accuracy(predictions: np.ndarray, data: EncodedData) -> float:
    return float(np.mean(predictions == data.y))


def _target(key: str, predictions: np.ndarray, data: EncodedData, new: np.ndarray | None) -> dict:
    """The target's test accuracy ``key``, and with classes given a prototype here, its accuracy on their
    samples and on the others' (None where there are none)."""
    out = {key: _accuracy(predictions, data), f"{key}_new_classes": None, f"{key}_old_classes": None}
    if new is not None:
        for part, mask in (("new", new), ("old", ~new)):
            out[f"{key}_{part}_classes"] = float(np.mean(predictions[mask] == data.y[mask])) if mask.any() else None
    return out


def on_host(work: Prepared) -> tuple[dict, Model]:
    """The host's simulation of a board: the numpy engine runs what the board would, with the
    schedule a board runs (its own training error judges γ stalls). Returns the measures and the
    model trained."""
    model, trained = work.model, work.model
    if work.train is not None:
        trainer = NumpyTrainer(model)
        report = run_epochs([trainer], work.train, Plan.continuing(model, work.epochs, stall_signal="training",
                                                                   layers=work.layers))
        trained = report.advance(model, trainer)
    out = {"where": "host", "bit_exact": None,
           **_target("before", NumpyTrainer(model).evaluate(work.before), work.before, work.new),
           **_target("after", NumpyTrainer(trained).evaluate(work.after), work.after, work.new)}
    if work.source_before is not None:
        out["source_before"] = _accuracy(NumpyTrainer(model).evaluate(work.source_before), work.source_before)
        out["source_after"] = _accuracy(NumpyTrainer(trained).evaluate(work.source_after), work.source_after)
    return out, trained


def on_board(work: Prepared, url: str, timeout: float = 2.0,
             say: Callable[[str], None] = lambda _: None) -> tuple[dict, Model]:
    """The same on the board behind ``url``, the numpy engine beside it: the board's hidden weights,
    predictions and counters are compared with the host's after every batch, and its predictions
    on the test sets before and after (``bit_exact``). Returns the measures and the model as the
    board holds it."""
    model = work.model
    with connect(url, model, timeout) as link:
        board = link.info.board
        say(f"{url}: {board}, network 0x{link.info.config_hash:08X}")
        exact, divergence = True, None

        def judged(device: DeviceTrainer, state: Model, data: EncodedData) -> np.ndarray:
            nonlocal exact
            predictions = device.evaluate(data)
            exact = exact and bool(np.array_equal(predictions, NumpyTrainer(state).evaluate(data)))
            return predictions

        device = DeviceTrainer(link, model)
        out = {"where": "board", "board": board, "port": url,
               **_target("before", judged(device, model, work.before), work.before, work.new)}
        if work.source_before is not None:
            out["source_before"] = _accuracy(judged(device, model, work.source_before), work.source_before)
        trained = model
        if work.train is not None:
            say(f"training on the board: {len(work.train)} samples, {work.epochs} epoch(s), compared with the host "
                "after every batch")
            result, trained = stream_train(link, model, work.train, work.epochs, check_host=True, every_batch=True,
                                           layers=work.layers)
            exact, divergence = bool(result.bit_exact), result.first_divergence
            out.update(samples_per_second=result.samples_per_second, frames_retried=result.frames_retried)
            device = DeviceTrainer(link, trained, start=False)
        out.update(_target("after", judged(device, trained, work.after), work.after, work.new))
        if work.source_after is not None:
            out["source_after"] = _accuracy(judged(device, trained, work.source_after), work.source_after)
    out.update(bit_exact=exact, first_divergence=divergence)
    if board in boards.BOARDS:
        out["cpu"] = boards.BOARDS[board].cpu
    return out, trained


def adapt(model: Model, target: Dataset, epochs: int = DEFAULT_EPOCHS, labels: float = 1.0,
          recalibrate: bool = False, source: Dataset | None = None, replay: int = 0,
          board: str | None = None, port: str | None = None, window: int = recalibration.DEFAULT_WINDOW,
          timeout: float = 2.0, say: Callable[[str], None] = lambda _: None,
          keep: Callable[[Model], None] | None = None, layers: str = "all") -> dict:
    """``model`` adapted to ``target`` (``bep-mcu adapt``): measured on the target's test part
    ``before`` and ``after``, and on the source's test part (forgetting) with ``source``.

    - ``labels``: the fraction of the target's training samples whose labels the board gets
      (a seeded choice); the board trains on those for ``epochs`` epochs, continuing the model's
      schedule as a board does (its own training error judges γ stalls).
    - ``recalibrate``: first, the input thresholds follow every target training input (labelled
      or not), one pass per epoch, in the host's simulation of the board (bit for bit
      ``bep_<net>_calibrate``); training and both measurements then read the inputs with the
      thresholds where they stand. Over the link the host encodes, so a board is trained and
      measured on bits encoded with the followed thresholds but does not hold them itself.
      ``labels=0`` with it is label-free adaptation.
    - ``replay``: that many samples of the source's training part (``source``), kept at
      deployment as the network read them then, are trained with the target's in every epoch
      (mixed into its batches), against forgetting; their RAM is counted.
    - ``layers``: "all" hidden layers learn, or the "last" alone (the others frozen: γ 0 on the
      board, ``bep_set_epoch``): fewer instructions per sample on a network of several.
    - ``board``: an emulated board, booted with firmware built for the model and stopped after;
      ``port``: a board already running it; neither: the host's simulation alone.

    ``keep``: called with the adapted model (its new classes and trained weights) once the run is
    bit-exact; not with ``recalibrate``, whose thresholds a model file cannot hold.

    ``instructions_per_sample`` is predicted (``cgen.cost``: the training step, worst case, plus
    recalibration's estimate) for the board's core, or the Cortex-M4 in the simulation;
    ``ram_bytes`` is the training state the generated code plans and the replayed samples."""
    if board is not None and port is not None:
        raise BEPError("give --board (an emulated board is booted) or --port (a running board), not both")
    if keep is not None and recalibrate:
        raise BEPError("--out with --recalibrate: the weights were trained on inputs read through the followed "
                       "thresholds, which a model file does not hold (they live in the board's state)")
    b = boards.board(board) if board is not None else None
    if b is not None and not b.emulated:
        raise BEPError(f"board '{board}' cannot be emulated here: flash it and give its --port; emulated boards: "
                       f"{', '.join(n for n, v in boards.BOARDS.items() if v.emulated)}")
    if b is not None:
        refuse_model_if_too_big(model, b)  # before anything is encoded or built
    work = prepare(model, target, epochs, labels, recalibrate, source, replay, window,
                   b.cpu if b is not None else DEFAULT_CPU, layers)
    if b is not None:
        with tempfile.TemporaryDirectory(prefix="bep-adapt-") as tmp:
            # The firmware of the model as deployed: a class given a reserved prototype here is put in
            # use on the board (SET_CLASSES), as on a board flashed before the class arrived.
            say(f"building the {b.name} firmware ({b.cpu})")
            fw = build(model, b.name, Path(tmp) / "firmware")
            say(f"booting {b.name} in QEMU")
            with EmulatedBoard(fw.elf, b.name) as url:
                out, trained = on_board(work, url, timeout, say)
    elif port is not None:
        out, trained = on_board(work, port, timeout, say)
    else:
        out, trained = on_host(work)
    if keep is not None and out["bit_exact"] is not False:
        keep(trained)
    report = {**work.report, **out}
    if report["cpu"] != work.report["cpu"]:  # the board on the port has another core: predicted for it
        report.update(instructions(work.model, work.train is not None, recalibrate, report["cpu"], layers))
    return report
