"""A board that learns on its own, in the host twin: the C encoder, the on-device epoch
schedule, the sample order and snapshots, each against its Python definition.

* Encoder: for every binariser (median, median:global, thermometer quantile and
  uniform, passthrough ±1 and 0/1), integer and scaled inputs of every input type,
  dropped constant bits and RNN windows (dividing the series or padded), the C encoder's
  packed words equal ``pack(model.encode(V / scale))`` and ``inputformat.encode(V)``
  on random device values and on every threshold's neighbours and the type's extremes;
  an RNN ring buffer encodes the last ``length`` points of a stream.
* Schedule: numpy (``IntegerSchedule`` in ``run_epochs``) and the C scheduling itself
  (``bep_<net>_end_epoch``) through whole runs with stalls, γ growth and reinforcement:
  the same γ and Q every epoch, the same weights after every batch.
* Sample order: ``bep_sample_index`` equals ``rng.sample_order``.
* Snapshots: the bytes equal the host's composition; a restore continues bit-exactly;
  foreign, damaged (every byte flipped in turn) and short snapshots are refused with
  their status code and leave the state untouched.
"""

from __future__ import annotations

import zlib
from fractions import Fraction

import numpy as np
import pytest

from bep_mcu.cgen import abi, snapshot
from bep_mcu.cgen.codegen import generate
from bep_mcu.cgen.status import STATUS
from bep_mcu.data import inputformat
from bep_mcu.data.datasets import load_dataset
from bep_mcu.data.binarize import SPEC_FORMS
from bep_mcu.data.inputformat import INPUT_TYPES, InputFormat
from bep_mcu.engine import bits, rng
from bep_mcu.engine.schedule import Q_LEVELS, IntegerSchedule, ProgressBudget, ProgressMarks, error_level, grown, \
    rate_level
from bep_mcu.engine.spec import NetSpec
from bep_mcu.training import EncodedData, NumpyTrainer, Plan, run_epochs
from bep_mcu.twin.cffi_twin import Twin, TwinTrainer

from .conftest import assert_same_weights, blobs, fit, series

CODES = {name: value for name, value, _ in STATUS}
NOISY = "prototypes:classes=4,features=100,samples=1200"


def twin_of(model, tmp_path, fmt: InputFormat | None = None, name: str = "net") -> Twin:
    return Twin(generate(model, tmp_path / f"gen-{name}", name, fmt), model.spec)


def probe_values(model, fmt: InputFormat, n: int, seed: int) -> np.ndarray:
    """Random device values plus every threshold, its neighbours and the type's extremes."""
    g = np.random.default_rng(seed)
    enc = model.encoder
    shape = (n, enc.n_features) if enc.model == "mlp" else (n, enc.length, enc.n_features)
    V = g.integers(fmt.lo, fmt.hi + 1, shape)
    counts, T = inputformat.device_thresholds(enc, fmt)
    edges = np.unique(np.clip(np.concatenate([T - 1, T, T + 1, [fmt.lo, fmt.hi]]), fmt.lo, fmt.hi))
    flat = V.reshape(-1)
    flat[: min(len(flat), 8 * len(edges))] = np.resize(edges, min(len(flat), 8 * len(edges)))
    return flat.reshape(shape)


def assert_encoder_exact(model, fmt: InputFormat, tmp_path, n: int = 300, seed: int = 0) -> Twin:
    twin = twin_of(model, tmp_path, fmt)
    V = probe_values(model, fmt, n, seed)
    words = twin.encode(V.reshape(n, -1))
    assert np.array_equal(words, bits.pack_inputs(inputformat.encode(model.encoder, fmt, V)))
    assert np.array_equal(words, bits.pack_inputs(model.encode(fmt.to_real(V))))
    return twin


# ---------------------------------------------------------------------- encoder


# Every binariser form (passthrough: test_passthrough_inputs) and every input type, each
# type at a scale that uses its range (the data's values are of order 10).
BINARISERS = [form.split(" ")[0].replace("N", str(4 + i)) for i, form in enumerate(SPEC_FORMS)
              if form != "passthrough" and not form.endswith(":point")]  # :point: an rnn's (test_rnn_windows...)
SCALES = {"int8": 10, "uint8": 4, "int16": 1000, "uint16": 1, "int32": 100000}
assert set(SCALES) == set(INPUT_TYPES)


@pytest.mark.parametrize("binarize", BINARISERS)
@pytest.mark.parametrize("input_type,scale", SCALES.items())
def test_encoder_is_bit_exact_for_every_binariser_and_type(tmp_path, binarize, input_type, scale):
    X, y = blobs(240, features=5)
    if input_type.startswith("u"):
        X = X - X.min() + 3.0  # unsigned device values: shift the data above zero
    model = fit(X, y, hidden=(16,), epochs=1, binarize=binarize)
    fmt = inputformat.choose(model.encoder, X, input_type, (scale,) * 5)
    assert_encoder_exact(model, fmt, tmp_path)


def test_integer_data_is_exact_at_scale_one_in_the_narrowest_type(tmp_path):
    """Digits-like counts 0..16: the default format is int8 at scale 1, and the device
    encodes the training data exactly as the model does (no value near a threshold)."""
    g = np.random.default_rng(3)
    y = np.arange(400) % 4
    X = np.clip(np.rint(g.normal(4 + 3 * y[:, None], 2.5, (400, 12))), 0, 16)
    X[:, 5] = 7  # a constant feature: all its bits are dropped
    model = fit(X, y, hidden=(24,), epochs=1, binarize="thermometer:6")
    fmt = inputformat.choose(model.encoder, X)
    assert fmt == InputFormat("int8", (1,) * 12)
    counts, _ = inputformat.device_thresholds(model.encoder, fmt)
    assert counts[5] == 0 and counts.sum() == model.spec.n_inputs < 12 * 6
    rep = inputformat.report(model.encoder, fmt, X)
    assert rep["near_threshold_values"] == rep["differing_bits"] == rep["saturated_values"] == 0
    twin = assert_encoder_exact(model, fmt, tmp_path)
    assert np.array_equal(twin.encode(fmt.to_device(X)), bits.pack_inputs(model.encode(X)))


@pytest.mark.parametrize("zero_one", [False, True])
def test_passthrough_inputs(tmp_path, zero_one):
    g = np.random.default_rng(1)
    X = np.where(g.random((200, 40)) < 0.5, 1.0, 0.0 if zero_one else -1.0)
    X[:, 7] = 1.0  # constant: dropped
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    model = fit(X, y, hidden=(16,), epochs=1, binarize="passthrough")
    assert model.encoder.binarizer.spec() == "passthrough" and model.spec.n_inputs == 39
    fmt = inputformat.choose(model.encoder, X)
    assert fmt.input_type == "int8"
    twin = twin_of(model, tmp_path, fmt)
    assert np.array_equal(twin.encode(fmt.to_device(X)), bits.pack_inputs(model.encode(X)))
    # the device reads any value: the bit is +1 only for exactly the scale's 1
    V = g.integers(-128, 128, (50, 40))
    assert np.array_equal(twin.encode(V), bits.pack_inputs(inputformat.encode(model.encoder, fmt, V)))


@pytest.mark.parametrize("binarize", ["thermometer:3", "thermometer:3:point"])
@pytest.mark.parametrize("length,window,channels", [(24, 4, 1), (25, 4, 2), (30, 7, 3)])
def test_rnn_windows_are_bit_exact(tmp_path, length, window, channels, binarize):
    X, y = series(120, length, channels)
    model = fit(X, y, model="rnn", hidden=(12,), epochs=1, window=window, binarize=binarize)
    fmt = inputformat.choose(model.encoder, X)
    assert fmt.input_type == "int16" and len(fmt.scales) == channels
    _, T = inputformat.device_thresholds(model.encoder, fmt)
    assert len(T) == model.encoder.kept_bits * (length if binarize.endswith(":point") else 1)
    assert_encoder_exact(model, fmt, tmp_path, n=80)


def test_thresholds_per_time_point_differ_by_point_and_reach_c(tmp_path):
    """thermometer:N:point: point t's bits compare with point t's own thresholds, in numpy and in C;
    a series of one shape (the same values at every point but one) gets bits that differ by point."""
    X, y = series(100, 16, 1)
    model = fit(X, y, model="rnn", hidden=(12,), epochs=1, window=8, binarize="thermometer:4:point")
    fmt = inputformat.choose(model.encoder, X, "int16", (1000,))
    twin = assert_encoder_exact(model, fmt, tmp_path, n=60)
    _, T = inputformat.device_thresholds(model.encoder, fmt)
    T = T.reshape(16, -1)
    assert len(np.unique(T[:, 0])) > 1  # not shared over time
    V = np.repeat(T[:, :1].T, 2, axis=0)  # each point at its own lowest threshold: its first bit +1 ...
    V[1, 3] -= 1  # ... but point 3 of the second series, one below it
    want = inputformat.encode(model.encoder, fmt, V)
    assert np.array_equal(twin.encode(V), bits.pack_inputs(want))
    first = want[:, :, :-model.encoder.bias_bits].reshape(2, 16, -1)[:, :, 0]  # bit 0 of every point
    assert first[0].min() == 1 and first[1, 3] == -1 and np.delete(first[1], 3).min() == 1


@pytest.mark.parametrize("binarize", ["thermometer:8", "thermometer:8:point"])
def test_rnn_ring_buffer_encodes_the_last_points_of_a_stream(tmp_path, binarize):
    X, y = series(60, 20, 2)
    model = fit(X, y, model="rnn", hidden=(10,), epochs=1, window=6, binarize=binarize)  # 4 steps, the last padded
    fmt = inputformat.choose(model.encoder, X)
    twin = twin_of(model, tmp_path, fmt)
    ffi, lib = twin.ffi, twin.lib
    ring = ffi.new("bep_net_ring_t *")
    x = np.zeros(twin.gen.plan.input_words, dtype=np.uint32)
    xp = ffi.from_buffer("uint32_t[]", x)
    stream = fmt.to_device(np.concatenate(list(X[:3]), axis=0))  # three series back to back: 60 points
    for t, point in enumerate(stream):
        p = np.ascontiguousarray(point, dtype=np.int16)
        assert lib.bep_net_ring_push(ring, ffi.from_buffer("bep_net_input_t[]", p), 2) == CODES["OK"]
        status = lib.bep_net_encode_ring(ring, xp, x.size)
        if t + 1 < 20:
            assert status == CODES["ERR_SIZE"]
            continue
        assert status == CODES["OK"]
        window = stream[t + 1 - 20:t + 1][None]
        assert np.array_equal(x, bits.pack_inputs(inputformat.encode(model.encoder, fmt, window))[0]), t
    assert lib.bep_net_ring_push(ring, ffi.from_buffer("bep_net_input_t[]", p), 1) == CODES["ERR_SIZE"]


def test_labels_reach_c_exactly(tmp_path):
    X, y = blobs(150, classes=3)
    names = np.array(['say "hi"', "line\nbreak */ int x;", "naïve ☃"])
    model = fit(X, names[y], hidden=(8,), epochs=1)
    twin = twin_of(model, tmp_path)
    got = [twin.ffi.string(twin.lib.bep_net_label(i)).decode() for i in range(3)]
    assert got == [str(c) for c in model.labels.tolist()]
    assert twin.ffi.string(twin.lib.bep_net_label(3)) == b""


def test_every_input_type_has_its_c_code():
    """The generator prints BEP_INPUT_<TYPE>; bep_encode.c decodes it by bits."""
    from bep_mcu.cgen import abi

    defines = abi.header_defines("templates", "runtime", "bep_encode.h")
    for name, (lo, _, ctype) in inputformat.INPUT_TYPES.items():
        code = defines[f"BEP_INPUT_{name.upper()}"]
        assert bool(code & defines["BEP_INPUT_UNSIGNED"]) == (lo == 0) and ctype == f"{name}_t"
        width = 32 if code & defines["BEP_INPUT_32BIT"] else 16 if code & defines["BEP_INPUT_16BIT"] else 8
        assert np.dtype(name).itemsize * 8 == width


def test_thresholds_beyond_the_type_are_refused():
    X, y = blobs(100, features=3)
    model = fit(X * 100, y, hidden=(8,), epochs=1, binarize="median")
    from bep_mcu.cli.common import parse_scale
    from bep_mcu.errors import BEPError

    with pytest.raises(BEPError, match="beyond int8.*wider --input-type or a smaller --input-scale"):
        inputformat.choose(model.encoder, None, "int8", (1000, 1000, 1000))
    with pytest.raises(BEPError, match="one integer in 1..1000000000 or 3 of them"):
        parse_scale("1,2", 3)
    assert parse_scale("7", 3) == (7, 7, 7)


# ---------------------------------------------------------------------- schedule


def test_integer_schedule_rule():
    spec = NetSpec("mlp", 64, (40, 10), 3)
    assert [error_level(e, 1000) for e in (0, 1, 2, 500, 999, 1000)] == [0, 0, 1, 128, 256, 256]
    assert rate_level(1.0) == Q_LEVELS and rate_level(0.0) == 0 and rate_level(0.5) == 128
    assert grown(3, Fraction(3, 2), 40) == 5 and grown(1, Fraction(3, 2), 40) == 2 and grown(30, Fraction(2), 40) == 40
    s = IntegerSchedule(spec, [5, 1], 0.5, patience=2, growth=Fraction(3, 2), cap=[7, 10])
    assert s.q() == [row[Q_LEVELS] for row in s.table] and all(q > 0 for q in s.q())
    s.end_epoch_counts(30, 100)  # first epoch: the best
    s.end_epoch_counts(60, 200)  # the same rate, not lower: a stall
    assert (s.stalled, s.gamma) == (1, [5, 1])
    s.end_epoch_counts(31, 100)
    assert (s.stalled, s.gamma) == (0, [7, 2])  # grown: ceil(5 * 3/2) = 8 capped at 7, ceil(1.5) = 2
    s.end_epoch_counts(29, 100)
    assert (s.best_errors, s.best_samples, s.level) == (29, 100, error_level(29, 100))
    assert s.q() == [row[error_level(29, 100)] for row in s.table]


@pytest.fixture(scope="module")
def noisy_model():
    data = load_dataset(NOISY)
    model = fit(data.X_train, data.y_train, hidden=(48, 24), epochs=1, patience=1, seed=4, binarize="passthrough")
    return model, EncodedData(model.encode(data.X_train), model.encode_labels(data.y_train))


@pytest.mark.parametrize("batch_size", [1, 25])
def test_schedule_is_bit_exact_numpy_twin_over_a_whole_run(noisy_model, tmp_path, batch_size):
    """The C schedules itself (end_epoch), the host runs IntegerSchedule: through 8
    epochs with a stall, γ growth and reinforcement both choose the same γ and Q every
    epoch and train to the same weights after every batch."""
    model, data = noisy_model
    twin = TwinTrainer(twin_of(model, tmp_path), model.training.seed, model.training.batch_counter, own_schedule=True)
    plan = Plan.continuing(model, 8, batch_size, stall_signal="training", sample_order="counter")
    report = run_epochs([NumpyTrainer(model), twin], data, plan)
    assert report.bit_exact, report.divergence
    host = [(rec["gamma"], rec["reinforce_q"]) for rec in report.history]
    assert [(s["gamma"], s["q"]) for s in twin.schedules] == host
    assert len({tuple(g) for g, _ in host}) >= 2, host  # γ grew on a stall
    assert len({tuple(q) for _, q in host}) >= 3 and all(q[0] > 0 for _, q in host)
    twin.twin.end_epoch()
    end = twin.twin.schedule()
    assert {k: end[k] for k in ("level", "stalled", "best_errors", "best_samples")} == report.schedule_states[-1]
    assert end["gamma"] == list(report.gamma) and end["epoch"] == model.training.epochs + 8


def test_end_epoch_refusals(noisy_model, tmp_path):
    model, data = noisy_model
    twin = twin_of(model, tmp_path)
    twin.init(model.training.seed)
    assert twin.lib.bep_net_end_epoch(twin._state_ptr, twin.state.nbytes) == CODES["ERR_STATE"]  # never started
    twin.start(model.training.seed)
    assert twin.lib.bep_net_end_epoch(twin._state_ptr, twin.state.nbytes) == CODES["ERR_ARG"]  # no sample yet
    assert twin.train_sample(data.packed[0], int(data.y[0])) >= 0
    triggered = twin.counters().triggered
    status = twin.lib.bep_net_end_epoch(twin._state_ptr, twin.state.nbytes)
    assert status == (CODES["ERR_BATCH_OPEN"] if triggered else CODES["OK"])
    twin.end_batch()
    assert twin.lib.bep_net_end_epoch(twin._state_ptr, twin.state.nbytes) == CODES["OK"]


def test_reset_counters_mid_epoch_counts_the_epoch_from_the_reset(noisy_model, tmp_path):
    """bep_<net>_reset_counters (the link's RESET_COUNTERS too) moves the schedule's
    epoch-start marks with the counters: the epoch is then judged on the samples since the
    reset. Before, a reset after many correct samples left the marks above the counters,
    the errors since them wrapped above the samples and the level indexed past the Q table."""
    model, data = noisy_model
    twin = twin_of(model, tmp_path)
    twin.start(model.training.seed)
    x, y = data.packed, data.y.astype(np.uint16)
    twin.train_batch(x[:300], y[:300])
    twin.reset_counters()
    twin.train_batch(x[300:340], y[300:340])
    c = twin.counters()
    assert c.samples == 40
    twin.end_epoch()
    assert twin.schedule()["level"] == error_level(c.errors, 40)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 17, 100, 1000, 4097, 70001])
def test_sample_order_is_the_same_permutation_in_c(noisy_model, tmp_path_factory, n):
    model, _ = noisy_model
    twin = twin_of(model, tmp_path_factory.mktemp("order"))
    twin.start(0xC0FFEE)
    epoch = model.training.epochs
    want = rng.sample_order(0xC0FFEE, epoch, n)
    assert sorted(want.tolist()) == list(range(n))
    positions = range(n) if n <= 5000 else np.random.default_rng(n).integers(0, n, 3000)
    assert [twin.sample_index(n, int(i)) for i in positions] == want[list(positions)].tolist()


def test_sample_order_depends_on_seed_and_epoch():
    base = rng.sample_order(1, 2, 500)
    for other in (rng.sample_order(2, 2, 500), rng.sample_order(1, 3, 500)):
        assert (other != base).mean() > 0.9
    assert rng.sample_order(5, 0, 10).tolist() == rng.sample_order(5, 0, 10).tolist()


# ---------------------------------------------------------------------- the training budget

MINIMA = (1, 2, 3, 5, 8, 12)


def test_budget_numbers_are_the_c_runtime_s():
    c = [abi.standalone_define(f"BEP_BUDGET_{n}") for n in ("GAIN_DIV", "MIN_WINDOW", "WINDOW_DIV", "CAP_FACTOR",
                                                          "MAX_MIN")]
    assert c == [ProgressMarks.GAIN_DIVISOR, ProgressBudget.MIN_WINDOW, ProgressBudget.WINDOW_DIVISOR,
                 ProgressBudget.CAP_FACTOR, ProgressBudget.MAX_MINIMUM]


class BudgetWatcher(TwinTrainer):
    """The C scheduling itself, asked after every epoch it closed what its budget says."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.verdicts: list[dict[int, bool]] = []

    def set_epoch(self, gamma, q, start=None) -> None:
        super().set_epoch(gamma, q, start)  # closes the previous epoch (bep_<net>_end_epoch)
        self.verdicts.append({m: self.twin.should_stop(m) for m in MINIMA})


def budget_states(twin: Twin) -> dict[str, int]:
    return {k: twin.schedule()[k] for k in snapshot.BUDGET_FIELDS}


def test_budget_is_bit_exact_numpy_twin_over_a_whole_run(noisy_model, tmp_path):
    """The C keeps the budget's epoch count and mark in its schedule state (end_epoch) and
    answers should_stop; the host replays ProgressBudget on the epochs' error counts: after
    each of 40 epochs the same three integers and, for every minimum, the same verdict,
    among them stops by the window (before the cap) and runs that go on past their minimum."""
    model, data = noisy_model
    twin = BudgetWatcher(twin_of(model, tmp_path), model.training.seed, model.training.batch_counter,
                         own_schedule=True)
    plan = Plan.continuing(model, 40, 25, stall_signal="training", sample_order="counter")
    report = run_epochs([NumpyTrainer(model), twin], data, plan)
    assert report.bit_exact, report.divergence
    twin.twin.end_epoch()
    twin.verdicts.append({m: twin.twin.should_stop(m) for m in MINIMA})
    states = [{k: s[k] for k in snapshot.BUDGET_FIELDS} for s in twin.schedules[1:]] + [budget_states(twin.twin)]
    budgets = {m: ProgressBudget(len(data), m) for m in MINIMA}
    host_states, host_verdicts = [], [{m: False for m in MINIMA}]  # before the first epoch: go on
    for rec in report.history:
        for b in budgets.values():
            b.end_epoch(round(rec["train_error"] * len(data)))
        host_states.append(budgets[1].state())
        host_verdicts.append({m: b.stop() for m, b in budgets.items()})
    assert states == host_states
    assert twin.verdicts == host_verdicts
    first_stop = {m: next((k for k, v in enumerate(host_verdicts) if v[m]), None) for m in MINIMA}
    assert any(k is not None and k < budgets[m].cap for m, k in first_stop.items()), first_stop  # by the window
    assert any(k is not None and k > m for m, k in first_stop.items()), first_stop  # on past the minimum
    assert len({s["marked_epoch"] for s in states}) >= 3  # the mark moved


def edited(snap: bytes, **fields: int) -> bytes:
    """A snapshot with header fields set, its CRC recomputed (so the checks behind it see them)."""
    b = bytearray(snap)
    for name, value in fields.items():
        off, size = snapshot.header_offsets()[name]
        b[off:off + size] = value.to_bytes(size, "little")
    b[-4:] = zlib.crc32(bytes(b[:-4])).to_bytes(4, "little")
    return bytes(b)


@pytest.fixture(scope="module")
def budget_snapshot(noisy_model, tmp_path_factory):
    """A snapshot after two epochs: the budget counts 2."""
    model, data = noisy_model
    twin, _, _ = trained_twin(model, data, tmp_path_factory.mktemp("budget"))
    snap = twin.twin.snapshot()[1]
    assert budget_states(twin.twin)["budget_epochs"] == 2
    return snap


def test_budget_rule_at_its_edges_is_the_hosts(noisy_model, budget_snapshot, tmp_path):
    """Restored budget states at the edges of the window, the minimum and the cap (up to the
    largest minimum and count, where 4 * E0 exceeds 32 bits): bep_should_stop says what
    ProgressBudget.stop says."""
    model, data = noisy_model
    twin = twin_of(model, tmp_path)
    twin.start(1)
    checked = 0
    for epochs in (1, 9, 10, 11, 12, 13, 47, 48, 49, 2**31 - 1, 2**31, 2**32 - 1):
        for marked in {1, epochs, epochs - 9, epochs - 10, epochs - 11, epochs - 2**30}:
            if not 1 <= marked <= epochs:
                continue
            assert twin.restore(edited(budget_snapshot, budget_epochs=epochs, marked_epoch=marked)) == CODES["OK"]
            for minimum in (1, 2, 3, 11, 12, 13, 40, 41, 44, 2**30, 2**31 - 1, 2**31):
                host = ProgressBudget(len(data), minimum)
                host.epochs, host.marked_epoch = epochs, marked
                assert twin.should_stop(minimum) == host.stop(), (epochs, marked, minimum)
                checked += 1
    assert checked > 500


def test_budget_marks_an_epoch_exactly_at_the_gain(noisy_model, budget_snapshot, tmp_path):
    """One more epoch from the snapshot marks when its error count is at least the gain (1 % of
    the samples) below the marked count, and only then: the host's rule to the count."""
    model, data = noisy_model
    gain = ProgressMarks(len(data)).gain
    base = snapshot.header_offsets()["marked_epoch"]
    marked_epoch = int.from_bytes(budget_snapshot[base[0]:base[0] + 4], "little")

    def one_epoch(marked_errors: int, name: str) -> tuple[int, dict]:
        twin = twin_of(model, tmp_path / name)
        twin.start(3)
        assert twin.restore(edited(budget_snapshot, marked_errors=marked_errors)) == CODES["OK"]
        before = twin.counters().errors
        order = rng.sample_order(model.training.seed, model.training.epochs + 2, len(data))
        for i in range(0, len(order), 20):
            twin.train_batch(data.packed[order[i:i + 20]], data.y[order[i:i + 20]].astype(np.uint16))
        errors = twin.counters().errors - before
        twin.end_epoch()
        return errors, budget_states(twin)

    errors, state = one_epoch(len(data), "far")
    assert state == {"budget_epochs": 3, "marked_epoch": 3, "marked_errors": errors}
    assert one_epoch(errors + gain, "at")[1] == {"budget_epochs": 3, "marked_epoch": 3, "marked_errors": errors}
    assert one_epoch(errors + gain - 1, "short")[1] == {"budget_epochs": 3, "marked_epoch": marked_epoch,
                                                       "marked_errors": errors + gain - 1}


@pytest.mark.parametrize("fields, status", [
    ({"budget_epochs": 0, "marked_epoch": 0, "marked_errors": 0}, "OK"),  # before the first epoch
    ({"budget_epochs": 2**32 - 1, "marked_epoch": 2**32 - 1, "marked_errors": 2**31 - 1}, "OK"),
    ({"budget_epochs": 7, "marked_epoch": 1, "marked_errors": 0}, "OK"),
    ({"budget_epochs": 0, "marked_epoch": 1, "marked_errors": 0}, "ERR_CORRUPT"),  # a mark before any epoch
    ({"budget_epochs": 0, "marked_epoch": 0, "marked_errors": 1}, "ERR_CORRUPT"),
    ({"budget_epochs": 7, "marked_epoch": 0, "marked_errors": 0}, "ERR_CORRUPT"),  # no mark after an epoch
    ({"budget_epochs": 7, "marked_epoch": 8, "marked_errors": 0}, "ERR_CORRUPT"),  # a mark after the count
    ({"budget_epochs": 7, "marked_epoch": 7, "marked_errors": 2**31}, "ERR_CORRUPT"),  # more than an epoch holds
    ({"budget_epochs": 7, "marked_epoch": 2**32 - 1, "marked_errors": 2**32 - 1}, "ERR_CORRUPT"),
])
def test_restored_budget_states_are_range_checked(noisy_model, budget_snapshot, tmp_path, fields, status):
    model, _ = noisy_model
    twin = twin_of(model, tmp_path)
    twin.start(5)
    before = twin.state.copy()
    assert twin.restore(edited(budget_snapshot, **fields)) == CODES[status]
    if status == "OK":
        assert budget_states(twin) == fields
    else:
        assert np.array_equal(twin.state, before)


def test_should_stop_refusals(noisy_model, tmp_path):
    model, _ = noisy_model
    twin = twin_of(model, tmp_path)
    out = twin.ffi.new("uint32_t *")

    def status(minimum: int, where=out) -> int:
        return twin.lib.bep_net_should_stop(twin._state_ptr, twin.state.nbytes, minimum, where)

    twin.init(1)
    assert status(5) == CODES["ERR_STATE"]  # the schedule never started
    twin.start(1)
    assert status(5) == CODES["OK"] and out[0] == 0
    assert status(0) == CODES["ERR_ARG"] and status(2**31 + 1) == CODES["ERR_ARG"]
    assert status(5, twin.ffi.NULL) == CODES["ERR_NULL"]


# ---------------------------------------------------------------------- snapshots


def trained_twin(model, data, tmp_path, epochs: int = 2):
    twin = TwinTrainer(twin_of(model, tmp_path), model.training.seed, model.training.batch_counter, own_schedule=True)
    host = NumpyTrainer(model)
    plan = Plan.continuing(model, epochs, 20, stall_signal="training", sample_order="counter")
    report = run_epochs([host, twin], data, plan)
    assert report.bit_exact
    twin.twin.end_epoch()
    return twin, host, report


def test_snapshot_bytes_equal_the_host_composition(noisy_model, tmp_path):
    model, data = noisy_model
    twin, host, report = trained_twin(model, data, tmp_path)
    status, snap = twin.twin.snapshot()
    assert status == CODES["OK"]
    c = host.counters()
    marks = ProgressMarks(len(data))
    for rec in report.history:
        marks.end_epoch(round(rec["train_error"] * len(data)))
    state = {**report.schedule_states[-1], **marks.state(), "epoch": model.training.epochs + 2,
             "start_errors": c.errors, "start_samples": c.samples}
    want = snapshot.compose(model.config_hash32, model.training.seed, c, report.gamma, twin.twin.schedule()["q"],
                            state, host.hidden_weights(), twin.twin.calibration(), classes=model.spec.n_classes)
    assert snap == want and zlib.crc32(snap[:-4]) == int.from_bytes(snap[-4:], "little")


def test_restore_continues_bit_exactly(noisy_model, tmp_path):
    """Snapshot after two epochs; a fresh state (other seed, initial weights) restored
    from it trains the next two epochs exactly like the board that never stopped."""
    model, data = noisy_model
    twin, _, _ = trained_twin(model, data, tmp_path)
    _, snap = twin.twin.snapshot()
    fresh = TwinTrainer(twin_of(model, tmp_path / "b"), 99, 7, own_schedule=True)
    fresh.name = "restored"
    assert fresh.twin.restore(snap) == CODES["OK"]
    assert fresh.twin.snapshot()[1] == snap
    assert_same_weights(fresh.hidden_weights(), twin.hidden_weights())
    twin.schedules, fresh.schedules = [], []  # both closed their last epoch: each schedules the next itself
    later = Plan.continuing(model, 2, 20, stall_signal="training", sample_order="counter",
                            first_epoch=model.training.epochs + 2)
    report = run_epochs([twin, fresh], data, later)
    assert report.bit_exact, report.divergence
    assert twin.schedules == fresh.schedules and len(twin.schedules) == 2
    for t in (twin, fresh):
        t.twin.end_epoch()
    assert twin.twin.snapshot()[1] == fresh.twin.snapshot()[1]


def test_refused_snapshots_leave_the_state_untouched(noisy_model, tmp_path):
    model, data = noisy_model
    twin, _, _ = trained_twin(model, data, tmp_path)
    _, snap = twin.twin.snapshot()
    target = twin_of(model, tmp_path / "t")
    target.start(5)
    before = target.state.copy()

    def refused(blob: bytes, code: str) -> None:
        assert target.restore(blob) == CODES[code]
        assert np.array_equal(target.state, before)

    for i in range(len(snap)):  # every byte flipped in turn
        damaged = bytearray(snap)
        damaged[i] ^= 0x5A
        refused(bytes(damaged), "ERR_CORRUPT")
    for cut in (0, 3, 95, 96, len(snap) - 1):
        refused(snap[:cut], "ERR_SIZE")
    other = fit(*blobs(200, features=7), hidden=(48, 24), epochs=1)  # another configuration
    foreign_twin = twin_of(other, tmp_path / "o")
    foreign_twin.start(1)
    refused(foreign_twin.snapshot()[1], "ERR_FOREIGN")
    # a snapshot longer than the buffer it is written to
    assert twin.twin.snapshot(len(snap) - 1)[0] == CODES["ERR_SIZE"]
    assert target.restore(snap + b"extra") == CODES["OK"]  # trailing bytes (a flash page) are ignored
