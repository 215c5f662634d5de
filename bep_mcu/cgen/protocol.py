"""The serial protocol between the host (``link.py``) and a board (``bep_link.c``).

The one source of truth (docs/protocol.md is the prose): the version, message ids,
error codes, frame sizes, the default ``MAX_PAYLOAD``, every payload layout (``struct``
formats, little-endian), COBS framing and the CRC. ``c_context()`` is what
``codegen`` renders into ``bep_proto.h``, so the C never types a number of its own.

A frame on the wire is ``COBS(type u8 | seq u16 | len u16 | payload | crc32 u32) 0x00``;
the host also sends one 0x00 *before* each frame so that a torn frame on the line
never swallows the next one.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from bep_mcu.cgen import abi
from bep_mcu.engine.schedule import Q_LEVELS, EpochStart
from bep_mcu.engine.spec import MAX_PATIENCE

# 2: SET_EPOCH carries the epoch record, READ_SCHEDULE reads it back; 3: SET_CLASSES, and HELLO reports the
# classifier's prototypes and the classes in use
PROTO_VERSION = 3
MAX_PAYLOAD = 1024  # default of BEP_LINK_MAX_PAYLOAD; a board may build with less
MIN_MAX_PAYLOAD = 64  # smallest BEP_LINK_MAX_PAYLOAD a build accepts (a HELLO reply must fit)
MAX_MAX_PAYLOAD = 65535 - 9  # the decoded frame (header 5 + payload + crc 4) stays below 64 KB
REPLY_BIT = 0x80
ERROR_TYPE = 0xFF
NO_SEQ = 0xFFFF  # seq of an error reply to a frame whose header could not be trusted; never a request's seq
SEQ_MODULUS = 0xFFFF  # request seqs run 0..0xFFFE, then wrap
COBS_BLOCK = 254  # data bytes in a full COBS block (code 0xFF)
LINK_POINTERS = 5  # pointers in bep_link_t: cfg, state, info, write, ctx

# (name, id, what it does). Requests are 0x01..0x3F; a reply is id | REPLY_BIT.
MESSAGES: list[tuple[str, int, str]] = [
    ("HELLO", 0x01, "store the host's session token; report versions, sizes and the network"),
    ("INIT", 0x02, "bep_init: weights from the flash tables, counters cleared"),
    ("LOAD_HIDDEN", 0x03, "write hidden-weight bytes of a layer; repack it on the last piece"),
    ("READ_HIDDEN", 0x04, "read hidden-weight bytes of a layer"),
    ("SET_EPOCH", 0x05, "per-epoch gamma and Q of every layer, and the epoch record (host schedule)"),
    ("TRAIN", 0x06, "train on samples; end the batch when asked"),
    ("EVAL", 0x07, "predict samples, count the correct ones"),
    ("READ_COUNTERS", 0x08, "read the training counters"),
    ("RESET_COUNTERS", 0x09, "clear the counters (not the batch counter)"),
    ("READ_SCHEDULE", 0x0A, "read the epoch record back, with the samples and errors of the open epoch"),
    ("SET_CLASSES", 0x0B, "bep_set_classes: put prototypes reserved for new classes in use"),
]

# (name, code, meaning): codes of an ERROR reply (type 0xFF), distinct from bep_status_t.
ERRORS: list[tuple[str, int, str]] = [
    ("BAD_CRC", -20, "the frame's CRC does not match (corrupted on the line)"),
    ("BAD_LENGTH", -21, "the len field disagrees with the frame, or the payload length is wrong for its type"),
    ("UNKNOWN_TYPE", -22, "not a request type this firmware knows"),
    ("BAD_PAYLOAD", -23, "a field is out of range (layer, offset, n, label (a class not in use), flag)"),
    ("OVERSIZED", -24, "the frame is longer than the board's MAX_PAYLOAD allows"),
    ("BAD_COBS", -25, "the byte stuffing is broken (frame torn or corrupted)"),
]

Msg = IntEnum("Msg", [(name, value) for name, value, _ in MESSAGES])
ErrorCode = IntEnum("ErrorCode", [(name, value) for name, value, _ in ERRORS])
ERROR_MEANING = {value: meaning for _, value, meaning in ERRORS}
# The request (probably) never arrived intact: send it again, same seq.
RETRYABLE = frozenset({ErrorCode.BAD_CRC, ErrorCode.BAD_LENGTH, ErrorCode.OVERSIZED, ErrorCode.BAD_COBS})


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"UNKNOWN_ERROR({code})"


def message_name(type_: int) -> str:
    try:
        return Msg(type_ & ~REPLY_BIT if type_ != ERROR_TYPE else type_).name
    except ValueError:
        return "ERROR" if type_ == ERROR_TYPE else f"0x{type_:02X}"


# ------------------------------------------------------------------ payload layouts


@dataclass(frozen=True)
class Layout:
    """The fixed part of a payload: named fields with ``struct`` codes, little-endian."""

    name: str
    fields: tuple[tuple[str, str], ...]

    @property
    def fmt(self) -> str:
        return "<" + "".join(code for _, code in self.fields)

    @property
    def size(self) -> int:
        return struct.calcsize(self.fmt)

    def offsets(self) -> dict[str, int]:
        out, pos = {}, 0
        for field, code in self.fields:
            out[field] = pos
            pos += struct.calcsize("<" + code)
        return out

    def pack(self, **values: int) -> bytes:
        return struct.pack(self.fmt, *(values[f] for f, _ in self.fields))

    def unpack(self, payload: bytes, offset: int = 0) -> dict[str, int]:
        return dict(zip((f for f, _ in self.fields), struct.unpack_from(self.fmt, payload, offset)))


HEADER = Layout("HEADER", (("type", "B"), ("seq", "H"), ("len", "H")))
HEADER_FMT = HEADER.fmt
CRC_FMT = "<I"
HEADER_BYTES = HEADER.size
CRC_BYTES = struct.calcsize(CRC_FMT)
# Requests: the fixed part; variable data follows as the table in docs/protocol.md says.
HELLO_REQ = Layout("HELLO_REQ", (("session", "I"),))
INIT_REQ = Layout("INIT_REQ", (("seed", "I"), ("batches", "I")))
LOAD_HIDDEN_REQ = Layout("LOAD_HIDDEN_REQ", (("layer", "B"), ("last", "B"), ("offset", "I")))  # + bytes
READ_HIDDEN_REQ = Layout("READ_HIDDEN_REQ", (("layer", "B"), ("offset", "I"), ("length", "H")))
# SET_EPOCH: the epoch record, then n_layers of SET_EPOCH_GAMMA, then n_layers of SET_EPOCH_Q. The
# record is engine.schedule.EpochStart: the board keeps it in its schedule state (the counters at
# that moment, less samples and errors, become the epoch's start marks) so that it outlives the host.
EPOCH_RECORD = Layout("EPOCH_RECORD", tuple((name, "I") for name in EpochStart.FIELDS))
SET_EPOCH_GAMMA = "H"
SET_EPOCH_Q = "I"
# What the board accepts in a record: a level within the Q table, fewer stalled epochs than any
# patience, best_errors <= best_samples, samples below BEP_EPOCH_MAX_SAMPLES, errors <= samples.
MAX_LEVEL = Q_LEVELS
MAX_STALLED = MAX_PATIENCE - 1
TRAIN_REQ = Layout("TRAIN_REQ", (("n", "H"), ("end_batch", "B")))  # + inputs n x input_words u32, labels n x u16
EVAL_REQ = Layout("EVAL_REQ", (("n", "H"),))  # + inputs, labels
SET_CLASSES_REQ = Layout("SET_CLASSES_REQ", (("n", "H"),))  # classes in use from now (bep_set_classes)
INPUT_WORD = "I"
LABEL = "H"
PREDICTION = "H"
# Replies: every reply payload starts with REPLY_HEAD; all but HELLO and ERROR then carry a status.
REPLY_HEAD = Layout("REPLY_HEAD", (("session", "I"),))
STATUS_REPLY = Layout("STATUS_REPLY", (("session", "I"), ("status", "b")))
HELLO_REPLY = Layout("HELLO_REPLY", (  # after REPLY_HEAD; + board ascii
    ("proto_version", "H"), ("fw_version", "H"), ("config_hash", "I"), ("state_bytes", "I"), ("ram_bytes", "I"),
    ("flash_bytes", "I"), ("max_payload", "H"), ("n_layers", "B"), ("hidden_bits", "B"), ("n_classes", "H"),
    ("input_words", "H"), ("steps", "H"), ("max_classes", "H"), ("classes_in_use", "H"), ("board_len", "B")))
TRAIN_REPLY = Layout("TRAIN_REPLY", (("n", "H"),))  # after STATUS_REPLY; + predictions n x u16
EVAL_REPLY = Layout("EVAL_REPLY", (("correct", "H"),))  # after STATUS_REPLY; + predictions n x u16
COUNTERS_REPLY = Layout("COUNTERS_REPLY", (  # after STATUS_REPLY
    ("samples", "I"), ("triggered", "I"), ("errors", "I"), ("updates", "I"), ("batches", "I")))
# READ_SCHEDULE's reply after STATUS_REPLY: EPOCH_RECORD (samples and errors: of the open epoch so far), then
# the γ and Q in use as in SET_EPOCH.
ERROR_REPLY = Layout("ERROR_REPLY", (("session", "I"), ("code", "b"), ("request_type", "B")))
LAYOUTS = (HEADER, HELLO_REQ, INIT_REQ, LOAD_HIDDEN_REQ, READ_HIDDEN_REQ, EPOCH_RECORD, TRAIN_REQ, EVAL_REQ,
           SET_CLASSES_REQ, REPLY_HEAD, STATUS_REPLY, HELLO_REPLY, TRAIN_REPLY, EVAL_REPLY, COUNTERS_REPLY, ERROR_REPLY)
# A normal reply whose status is not BEP_OK carries STATUS_REPLY only.


def sample_bytes(input_words: int) -> int:
    """Bytes one sample takes in a TRAIN or EVAL request."""
    return input_words * struct.calcsize("<" + INPUT_WORD) + struct.calcsize("<" + LABEL)


def samples_per_frame(input_words: int, max_payload: int, train: bool = True) -> int:
    """How many samples one TRAIN (or EVAL) request of at most ``max_payload`` bytes holds."""
    fixed = (TRAIN_REQ if train else EVAL_REQ).size
    return max(0, (max_payload - fixed) // sample_bytes(input_words))


# ------------------------------------------------------------------ COBS and CRC


class FrameError(Exception):
    """A received frame that cannot be used; ``code`` is the ErrorCode a board would send."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the output holds no 0x00 byte.

    Same bytes as bep_link.c's encoder: a full block of 254 is code 0xFF, and a final
    block (possibly empty, code 0x01) always closes the frame. At most
    ``len(data) + len(data) // 254 + 1`` bytes."""
    out = bytearray()
    for piece in bytes(data).split(b"\0"):
        while len(piece) >= COBS_BLOCK:
            out.append(0xFF)
            out += piece[:COBS_BLOCK]
            piece = piece[COBS_BLOCK:]
        out.append(len(piece) + 1)
        out += piece
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode` (any valid COBS, with or without the trailing 0x01)."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError(ErrorCode.BAD_COBS, "0x00 inside a COBS frame")
        end = i + code
        if end > n:
            raise FrameError(ErrorCode.BAD_COBS, "COBS block runs past the end of the frame")
        block = data[i + 1:end]
        if 0 in block:
            raise FrameError(ErrorCode.BAD_COBS, "0x00 inside a COBS frame")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def cobs_max(n: int) -> int:
    """Largest COBS encoding of n bytes (BEP_LINK_COBS_MAX in bep_link.h)."""
    return n + n // COBS_BLOCK + 1


def crc32(data: bytes) -> int:
    """CRC-32/IEEE (reflected 0xEDB88320, init and final xor 0xFFFFFFFF), as zlib."""
    return zlib.crc32(data) & 0xFFFFFFFF


def crc32_nibble_table() -> list[int]:
    """The 16-entry table bep_link.c computes the CRC with (two lookups a byte)."""
    table = []
    for i in range(16):
        c = i
        for _ in range(4):
            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
        table.append(c)
    return table


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes


def frame_body(type_: int, seq: int, payload: bytes = b"") -> bytes:
    """The decoded frame: header, payload and CRC (before COBS)."""
    head = struct.pack(HEADER_FMT, type_, seq, len(payload)) + bytes(payload)
    return head + struct.pack(CRC_FMT, crc32(head))


def encode_frame(type_: int, seq: int, payload: bytes = b"") -> bytes:
    """COBS(frame) + 0x00: the bytes of one frame on the wire."""
    if not 0 <= type_ <= 0xFF or not 0 <= seq <= 0xFFFF:
        raise ValueError(f"type {type_} or seq {seq} out of range")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a u16 length")
    return cobs_encode(frame_body(type_, seq, payload)) + b"\0"


def decode_body(body: bytes, max_payload: int = MAX_PAYLOAD) -> Frame:
    """Check and split a decoded frame, in the order the board checks one."""
    if len(body) > HEADER_BYTES + max_payload + CRC_BYTES:
        raise FrameError(ErrorCode.OVERSIZED, f"frame of {len(body)} bytes exceeds max payload {max_payload}")
    if len(body) < HEADER_BYTES + CRC_BYTES:
        raise FrameError(ErrorCode.BAD_LENGTH, f"frame of {len(body)} bytes is shorter than a header and CRC")
    (crc,) = struct.unpack_from(CRC_FMT, body, len(body) - CRC_BYTES)
    if crc != crc32(body[:-CRC_BYTES]):
        raise FrameError(ErrorCode.BAD_CRC, "CRC mismatch")
    type_, seq, length = struct.unpack_from(HEADER_FMT, body)
    if length != len(body) - HEADER_BYTES - CRC_BYTES:
        raise FrameError(ErrorCode.BAD_LENGTH, f"len field {length} disagrees with the frame")
    return Frame(type_, seq, bytes(body[HEADER_BYTES:-CRC_BYTES]))


def decode_frame(wire: bytes, max_payload: int = MAX_PAYLOAD) -> Frame:
    """One frame's COBS bytes (delimiters optional) → Frame, or FrameError."""
    wire = bytes(wire).strip(b"\0")
    if len(wire) > cobs_max(HEADER_BYTES + max_payload + CRC_BYTES):
        raise FrameError(ErrorCode.OVERSIZED, f"frame of {len(wire)} wire bytes exceeds max payload {max_payload}")
    return decode_body(cobs_decode(wire), max_payload)


class FrameReader:
    """Splits a byte stream at 0x00 into frames; garbage comes out as FrameError items."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        self._buf += data
        *chunks, rest = bytes(self._buf).split(b"\0")
        self._buf = bytearray(rest)
        if len(self._buf) > 2 * cobs_max(HEADER_BYTES + self.max_payload + CRC_BYTES):
            self._buf.clear()  # an endless run without a delimiter: nothing in it can be a frame
        out: list[Frame | FrameError] = []
        for chunk in chunks:
            if chunk:
                try:
                    out.append(decode_frame(chunk, self.max_payload))
                except FrameError as e:
                    out.append(e)
        return out

    def clear(self) -> None:
        self._buf.clear()


# ------------------------------------------------------------------ payloads


def pack_words(x_words: np.ndarray) -> bytes:
    return np.ascontiguousarray(x_words, dtype="<u4").tobytes()


def pack_u16(values) -> bytes:
    return np.ascontiguousarray(values, dtype="<u2").tobytes()


def unpack_u16(data: bytes, n: int, offset: int = 0) -> np.ndarray:
    return np.frombuffer(data, dtype="<u2", count=n, offset=offset).astype(np.int64)


def set_epoch_payload(gamma, q, start: EpochStart | None = None) -> bytes:
    """SET_EPOCH: the epoch record (default: a fresh schedule at epoch 0), γ and Q of every layer
    (also READ_SCHEDULE's reply after the status)."""
    record = (start or EpochStart()).as_dict()
    return EPOCH_RECORD.pack(**record) + pack_u16(gamma) + np.ascontiguousarray(q, dtype="<u4").tobytes()


def parse_schedule(body: bytes, n_layers: int) -> tuple[EpochStart, list[int], list[int]]:
    """READ_SCHEDULE's reply after the status: (record, γ, Q); ValueError if it is not one."""
    if len(body) != EPOCH_RECORD.size + 6 * n_layers:
        raise ValueError(f"{len(body)} bytes after the status, expected {EPOCH_RECORD.size + 6 * n_layers}")
    try:
        start = EpochStart(**EPOCH_RECORD.unpack(body))
    except ValueError as e:  # a BEPError: a field out of range
        raise ValueError(str(e)) from None
    gamma = unpack_u16(body, n_layers, EPOCH_RECORD.size).tolist()
    q = np.frombuffer(body, dtype="<u4", count=n_layers, offset=EPOCH_RECORD.size + 2 * n_layers).tolist()
    return start, gamma, q


def samples_payload(x_words: np.ndarray, labels, end_batch: bool | None) -> bytes:
    """TRAIN (end_batch given) or EVAL (end_batch None) request payload."""
    n = len(labels)
    head = EVAL_REQ.pack(n=n) if end_batch is None else TRAIN_REQ.pack(n=n, end_batch=int(end_batch))
    return head + pack_words(x_words) + pack_u16(labels)


@dataclass(frozen=True)
class HelloInfo:
    """What a board reports in its HELLO reply."""

    session: int
    proto_version: int
    fw_version: int
    config_hash: int
    state_bytes: int
    ram_bytes: int
    flash_bytes: int
    max_payload: int
    n_layers: int
    hidden_bits: int
    n_classes: int  # classes in use when the firmware was built (INIT's)
    input_words: int
    steps: int
    max_classes: int  # the classifier's prototypes: n_classes and those reserved for classes to come
    classes_in_use: int  # the state's (SET_CLASSES); 0 before INIT
    board: str


def parse_hello(payload: bytes) -> HelloInfo:
    fixed = REPLY_HEAD.size + HELLO_REPLY.size
    if len(payload) < fixed:
        raise ValueError(f"HELLO reply of {len(payload)} bytes, expected at least {fixed}")
    values = REPLY_HEAD.unpack(payload) | HELLO_REPLY.unpack(payload, REPLY_HEAD.size)
    board_len = values.pop("board_len")
    if len(payload) != fixed + board_len:
        raise ValueError(f"HELLO reply of {len(payload)} bytes, board name of {board_len}")
    return HelloInfo(board=payload[fixed:].decode("ascii", "replace"), **values)


# ------------------------------------------------------------------ sizes of bep_link_t


def link_frame_max(max_payload: int = MAX_PAYLOAD) -> int:
    return HEADER_BYTES + max_payload + CRC_BYTES


def _round8(n: int) -> int:
    return (n + 7) & ~7


def link_bytes(max_payload: int = MAX_PAYLOAD, pointer_bytes: int = 4) -> int:
    """sizeof(bep_link_t) (BEP_LINK_BYTES): RAM of the link besides the network state.

    Mirrors the macros of bep_link.h (a static assert there and a test here keep the
    two equal): fixed fields, the decoded request (whole u32 words, an even number),
    the encoded reply cache with both delimiters, the error reply, and the pointers
    (4 bytes on Cortex-M, 8 on a 64-bit host)."""
    if not MIN_MAX_PAYLOAD <= max_payload <= MAX_MAX_PAYLOAD:
        raise ValueError(f"max payload {max_payload} outside {MIN_MAX_PAYLOAD}..{MAX_MAX_PAYLOAD}")
    frame = link_frame_max(max_payload)
    rx = (frame + 7) // 8 * 8
    tx = _round8(cobs_max(frame) + 2)
    err = _round8(cobs_max(HEADER_BYTES + ERROR_REPLY.size + CRC_BYTES) + 2)
    return abi.LINK_FIXED_BYTES + rx + tx + err + LINK_POINTERS * pointer_bytes


# ------------------------------------------------------------------ C rendering


def c_context() -> dict:
    """Everything proto.h.j2 renders: names, numbers and layouts, all from this module."""
    layouts = [{"name": lay.name, "size": lay.size,
                "fields": [(f.upper(), off) for f, off in lay.offsets().items()]} for lay in LAYOUTS]
    return {
        "proto_version": PROTO_VERSION, "header_bytes": HEADER_BYTES, "crc_bytes": CRC_BYTES,
        "max_payload": MAX_PAYLOAD, "min_max_payload": MIN_MAX_PAYLOAD, "max_max_payload": MAX_MAX_PAYLOAD,
        "reply_bit": REPLY_BIT, "error_type": ERROR_TYPE, "no_seq": NO_SEQ, "cobs_block": COBS_BLOCK,
        "messages": MESSAGES, "errors": ERRORS, "layouts": layouts,
        "last_request": max(value for _, value, _ in MESSAGES),
        "crc_table": crc32_nibble_table(), "link_pointers": LINK_POINTERS,
        "hello_fixed": REPLY_HEAD.size + HELLO_REPLY.size, "max_level": MAX_LEVEL, "max_stalled": MAX_STALLED,
    }
