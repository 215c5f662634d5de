"""Fuzzing bep_link_rx under AddressSanitizer and UndefinedBehaviorSanitizer.

How: a standalone C driver (below, ``DRIVER``) is compiled together with the generated
directory using ``-fsanitize=address,undefined -fno-sanitize-recover=all`` (any report
aborts the process with a non-zero status). Python writes a corpus file of inputs; the
driver replays it and writes, per input, whether the learnable state changed and every
byte the device sent back. A standalone binary rather than the sanitizers preloaded
into Python: no LD_PRELOAD, no interpreter noise in the reports, and the same binary
can be rerun by hand on a saved corpus (``driver corpus.bin out.bin``).

Each input is fed after a 0x00 and followed by one (so inputs do not bleed into each
other), in chunks of random sizes (the decoder is incremental). The driver restores
the state after an input that changed it, so every input meets the same initialised
network (HELLO, INIT, SET_EPOCH from the corpus prelude). A last phase feeds the whole
corpus as one stream, without separators, in random chunks.

Inputs are mutations of valid frames of every type (bit flips, truncation, splicing,
len-field edits, field edits with the CRC fixed so they reach the validators, type
edits, resized payloads, oversized frames, inserted delimiters), random bytes, and
huge COBS runs; plus the valid frames themselves. SET_EPOCH's epoch records are ones a
board keeps or, one in five, have one field past that. Checked:

* no sanitizer report, no crash (exit status 0);
* everything the device sends decodes as well-formed frames;
* an input that cannot be a valid request (CRC not fixed, oversized, garbage) gets
  error replies only and leaves the learnable state (header, hidden and packed weights,
  dirty bits, the epoch record) byte for byte unchanged;
* any input that changed the state got an OK reply to a state-changing request;
* after every input the receiver is idle and the cached reply is one delimited frame
  (ASan sees accesses outside bep_link_t, the state and each exact-size input chunk;
  this invariant catches a receive buffer overrunning into the reply cache inside it),
  and the epoch record is one the runtime keeps (a level within the Q table, ...);
* the corpus reached every error code and an OK reply of every message type.

Negative controls plant four bugs in a copy of bep_link.c (a dropped label check, an
off receive bound, an off reply bound, a dropped level check) and show that a small
corpus catches each.
"""

from __future__ import annotations

import struct
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bep_mcu.cgen import protocol as P
from bep_mcu.engine.schedule import EPOCH_MAX_SAMPLES

from .conftest import SANITIZER_ENV, build_sanitized, planted_library
from .test_link import data, net_model, trained  # noqa: F401  (module fixtures)

N_INPUTS = 100_000
SESSION = 99
CHANGING = {P.Msg.INIT, P.Msg.LOAD_HIDDEN, P.Msg.SET_EPOCH, P.Msg.TRAIN, P.Msg.RESET_COUNTERS, P.Msg.SET_CLASSES}

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bep_link.h"
#include FUZZ_HEADER

static uint8_t *out_buf;
static size_t out_len, out_cap;

static void sink(void *ctx, const uint8_t *data, size_t n)
{
    (void)ctx;
    if (out_len + n > out_cap) {
        out_cap = 2 * (out_len + n);
        out_buf = (uint8_t *)realloc(out_buf, out_cap);
        if (out_buf == NULL) abort();
    }
    memcpy(out_buf + out_len, data, n);
    out_len += n;
}


static uint32_t rng_state;
static uint32_t next_rand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Feed `n` bytes in chunks: all at once, one by one, or random sizes (by `seed`). */
static void feed(bep_link_t *link, const uint8_t *p, size_t n, uint32_t seed)
{
    size_t i = 0;
    rng_state = seed | 1u;
    while (i < n) {
        size_t k = n - i;
        if (seed % 4u == 1u) k = 1;
        else if (seed % 4u != 0u) { size_t r = 1u + next_rand() % 97u; if (r < k) k = r; }
        /* an exact-size heap copy per chunk: ASan catches any read past it */
        {
            uint8_t *chunk = (uint8_t *)malloc(k ? k : 1);
            if (chunk == NULL) abort();
            memcpy(chunk, p + i, k);
            bep_link_rx(link, chunk, k);
            free(chunk);
        }
        i += k;
    }
}


int main(int argc, char **argv)
{
    FILE *out;
    uint8_t *corpus, *p;
    uint32_t n_regions, r, n_inputs, k, prelude_len;
    uint32_t *state, *snapshot;
    size_t state_bytes = BEP_FUZZ_STATE_BYTES;
    static const uint8_t zero = 0;
    const bep_board_info_t info = { "fuzz", 1u << 20, 1u << 20, 1u };
    bep_link_t *link = (bep_link_t *)malloc(sizeof(bep_link_t));
    if (argc != 3 || link == NULL) return 2;
    corpus = read_input(argv[1]);
    out = fopen(argv[2], "wb");
    if (corpus == NULL || out == NULL) return 2;
    if (memcmp(corpus, "BEPFUZZ1", 8) != 0) return 3;
    p = corpus + 8;
    if (rd32(p) != state_bytes) return 4;
    p += 4;
    n_regions = rd32(p);
    p += 4;
    state = (uint32_t *)malloc(state_bytes);
    snapshot = (uint32_t *)malloc(state_bytes);
    if (state == NULL || snapshot == NULL) return 2;
    memset(state, 0xA5, state_bytes);
    bep_link_init(link, &BEP_FUZZ_CONFIG, state, state_bytes, &info, sink, NULL);
    {
        const uint8_t *regions = p;
        p += 8u * n_regions;
        prelude_len = rd32(p);
        p += 4;
        feed(link, p, prelude_len, 0);
        p += prelude_len;
        put(out, &out_len, 4); /* prelude replies, for the host to check */
        put(out, out_buf, out_len);
        out_len = 0;
        memcpy(snapshot, state, state_bytes);
        n_inputs = rd32(p);
        p += 4;
        for (k = 0; k < n_inputs; ++k) {
            uint8_t kind = p[0], changed = 0;
            uint32_t seed = rd32(p + 1), len = rd32(p + 5);
            uint32_t olen;
            (void)kind;
            p += 9;
            bep_link_rx(link, &zero, 1);
            feed(link, p, len, seed);
            bep_link_rx(link, &zero, 1);
            p += len;
            for (r = 0; r < n_regions; ++r) {
                uint32_t off = rd32(regions + 8u * r), n = rd32(regions + 8u * r + 4u);
                if (memcmp((uint8_t *)state + off, (uint8_t *)snapshot + off, n) != 0) changed = 1;
            }
            /* after the closing 0x00 the receiver is idle, and the cached reply is one delimited frame */
            if (link->rx_len != 0u || link->rx_left != 0u || link->rx_flags != 0u || link->tx_len > BEP_LINK_TX_BYTES ||
                (link->tx_len != 0u && (link->tx[0] != 0u || link->tx[link->tx_len - 1u] != 0u ||
                                        memchr(link->tx + 1, 0, link->tx_len - 2u) != NULL))) {
                fprintf(stderr, "link invariant broken after input %u\n", (unsigned)k);
                return 5;
            }
            /* the epoch record is always one the runtime keeps (bep_runtime.h, bep_schedule_state_t) */
            {
                const bep_state_header_t *hd = (const bep_state_header_t *)(const void *)state;
                const bep_schedule_state_t *s =
                    (const bep_schedule_state_t *)(const void *)((const uint8_t *)state + BEP_FUZZ_CONFIG.schedule_off);
                uint32_t since = hd->counters.samples - s->start_samples;
                if (s->level > BEP_PROTO_MAX_LEVEL || s->stalled > BEP_PROTO_MAX_STALLED ||
                    s->best_errors > s->best_samples || since >= BEP_EPOCH_MAX_SAMPLES ||
                    hd->counters.errors - s->start_errors > since) {
                    fprintf(stderr, "schedule invariant broken after input %u\n", (unsigned)k);
                    return 5;
                }
            }
            if (changed || (k & 255u) == 0u) memcpy(state, snapshot, state_bytes);
            olen = (uint32_t)out_len;
            put(out, &changed, 1);
            put(out, &olen, 4);
            put(out, out_buf, out_len);
            out_len = 0;
        }
        /* the whole corpus as one stream: no separators, random chunks */
        {
            const uint8_t *all = regions + 8u * n_regions + 4u + prelude_len + 4u;
            feed(link, all, (size_t)(p - all), 12345u);
            bep_link_rx(link, &zero, 1);
        }
    }
    {
        uint32_t olen = (uint32_t)out_len;
        put(out, &olen, 4);
        put(out, out_buf, out_len);
    }
    fclose(out);
    free(corpus);
    free(state);
    free(snapshot);
    free(link);
    free(out_buf);
    return 0;
}
"""


def build_driver(gen, out: Path) -> Path:
    name = gen.name
    return build_sanitized(gen, DRIVER, out, [f'-DFUZZ_HEADER="bep_{name}.h"', f"-DBEP_FUZZ_CONFIG=bep_{name}_config",
                                              f"-DBEP_FUZZ_STATE_BYTES={gen.plan.state_bytes}u"])


# ---------------------------------------------------------------------- corpus


class Corpus:
    """Valid request bodies of every type, and the mutations made from them."""

    def __init__(self, rng: np.random.Generator, Xp: np.ndarray, y: np.ndarray, gen, n_classes: int) -> None:
        self.rng, self.Xp, self.y = rng, Xp, y
        self.layer_bytes = [p.rows * p.cols for p in gen.plan.layers]  # int8 network
        self.rows = [p.rows for p in gen.plan.layers]
        self.n_classes = n_classes
        self.iw = Xp.shape[1]

    def seq(self) -> int:
        return int(self.rng.integers(0, 0x10000))

    def samples(self, train: bool) -> bytes:
        r = self.rng
        n = int(r.choice([0, 1, 2, 3, 5, 8])) if r.random() < 0.97 else int(r.integers(9, 57))
        idx = r.integers(0, len(self.y), size=n)
        x = self.Xp[idx] if r.random() < 0.8 else r.integers(0, 2**32, size=(n, self.iw), dtype=np.uint64)
        return P.samples_payload(x.astype(np.uint32), self.y[idx], bool(r.integers(0, 2)) if train else None)

    def valid_body(self) -> bytes:
        r = self.rng
        kind = int(r.integers(0, 12))
        layer = int(r.integers(0, len(self.layer_bytes)))
        total = self.layer_bytes[layer]
        if kind == 0:
            t, payload = P.Msg.HELLO, P.HELLO_REQ.pack(session=SESSION)
        elif kind == 1:
            t, payload = P.Msg.INIT, P.INIT_REQ.pack(seed=int(r.integers(0, 2**32)), batches=int(r.integers(0, 9)))
        elif kind == 2:
            n = int(r.integers(0, min(total, P.MAX_PAYLOAD - 6) + 1))
            off = int(r.integers(0, total - n + 1))
            t = P.Msg.LOAD_HIDDEN
            payload = P.LOAD_HIDDEN_REQ.pack(layer=layer, last=int(r.integers(0, 2)), offset=off) + \
                r.integers(-128, 128, size=n).astype(np.int8).tobytes()
        elif kind == 3:
            n = int(r.integers(0, min(total, P.MAX_PAYLOAD - 5) + 1))
            off = int(r.integers(0, total - n + 1))
            t, payload = P.Msg.READ_HIDDEN, P.READ_HIDDEN_REQ.pack(layer=layer, offset=off, length=n)
        elif kind == 4:
            gamma = [int(r.integers(0 if r.random() < 0.1 else 1, k + 2)) for k in self.rows]
            q = [int(r.integers(0, 2**32)) if r.random() < 0.1 else int(r.integers(0, 4 << 16)) for _ in self.rows]
            t, payload = P.Msg.SET_EPOCH, P.EPOCH_RECORD.pack(**self.record()) + P.set_epoch_payload(gamma, q)[
                P.EPOCH_RECORD.size:]
        elif kind in (5, 6):
            t, payload = P.Msg.TRAIN, self.samples(True)
        elif kind == 7:
            t, payload = P.Msg.EVAL, self.samples(False)
        elif kind == 8:
            t, payload = P.Msg.READ_COUNTERS, b""
        elif kind == 9:
            t, payload = P.Msg.RESET_COUNTERS, b""
        elif kind == 10:
            t, payload = P.Msg.READ_SCHEDULE, b""
        else:  # the classes in use, one fewer or one more (refused: no prototype is reserved), or any
            n = self.n_classes + int(r.integers(-1, 2)) if r.random() < 0.8 else int(r.integers(0, 0x10000))
            t, payload = P.Msg.SET_CLASSES, P.SET_CLASSES_REQ.pack(n=n)
        return P.frame_body(t, self.seq(), payload)

    def record(self) -> dict[str, int]:
        """SET_EPOCH's epoch record: one a board keeps, or (one in five) one field past it."""
        r = self.rng
        best, samples = int(r.integers(0, 5000)), int(r.integers(0, 5000))
        rec = {"epoch": int(r.integers(0, 2**32)), "level": int(r.integers(0, P.MAX_LEVEL + 1)),
               "stalled": int(r.integers(0, 10)), "best_errors": int(r.integers(0, best + 1)), "best_samples": best,
               "samples": samples, "errors": int(r.integers(0, samples + 1))}
        if r.random() < 0.2:
            field, lo = [("level", P.MAX_LEVEL + 1), ("stalled", P.MAX_STALLED + 1), ("best_errors", best + 1),
                         ("samples", EPOCH_MAX_SAMPLES), ("errors", samples + 1)][int(r.integers(0, 5))]
            rec[field] = int(r.integers(lo, 2**32)) if r.random() < 0.5 else lo
        return rec

    @staticmethod
    def refix(body: bytes | bytearray) -> bytes:
        """Recompute the CRC (so a mutation reaches the checks behind it)."""
        head = bytes(body[:-4])
        return head + struct.pack("<I", P.crc32(head))

    @staticmethod
    def wire(body: bytes) -> bytes:
        return P.cobs_encode(body)

    def mutate(self) -> tuple[int, bytes]:
        """(kind, bytes): kind 0 = cannot be a valid request, 1 = may be valid."""
        kind, blob = self._mutate()
        if kind == 0 and any(self.decodes(part) for part in blob.split(b"\0")):
            kind = 1  # the mutation happened to give a valid frame back (a splice at a common prefix, ...)
        return kind, blob

    @staticmethod
    def decodes(part: bytes) -> bool:
        try:
            P.decode_frame(part)
            return bool(part)
        except P.FrameError:
            return False

    def _mutate(self) -> tuple[int, bytes]:
        r = self.rng
        body = self.valid_body()
        m = int(r.integers(0, 16))
        if m == 0:  # valid
            return 1, self.wire(body)
        if m == 1:  # bit flips on the wire
            w = bytearray(self.wire(body))
            for bit in r.choice(8 * len(w), size=min(int(r.integers(1, 9)), 8 * len(w)), replace=False):
                w[int(bit) // 8] ^= 1 << (int(bit) % 8)  # distinct bits: flips never cancel
            return 0, bytes(w)
        if m == 2:  # torn
            w = self.wire(body)
            return 0, w[:int(r.integers(0, len(w)))]
        if m == 3:  # spliced
            a, b = self.wire(body), self.wire(self.valid_body())
            return 0, a[:int(r.integers(1, len(a) + 1))] + b[int(r.integers(1, len(b))):]
        if m == 4:  # len field edits, CRC fixed
            b = bytearray(body)
            old = struct.unpack_from("<H", b, 3)[0]
            new = int(r.choice([0, 1, 0xFFFF, old + 1, max(old - 1, 0), int(r.integers(0, 0x10000))]))
            struct.pack_into("<H", b, 3, new)
            return 1, self.wire(self.refix(b))
        if m in (5, 6):  # field edits, CRC fixed
            b = bytearray(body)
            if len(b) > 9:
                for _ in range(int(r.integers(1, 5))):
                    pos = 5 + int(r.integers(0, min(len(b) - 9, 12) if r.random() < 0.7 else len(b) - 9))
                    b[pos] = int(r.choice([0, 1, 0xFF, 0x7F, 0x80, int(r.integers(0, 256))]))
            return 1, self.wire(self.refix(b))
        if m == 7:  # type edits, CRC fixed
            b = bytearray(body)
            b[0] = int(r.integers(0, 256))
            return 1, self.wire(self.refix(b))
        if m == 8:  # payload resized, len and CRC consistent
            payload = body[5:-4]
            cut = int(r.integers(0, len(payload) + 1))
            payload = payload[:cut] if r.random() < 0.5 else payload + bytes(r.integers(0, 256, size=int(
                r.integers(1, 40)), dtype=np.uint8))
            return 1, self.wire(P.frame_body(body[0], self.seq(), payload))
        if m == 9:  # a label out of range (TRAIN/EVAL), CRC fixed
            b = P.frame_body(P.Msg.TRAIN if r.random() < 0.5 else P.Msg.EVAL, self.seq(), self.samples(True))
            b = bytearray(b)
            n = struct.unpack_from("<H", b, 5)[0]
            if b[0] == P.Msg.EVAL:  # EVAL has no end_batch byte: rebuild
                payload = bytes(b[5:7]) + bytes(b[8:-4])
                b = bytearray(P.frame_body(P.Msg.EVAL, self.seq(), payload))
            if n:
                pos = len(b) - 4 - 2 * n + 2 * int(r.integers(0, n))
                struct.pack_into("<H", b, pos, int(r.integers(self.n_classes, 0x10000)))
            return 1, self.wire(self.refix(b))
        if m == 10:  # random bytes (zeros included)
            n = int(r.integers(0, 600))
            return 0, bytes(r.integers(0, 256, size=n, dtype=np.uint8))
        if m == 11:  # COBS runs: full blocks, empty blocks, long random non-zero runs
            n = int(r.integers(1, 3000)) if r.random() < 0.97 else int(r.integers(3000, 70000))
            fill = int(r.choice([0xFF, 0x01, 0x02, 0xFE]))
            data = bytes([fill]) * n if r.random() < 0.6 else bytes(r.integers(1, 256, size=n, dtype=np.uint8))
            return 0, data
        if m == 12:  # oversized, CRC valid
            payload = bytes(r.integers(0, 256, size=P.MAX_PAYLOAD + int(r.integers(1, 400)), dtype=np.uint8))
            return 0, self.wire(P.frame_body(int(r.integers(1, 10)), self.seq(), payload))
        if m == 13:  # a 0x00 inside a frame
            w = bytearray(self.wire(body))
            w.insert(int(r.integers(1, len(w))), 0)
            return 0, bytes(w)
        if m == 14:  # several valid frames, junk between some
            parts = [self.wire(self.valid_body()) for _ in range(int(r.integers(2, 5)))]
            return 1, b"\0".join(p + (b"\0junk" if r.random() < 0.3 else b"") for p in parts)
        # short frames: header and CRC do not fit
        return 0, self.wire(bytes(r.integers(0, 256, size=int(r.integers(0, 9)), dtype=np.uint8)))


def learnable_regions(gen) -> list[tuple[int, int]]:
    from bep_mcu.cgen.abi import SCHEDULE_STATE_BYTES
    from bep_mcu.cgen.layout import HEADER_BYTES

    regions = [(0, HEADER_BYTES), (gen.plan.schedule_off, SCHEDULE_STATE_BYTES)]  # the epoch record too
    for p in gen.plan.layers:
        for key in ("h", "w", "wr", "wt", "dirty"):
            if p.sizes[key]:
                regions.append((p.offsets[key], p.sizes[key]))
    return regions


def write_corpus(path: Path, gen, inputs: list[tuple[int, bytes]], prelude: bytes, seeds: np.ndarray) -> None:
    regions = learnable_regions(gen)
    with open(path, "wb") as f:
        f.write(b"BEPFUZZ1" + struct.pack("<II", gen.plan.state_bytes, len(regions)))
        for off, n in regions:
            f.write(struct.pack("<II", off, n))
        f.write(struct.pack("<I", len(prelude)) + prelude + struct.pack("<I", len(inputs)))
        for (kind, data), seed in zip(inputs, seeds):
            f.write(struct.pack("<BII", kind, int(seed), len(data)) + data)


def parse_output(path: Path, n_inputs: int):
    raw = path.read_bytes()
    pos = 0

    def take(n):
        nonlocal pos
        out = raw[pos:pos + n]
        pos += n
        return out

    prelude = take(struct.unpack("<I", take(4))[0])
    results = []
    for _ in range(n_inputs):
        changed = take(1)[0]
        results.append((changed, take(struct.unpack("<I", take(4))[0])))
    stream = take(struct.unpack("<I", take(4))[0])
    assert pos == len(raw)
    return prelude, results, stream


def decode_all(sent: bytes) -> list[P.Frame]:
    items = P.FrameReader(P.MAX_MAX_PAYLOAD).feed(sent)
    bad = [i for i in items if not isinstance(i, P.Frame)]
    assert not bad, f"the device sent a malformed frame: {bad[0]}"
    return items


def prelude_frames(seed: int) -> bytes:
    return b"".join(b"\0" + P.encode_frame(t, s, p) for t, s, p in (
        (P.Msg.HELLO, 1, P.HELLO_REQ.pack(session=SESSION)),
        (P.Msg.INIT, 2, P.INIT_REQ.pack(seed=seed, batches=0)),
        (P.Msg.SET_EPOCH, 3, P.set_epoch_payload([4, 2], [3 << 16, 1 << 16]))))


def run_fuzz(gen, work: Path, inputs: list[tuple[int, bytes]], net_seed: int, rng: np.random.Generator):
    """Build the sanitizer driver for ``gen``, replay ``inputs``; (process, parsed output or None)."""
    work.mkdir(parents=True, exist_ok=True)
    driver = build_driver(gen, work / "fuzz_driver")
    seeds = rng.integers(0, 2**32, size=len(inputs), dtype=np.uint64)
    path, out = work / "corpus.bin", work / "out.bin"
    write_corpus(path, gen, inputs, prelude_frames(net_seed), seeds)
    proc = subprocess.run([str(driver), str(path), str(out)], capture_output=True, text=True, timeout=600,
                          env=SANITIZER_ENV)
    return proc, (parse_output(out, len(inputs)) if proc.returncode == 0 else None)


def check_results(inputs, parsed) -> tuple[Counter, Counter, int]:
    """The checks of the module docstring; returns (error codes, OK reply types, inputs that changed state)."""
    prelude_replies, results, stream = parsed
    for r in decode_all(prelude_replies):
        assert r.type != P.ERROR_TYPE and (r.type == P.Msg.HELLO | P.REPLY_BIT or r.payload[4] == 0), r
    codes, ok_types, changed_inputs = Counter(), Counter(), 0
    for i, ((kind, payload), (changed, reply)) in enumerate(zip(inputs, results)):
        frames = decode_all(reply)
        oks = set()
        for f in frames:
            if f.type == P.ERROR_TYPE:
                codes[P.ERROR_REPLY.unpack(f.payload)["code"]] += 1
            else:
                t = f.type & ~P.REPLY_BIT
                if t == P.Msg.HELLO or f.payload[4] == 0:
                    ok_types[t] += 1
                    oks.add(t)
        if kind == 0:
            assert not changed, f"input {i}: an invalid input changed the state: {payload[:64].hex()}"
            assert all(f.type == P.ERROR_TYPE for f in frames), f"input {i}: accepted {payload[:64].hex()}"
        elif changed:
            changed_inputs += 1
            assert oks & CHANGING, f"input {i}: state changed without an OK reply: {payload[:64].hex()}"
    decode_all(stream)
    return codes, ok_types, changed_inputs


def make_corpus(net_model, data, gen, n: int,  # noqa: F811
                seed: int) -> tuple[list[tuple[int, bytes]], np.random.Generator]:
    Xp, X, y = data
    rng = np.random.default_rng(seed)
    corpus = Corpus(rng, Xp, y, gen, net_model.spec.n_classes)
    return [corpus.mutate() for _ in range(n)], rng


def test_fuzz_bep_link_rx_under_asan_ubsan(trained, net_model, data, tmp_path):  # noqa: F811
    model, gen, root = trained
    inputs, rng = make_corpus(net_model, data, gen, N_INPUTS, 2024)
    proc, parsed = run_fuzz(gen, tmp_path, inputs, int(net_model.training.seed), rng)
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, proc.stderr[-4000:]
    codes, ok_types, changed_inputs = check_results(inputs, parsed)
    assert set(codes) == {e.value for e in P.ErrorCode}, codes
    assert set(ok_types) == {m.value for m in P.Msg}, ok_types
    kinds = Counter(k for k, _ in inputs)
    assert kinds[0] > 0.4 * N_INPUTS and kinds[1] > 0.4 * N_INPUTS and changed_inputs > 1000
    assert sum(len(d) for _, d in inputs) > 20_000_000  # bytes fed, beside the stream phase


PLANTED = {
    # the label check dropped: a TRAIN with one bad label trains the samples before it
    "no_label_check": ("if (bep_rd16(labels + 2u * k) >= classes) return BEP_PROTO_ERR_BAD_PAYLOAD;",
                       "(void)labels;", "check"),
    # the receive bound off: a long COBS run overwrites the cached reply (inside bep_link_t)
    "rx_overrun": ("if (link->rx_len >= BEP_LINK_FRAME_MAX) {", "if (link->rx_len >= BEP_LINK_FRAME_MAX + 4000u) {",
                   "invariant"),
    # READ_HIDDEN's reply bound off: a long read writes past the end of bep_link_t
    "reply_overrun": ("if (n > BEP_LINK_MAX_PAYLOAD - BEP_PROTO_STATUS_REPLY_BYTES ||",
                      "if (n > BEP_LINK_MAX_PAYLOAD + 1000u ||", "AddressSanitizer"),
    # SET_EPOCH's level unchecked: a record whose level would index past a Q table is kept
    "no_level_check": ("if (level > BEP_PROTO_MAX_LEVEL || stalled", "if (stalled", "schedule"),
}


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_fuzz_catches_planted_bugs(trained, net_model, data, tmp_path, bug):  # noqa: F811
    """Negative controls: the same driver and checks, on a small corpus, catch a planted bug."""
    model, gen, root = trained
    old, new, caught_by = PLANTED[bug]
    bad_gen = planted_library(gen, tmp_path / "gen", ("bep_link.c", old, new))
    inputs, rng = make_corpus(net_model, data, gen, 3000, 7)
    inputs += [(0, b"\xff" * 20000),
               (1, P.cobs_encode(P.frame_body(P.Msg.READ_HIDDEN, 9, P.READ_HIDDEN_REQ.pack(layer=0, offset=0,
                                                                                            length=2000)))),
               (1, P.cobs_encode(P.frame_body(P.Msg.SET_EPOCH, 10, P.EPOCH_RECORD.pack(
                   epoch=1, level=P.MAX_LEVEL + 1, stalled=0, best_errors=0, best_samples=0, samples=0, errors=0)
                   + P.set_epoch_payload([2, 2], [1 << 16, 1 << 16])[P.EPOCH_RECORD.size:])))]
    proc, parsed = run_fuzz(bad_gen, tmp_path / "run", inputs, int(net_model.training.seed), rng)
    if caught_by == "check":
        assert proc.returncode == 0, proc.stderr[-2000:]
        with pytest.raises(AssertionError, match="state changed without an OK reply"):
            check_results(inputs, parsed)
    else:
        assert proc.returncode != 0, bug
        expected = {"invariant": "link invariant broken", "schedule": "schedule invariant broken"}.get(
            caught_by, "AddressSanitizer: heap-buffer-overflow")
        assert expected in proc.stderr, proc.stderr[-2000:]
