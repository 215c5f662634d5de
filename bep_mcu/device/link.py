"""The host side of the serial protocol (docs/protocol.md): talk to a board that trains.

``Link`` sends one request at a time and waits for its reply. Requests are numbered
(seq 0..0xFFFE, then wrap); a request is sent again with the *same* seq after a
timeout, after a reply that arrived corrupted, or after an error reply with seq 0xFFFF
(the board saw a frame it could not trust), up to ``attempts`` times. The board
answers a repeat from its cache of the last reply, so nothing is applied twice. An
error reply that carries the request's seq is final (the board read the request
intact and refused it). Every reply carries the session token set by ``hello``; a
different token means the board was reset.

Errors the user can act on are ``BoardError`` one-liners (exit status 4) that name the port (a
``socket://``/``rfc2217://`` URL without a TCP port 1..65535 is bad input, exit status 2). The byte
pipe is a ``Transport``: pyserial for any URL (``/dev/ttyACM0``, ``socket://host:port``
for QEMU, ``loop://``), or anything with ``write``/``read``/``close``, so tests can put
a fault injector (``FaultyTransport``) or a device compiled into the test between host
and board.

Example usage::

    with Link("socket://127.0.0.1:5555", timeout=2.0) as link:
        info = link.hello()
        link.init(seed, batches=0)
        link.set_epoch(gamma, q)
        for x_words, labels in batches:        # x_words: (n, input_words) uint32
            link.train(x_words, labels)         # end_batch on the last frame
        correct, predictions = link.evaluate(x_test, y_test)
        hidden0 = link.read_hidden(0, (rows, cols), np.int8)
"""

from __future__ import annotations

import os
import random
import re
import socket
import threading
import time
from collections import Counter, deque
from typing import Protocol

import numpy as np

from bep_mcu.cgen import protocol as P
from bep_mcu import validate
from bep_mcu.errors import BEPError, BoardError
from bep_mcu.cgen.status import status_name, status_value
from bep_mcu.engine.schedule import EpochStart
from bep_mcu.engine.spec import HIDDEN_DTYPE, MAX_CLASSES


class Transport(Protocol):
    """A byte pipe to a board. ``read`` waits up to ``timeout`` seconds for at least
    one byte and returns what is there (``b""`` on timeout)."""

    name: str

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes: ...

    def close(self) -> None: ...


_TCP_SCHEMES = ("socket://", "rfc2217://")


def check_tcp_url(url: str) -> None:
    """A ``socket://`` or ``rfc2217://`` URL names its TCP port, 1..65535, in ASCII digits
    (pyserial's own complaint names neither the port nor the value)."""
    if not url.startswith(_TCP_SCHEMES):
        return
    netloc = re.split(r"[/?#]", url.split("://", 1)[1], maxsplit=1)[0]
    _, colon, port = netloc.rpartition(":")
    if not colon or "]" in port:  # no ':' at all, or only an IPv6 address's
        raise BEPError(f"port URL {validate.show(url)} names no TCP port: write {url.split('://')[0]}://HOST:PORT")
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise BEPError(f"port URL {validate.show(url)}: the TCP port must be an integer in 1..65535, "
                       f"got {validate.show(port)}")


class _ReaderDeaths:
    """pyserial's ``rfc2217://`` reader thread parses the peer's telnet bytes and dies on
    some malformed ones (IAC SE without IAC SB: a TypeError inside pyserial); Python would
    print that thread's traceback. While a port is open, ``threading.excepthook`` keeps such
    a death as the reason the port failed, for the one error line; every other thread's
    exception goes to the hook that was there before."""

    PREFIX = "pySerial RFC 2217 reader thread for "  # pyserial's name for it, then the URL

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ports = 0
        self.previous = threading.excepthook
        self.reasons: dict[str, str] = {}

    def watch(self) -> None:
        with self.lock:
            if self.ports == 0:
                self.previous, threading.excepthook = threading.excepthook, self._hook
            self.ports += 1

    def unwatch(self, url: str) -> None:
        with self.lock:
            self.reasons.pop(url, None)
            self.ports -= 1
            if self.ports == 0 and threading.excepthook == self._hook:
                threading.excepthook = self.previous

    def reason(self, url: str) -> str | None:
        """Why ``url``'s reader thread died, if it did."""
        death = self.reasons.get(url)
        return None if death is None else f"the peer's telnet data broke pyserial's RFC 2217 reader ({death})"

    def _hook(self, args: threading.ExceptHookArgs) -> None:
        name = getattr(args.thread, "name", "")
        if name.startswith(self.PREFIX) and issubclass(args.exc_type, Exception):
            self.reasons[name[len(self.PREFIX):]] = f"{args.exc_type.__name__}: {args.exc_value}"
        else:
            self.previous(args)


_reader_deaths = _ReaderDeaths()


class SerialTransport:
    """Any pyserial URL; ``socket://`` gets TCP_NODELAY (else every reply waits ~40 ms)."""

    def __init__(self, port, name: str) -> None:
        self.port, self.name = port, name

    @classmethod
    def open(cls, url: str, baudrate: int = 115200, connect_timeout: float = 5.0) -> "SerialTransport":
        """Open ``url``, retrying until ``connect_timeout`` (QEMU may not listen yet)."""
        import serial

        check_tcp_url(url)
        _reader_deaths.watch()  # until close()
        try:
            deadline = time.monotonic() + connect_timeout
            while True:
                try:
                    port = serial.serial_for_url(url, timeout=0, baudrate=baudrate)
                    break
                except ValueError as e:
                    raise BoardError(f"{url}: port does not open ({e})") from None
                except (serial.SerialException, OSError) as e:
                    peer = _reader_deaths.reason(url)
                    if peer is not None:  # it talks, but not RFC 2217: trying again will not help
                        raise BoardError(f"{url}: port does not open: {peer}") from None
                    if time.monotonic() >= deadline:
                        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                        raise BoardError(f"{url}: port does not open after {connect_timeout:g} s ({reason})") from None
                    time.sleep(0.05)
        except BaseException:
            _reader_deaths.unwatch(url)
            raise
        sock = getattr(port, "_socket", None)
        if url.startswith("socket://") and sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(port, url)

    def _failed(self, what: str, e: Exception) -> BoardError:
        return BoardError(f"{self.name}: {what} the port failed ({_reader_deaths.reason(self.name) or e})")

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as e:
            raise self._failed("writing to", e) from None

    def read(self, timeout: float) -> bytes:
        import serial

        try:
            self.port.timeout = max(0.0, timeout)
            first = self.port.read(1)
            if not first:
                return b""
            self.port.timeout = 0  # then whatever else is already there, without waiting
            return first + self.port.read(65536)
        except (serial.SerialException, OSError) as e:
            raise self._failed("reading from", e) from None

    def close(self) -> None:
        if self.port.is_open:  # the port's lifetime ends here, once
            self.port.close()
            _reader_deaths.unwatch(self.name)


class FaultyTransport:
    """Puts a bad line between host and board: whole frames (0x00-delimited) are dropped,
    corrupted (random bit flips), truncated, duplicated or delayed, each with its own
    probability, independently in each direction, from a seeded generator. Delays keep
    the order of the byte stream (a held frame holds everything behind it), as a slow
    line would. ``faults`` counts what was done, per direction."""

    KINDS = ("drop", "corrupt", "truncate", "duplicate", "delay")

    def __init__(self, inner: Transport, seed: int = 0, drop: float = 0.05, corrupt: float = 0.05,
                 truncate: float = 0.05, duplicate: float = 0.05, delay: float = 0.05,
                 delay_seconds: float = 0.1) -> None:
        self.inner, self.name = inner, f"{inner.name} (faulty)"
        self.rng = random.Random(seed)
        self.p = {"drop": drop, "corrupt": corrupt, "truncate": truncate, "duplicate": duplicate, "delay": delay}
        self.delay_seconds = delay_seconds
        self.faults = {"to_device": Counter(), "to_host": Counter()}
        self._to_device: deque[tuple[float, bytes]] = deque()
        self._to_host: deque[tuple[float, bytes]] = deque()
        self._partial = bytearray()

    def _mangle(self, frame: bytes, direction: str, queue: deque) -> None:
        now = time.monotonic()
        release = max(now, queue[-1][0]) if queue else now
        u, kind = self.rng.random(), None
        for k in self.KINDS:
            if u < self.p[k]:
                kind = k
                break
            u -= self.p[k]
        if kind:
            self.faults[direction][kind] += 1
        if kind == "drop":
            return
        if kind == "corrupt":
            data = bytearray(frame)
            for _ in range(self.rng.randint(1, 3)):
                data[self.rng.randrange(len(data))] ^= 1 << self.rng.randrange(8)
            frame = bytes(data)
        elif kind == "truncate":
            frame = frame[:self.rng.randrange(1, len(frame))]
        elif kind == "delay":
            release += self.delay_seconds
        queue.append((release, frame))
        if kind == "duplicate":
            queue.append((release, frame))

    def _pump(self) -> None:
        now = time.monotonic()
        while self._to_device and self._to_device[0][0] <= now:
            self.inner.write(self._to_device.popleft()[1])

    def _ingest(self, data: bytes) -> None:
        self._partial += data
        while True:
            end = self._partial.find(0, 1)  # a frame: bytes up to and including its closing 0x00
            if end < 0:
                return
            frame, self._partial = bytes(self._partial[:end + 1]), self._partial[end + 1:]
            self._mangle(frame, "to_host", self._to_host)

    def write(self, data: bytes) -> None:
        self._mangle(bytes(data), "to_device", self._to_device)
        self._pump()

    def read(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            self._pump()
            self._ingest(self.inner.read(0))
            now = time.monotonic()
            out = bytearray()
            while self._to_host and self._to_host[0][0] <= now:
                out += self._to_host.popleft()[1]
            if out:
                return bytes(out)
            if now >= deadline:
                return b""
            due = [q[0][0] for q in (self._to_device, self._to_host) if q]
            wait = min([deadline - now, 0.005, *[d - now for d in due]])
            if wait > 0:
                self._ingest(self.inner.read(wait))

    def close(self) -> None:
        self.inner.close()


def _describe(msg: int) -> str:
    return P.message_name(msg)


class Link:
    """A session with one board over ``transport`` (a pyserial URL or a Transport).

    ``timeout`` is per attempt, in seconds; ``attempts`` bounds the sends of one
    request. ``max_payload`` caps frames below what the board reports in HELLO.
    Counters: ``frames_sent``, ``frames_retried``, ``replies_ignored`` (stale or
    duplicate replies), ``replies_corrupted``."""

    def __init__(self, transport: Transport | str, *, timeout: float = 2.0, attempts: int = 8,
                 baudrate: int = 115200, connect_timeout: float = 5.0, max_payload: int = P.MAX_PAYLOAD) -> None:
        validate.timeout(timeout, "timeout")
        validate.integer(attempts, "attempts", 1, 1000)
        if isinstance(transport, str):
            transport = SerialTransport.open(transport, baudrate, connect_timeout)
        self.transport = transport
        self.port = transport.name
        self.timeout, self.attempts = timeout, attempts
        self.host_max_payload = max_payload
        self.max_payload = max_payload
        self.reader = P.FrameReader(P.MAX_MAX_PAYLOAD)
        self.seq = 0
        self.session: int | None = None
        self.info: P.HelloInfo | None = None
        self.classes_in_use = 0  # the board's, as HELLO reported it and INIT and SET_CLASSES left it
        self.frames_sent = self.frames_retried = self.replies_ignored = self.replies_corrupted = 0

    # ------------------------------------------------------------ plumbing
    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def _error(self, what: str) -> BoardError:
        return BoardError(f"{self.port}: {what}")

    def _check_session(self, session: int) -> None:
        if self.session is not None and session != self.session:
            raise self._error(f"board was reset (reply carries session 0x{session:08X}, expected "
                              f"0x{self.session:08X}): its state is lost, start again with hello() and init()")

    def _await(self, seq: int, type_: int, deadline: float) -> P.Frame | str | None:
        """The reply to (type_, seq); or a reason to send again now; or None on timeout."""
        retry = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return retry
            data = self.transport.read(remaining)
            items = self.reader.feed(data)
            for k, item in enumerate(items):
                if isinstance(item, P.FrameError):
                    self.replies_corrupted += 1
                    retry = retry or f"a reply arrived corrupted ({P.error_name(item.code)})"
                    continue
                found = self._judge(item, seq, type_)
                if isinstance(found, P.Frame):
                    self.replies_ignored += len(items) - k - 1  # repeats of this reply, or noise
                    return found
                retry = retry or found
            if retry:
                return retry

    def _judge(self, frame: P.Frame, seq: int, type_: int) -> P.Frame | str | None:
        name = _describe(type_)
        if frame.type == P.ERROR_TYPE:
            if len(frame.payload) != P.ERROR_REPLY.size:
                raise self._error(f"unexpected reply to {name}: error reply of {len(frame.payload)} bytes")
            err = P.ERROR_REPLY.unpack(frame.payload)
            code = P.error_name(err["code"])
            if frame.seq == P.NO_SEQ:
                if type_ != P.Msg.HELLO:
                    self._check_session(err["session"])
                return f"the board saw a broken frame ({code})"
            if frame.seq != seq:
                self.replies_ignored += 1
                return None
            self._check_session(err["session"])
            meaning = P.ERROR_MEANING.get(err["code"], "unknown error code")
            raise self._error(f"{name} refused by the board: {code} ({meaning})")
        if frame.seq != seq:
            self.replies_ignored += 1
            return None
        if frame.type != type_ | P.REPLY_BIT:
            raise self._error(f"unexpected reply to {name} (seq {seq}): type 0x{frame.type:02X}")
        if len(frame.payload) < P.REPLY_HEAD.size:
            raise self._error(f"unexpected reply to {name}: {len(frame.payload)} bytes")
        if type_ != P.Msg.HELLO:
            self._check_session(P.REPLY_HEAD.unpack(frame.payload)["session"])
        return frame

    def request(self, type_: int, payload: bytes = b"") -> P.Frame:
        """Send one request until its reply arrives; returns the reply frame."""
        if len(payload) > self.max_payload:
            raise ValueError(f"{_describe(type_)} payload of {len(payload)} bytes exceeds {self.max_payload}")
        seq = self.seq
        self.seq = (self.seq + 1) % P.SEQ_MODULUS
        wire = b"\0" + P.encode_frame(type_, seq, payload)
        reason = None
        for attempt in range(self.attempts):
            if attempt:
                self.frames_retried += 1
            self.frames_sent += 1
            self.transport.write(wire)
            outcome = self._await(seq, type_, time.monotonic() + self.timeout)
            if isinstance(outcome, P.Frame):
                return outcome
            reason = outcome or reason
        name = _describe(type_)
        if reason is None:
            raise self._error(f"board does not answer ({name}: no reply after {self.attempts} attempts of "
                              f"{self.timeout:g} s)")
        raise self._error(f"{name} failed after {self.attempts} attempts: {reason}")

    def _status(self, frame: P.Frame, type_: int, body: int | None = None) -> bytes:
        """Check a normal reply's status; returns what follows it (``body`` bytes if given)."""
        name = _describe(type_)
        if len(frame.payload) < P.STATUS_REPLY.size:
            raise self._error(f"unexpected reply to {name}: {len(frame.payload)} bytes")
        status = P.STATUS_REPLY.unpack(frame.payload)["status"]
        if status != 0:
            raise self._error(f"{name} failed on the board: {status_name(status)}")
        rest = frame.payload[P.STATUS_REPLY.size:]
        if body is not None and len(rest) != body:
            raise self._error(f"unexpected reply to {name}: {len(rest)} bytes after the status, expected {body}")
        return rest

    def _need_hello(self) -> P.HelloInfo:
        if self.info is None:
            raise RuntimeError("call Link.hello() first")
        return self.info

    # ------------------------------------------------------------ messages
    def hello(self, session: int | None = None) -> P.HelloInfo:
        """Start a session (``session``: a non-zero u32 token, random by default)."""
        token = session if session is not None else (int.from_bytes(os.urandom(4), "little") or 1)
        if not 0 < token <= 0xFFFFFFFF:
            raise ValueError("session must be a non-zero u32")
        self.session, self.info = None, None
        frame = self.request(P.Msg.HELLO, P.HELLO_REQ.pack(session=token))
        try:
            info = P.parse_hello(frame.payload)
        except ValueError as e:
            raise self._error(f"unexpected reply to HELLO: {e}") from None
        if info.session != token:
            raise self._error(f"unexpected reply to HELLO: session 0x{info.session:08X}, sent 0x{token:08X}")
        if info.proto_version != P.PROTO_VERSION:
            raise self._error(f"board speaks protocol version {info.proto_version}, this host {P.PROTO_VERSION}: "
                              "update the firmware or bep-mcu")
        # The counts the host compares its model with and sends SET_CLASSES from: a board that
        # reports them inconsistent is not one this host built firmware for.
        if not (2 <= info.n_classes <= info.max_classes <= MAX_CLASSES and info.classes_in_use <= info.max_classes):
            raise self._error(f"unexpected reply to HELLO: {info.n_classes} classes built, {info.max_classes} "
                              f"prototypes, {info.classes_in_use} in use")
        self.session, self.info, self.classes_in_use = token, info, info.classes_in_use
        self.max_payload = min(self.host_max_payload, info.max_payload)
        if P.samples_per_frame(info.input_words, self.max_payload) < 1:
            raise self._error(f"one sample ({P.sample_bytes(info.input_words)} bytes) does not fit the board's "
                              f"max payload of {self.max_payload} bytes")
        return info

    def init(self, seed: int, batches: int = 0) -> None:
        """bep_init on the board: initial weights from its flash tables, counters cleared."""
        self._need_hello()
        frame = self.request(P.Msg.INIT, P.INIT_REQ.pack(seed=seed & 0xFFFFFFFF, batches=batches & 0xFFFFFFFF))
        self._status(frame, P.Msg.INIT, 0)
        self.classes_in_use = self.info.n_classes

    def set_classes(self, n: int) -> None:
        """Put classes up to ``n`` in use on the board (bep_set_classes): the prototypes its firmware
        reserved for classes to come; refused below the classes in use or above its prototypes."""
        self._need_hello()
        self._status(self.request(P.Msg.SET_CLASSES, P.SET_CLASSES_REQ.pack(n=n)), P.Msg.SET_CLASSES, 0)
        self.classes_in_use = n

    def _hidden_dtype(self) -> np.dtype:
        return np.dtype(HIDDEN_DTYPE[self._need_hello().hidden_bits])

    def load_hidden(self, layer: int, hidden: np.ndarray) -> None:
        """Replace one layer's hidden weights (rows x cols), in as many frames as needed."""
        data = np.ascontiguousarray(hidden, dtype=self._hidden_dtype()).tobytes()
        chunk = (self.max_payload - P.LOAD_HIDDEN_REQ.size) & ~1
        for offset in range(0, len(data), chunk):
            piece = data[offset:offset + chunk]
            last = offset + chunk >= len(data)
            head = P.LOAD_HIDDEN_REQ.pack(layer=layer, last=int(last), offset=offset)
            self._status(self.request(P.Msg.LOAD_HIDDEN, head + piece), P.Msg.LOAD_HIDDEN, 0)

    def read_hidden(self, layer: int, shape: tuple[int, int], dtype=None) -> np.ndarray:
        """One layer's hidden weights, read in as many frames as needed."""
        wire = self._hidden_dtype()
        if dtype is not None and np.dtype(dtype).itemsize != wire.itemsize:
            raise ValueError(f"dtype {np.dtype(dtype)} does not match the board's {self.info.hidden_bits}-bit weights")
        total = int(np.prod(shape)) * wire.itemsize
        chunk = min(self.max_payload - P.STATUS_REPLY.size, 0xFFFF) & ~1
        out = bytearray()
        for offset in range(0, total, chunk):
            n = min(chunk, total - offset)
            frame = self.request(P.Msg.READ_HIDDEN, P.READ_HIDDEN_REQ.pack(layer=layer, offset=offset, length=n))
            out += self._status(frame, P.Msg.READ_HIDDEN, n)
        return np.frombuffer(bytes(out), dtype=wire).astype(dtype or wire.newbyteorder("=")).reshape(shape)

    def set_epoch(self, gamma, q, start: EpochStart | None = None) -> None:
        """Per-epoch γ (group size) and Q (fixed-point reinforcement count) of every layer,
        and where the host's schedule stands (the board keeps it: :meth:`read_schedule`;
        default: a fresh schedule at epoch 0)."""
        n_layers = self._need_hello().n_layers
        if len(gamma) != n_layers or len(q) != n_layers:
            raise ValueError(f"set_epoch needs {n_layers} values of gamma and of q")
        self._status(self.request(P.Msg.SET_EPOCH, P.set_epoch_payload(gamma, q, start)), P.Msg.SET_EPOCH, 0)

    def read_schedule(self) -> tuple[EpochStart, list[int], list[int]] | None:
        """The last SET_EPOCH's record, with the samples and errors of that epoch so far, and
        the γ and Q in use; None when the board holds none (no SET_EPOCH since its INIT)."""
        info = self._need_hello()
        frame = self.request(P.Msg.READ_SCHEDULE)
        if len(frame.payload) == P.STATUS_REPLY.size and \
                P.STATUS_REPLY.unpack(frame.payload)["status"] == status_value("ERR_STATE"):
            return None
        body = self._status(frame, P.Msg.READ_SCHEDULE)
        try:
            return P.parse_schedule(body, info.n_layers)
        except ValueError as e:
            raise self._error(f"unexpected reply to READ_SCHEDULE: {e}") from None

    def _samples(self, x_words: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
        info = self._need_hello()
        x = np.ascontiguousarray(x_words, dtype=np.uint32)
        y = np.asarray(labels).reshape(-1)
        if x.ndim != 2 or x.shape[1] != info.input_words or len(x) != len(y):
            raise ValueError(f"x_words must be (n, {info.input_words}) and labels (n,): got {x.shape} and {y.shape}")
        return x, y

    def train(self, x_words: np.ndarray, labels, end_batch: bool = True) -> np.ndarray:
        """Train on samples (packed inputs, (n, input_words) uint32) in order; the batch ends
        after the last one when ``end_batch``. Returns the forward predictions."""
        x, y = self._samples(x_words, labels)
        per = P.samples_per_frame(self.info.input_words, self.max_payload, train=True)
        predictions = []
        starts = list(range(0, len(y), per)) or [0]
        for start in starts:
            xs, ys = x[start:start + per], y[start:start + per]
            last = start == starts[-1]
            frame = self.request(P.Msg.TRAIN, P.samples_payload(xs, ys, end_batch and last))
            rest = self._status(frame, P.Msg.TRAIN, P.TRAIN_REPLY.size + 2 * len(ys))
            if P.TRAIN_REPLY.unpack(rest)["n"] != len(ys):
                raise self._error("unexpected reply to TRAIN: wrong sample count")
            predictions.append(P.unpack_u16(rest, len(ys), P.TRAIN_REPLY.size))
        return np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)

    def evaluate(self, x_words: np.ndarray, labels) -> tuple[int, np.ndarray]:
        """Predict samples on the board: (number correct, predictions)."""
        x, y = self._samples(x_words, labels)
        per = P.samples_per_frame(self.info.input_words, self.max_payload, train=False)
        correct, predictions = 0, []
        for start in range(0, len(y), per):
            xs, ys = x[start:start + per], y[start:start + per]
            frame = self.request(P.Msg.EVAL, P.samples_payload(xs, ys, None))
            rest = self._status(frame, P.Msg.EVAL, P.EVAL_REPLY.size + 2 * len(ys))
            correct += P.EVAL_REPLY.unpack(rest)["correct"]
            predictions.append(P.unpack_u16(rest, len(ys), P.EVAL_REPLY.size))
        return correct, (np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64))

    def counters(self) -> dict[str, int]:
        """samples, triggered, errors, updates, batches."""
        self._need_hello()
        frame = self.request(P.Msg.READ_COUNTERS)
        return P.COUNTERS_REPLY.unpack(self._status(frame, P.Msg.READ_COUNTERS, P.COUNTERS_REPLY.size))

    def reset_counters(self) -> None:
        """Clear the counters (not the batch counter)."""
        self._need_hello()
        self._status(self.request(P.Msg.RESET_COUNTERS), P.Msg.RESET_COUNTERS, 0)

    @property
    def stats(self) -> dict[str, int]:
        return {"frames_sent": self.frames_sent, "frames_retried": self.frames_retried,
                "replies_ignored": self.replies_ignored, "replies_corrupted": self.replies_corrupted}


__all__ = ["Link", "Transport", "SerialTransport", "FaultyTransport"]
