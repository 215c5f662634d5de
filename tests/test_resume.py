"""Learning that survives the host: a stream interrupted anywhere continues exactly.

* In process (the device is the generated C behind ``bep_link.c``, as in test_link.py): a
  host that stops mid-epoch (an exception from ``on_batch``, as Ctrl-C would raise) leaves
  the board its epoch record; ``pull`` reads it into the model file and a ``stream`` of
  that file, on a fresh board, ends in the state of one uninterrupted run: hidden weights,
  counters, γ, Q, epochs and batch counter. Twice interrupted, too. A board with no record
  is refused; a model whose weights are not the firmware's tables trains from its own.
* The real CLI against the emulated board in QEMU: ``bep-mcu stream`` killed (SIGKILL)
  right after the board answered its 137th batch, by a TCP proxy between the CLI and the
  board that counts TRAIN frames, so the point of the crash is exact; then ``bep-mcu
  pull`` and ``bep-mcu stream pulled.npz --check-host``.
* Counters wrap at 2^32 on the board: the host takes differences modulo 2^32 and the
  numpy engine's counters wrap, so numpy and the C twin stay bit-exact across the wrap.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import threading
from dataclasses import replace

import numpy as np
import pytest

from bep_mcu import modelio
from bep_mcu.cgen import abi, snapshot
from bep_mcu.cgen import protocol as P
from bep_mcu.cgen.codegen import generate
from bep_mcu.data.datasets import load_dataset
from bep_mcu.device.emulate import EmulatedBoard
from bep_mcu.device.firmware import build
from bep_mcu.device.stream import pull_model, stream_train
from bep_mcu.engine.network import Counters
from bep_mcu.engine.schedule import EPOCH_MAX_SAMPLES, EpochStart, IntegerSchedule, gamma_caps, q_table
from bep_mcu.errors import BEPError, BoardError
from bep_mcu.training import EncodedData, NumpyTrainer, Plan, learning, run_epochs
from bep_mcu.twin.cffi_twin import Twin, TwinTrainer

from .conftest import assert_same_weights, fit, needs_arm, needs_qemu, saved
from .test_link import data, device_module, make_device, make_link, net_model, trained  # noqa: F401  (fixtures)

DATA = "prototypes:classes=4,features=100,samples=1200"


class HostCrash(Exception):
    """What an interrupted host raises from inside training."""


def crash_after(n: int):
    seen = []

    def on_batch() -> None:
        seen.append(1)
        if len(seen) == n:
            raise HostCrash

    return on_batch


def connected(module, trained):  # noqa: F811
    """A fresh in-process board with a link that said HELLO."""
    link = make_link(make_device(module, trained))
    link.hello()
    return link


def same_state(a, b) -> None:
    """Two models hold the same weights and the same training state."""
    assert_same_weights(list(a.hidden), list(b.hidden))
    ta, tb = a.training, b.training
    assert (ta.epochs, ta.batch_counter, ta.gamma, ta.error_rate, ta.counters, ta.resume) == \
        (tb.epochs, tb.batch_counter, tb.gamma, tb.error_rate, tb.counters, tb.resume)


# ---------------------------------------------------------------------- in process


@pytest.fixture(scope="module")
def uninterrupted(trained, device_module, net_model, data):  # noqa: F811
    """One 3-epoch stream in batches of 40 (25 an epoch), pulled at its end."""
    _, X, y = data
    train = EncodedData(X, y)
    assert len(train) == 1000
    link = connected(device_module, trained)
    stream_train(link, net_model, train, 3, 40)
    whole = pull_model(link, net_model, 40)
    t = whole.training
    assert t.epochs == net_model.training.epochs + 3
    assert (t.resume.epoch, t.resume.samples, t.resume.errors) == (t.epochs, 0, 0)  # the next epoch, untouched
    return train, whole


def interrupted(module, trained, model, train, epochs: int, batches: int, tmp_path):  # noqa: F811
    """``stream_train`` stopped by the host after ``batches`` batches, then pulled and saved."""
    link = connected(module, trained)
    with pytest.raises(HostCrash):
        stream_train(link, model, train, epochs, 40, on_batch=crash_after(batches))
    link.hello()  # a new host session on the same board, as `bep-mcu pull` opens
    pulled = pull_model(link, model, 40)
    assert_same_weights(list(pulled.hidden), [link.read_hidden(k, s) for k, s in
                                               enumerate(model.spec.layer_shapes())])
    loaded = modelio.load(saved(pulled, tmp_path / f"pulled-{pulled.training.batch_counter}.npz"))
    assert loaded.training.resume == pulled.training.resume  # the record survives the file
    return loaded


def resumed(module, trained, model, train, epochs: int):  # noqa: F811
    """``model`` streamed on a fresh board, checked against the host, and pulled."""
    link = connected(module, trained)
    result, _ = stream_train(link, model, train, epochs, check_host=True)
    assert result.bit_exact, result.first_divergence
    return result, pull_model(link, model)


def test_interrupted_stream_continues_exactly(uninterrupted, trained, device_module, net_model,  # noqa: F811
                                              tmp_path):
    """The host dies after batch 37 (epoch 2, sample 480), then the resumed run dies again
    after 5 more batches (sample 680): both pulled records, streamed on fresh boards, end
    where one uninterrupted run ends."""
    train, whole = uninterrupted
    model = net_model
    for epochs, batches, sample in ((3, 37, 480), (2, 5, 680)):
        model = interrupted(device_module, trained, model, train, epochs, batches, tmp_path)
        resume = model.training.resume
        assert (model.training.epochs, resume.samples) == (net_model.training.epochs + 1, sample)
        assert 0 < resume.errors < sample
        assert model.training.batch_counter == net_model.training.batch_counter + 25 + sample // 40
    result, final = resumed(device_module, trained, model, train, 2)
    assert result.resumed == {"epoch": net_model.training.epochs + 2, "sample": 680} and result.batches == 8 + 25
    same_state(final, whole)


def test_a_host_dead_after_an_epochs_last_batch_continues_exactly(uninterrupted, trained, device_module,  # noqa: F811
                                                                   net_model, tmp_path):  # noqa: F811
    """Stopped after batch 25, the last of epoch 1, before the next SET_EPOCH: the record
    holds the whole epoch, whose end the resumed run judges before it trains on."""
    train, whole = uninterrupted
    model = interrupted(device_module, trained, net_model, train, 3, 25, tmp_path)
    assert (model.training.epochs, model.training.resume.samples) == (net_model.training.epochs, 1000)
    result, final = resumed(device_module, trained, model, train, 3)
    assert result.batches == 50
    same_state(final, whole)


def test_a_board_without_an_epoch_record_is_not_pulled(trained, device_module, net_model):  # noqa: F811
    """INIT without a SET_EPOCH (a host killed while it loaded the weights): nothing to continue."""
    link = connected(device_module, trained)
    link.init(net_model.training.seed, net_model.training.batch_counter)
    with pytest.raises(BoardError, match=r"^in-process: the board holds no epoch record"):
        pull_model(link, net_model)


def test_a_model_trained_since_the_firmware_streams_from_its_own_weights(trained, device_module, net_model,  # noqa: F811
                                                                        data):  # noqa: F811
    """The board's flash tables hold the weights the firmware was built with; a model with
    other weights (trained or pulled since) must train from its own: the host engine,
    starting from the model, stays bit-exact with the board."""
    _, X, y = data
    other = net_model.replace(hidden=tuple(np.random.default_rng(5).integers(-40, 40, h.shape).astype(h.dtype)
                                           for h in net_model.hidden))
    link = connected(device_module, trained)
    result, _ = stream_train(link, other, EncodedData(X[:200], y[:200]), 1, 20, check_host=True)
    assert result.bit_exact, result.first_divergence


def test_pulled_q_must_follow_the_models_schedule(trained, device_module, net_model, data):  # noqa: F811
    """A board whose Q is not what the model's schedule gives at the record's level (another
    model's p_r, or set by hand) is not taken for a stream of this model."""
    link = connected(device_module, trained)
    link.init(net_model.training.seed, net_model.training.batch_counter)
    link.set_epoch(list(net_model.training.gamma), [1 << 16, 1 << 16], EpochStart(net_model.training.epochs))
    with pytest.raises(BoardError, match=r"the board trains with Q \[65536, 65536\], this model's schedule"):
        pull_model(link, net_model)



def test_a_board_cut_short_while_a_layer_was_frozen_is_pulled(trained, device_module, net_model, data,  # noqa: F811
                                                               tmp_path):
    """`adapt --layers last` sends γ 0 for a frozen layer; a host killed then leaves it on the
    board, and the pulled model (whose γ must be at least 1) resumes that layer at the model's γ."""
    _, X, y = data
    link = connected(device_module, trained)
    stream_train(link, net_model, EncodedData(X[:100], y[:100]), 1, 20, layers="last")
    start = EpochStart(net_model.training.epochs)
    q = [row[start.level] for row in q_table(net_model.spec, net_model.hyper.p_r)]
    sent = learning(net_model.training.gamma, "last")  # what the host sends each epoch
    assert sent[0] == 0 and sent[1] > 0
    link.set_epoch(sent, q, start)
    pulled = pull_model(link, net_model)
    assert pulled.training.gamma == (net_model.training.gamma[0], sent[1])
    assert_same_weights([pulled.hidden[0]], [net_model.hidden[0]])
    modelio.load(saved(pulled, tmp_path / "pulled.npz"))  # a model file like any other


# ---------------------------------------------------------------------- counters wrap at 2^32


@pytest.fixture(scope="module")
def small():
    d = load_dataset(DATA)
    model = fit(d.X_train[:300], d.y_train[:300], hidden=(32,), epochs=1, seed=2)
    return model, EncodedData(model.encode(d.X_train[:200]), model.encode_labels(d.y_train[:200]))


def test_counters_wrap_inside_an_epoch_as_on_the_board(small, tmp_path):
    """The C twin restored with counters just below 2^32 (a board that learnt for weeks) and
    the numpy engine with the same counters train three epochs with the same γ and Q: every
    weight, prediction and counter equal after every batch across the wrap, and each
    epoch's error count (which sets the next Q and judges stalls) is the true one."""
    model, train = small
    t = model.training
    near = Counters(samples=2**32 - 150, triggered=2**32 - 3, errors=2**32 - 5, updates=2**32 - 7,
                    batches=t.batch_counter)
    schedule = IntegerSchedule(model.spec, list(t.gamma), model.hyper.p_r, model.hyper.patience, model.hyper.growth,
                               gamma_caps(model.spec, model.hyper, model.params.gamma), t.error_rate)
    record = {"epoch": t.epochs, **schedule.state(), "start_errors": near.errors, "start_samples": near.samples}
    twin = TwinTrainer(Twin(generate(model, tmp_path / "gen", "net"), model.spec), t.seed, t.batch_counter)
    assert twin.twin.restore(snapshot.compose(model.config_hash32, t.seed, near, t.gamma, schedule.q(), record,
                                              model.hidden, twin.twin.calibration(),
                                              classes=model.spec.n_classes)) == 0
    host = NumpyTrainer(model)
    host.net.counters = replace(near)
    wrong = []
    report = run_epochs([host, twin], train, Plan.continuing(model, 3, 20, stall_signal="training"),
                        on_batch=lambda k, index, preds: wrong.append(int(np.sum(preds[0] != train.y[index]))))
    assert report.bit_exact, report.divergence
    per_epoch = [sum(wrong[e * 10:(e + 1) * 10]) for e in range(3)]
    assert sum(wrong[:8]) > 5  # the error counter wrapped inside the first epoch, as the sample counter did
    assert [round(rec["train_error"] * len(train)) for rec in report.history] == per_epoch
    after = twin.counters()
    assert after.samples == (near.samples + 600) % 2**32 < near.samples
    assert after.errors == (near.errors + sum(per_epoch)) % 2**32


def test_an_epoch_a_board_cannot_count_is_refused(small):
    """A board moves its epoch marks at BEP_EPOCH_MAX_SAMPLES: the host never schedules such an epoch."""
    model, _ = small
    assert abi.runtime_define("BEP_EPOCH_MAX_SAMPLES") == EPOCH_MAX_SAMPLES
    n = EPOCH_MAX_SAMPLES
    huge = EncodedData(np.broadcast_to(np.float32(1), (n, model.spec.n_inputs)), np.broadcast_to(np.int64(0), (n,)))
    with pytest.raises(BEPError, match=rf"^an epoch of {n} samples: a board's epoch counts fewer than {n}$"):
        run_epochs([NumpyTrainer(model)], huge, Plan.continuing(model, 1))


# ---------------------------------------------------------------------- the CLI, QEMU, a real kill


def run(*args, timeout=600):
    return subprocess.run(["bep-mcu", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def last_json(out) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


class KillAfterBatches:
    """A TCP proxy between ``bep-mcu stream`` and the board that kills the CLI (SIGKILL) as
    soon as the board answered its ``n``-th TRAIN frame; nothing the CLI sends after that
    frame reaches the board. So the board stops after exactly n batches (one frame each),
    whatever the timing."""

    def __init__(self, board_url: str, n: int) -> None:
        host, port = board_url.removeprefix("socket://").rsplit(":", 1)
        self.board, self.n = (host, int(port)), n
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.trains, self.killed = 0, False
        self.proc: subprocess.Popen | None = None

    def stream(self, *args) -> subprocess.CompletedProcess:
        thread = threading.Thread(target=self._relay, daemon=True)
        thread.start()
        self.proc = subprocess.Popen(["bep-mcu", "stream", *map(str, args), "--port", self.url], text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = self.proc.communicate(timeout=600)
        thread.join(10)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, stdout, stderr)

    def _relay(self) -> None:
        cli, _ = self.server.accept()
        board = socket.create_connection(self.board)
        up, down = P.FrameReader(P.MAX_MAX_PAYLOAD), P.FrameReader(P.MAX_MAX_PAYLOAD)
        held = None  # the seq of the n-th TRAIN frame, once it went to the board
        with cli, board, self.server:
            while True:
                ready, _, _ = select.select([cli, board], [], [], 30)
                if not ready:
                    return
                if cli in ready:
                    data = cli.recv(65536)
                    if not data:
                        return
                    if held is None:  # the host sends one request, then waits: a chunk never holds the next
                        board.sendall(data)
                        for f in up.feed(data):
                            if isinstance(f, P.Frame) and f.type == P.Msg.TRAIN:
                                self.trains += 1
                                held = f.seq if self.trains == self.n else None
                if board in ready:
                    data = board.recv(65536)
                    if not data:
                        return
                    cli.sendall(data)
                    if held is not None and any(isinstance(f, P.Frame) and f.type == P.Msg.TRAIN | P.REPLY_BIT
                                                and f.seq == held for f in down.feed(data)):
                        os.kill(self.proc.pid, signal.SIGKILL)  # the host crashes, the board trained n batches
                        self.killed = True
                        return


@pytest.fixture(scope="module")
def cli_setup(tmp_path_factory):
    d = load_dataset(DATA)
    root = tmp_path_factory.mktemp("resume")
    model = saved(fit(d.X_train, d.y_train, hidden=(48, 32), epochs=2, seed=1), root / "m.npz")
    return model, str(build(modelio.load(model), "mps2-an386", root / "fw").elf), root


@needs_arm
@needs_qemu
def test_stream_killed_then_pulled_continues_exactly(cli_setup):
    """`bep-mcu stream --epochs 3` killed right after batch 137 (epoch 2, sample 370); `pull`,
    then `stream pulled.npz --epochs 2 --check-host`: bit-exact with the host, and the board
    ends with the weights, counters, γ and epoch record of one uninterrupted run. Continued
    in other batches (a stop inside one), the run is still bit-exact and warns."""
    model, elf, root = cli_setup
    spec, bs = modelio.load(model).spec, modelio.load(model).training.batch_size
    assert bs == 10 and P.samples_per_frame(-(-spec.n_inputs // 32), P.MAX_PAYLOAD) >= bs  # one TRAIN frame a batch
    with EmulatedBoard(elf, "mps2-an386") as url:
        last_json(run("stream", model, "--port", url, "--dataset", DATA, "--epochs", 3, "--json"))
        last_json(run("pull", model, "--port", url, "--out", root / "whole.npz", "--json"))

        proxy = KillAfterBatches(url, 137)
        out = proxy.stream(model, "--dataset", DATA, "--epochs", 3, "--json")
        assert proxy.killed and out.returncode == -signal.SIGKILL, out.stderr
        pulled = last_json(run("pull", model, "--port", url, "--out", root / "pulled.npz", "--json"))
        assert (pulled["epochs"], pulled["epoch_samples"]) == (modelio.load(model).training.epochs + 1, 370)

        out = run("stream", root / "pulled.npz", "--port", url, "--dataset", DATA, "--epochs", 2, "--check-host",
                  "--json")
        result = last_json(out)
        assert result["bit_exact"] is True and result["batches"] == 63 + 100
        assert result["resumed"] == {"epoch": pulled["epochs"] + 1, "sample": 370}
        assert "continuing epoch" in out.stderr and "warning" not in out.stderr
        last_json(run("pull", root / "pulled.npz", "--port", url, "--out", root / "final.npz", "--json"))
        # continued in batches of 100, sample 370 lies inside one: it trains 30 samples first, and says so
        out = run("stream", root / "pulled.npz", "--port", url, "--dataset", DATA, "--epochs", 1, "--batch-size", 100,
                  "--check-host", "--json")
        assert last_json(out)["bit_exact"] is True and last_json(out)["batches"] == 1 + 6
        assert "warning: sample 370 lies inside a batch of 100" in out.stderr
    same_state(modelio.load(root / "final.npz"), modelio.load(root / "whole.npz"))


@needs_arm
@needs_qemu
def test_stream_trains_the_models_weights_not_the_firmwares(cli_setup):
    """A model trained on the host since the firmware was built (same network, other weights)."""
    model, elf, root = cli_setup
    newer = root / "newer.npz"
    assert run("train", "--dataset", DATA, "--init-from", model, "--epochs", 1, "--out", newer).returncode == 0
    assert not all(np.array_equal(a, b) for a, b in zip(modelio.load(newer).hidden, modelio.load(model).hidden))
    with EmulatedBoard(elf, "mps2-an386") as url:
        result = last_json(run("stream", newer, "--port", url, "--dataset", DATA, "--epochs", 1, "--check-host",
                               "--json"))
    assert result["bit_exact"] is True
