"""The serial protocol end to end, with the real C on the device side.

The "device in process" is the generated directory (runtime + network + bep_link.c,
compiled with the strict flag set) linked into a cffi extension; its write callback
is a C byte sink the test drains. The host is ``bep_mcu.link.Link``, unchanged, over a
``Transport`` that calls ``bep_link_rx`` directly (or over a real TCP socket, or
through ``FaultyTransport``). Training through the link is compared, bit for bit, with
the numpy engine on the same batches.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bep_mcu import modelio
from bep_mcu.cgen.codegen import generate
from bep_mcu.cgen import protocol as P
from bep_mcu.device.link import FaultyTransport, Link
from bep_mcu.device.stream import DeviceTrainer
from bep_mcu.engine.schedule import EpochStart
from bep_mcu.engine.bits import pack_inputs
from bep_mcu.errors import BEPError
from bep_mcu.training import Lockstep, NumpyTrainer, Plan, first_difference, run_epochs
from bep_mcu.twin.cffi_twin import build_extension, generated_cdef

from .conftest import assert_ok, invoke

# The binary prototypes pass through, as the boards' RAM plans here were sized for (under "auto" binary
# rows of fewer than 256 features get copies of each bit: docs/accuracy.md, "Sixth held-out check").
DATASET = "prototypes:classes=4,features=100,samples=1200"
TRAIN_ARGS = ["--dataset", DATASET, "--binarize", "passthrough", "--hidden", "64,32", "--epochs", "1"]

SHIM = r"""
#include "bep_{name}.h"
#include "bep_link.h"

typedef struct {{ uint8_t *buf; size_t cap; size_t len; uint32_t overflow; }} bep_sink_t;

static void bep_sink_write(void *ctx, const uint8_t *data, size_t n)
{{
    bep_sink_t *s = (bep_sink_t *)ctx;
    size_t k;
    for (k = 0; k < n; ++k) {{
        if (s->len < s->cap) s->buf[s->len++] = data[k];
        else s->overflow = 1u;
    }}
}}

static void dev_init(bep_link_t *link, void *state, size_t state_len, bep_sink_t *sink, const bep_board_info_t *info)
{{
    bep_link_init(link, &bep_{name}_config, state, state_len, info, bep_sink_write, sink);
}}

static size_t dev_sizeof_link(void) {{ return sizeof(bep_link_t); }}
static size_t dev_link_bytes(void) {{ return BEP_LINK_BYTES; }}
static size_t dev_max_payload(void) {{ return BEP_LINK_MAX_PAYLOAD; }}
"""

# Only the shim is declared here; the library's declarations come from its headers.
SHIM_CDEF = """
typedef struct { uint8_t *buf; size_t cap; size_t len; uint32_t overflow; } bep_sink_t;
void dev_init(bep_link_t *link, void *state, size_t state_len, bep_sink_t *sink, const bep_board_info_t *info);
size_t dev_sizeof_link(void);
size_t dev_link_bytes(void);
size_t dev_max_payload(void);
"""


# ---------------------------------------------------------------------- the device in process


def build_device_module(gen, build_dir: Path, max_payload: int | None = None):
    """The generated directory (strict flags) plus a byte-sink shim as a cffi module."""
    defines = {} if max_payload is None else {"BEP_LINK_MAX_PAYLOAD": str(max_payload)}
    return build_extension(gen, "_bep_link_dev", generated_cdef(gen, link=True) + SHIM_CDEF,
                           SHIM.format(name=gen.name),
                           defines=defines, build_root=build_dir)


class InProcessDevice:
    """One board: a link and a state buffer in C, replies collected in a C sink."""

    def __init__(self, module, gen, board: str = "in-process", fw_version: int = 7, hidden_bits: int = 8) -> None:
        self.ffi, self.lib, self.gen = module.ffi, module.lib, gen
        self.hidden_dtype = np.int8 if hidden_bits == 8 else np.int16
        self.state = np.zeros(gen.plan.state_bytes // 4, dtype=np.uint32)
        self._state_ptr = self.ffi.from_buffer("uint32_t[]", self.state)
        self._board = self.ffi.new("char[]", board.encode())
        self.info = self.ffi.new("bep_board_info_t *", {"board": self._board, "ram_bytes": 1 << 20,
                                                        "flash_bytes": 2 << 20, "fw_version": fw_version})
        self._buf = self.ffi.new("uint8_t[]", 1 << 20)
        self.sink = self.ffi.new("bep_sink_t *", {"buf": self._buf, "cap": 1 << 20})
        self.link = self.ffi.new("bep_link_t *")
        self.reset()

    def reset(self) -> None:
        """Power cycle: RAM cleared, link back to session 0."""
        self.state[:] = 0
        self.sink.len = 0
        self.lib.dev_init(self.link, self._state_ptr, self.state.nbytes, self.sink, self.info)

    def feed(self, data: bytes) -> None:
        self.lib.bep_link_rx(self.link, data, len(data))

    def take(self) -> bytes:
        assert not self.sink.overflow
        out = bytes(self.ffi.buffer(self._buf, self.sink.len))
        self.sink.len = 0
        return out

    def exchange(self, data: bytes) -> list:
        """Feed bytes, return the decoded replies (Frame or FrameError)."""
        self.feed(data)
        return P.FrameReader(P.MAX_MAX_PAYLOAD).feed(self.take())

    def read_hidden(self, layer: int) -> np.ndarray:
        """Straight from the C state, not through the link."""
        rows, cols = self.gen.plan.layers[layer].rows, self.gen.plan.layers[layer].cols
        out = np.empty((rows, cols), dtype=self.hidden_dtype)
        st = getattr(self.lib, f"bep_{self.gen.name}_read_hidden")(self._state_ptr, self.state.nbytes, layer,
                                                                   self.ffi.from_buffer(out), out.nbytes)
        assert st == 0
        return out


class DeviceTransport:
    """Host bytes go straight into bep_link_rx; replies come from the sink."""

    def __init__(self, device: InProcessDevice, name: str = "in-process") -> None:
        self.device, self.name = device, name
        self.closed = False

    def write(self, data: bytes) -> None:
        self.device.feed(data)

    def read(self, timeout: float) -> bytes:
        out = self.device.take()
        if not out and timeout > 0:
            time.sleep(timeout)  # nothing can arrive meanwhile: the device only runs inside write()
        return out

    def close(self) -> None:
        self.closed = True


class SilentTransport:
    """A board that never answers."""

    name = "silent://board"

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += 1

    def read(self, timeout: float) -> bytes:
        time.sleep(timeout)
        return b""

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("link")
    model = root / "m.npz"
    assert_ok(invoke("train", *TRAIN_ARGS, "--out", model))
    gen = generate(modelio.load(model), root / "gen", "net")
    return model, gen, root


@pytest.fixture(scope="module")
def device_module(trained):
    model, gen, root = trained
    return build_device_module(gen, root / "build")


@pytest.fixture(scope="module")
def small_module(trained):
    """The same network with BEP_LINK_MAX_PAYLOAD = 128: everything takes many frames."""
    model, gen, root = trained
    return build_device_module(gen, root / "build128", max_payload=128)


@pytest.fixture(scope="module")
def net_model(trained):
    return modelio.load(trained[0])


@pytest.fixture(scope="module")
def data(net_model):
    from bep_mcu.data.datasets import load_dataset

    d = load_dataset(DATASET)
    X = net_model.encode(d.X_train)
    return pack_inputs(X), X, net_model.encode_labels(d.y_train)


def make_device(module, trained) -> InProcessDevice:
    return InProcessDevice(module, trained[1])


def make_link(device, **kwargs) -> Link:
    kwargs.setdefault("timeout", 0.2)
    return Link(DeviceTransport(device), **kwargs)


def assert_same_hidden(numpy_hidden, link_hidden):
    diff = first_difference(numpy_hidden, link_hidden)
    assert diff is None, f"hidden weights differ: {diff}"


# ---------------------------------------------------------------------- protocol unit tests


def test_cobs_round_trip_and_bound():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=1200) | st.lists(st.sampled_from([0, 1, 255]), max_size=800).map(bytes))
    def check(data):
        enc = P.cobs_encode(data)
        assert 0 not in enc and len(enc) <= P.cobs_max(len(data))
        assert P.cobs_decode(enc) == data

    check()
    for n in (0, 1, 253, 254, 255, 508, 1033):  # block boundaries
        data = bytes(range(1, 256)) * 5
        assert P.cobs_decode(P.cobs_encode(data[:n])) == data[:n]


def test_frame_round_trip_and_checks():
    wire = P.encode_frame(P.Msg.TRAIN, 513, b"\x01\x00\x00abc")
    frame = P.decode_frame(wire)
    assert (frame.type, frame.seq, frame.payload) == (P.Msg.TRAIN, 513, b"\x01\x00\x00abc")
    body = bytearray(P.cobs_decode(wire[:-1]))
    body[5] ^= 1
    with pytest.raises(P.FrameError) as e:
        P.decode_body(bytes(body))
    assert e.value.code == P.ErrorCode.BAD_CRC
    with pytest.raises(P.FrameError) as e:
        P.decode_frame(P.cobs_encode(b"\x01\x02"))
    assert e.value.code == P.ErrorCode.BAD_LENGTH
    assert P.crc32(b"123456789") == 0xCBF43926  # the CRC-32/IEEE check value
    table = P.crc32_nibble_table()
    assert len(table) == 16 and table[8] == 0xEDB88320


def test_rendered_header_and_doc_match_protocol_py(trained):
    header = (trained[1].src / "bep_proto.h").read_text()
    for name, value, _ in P.MESSAGES:
        assert f"BEP_MSG_{name} = 0x{value:02X}," in header
    for name, value, _ in P.ERRORS:
        assert re.search(rf"BEP_PROTO_ERR_{name} = {value}\b", header)
    assert f"#define BEP_PROTO_MAX_PAYLOAD_DEFAULT {P.MAX_PAYLOAD}u" in header
    assert f"#define BEP_PROTO_VERSION {P.PROTO_VERSION}u" in header
    for layout in P.LAYOUTS:
        assert f"#define BEP_PROTO_{layout.name}_BYTES {layout.size}u" in header
        for field, off in layout.offsets().items():
            assert f"#define BEP_PROTO_{layout.name}_{field.upper()}_OFF {off}u" in header
    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    assert f"version {P.PROTO_VERSION}" in doc and f"default {P.MAX_PAYLOAD}" in doc
    for name, value, _ in P.MESSAGES:
        assert f"| 0x{value:02X} | {name} |" in doc, name
    for name, value, _ in P.ERRORS:
        assert f"{name} −{-value}" in doc, name
    assert f"{P.link_bytes()} bytes on Cortex-M" in doc and f"({P.link_bytes(pointer_bytes=8)} on a 64-bit host)" in doc
    assert f"allowed {P.MIN_MAX_PAYLOAD}..{P.MAX_MAX_PAYLOAD}" in doc


def test_link_bytes_pinned_for_host_and_cortex_m(trained, device_module, small_module, tmp_path):
    import cffi

    ptr = cffi.FFI().sizeof("void *")
    for module, payload in ((device_module, P.MAX_PAYLOAD), (small_module, 128)):
        assert module.lib.dev_max_payload() == payload
        assert module.lib.dev_sizeof_link() == module.lib.dev_link_bytes() == P.link_bytes(payload, ptr)
    assert P.link_bytes() == 2156  # Cortex-M, default payload: the number the docs quote
    gen = trained[1]
    check = tmp_path / "check.c"
    builds = [("gcc", [], ptr), ("clang", [], ptr), ("arm-none-eabi-gcc", ["-mcpu=cortex-m0", "-mthumb"], 4),
              ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb"], 4)]
    ran = 0
    for cc, flags, pointer in builds:
        if shutil.which(cc) is None:
            continue
        for payload in (64, 100, 253, 254, 255, 1024, 4000, P.MAX_MAX_PAYLOAD):
            check.write_text('#include "bep_link.h"\n'
                             f"typedef char c[(sizeof(bep_link_t) == {P.link_bytes(payload, pointer)}u) ? 1 : -1];\n")
            subprocess.run([cc, "-std=c99", "-Wall", "-pedantic", "-Werror", *flags, f"-DBEP_LINK_MAX_PAYLOAD={payload}",
                            "-I", str(gen.src), "-c", str(check), "-o", str(tmp_path / "c.o")], check=True)
            ran += 1
        bad = subprocess.run([cc, "-std=c99", *flags, "-DBEP_LINK_MAX_PAYLOAD=63", "-I", str(gen.src), "-c",
                              str(check), "-o", str(tmp_path / "c.o")], capture_output=True, text=True)
        assert bad.returncode != 0 and "BEP_LINK_MAX_PAYLOAD" in bad.stderr
    assert ran >= 16


# ---------------------------------------------------------------------- every message


def test_every_message_round_trips(trained, device_module, net_model, data):
    Xp, X, y = data
    dev = make_device(device_module, trained)
    with make_link(dev) as link:
        info = link.hello(0x12345678)
        spec = net_model.spec
        assert info.session == 0x12345678 and info.board == "in-process" and info.fw_version == 7
        assert info.proto_version == P.PROTO_VERSION and info.max_payload == P.MAX_PAYLOAD
        assert info.config_hash == int(trained[1].config_hash[:8], 16)
        assert info.state_bytes == trained[1].plan.state_bytes
        assert (info.ram_bytes, info.flash_bytes) == (1 << 20, 2 << 20)
        assert (info.n_layers, info.hidden_bits, info.n_classes, info.steps) == (2, 8, 4, 1)
        assert info.input_words == Xp.shape[1]
        assert (info.max_classes, info.classes_in_use) == (4, 0)  # no prototype reserved; no INIT yet
        with pytest.raises(BEPError, match="in-process: READ_COUNTERS failed on the board: BEP_ERR_STATE"):
            link.counters()  # never initialised: the runtime refuses, the link reports it
        net = net_model.network()
        link.init(net.seed, net.batch_counter)
        assert link.hello(0x12345678).classes_in_use == 4
        for n in (3, 5):  # fewer classes than in use, more than the prototypes: refused, nothing changes
            with pytest.raises(BEPError, match="SET_CLASSES failed on the board: BEP_ERR_ARG"):
                link.set_classes(n)
        link.set_classes(4)
        assert link.hello(0x12345678).classes_in_use == 4
        shapes = spec.layer_shapes()
        assert_same_hidden(net.hidden_weights(), [link.read_hidden(i, s, np.int8) for i, s in enumerate(shapes)])
        # LOAD_HIDDEN: new weights, read back over the link and straight from the C state
        rng = np.random.default_rng(1)
        new = [rng.integers(-128, 128, size=s).astype(np.int8) for s in shapes]
        for i, h in enumerate(new):
            link.load_hidden(i, h)
        assert_same_hidden(new, [link.read_hidden(i, s) for i, s in enumerate(shapes)])
        assert_same_hidden(new, [dev.read_hidden(i) for i in range(len(shapes))])
        # the repack took effect: predictions equal a numpy network holding the same weights
        ref = net.copy(new)
        correct, pred = link.evaluate(Xp[:300], y[:300])
        assert np.array_equal(pred, ref.predict(X[:300])) and correct == int((pred == y[:300]).sum())
        assert link.read_schedule() is None  # no SET_EPOCH since INIT: no epoch record
        record = EpochStart(epoch=5, level=40, stalled=1, best_errors=7, best_samples=90, samples=30, errors=4)
        link.set_epoch([2, 4], [1 << 16, 0], record)
        assert link.read_schedule() == (record, [2, 4], [1 << 16, 0])
        with pytest.raises(BEPError, match="SET_EPOCH failed on the board: BEP_ERR_ARG"):
            link.set_epoch([2, 0xFFFF], [0, 0], replace(record, epoch=6))  # γ > rows: refused, record kept
        ref.set_epoch_params([2, 4], [1 << 16, 0])
        res = ref.train_batch(X[:70], y[:70])
        assert np.array_equal(link.train(Xp[:70], y[:70]), res.predictions)
        c = link.counters()
        assert c == {**ref.counters.as_dict(), "batches": ref.batch_counter}
        # the record counts the open epoch on: its 30 samples before and the 70 trained since
        assert link.read_schedule() == (replace(record, samples=100, errors=4 + c["errors"]), [2, 4], [1 << 16, 0])
        link.reset_counters()
        assert link.counters() == {"samples": 0, "triggered": 0, "errors": 0, "updates": 0,
                                   "batches": ref.batch_counter}
        assert link.read_schedule()[0] == replace(record, samples=0, errors=0)  # the epoch counts from here
        assert link.frames_retried == 0
    assert link.transport.closed


def test_training_through_the_link_is_bit_exact(trained, device_module, net_model, data):
    """Two epochs, batches of 100 (two TRAIN frames each), γ and Q as training sets them;
    the one driver compares every weight, prediction and counter after every batch."""
    Xp, X, y = data
    link = make_link(make_device(device_module, trained))
    link.hello()
    plan = Plan.continuing(net_model, 2, 100, patience=1, stall_signal="training")
    numpy = NumpyTrainer(net_model)
    report = run_epochs([numpy, DeviceTrainer(link, net_model)], encoded_data(X, y), plan)
    assert report.bit_exact, report.divergence
    assert all(any(rec["reinforce_q"]) for rec in report.history), "reinforcement on"
    correct, pred = link.evaluate(Xp, y)
    assert np.array_equal(pred, numpy.evaluate(encoded_data(X, y)))
    assert link.frames_retried == 0 and link.frames_sent > 2 * 20


def encoded_data(X, y):
    from bep_mcu.training import EncodedData

    return EncodedData(X, y)


def test_small_payload_splits_everything(trained, small_module, net_model, data):
    """MAX_PAYLOAD 128: 6 samples a TRAIN frame, hidden weights in 122-byte pieces."""
    Xp, X, y = data
    dev = make_device(small_module, trained)
    net = net_model.network()
    link = make_link(dev, max_payload=P.MAX_PAYLOAD)
    assert link.hello().max_payload == 128 and link.max_payload == 128
    link.init(net.seed, net.batch_counter)
    net.set_epoch_params([4, 2], [3 << 16, 1 << 15])
    link.set_epoch([4, 2], [3 << 16, 1 << 15])
    sent = link.frames_sent
    for i in range(0, 200, 40):
        res = net.train_batch(X[i:i + 40], y[i:i + 40])
        assert np.array_equal(link.train(Xp[i:i + 40], y[i:i + 40]), res.predictions)
    assert P.samples_per_frame(Xp.shape[1], 128) == 6
    assert link.frames_sent - sent == 5 * 7  # ceil(40 / 6) frames a batch
    shapes = net_model.spec.layer_shapes()
    assert_same_hidden(net.hidden_weights(), [link.read_hidden(k, s) for k, s in enumerate(shapes)])
    new = [np.full(s, -3, dtype=np.int8) for s in shapes]
    link.load_hidden(0, new[0])
    assert np.array_equal(link.read_hidden(0, shapes[0]), new[0])


@pytest.mark.parametrize("kind,dataset,args", [
    ("rnn", "ucr:GunPoint", ["--model", "rnn", "--hidden", "32"]),
    ("int16", "prototypes:classes=3,features=70,samples=600", ["--hidden", "40,24", "--hidden-bits", "16"]),
])
def test_rnn_and_int16_networks_through_the_link(tmp_path, kind, dataset, args):
    """The link is network-agnostic: an RNN (inputs of steps x words) and 16-bit hidden
    weights (two bytes a weight, even offsets) train bit-exactly too."""
    from bep_mcu.data.datasets import load_dataset

    model = tmp_path / "m.npz"
    assert_ok(invoke("train", "--dataset", dataset, *args, "--epochs", "1", "--out", model))
    net_model = modelio.load(model)
    gen = generate(net_model, tmp_path / "gen", kind)
    bits = net_model.spec.hidden_bits
    dev = InProcessDevice(build_device_module(gen, tmp_path / "build"), gen, hidden_bits=bits)
    d = load_dataset(dataset)
    X, y = net_model.encode(d.X_train), net_model.encode_labels(d.y_train)
    Xp = pack_inputs(X)
    net = net_model.network()
    link = make_link(dev)
    info = link.hello()
    assert (info.hidden_bits, info.steps, info.input_words) == (bits, net_model.spec.steps, Xp.shape[1])
    link.init(net.seed, net.batch_counter)
    shapes = net_model.spec.layer_shapes()
    lo, hi = net_model.spec.weight_limits
    new = [np.random.default_rng(3).integers(lo, hi + 1, size=s).astype(net.hidden_weights()[0].dtype)
           for s in shapes]
    for k, h in enumerate(new):
        link.load_hidden(k, h)
    ref = net.copy(new)
    gamma = [max(1, r // 4) for r, _ in shapes]
    ref.set_epoch_params(gamma, [1 << 16] * len(shapes))
    link.set_epoch(gamma, [1 << 16] * len(shapes))
    for i in range(0, 60, 20):
        res = ref.train_batch(X[i:i + 20], y[i:i + 20])
        assert np.array_equal(link.train(Xp[i:i + 20], y[i:i + 20]), res.predictions)
    assert_same_hidden(ref.hidden_weights(), [link.read_hidden(k, s) for k, s in enumerate(shapes)])
    assert_same_hidden(ref.hidden_weights(), [dev.read_hidden(k) for k in range(len(shapes))])
    assert np.array_equal(link.evaluate(Xp, y)[1], ref.predict(X))
    if bits == 16:  # odd byte ranges are refused
        (r,) = dev.exchange(b"\0" + P.encode_frame(P.Msg.READ_HIDDEN, 999, P.READ_HIDDEN_REQ.pack(
            layer=0, offset=1, length=2)))
        assert P.ERROR_REPLY.unpack(r.payload)["code"] == P.ErrorCode.BAD_PAYLOAD


def test_host_caps_its_own_payload(trained, device_module, net_model, data):
    Xp, X, y = data
    dev = make_device(device_module, trained)
    link = make_link(dev, max_payload=200)
    link.hello()
    assert link.max_payload == 200
    link.init(1)
    correct, pred = link.evaluate(Xp[:50], y[:50])
    assert len(pred) == 50 and link.frames_sent == 2 + 5  # 11 samples a frame


# ---------------------------------------------------------------------- the device's own checks


def raw(dev: InProcessDevice, type_: int, seq: int, payload: bytes = b"") -> list:
    return dev.exchange(b"\0" + P.encode_frame(type_, seq, payload))


def started(module, trained, net_model) -> InProcessDevice:
    dev = make_device(module, trained)
    net = net_model.network()
    (r,) = raw(dev, P.Msg.HELLO, 1, P.HELLO_REQ.pack(session=99))
    assert r.type == P.Msg.HELLO | P.REPLY_BIT
    (r,) = raw(dev, P.Msg.INIT, 2, P.INIT_REQ.pack(seed=net.seed & 0xFFFFFFFF, batches=0))
    assert r.payload == P.STATUS_REPLY.pack(session=99, status=0)
    (r,) = raw(dev, P.Msg.SET_EPOCH, 3, P.set_epoch_payload([2, 2], [1 << 16, 1 << 16]))
    assert r.payload == P.STATUS_REPLY.pack(session=99, status=0)
    return dev


def error_of(replies) -> tuple[int, int, int]:
    (r,) = replies
    assert isinstance(r, P.Frame) and r.type == P.ERROR_TYPE, r
    e = P.ERROR_REPLY.unpack(r.payload)
    return r.seq, e["code"], e["request_type"]


# Epoch records a board refuses (docs/protocol.md): each one field past what the runtime keeps.
BAD_RECORDS = ({"level": P.MAX_LEVEL + 1}, {"stalled": P.MAX_STALLED + 1}, {"best_errors": 8, "best_samples": 7},
               {"samples": 1 << 31, "errors": 0}, {"samples": 10, "errors": 11}, {"level": 0xFFFFFFFF})


def bad_record(**fields) -> bytes:
    """A SET_EPOCH payload (γ 2, 2 and Q 1) whose record holds ``fields`` (unchecked)."""
    good = P.set_epoch_payload([2, 2], [1 << 16, 1 << 16])
    return P.EPOCH_RECORD.pack(**{**EpochStart().as_dict(), **fields}) + good[P.EPOCH_RECORD.size:]


def test_broken_frames_get_error_replies_and_change_nothing(trained, device_module, net_model, data):
    Xp, X, y = data
    dev = started(device_module, trained, net_model)
    before = dev.state.copy()
    E = P.ErrorCode
    good = P.samples_payload(Xp[:3], y[:3], True)
    body = bytearray(P.frame_body(P.Msg.TRAIN, 10, good))
    # corrupted: CRC fails, seq unknown
    flipped = bytearray(body)
    flipped[9] ^= 0x10
    assert error_of(dev.exchange(b"\0" + P.cobs_encode(bytes(flipped)) + b"\0")) == (P.NO_SEQ, E.BAD_CRC, P.Msg.TRAIN)
    # torn: the last COBS block is cut short
    wire = P.cobs_encode(bytes(body))
    assert error_of(dev.exchange(b"\0" + wire[:-3] + b"\0")) == (P.NO_SEQ, E.BAD_COBS, P.Msg.TRAIN)
    # too short for a header
    assert error_of(dev.exchange(b"\0" + P.cobs_encode(b"\x06\x01") + b"\0")) == (P.NO_SEQ, E.BAD_LENGTH, 6)
    # len field disagrees (CRC valid): the seq is trusted
    bad_len = P.frame_body(P.Msg.TRAIN, 11, good)[:-4]
    bad_len = bad_len[:3] + (len(good) + 1).to_bytes(2, "little") + bad_len[5:]
    bad_len += P.crc32(bad_len).to_bytes(4, "little")
    assert error_of(dev.exchange(b"\0" + P.cobs_encode(bad_len) + b"\0")) == (11, E.BAD_LENGTH, P.Msg.TRAIN)
    # unknown types, including a reply type sent as a request
    for t in (0x00, 0x0C, 0x3F, 0x86, 0xFF):
        assert error_of(raw(dev, t, 12)) == (12, E.UNKNOWN_TYPE, t)
    # oversized: one byte more than MAX_PAYLOAD, then a huge run of full COBS blocks
    assert error_of(raw(dev, P.Msg.LOAD_HIDDEN, 13, bytes(P.MAX_PAYLOAD + 1))) == (P.NO_SEQ, E.OVERSIZED, 3)
    assert error_of(dev.exchange(b"\0" + b"\xff" * 100_000 + b"\0")) == (P.NO_SEQ, E.OVERSIZED, 0xFF)
    # payload lengths wrong for the type
    for t, payload in ((P.Msg.HELLO, b"\0" * 3), (P.Msg.INIT, b"\0" * 9), (P.Msg.READ_COUNTERS, b"\0"),
                       (P.Msg.RESET_COUNTERS, b"\0"), (P.Msg.SET_EPOCH, b"\0" * 11), (P.Msg.READ_SCHEDULE, b"\0"), (P.Msg.SET_CLASSES, b"\0"),
                       (P.Msg.SET_EPOCH, P.set_epoch_payload([2, 2], [0, 0])[:-1]), (P.Msg.TRAIN, b"\1\0"),
                       (P.Msg.TRAIN, good[:-1]), (P.Msg.EVAL, good[1:] + b"\0"), (P.Msg.READ_HIDDEN, b"\0" * 6),
                       (P.Msg.LOAD_HIDDEN, b"\0" * 5)):
        assert error_of(raw(dev, t, 14, payload)) == (14, E.BAD_LENGTH, t), (t, payload)
    # fields out of range: one bad label among good ones trains nothing
    labels = y[:3].copy()
    labels[2] = 4
    for t, payload in ((P.Msg.TRAIN, P.samples_payload(Xp[:3], labels, True)),
                       (P.Msg.TRAIN, P.TRAIN_REQ.pack(n=0, end_batch=2)),
                       (P.Msg.EVAL, P.samples_payload(Xp[:3], labels, None)),
                       (P.Msg.LOAD_HIDDEN, P.LOAD_HIDDEN_REQ.pack(layer=2, last=1, offset=0) + b"\1"),
                       (P.Msg.LOAD_HIDDEN, P.LOAD_HIDDEN_REQ.pack(layer=0, last=2, offset=0) + b"\1"),
                       (P.Msg.LOAD_HIDDEN, P.LOAD_HIDDEN_REQ.pack(layer=1, last=1, offset=64 * 32 - 1) + b"\1\1"),
                       (P.Msg.LOAD_HIDDEN, P.LOAD_HIDDEN_REQ.pack(layer=1, last=0, offset=0xFFFFFFFF) + b"\1"),
                       (P.Msg.READ_HIDDEN, P.READ_HIDDEN_REQ.pack(layer=0, offset=0, length=P.MAX_PAYLOAD - 4)),
                       (P.Msg.READ_HIDDEN, P.READ_HIDDEN_REQ.pack(layer=1, offset=64 * 32 - 8, length=9)),
                       (P.Msg.READ_HIDDEN, P.READ_HIDDEN_REQ.pack(layer=9, offset=0, length=1)),
                       *((P.Msg.SET_EPOCH, bad_record(**fields)) for fields in BAD_RECORDS)):
        assert error_of(raw(dev, t, 15, payload)) == (15, E.BAD_PAYLOAD, t), (t, payload)
    # an empty frame (two delimiters) and a lone delimiter say nothing
    assert dev.exchange(b"\0\0\0") == []
    assert np.array_equal(dev.state, before), "a refused frame changed the state"
    # and the device still works: the same TRAIN, intact
    (r,) = raw(dev, P.Msg.TRAIN, 16, good)
    assert r.type == P.Msg.TRAIN | P.REPLY_BIT and P.STATUS_REPLY.unpack(r.payload)["status"] == 0
    assert not np.array_equal(dev.state, before)


def test_repeated_request_is_applied_once(trained, device_module, net_model, data):
    Xp, X, y = data
    dev = started(device_module, trained, net_model)
    wire = b"\0" + P.encode_frame(P.Msg.TRAIN, 20, P.samples_payload(Xp[:5], y[:5], True))
    first = dev.exchange(wire)
    state = dev.state.copy()
    for _ in range(3):
        assert dev.exchange(wire) == first
    assert np.array_equal(dev.state, state)
    (c,) = raw(dev, P.Msg.READ_COUNTERS, 21)
    counters = P.COUNTERS_REPLY.unpack(c.payload, P.STATUS_REPLY.size)
    assert counters["samples"] == 5 and counters["batches"] == 1
    # same type and seq but other content: a new request (the key includes the CRC)
    raw(dev, P.Msg.TRAIN, 22, P.samples_payload(Xp[5:7], y[5:7], True))
    raw(dev, P.Msg.TRAIN, 22, P.samples_payload(Xp[7:9], y[7:9], True))
    (c,) = raw(dev, P.Msg.READ_COUNTERS, 23)
    assert P.COUNTERS_REPLY.unpack(c.payload, P.STATUS_REPLY.size)["samples"] == 9
    # an error reply in between does not evict the cache
    assert error_of(raw(dev, 0x30, 24))[1] == P.ErrorCode.UNKNOWN_TYPE
    assert dev.exchange(b"\0" + P.encode_frame(P.Msg.READ_COUNTERS, 23)) == [c]
    # HELLO is always processed (a new host session never gets a stale token)
    (h1,) = raw(dev, P.Msg.HELLO, 25, P.HELLO_REQ.pack(session=1))
    (h2,) = raw(dev, P.Msg.HELLO, 25, P.HELLO_REQ.pack(session=1))
    assert h1 == h2
    (h3,) = raw(dev, P.Msg.HELLO, 25, P.HELLO_REQ.pack(session=2))
    assert P.parse_hello(h3.payload).session == 2


def test_any_split_of_the_stream_gives_the_same_replies(trained, device_module, net_model, data):
    Xp, X, y = data
    frames = [P.encode_frame(P.Msg.TRAIN, 30 + i, P.samples_payload(Xp[i * 4:i * 4 + 4], y[i * 4:i * 4 + 4], i % 2))
              for i in range(6)] + [P.encode_frame(P.Msg.READ_HIDDEN, 40, P.READ_HIDDEN_REQ.pack(
                  layer=0, offset=0, length=P.MAX_PAYLOAD - 5))]
    stream = b"\0junk\0" + b"\0".join(frames)
    whole = started(device_module, trained, net_model)
    whole.feed(stream)
    expected = whole.take()
    rng = np.random.default_rng(5)
    for trial in range(3):
        dev = started(device_module, trained, net_model)
        cuts = np.sort(rng.choice(len(stream), size=40, replace=False)) if trial else np.arange(len(stream))
        for a, b in zip([0, *cuts], [*cuts, len(stream)]):
            dev.feed(stream[a:b])
        assert dev.take() == expected
        assert np.array_equal(dev.state, whole.state)
    # replies are well formed, and the C encoder writes the same bytes as protocol.py
    replies = P.FrameReader().feed(expected)
    assert all(isinstance(r, P.Frame) for r in replies) and len(replies) == 8
    assert expected == b"".join(b"\0" + P.encode_frame(r.type, r.seq, r.payload) for r in replies)
    assert len(replies[-1].payload) == P.MAX_PAYLOAD  # a full-size reply (254-byte COBS blocks in place)


# ---------------------------------------------------------------------- a bad line


def train_through(link: Link, net_model, X, y, epochs: int = 2, batch: int = 100, at_end: bool = True):
    """numpy and the board behind ``link`` through the one driver (compared at the end, or
    after every batch); returns numpy's trainer."""
    numpy = NumpyTrainer(net_model)
    plan = Plan.continuing(net_model, epochs, batch, patience=1, stall_signal="training")
    report = run_epochs([numpy, DeviceTrainer(link, net_model)], encoded_data(X, y), plan,
                        observers=[Lockstep(at_end=at_end)])
    assert report.bit_exact, report.divergence
    return numpy


@pytest.mark.parametrize("seed", [1, 2])
def test_faulty_line_ends_in_the_identical_state(trained, small_module, net_model, data, seed):
    """5 % of frames each way dropped, 5 % corrupted, 5 % truncated, 5 % duplicated, 5 %
    delayed past the timeout: training still matches numpy bit for bit, every sample is
    counted exactly once, and the link had to retry."""
    Xp, X, y = data
    dev = make_device(small_module, trained)
    line = FaultyTransport(DeviceTransport(dev), seed=seed, delay_seconds=0.06)
    link = Link(line, timeout=0.04, attempts=40)
    link.hello()
    numpy = train_through(link, net_model, X, y, epochs=1, batch=50)  # weights and counters compared at the end
    correct, pred = link.evaluate(Xp[:200], y[:200])
    assert np.array_equal(pred, numpy.net.predict(X[:200]))
    assert link.frames_retried > 0
    for direction in ("to_device", "to_host"):
        for kind in FaultyTransport.KINDS:
            assert line.faults[direction][kind] > 0, (direction, kind, line.faults)
    sent = link.frames_sent
    assert sum(line.faults["to_device"].values()) >= 0.15 * sent


def test_duplicated_requests_are_applied_once(trained, device_module, net_model, data):
    Xp, X, y = data
    dev = make_device(device_module, trained)
    line = FaultyTransport(DeviceTransport(dev), seed=3, drop=0, corrupt=0, truncate=0, delay=0, duplicate=0.5)
    link = Link(line, timeout=0.2)
    link.hello()
    train_through(link, net_model, X, y, epochs=1, batch=20)
    assert line.faults["to_device"]["duplicate"] > 10 and line.faults["to_host"]["duplicate"] > 10
    assert link.counters()["samples"] == len(y)
    assert link.replies_ignored > 0 and link.frames_retried == 0


def test_device_reset_mid_epoch_is_a_clear_error(trained, device_module, net_model, data):
    Xp, X, y = data
    dev = make_device(device_module, trained)
    link = make_link(dev)
    link.hello()
    link.init(1)
    link.set_epoch([4, 2], [0, 0])
    link.train(Xp[:50], y[:50])
    dev.reset()
    with pytest.raises(BEPError) as e:
        link.train(Xp[50:100], y[50:100])
    msg = str(e.value)
    assert msg.startswith("in-process: board was reset") and "\n" not in msg
    link.hello()  # a new session works again
    link.init(1)


def test_board_that_never_answers_times_out(trained):
    link = Link(SilentTransport(), timeout=0.05, attempts=3)
    t0 = time.monotonic()
    with pytest.raises(BEPError, match=r"^silent://board: board does not answer \(HELLO: no reply after 3 attempts"):
        link.hello()
    assert time.monotonic() - t0 < 1.0 and link.transport.written == 3 and link.frames_retried == 2


def test_port_that_does_not_open(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here once closed
    t0 = time.monotonic()
    with pytest.raises(BEPError, match=rf"^socket://127.0.0.1:{port}: port does not open after 0.3 s"):
        Link(f"socket://127.0.0.1:{port}", connect_timeout=0.3)
    assert time.monotonic() - t0 < 2
    with pytest.raises(BEPError, match=r"/dev/ttyNOPE: port does not open"):
        Link("/dev/ttyNOPE", connect_timeout=0)


def test_unexpected_reply_is_a_clear_error(trained, device_module):
    dev = make_device(device_module, trained)

    class Liar(DeviceTransport):
        def read(self, timeout):
            out = self.device.take()
            frames = P.FrameReader().feed(out)
            return b"".join(b"\0" + P.encode_frame(P.Msg.EVAL | P.REPLY_BIT, f.seq, f.payload) for f in frames)

    link = Link(Liar(dev), timeout=0.1)
    with pytest.raises(BEPError, match=r"^in-process: unexpected reply to HELLO \(seq 0\): type 0x87$"):
        link.hello()


@pytest.mark.parametrize("field, value", [("classes_in_use", 300), ("max_classes", 1), ("n_classes", 0),
                                          ("max_classes", 60000)])
def test_a_hello_with_inconsistent_class_counts_is_a_clear_error(trained, device_module, field, value):
    """The class counts of a HELLO reply (the host compares its model with them and sends
    SET_CLASSES from them) are checked before the session starts: one line naming them."""
    dev = make_device(device_module, trained)
    at = P.REPLY_HEAD.size + P.HELLO_REPLY.offsets()[field]

    class Forger(DeviceTransport):
        def read(self, timeout):
            frames = P.FrameReader().feed(self.device.take())
            out = b""
            for f in frames:
                payload = bytearray(f.payload)
                payload[at:at + 2] = value.to_bytes(2, "little")
                out += b"\0" + P.encode_frame(f.type, f.seq, bytes(payload))
            return out

    link = Link(Forger(dev), timeout=0.1)
    with pytest.raises(BEPError, match=r"^in-process: unexpected reply to HELLO: \d+ classes built, \d+ prototypes, "
                                       r"\d+ in use$"):
        link.hello()
    assert link.session is None


def test_over_a_tcp_socket(trained, device_module, net_model, data):
    """pyserial socket:// to a server that starts late (the host retries), TCP_NODELAY set."""
    Xp, X, y = data
    dev = make_device(device_module, trained)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop = threading.Event()

    def serve():
        time.sleep(0.3)
        with socket.create_server(("127.0.0.1", port)) as server:
            server.settimeout(5)
            conn, _ = server.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(0.05)
                while not stop.is_set():
                    try:
                        chunk = conn.recv(65536)
                    except TimeoutError:
                        continue
                    if not chunk:
                        break
                    dev.feed(chunk)
                    out = dev.take()
                    if out:
                        conn.sendall(out)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with Link(f"socket://127.0.0.1:{port}", timeout=2.0, connect_timeout=5.0) as link:
            sock = link.transport.port._socket
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert link.hello().board == "in-process"
            net = net_model.network()
            link.init(net.seed, net.batch_counter)
            net.set_epoch_params([4, 2], [1 << 16, 1 << 16])
            link.set_epoch([4, 2], [1 << 16, 1 << 16])
            t0 = time.monotonic()
            for i in range(0, 300, 100):
                res = net.train_batch(X[i:i + 100], y[i:i + 100])
                assert np.array_equal(link.train(Xp[i:i + 100], y[i:i + 100]), res.predictions)
            assert time.monotonic() - t0 < 2.0  # no 40 ms Nagle stall per frame
            shapes = net_model.spec.layer_shapes()
            assert_same_hidden(net.hidden_weights(), [link.read_hidden(k, s) for k, s in enumerate(shapes)])
    finally:
        stop.set()
        thread.join(5)


def test_reserved_sequence_number_is_refused(trained, device_module, net_model, data):
    """0xFFFF marks error replies to untrusted frames (docs/protocol.md): never a request's."""
    Xp, X, y = data
    dev = started(device_module, trained, net_model)
    before = dev.state.copy()
    good = P.samples_payload(Xp[:3], y[:3], True)
    assert error_of(raw(dev, P.Msg.TRAIN, P.NO_SEQ, good)) == (P.NO_SEQ, P.ErrorCode.BAD_PAYLOAD, P.Msg.TRAIN)
    assert np.array_equal(dev.state, before)
    (r,) = raw(dev, P.Msg.TRAIN, 0xFFFE, good)  # the largest request seq is fine
    assert r.type == P.Msg.TRAIN | P.REPLY_BIT
