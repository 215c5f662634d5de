"""Label-free recalibration: the board's input thresholds follow the raw values it sees
(bep_calibrate.c, data/recalibration.py), numpy and the C twin bit for bit.

* After thousands of drifted samples (gain, offset, noise; then values pinned at the input
  type's limits) the C's thresholds and accumulators equal numpy's, and so do the bits each
  encodes, for every binariser that has thresholds (median, median:global, thermometer
  quantile and uniform) and every input type; thresholds stay within the type and in order
  within each feature.
* Series: every point updates its channel's thresholds in time order, whether the board
  passes whole series or one point at a time; the ring buffer encodes with the followed
  thresholds.
* Interleaved with supervised training on the board (calibrate, encode with the followed
  thresholds, train): the same weights as numpy after every batch.
* The thresholds follow quantiles: on the training distribution they stay where they are;
  after a monotone drift the share of values below each one returns to its training share.
* State: until the first value the model's thresholds are in effect; reset returns to them;
  bad arguments are refused; binary inputs and model files without the training statistics
  follow nothing. Snapshots carry the thresholds (bytes equal to the host's composition; a
  restore continues bit-exactly) and a restore refuses hostile ones, the state untouched.
* Model files keep the training statistics; forged ones are refused in one line.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib

import numpy as np
import pytest

from bep_mcu import modelio
from bep_mcu.cgen import snapshot
from bep_mcu.cgen.codegen import generate
from bep_mcu.cgen.status import STATUS
from bep_mcu.data import inputformat, recalibration
from bep_mcu.data.recalibration import Calibration
from bep_mcu.engine import bits
from bep_mcu.training import EncodedData, NumpyTrainer
from bep_mcu.twin.cffi_twin import Twin

from .conftest import assert_one_error_line, assert_same_weights, blobs, fit, invoke, saved, series
from .test_modelio import forge

CODES = {name: value for name, value, _ in STATUS}


def twin_of(model, tmp_path, fmt, name: str = "net", window: int = recalibration.DEFAULT_WINDOW) -> Twin:
    return Twin(generate(model, tmp_path / f"gen-{name}", name, fmt, calibration_window=window), model.spec)


def drifted(X: np.ndarray, seed: int, gain: float = 1.3, offset: float = 0.5, noise: float = 0.1) -> np.ndarray:
    """A sensor drift: every feature scaled, shifted by ``offset`` of its standard deviation,
    with noise of ``noise`` of it."""
    g = np.random.default_rng(seed)
    sd = X.reshape(-1, X.shape[-1]).std(axis=0)
    return gain * X + offset * sd + noise * sd * g.normal(size=X.shape)


def assert_sorted_within_type(cal: Calibration) -> None:
    t, plan = cal.thresholds, cal.plan
    assert t.min() >= plan.lo and t.max() <= plan.hi
    starts = np.cumsum(plan.counts) - plan.counts
    inside = np.ones(len(t), dtype=bool)
    inside[starts[plan.counts > 0]] = False  # a feature's first threshold has no predecessor
    assert np.all(np.diff(t, prepend=plan.lo)[inside] >= 0)


def assert_twin_follows(twin: Twin, cal: Calibration) -> None:
    t, a = twin.calibration()
    assert np.array_equal(t, cal.thresholds) and np.array_equal(a, cal.accumulators)


# ---------------------------------------------------------------------- bit-exact: numpy = C


@pytest.mark.parametrize("binarize,input_type,scale", [
    ("median", "int16", 1000), ("median:global", "int8", 10), ("thermometer:4", "int32", 100000),
    ("thermometer:5:uniform", "uint16", 1000), ("thermometer:3", "uint8", 8), ("thermometer:4", "int8", 10),
])
def test_mlp_thresholds_follow_drift_bit_exactly(tmp_path, binarize, input_type, scale):
    X, y = blobs(300, features=5, seed=1)
    if input_type.startswith("u"):
        X = X - X.min() + 2.0  # unsigned device values: above zero
    model = fit(X, y, hidden=(16,), epochs=1, binarize=binarize)
    fmt = inputformat.choose(model.encoder, X, input_type, (scale,) * 5)
    twin = twin_of(model, tmp_path, fmt, window=32)  # fast, so that thresholds travel far in a short test
    twin.start(model.training.seed)
    cal = Calibration(recalibration.plan(model.encoder, fmt, 32))
    assert cal.plan.count == model.spec.n_inputs
    g = np.random.default_rng(7)
    stream = fmt.to_device(drifted(X[g.integers(0, len(X), 3000)], seed=2))  # saturating, as a board's ADC
    probe = fmt.to_device(drifted(X[:100], seed=3))
    for what, part in (("drifted", stream[:1500]), ("drifted", stream[1500:]), ("top", np.full((3000, 5), fmt.hi)),
                       ("bottom", np.full((5000, 5), fmt.lo)), ("drifted", stream[:500])):
        twin.calibrate(part)
        cal.observe(part)
        assert_twin_follows(twin, cal)
        assert_sorted_within_type(cal)
        assert np.array_equal(twin.encode(probe, calibrated=True), bits.pack_inputs(cal.encode(model.encoder, fmt,
                                                                                                  probe)))
        # A narrow type: every value at the top pins every threshold at it; every value at the
        # bottom holds them within a step of it (at the bottom none is below; a step up, all are).
        if fmt.hi - fmt.lo < 256 and what == "top":
            assert np.all(cal.thresholds == fmt.hi)
        if fmt.hi - fmt.lo < 256 and what == "bottom":
            assert np.all(cal.thresholds <= fmt.lo + cal.plan.step[cal.plan.feature])
    assert not np.array_equal(cal.thresholds, cal.plan.initial)


@pytest.mark.parametrize("length,window,channels,binarize", [(24, 4, 1, "thermometer:3"), (25, 7, 3, "median")])
def test_series_points_update_in_time_order(tmp_path, length, window, channels, binarize):
    X, y = series(80, length, channels)
    model = fit(X, y, model="rnn", hidden=(10,), epochs=1, window=window, binarize=binarize)
    fmt = inputformat.choose(model.encoder, X)
    twin = twin_of(model, tmp_path, fmt, window=16)
    stream_twin = twin_of(model, tmp_path, fmt, name="stream", window=16)
    for t in (twin, stream_twin):
        t.start(1)
    cal = Calibration(recalibration.plan(model.encoder, fmt, 16))
    V = fmt.to_device(drifted(X[np.arange(160) % len(X)], seed=4, gain=0.7, offset=-0.4))
    twin.calibrate(V.reshape(len(V), -1))  # a whole series per call
    stream_twin.calibrate(V.reshape(len(V), -1), values_per_call=channels)  # a point per call
    cal.observe(V)
    assert_twin_follows(twin, cal)
    assert_twin_follows(stream_twin, cal)
    assert not np.array_equal(cal.thresholds, cal.plan.initial)
    assert np.array_equal(twin.encode(V[:40].reshape(40, -1), calibrated=True),
                          bits.pack_inputs(cal.encode(model.encoder, fmt, V[:40])))
    # the order matters: the same points reversed in time move the thresholds elsewhere
    reversed_cal = Calibration(cal.plan).observe(V[:, ::-1])
    assert not np.array_equal(reversed_cal.accumulators, cal.accumulators)
    # a ring of the last `length` points encodes them with the followed thresholds
    ffi, lib = twin.ffi, twin.lib
    ring = ffi.new("bep_net_ring_t *")
    x = np.zeros(twin.gen.plan.input_words, dtype=np.uint32)
    for point in V[0]:
        p = np.ascontiguousarray(point, dtype=np.int16)
        assert lib.bep_net_ring_push(ring, ffi.from_buffer("bep_net_input_t[]", p), channels) == CODES["OK"]
    assert lib.bep_net_encode_ring_calibrated(twin._state_ptr, twin.state.nbytes, ring, ffi.from_buffer("uint32_t[]", x),
                                              x.size) == CODES["OK"]
    assert np.array_equal(x, bits.pack_inputs(cal.encode(model.encoder, fmt, V[:1]))[0])


def test_calibration_interleaved_with_training_is_bit_exact(tmp_path):
    """A board that follows each batch's raw values, encodes them with the followed
    thresholds and trains on them: the C and numpy hold the same weights after every batch."""
    X, y = blobs(400, features=6, seed=2)
    model = fit(X, y, hidden=(24,), epochs=1, binarize="thermometer:4")
    fmt = inputformat.choose(model.encoder, X)
    twin = twin_of(model, tmp_path, fmt, window=64)
    twin.init(model.training.seed, model.training.batch_counter)
    host, cal = NumpyTrainer(model), Calibration(recalibration.plan(model.encoder, fmt, 64))
    gamma, q = list(model.training.gamma), [50] * model.spec.n_layers
    twin.set_epoch(gamma, q)
    host.set_epoch(gamma, q)
    V, labels = fmt.to_device(drifted(X, seed=5)), model.encode_labels(y)
    for start in range(0, len(V), 20):
        raw, yb = V[start:start + 20], labels[start:start + 20]
        twin.calibrate(raw)
        cal.observe(raw)
        batch = EncodedData(cal.encode(model.encoder, fmt, raw), yb)
        assert np.array_equal(twin.train_batch(twin.encode(raw, calibrated=True), yb), host.train_batch(batch))
        assert_same_weights(twin.hidden_weights(), host.hidden_weights())
    assert_twin_follows(twin, cal)


# ---------------------------------------------------------------------- what the thresholds settle on


def below_shares(cal: Calibration, V: np.ndarray) -> np.ndarray:
    """Per followed threshold, the share of values of its feature below it."""
    return (V[:, cal.plan.feature] < cal.thresholds).mean(axis=0)


def test_thresholds_settle_on_their_training_quantiles():
    """Clusters (a feature's values bunched by class, thresholds between and at their edges):
    after 20 shuffled passes, each threshold stands within a share of 0.02 of its training
    share of the values it followed, whether they drifted (gain 1.5, offset one standard
    deviation) or not."""
    X, y = blobs(1000, features=4, seed=3)
    model = fit(X, y, hidden=(16,), epochs=1, binarize="thermometer:4", val_fraction=0)
    fmt = inputformat.choose(model.encoder, X)
    plan = recalibration.plan(model.encoder, fmt, 1024)
    target = plan.below / recalibration.ONE
    V, D = fmt.to_device(X), fmt.to_device(drifted(X, seed=1, gain=1.5, offset=1.0))
    assert np.abs(below_shares(Calibration(plan), V) - target).max() < 0.002  # the training data's own shares
    assert np.abs(below_shares(Calibration(plan), D) - target).max() > 0.3  # the model's thresholds, drifted values
    g = np.random.default_rng(0)
    for values in (V, D):
        followed = Calibration(plan).observe(np.concatenate([values[g.permutation(len(values))] for _ in range(20)]))
        assert np.abs(below_shares(followed, values) - target).max() < 0.02


# ---------------------------------------------------------------------- the state


def test_model_thresholds_until_the_first_value_and_after_a_reset(tmp_path):
    X, y = blobs(200, features=4)
    model = fit(X, y, hidden=(8,), epochs=1, binarize="thermometer:3")
    fmt = inputformat.choose(model.encoder, X)
    twin = twin_of(model, tmp_path, fmt, window=8)
    ffi, lib = twin.ffi, twin.lib
    V = fmt.to_device(drifted(X, seed=1))
    raw = np.ascontiguousarray(V[0], dtype=np.int16)
    raw_ptr = ffi.from_buffer("bep_net_input_t[]", raw)
    assert lib.bep_net_calibrate(twin._state_ptr, twin.state.nbytes, raw_ptr, 4) == CODES["ERR_STATE"]  # not init
    twin.start(3)
    plan = recalibration.plan(model.encoder, fmt, 8)
    assert [a.tolist() for a in twin.calibration()] == [plan.initial.tolist(), [0] * plan.count]
    assert np.array_equal(twin.encode(V, calibrated=True), twin.encode(V))
    for n, code in ((0, "ERR_SIZE"), (3, "ERR_SIZE"), (5, "ERR_SIZE"), (8, "OK")):
        assert lib.bep_net_calibrate(twin._state_ptr, twin.state.nbytes, raw_ptr if n <= 4 else
                                     ffi.from_buffer("bep_net_input_t[]", np.tile(raw, 2)), n) == CODES[code], n
    assert lib.bep_net_calibrate(twin._state_ptr, twin.state.nbytes, ffi.NULL, 4) == CODES["ERR_NULL"]
    assert lib.bep_net_read_calibration(twin._state_ptr, twin.state.nbytes, ffi.NULL, ffi.NULL, plan.count - 1) == \
        CODES["ERR_SIZE"]
    twin.calibrate(V)
    assert not np.array_equal(twin.encode(V, calibrated=True), twin.encode(V))
    twin.calibration_reset()
    assert [a.tolist() for a in twin.calibration()] == [plan.initial.tolist(), [0] * plan.count]
    assert np.array_equal(twin.encode(V, calibrated=True), twin.encode(V))


@pytest.mark.parametrize("case", ["binary", "binary-copies", "older-file"])
def test_nothing_to_follow(tmp_path, case):
    """Binary inputs have no threshold, passed through or as copies of each bit (a cut between
    a feature's two values could only move onto one of them: a constant bit); a model file
    written before the training statistics does not know the quantiles: the board follows
    nothing, its state and snapshots hold no thresholds, and calibrating changes nothing."""
    if case.startswith("binary"):
        g = np.random.default_rng(1)
        X = np.where(g.random((200, 30)) < 0.5, 1.0, 0.0 if case == "binary-copies" else -1.0)
        y = (X[:, 0] > 0).astype(int)
        model = fit(X, y, hidden=(8,), epochs=1, **({"binarize": "passthrough"} if case == "binary" else {}))
        assert model.encoder.binarizer.spec() == ("passthrough" if case == "binary" else "thermometer:9")
        assert not recalibration.follows(model.encoder)
    else:
        X, y = blobs(200, features=4)
        full = fit(X, y, hidden=(8,), epochs=1)
        model = full.replace(encoder=dataclasses.replace(full.encoder, below=None, spread=None))
    fmt = inputformat.choose(model.encoder, X)
    gen = generate(model, tmp_path / "g", "net", fmt)
    assert gen.plan.followed == 0 and gen.plan.calib_bytes == 0
    assert "#define BEP_NET_CALIBRATED 0u" in (gen.src / "bep_net_board.h").read_text()
    twin = Twin(gen, model.spec)
    twin.start(1)
    V = fmt.to_device(X)
    before = twin.state.copy()
    twin.calibrate(V)
    assert np.array_equal(twin.state, before)
    assert np.array_equal(twin.encode(V, calibrated=True), twin.encode(V))
    status, snap = twin.snapshot()
    assert status == CODES["OK"] and len(snap) == snapshot.followed_offset(gen.plan) + 4


# ---------------------------------------------------------------------- snapshots


@pytest.fixture(scope="module")
def followed_twin(tmp_path_factory):
    """A board that learnt and followed drifted values for a while, and the host's twin of it."""
    X, y = blobs(300, features=5, seed=4)
    model = fit(X, y, hidden=(16,), epochs=1, binarize="thermometer:4")
    fmt = inputformat.choose(model.encoder, X)
    twin = twin_of(model, tmp_path_factory.mktemp("followed"), fmt, window=16)
    twin.start(model.training.seed)
    cal = Calibration(recalibration.plan(model.encoder, fmt, 16))
    V = fmt.to_device(drifted(X, seed=8))
    twin.calibrate(V)
    cal.observe(V)
    return model, fmt, twin, cal, V


def test_snapshot_carries_the_followed_thresholds(followed_twin, tmp_path):
    model, fmt, twin, cal, V = followed_twin
    status, snap = twin.snapshot()
    assert status == CODES["OK"]
    c, s = twin.counters(), twin.schedule()
    schedule = {k: s[k] for k in ("epoch", "level", "stalled", "best_errors", "best_samples")}
    schedule.update(start_errors=c.errors, start_samples=c.samples)
    assert snap == snapshot.compose(model.config_hash32, model.training.seed, c, s["gamma"], s["q"], schedule,
                                    twin.hidden_weights(), cal.followed(), classes=model.spec.n_classes)
    fresh = twin_of(model, tmp_path, fmt, window=16)
    fresh.start(99)
    assert fresh.restore(snap) == CODES["OK"]
    assert_twin_follows(fresh, cal)
    for t in (twin, fresh):  # both follow on from where the snapshot stood
        t.calibrate(V[::-1])
    cal.observe(V[::-1])
    assert_twin_follows(fresh, cal)
    assert_twin_follows(twin, cal)
    assert twin.snapshot()[1] == fresh.snapshot()[1]


@pytest.mark.parametrize("what,edit", [
    ("a threshold above the input type", lambda t, a, p, f, w: t.__setitem__(p[1] - 1, 32768)),
    ("a threshold below the input type", lambda t, a, p, f, w: t.__setitem__(0, -32769)),
    ("a feature's thresholds out of order", lambda t, a, p, f, w: t.__setitem__(1, t[0] - 1)),
    ("an accumulator at its window", lambda t, a, p, f, w: a.__setitem__(2, w[f[2]])),
    ("an accumulator at minus its window", lambda t, a, p, f, w: a.__setitem__(len(a) - 1, -w[f[-1]])),
])
def test_hostile_thresholds_in_a_snapshot_are_refused(followed_twin, tmp_path, what, edit):
    """A CRC-valid snapshot whose followed thresholds a board could not hold is refused as
    corrupt, the state untouched; one inside every bound is accepted."""
    model, fmt, twin, cal, _ = followed_twin
    _, snap = twin.snapshot()
    off, k = snapshot.followed_offset(twin.gen.plan), cal.plan.count
    t, a = (np.frombuffer(snap, "<i4", k, off + 4 * i * k).astype(np.int64) for i in (0, 1))
    assert fmt.input_type == "int16" and cal.plan.counts[0] >= 2

    def blob(t, a) -> bytes:
        body = snap[:off] + np.concatenate([t, a]).astype("<i4").tobytes() + snap[off + 8 * k:-4]
        return body + struct.pack("<I", zlib.crc32(body))

    target = twin_of(model, tmp_path, fmt, window=16)
    target.start(5)
    before = target.state.copy()
    bad_t, bad_a = t.copy(), a.copy()
    edit(bad_t, bad_a, np.cumsum(cal.plan.counts), cal.plan.feature, cal.plan.window)
    assert target.restore(blob(bad_t, bad_a)) == CODES["ERR_CORRUPT"], what
    assert np.array_equal(target.state, before)
    edges_t = np.concatenate([np.sort(np.clip(t[p - n:p], fmt.lo, fmt.hi)) for p, n in
                              zip(np.cumsum(cal.plan.counts), cal.plan.counts)])
    edges_t[0], edges_t[-1] = fmt.lo, fmt.hi
    edges_a = np.where(np.arange(k) % 2, 1, -1) * (cal.plan.window[cal.plan.feature] - 1)
    assert target.restore(blob(edges_t, edges_a)) == CODES["OK"]
    assert [x.tolist() for x in target.calibration()] == [edges_t.tolist(), edges_a.tolist()]


# ---------------------------------------------------------------------- model files


def test_model_files_keep_the_training_statistics(tmp_path):
    X, y = blobs(300, features=5)
    model = fit(X, y, hidden=(8,), epochs=1, binarize="thermometer:3")
    enc = model.encoder
    bits_train = enc.binarizer.transform(X)[:, enc.input_keep]
    assert enc.below.shape == (enc.kept_bits,) and enc.spread.shape == (5,)
    assert np.all((enc.below > 0) & (enc.below < 1)) and np.all(enc.spread > 0)
    assert np.abs(enc.below - (bits_train < 0).mean(axis=0)).max() < 0.1  # fit saw the training part only
    loaded = modelio.load(saved(model, tmp_path / "m.npz"))
    assert np.array_equal(loaded.encoder.below, enc.below) and np.array_equal(loaded.encoder.spread, enc.spread)


@pytest.mark.parametrize("name,value,words", [
    ("input_below", lambda a: a + 1.5, ("input.below", "[0, 1.0]")),
    ("input_below", lambda a: np.full_like(a, np.nan), ("input.below", "finite")),
    ("input_below", lambda a: a[:-1], ("input.below", "shape")),
    ("input_below", lambda a: a.astype(np.float32), ("input_below", "float64")),
    ("input_spread", lambda a: -a, ("input.spread",)),
    ("input_spread", None, ("input.below and input.spread",)),
])
def test_forged_statistics_are_refused_in_one_line(tmp_path, name, value, words):
    X, y = blobs(200, features=4)
    path = saved(fit(X, y, hidden=(8,), epochs=1, binarize="thermometer:3"), tmp_path / "m.npz")

    def edit(arrays):
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value(np.asarray(arrays[name]))

    forged = forge(path, tmp_path / "f.npz", arrays_edit=edit)
    result = invoke("generate", forged, "--out", tmp_path / "gen")
    assert_one_error_line(result.exit_code, result.stderr, words, status=2)
    assert not (tmp_path / "gen").exists()


def test_generate_chooses_the_adaptation_rate(tmp_path):
    X, y = blobs(200, features=4)
    path = saved(fit(X, y, hidden=(8,), epochs=1, binarize="thermometer:3"), tmp_path / "m.npz")
    result = invoke("generate", path, "--out", tmp_path / "bad", "--calibration-window", "0")
    assert_one_error_line(result.exit_code, result.stderr, ("--calibration-window", "1..32768"), status=2)
    assert not (tmp_path / "bad").exists()
    tables = []
    for window in (16, 4096):
        result = invoke("generate", path, "--out", tmp_path / str(window), "--calibration-window", str(window),
                        "--input-scale", "1000", "--json")
        assert result.exit_code == 0, result.stderr
        d = json.loads(result.stdout)
        assert (d["calibrated_thresholds"], d["calibration_window"], d["calibration_bytes"]) == (12, window, 4 + 8 * 12)
        tables.append((tmp_path / str(window) / "src" / "bep_net_board.c").read_text())
    assert tables[0] != tables[1]  # the accumulators' bounds (and steps) follow the rate
