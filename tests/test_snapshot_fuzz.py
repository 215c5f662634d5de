"""Fuzzing snapshot restore and the board's epoch schedule under ASan and UBSan.

A snapshot is read back from a board's own flash, where anything can have happened to it,
and a CRC only proves that it was written whole: its fields must still be checked before
the schedule indexes a table with them. This module drives the generated board library
(``bep_<net>_restore`` → ``train_batch`` → ``reset_counters`` → ``end_epoch`` →
``snapshot``) in a host program built with ``-fsanitize=address,undefined`` (any report
aborts it), on:

* the seed cases of ``tests/corpus/snapshot_seeds.json`` (named edits, among them the two
  proofs of concept of the out-of-bounds Q-table read: a CRC-valid snapshot whose errors
  since the epoch began exceed its samples, and a consistent 10 M-sample state whose
  counters are reset mid-epoch; the edges of the 2^31-sample epoch bound; classes in use
  outside 1..the classifier's prototypes, which would read past its table), each with the
  status it must get;
* random cases: header fields set to edge or random values with the CRC recomputed (so they
  reach the checks behind it), bit flips without (refused), truncations, length edits,
  random bytes, edits of the hidden weights (accepted: any value is a weight), the followed
  input thresholds and accumulators set to edge or random values (the checks decide) or to
  random values a board could hold (accepted: within the input type, in order within each
  feature, accumulators strictly within ±window).

The driver (``DRIVER``) checks, and exits non-zero on the first failure: a refused
snapshot leaves the state byte for byte as it was (an initialised state, or a buffer of
garbage for every other case); after every ``end_epoch`` the level is within the Q table,
the budget's mark within its count and ``should_stop`` answers;
a snapshot written after training, and after following extreme raw values
(``bep_<net>_calibrate``: values at the input type's limits move thresholds to them),
restores into a second state that writes the same bytes again. The number of cases bounds
the time: ``N_CASES`` in the default run (about 10 s with the build), ``N_CASES_SLOW``
under ``-m slow`` (about a minute). Negative controls plant the
original bug (the restore check of the schedule and the reset of its marks removed) and a
restore without the check of the followed thresholds, and show the seed cases catch each.
"""

from __future__ import annotations

import dataclasses
import json
import re
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from bep_mcu.cgen import snapshot
from bep_mcu.cgen.codegen import generate
from bep_mcu.cgen.status import STATUS
from bep_mcu.data import inputformat, recalibration
from bep_mcu.training import EncodedData

from .conftest import SANITIZER_ENV, blobs, build_sanitized, fit, planted_library

SEEDS = Path(__file__).parent / "corpus" / "snapshot_seeds.json"
CODES = {name: value for name, value, _ in STATUS}
N_CASES, N_CASES_SLOW = 30000, 400000
BATCH = 10
# batches: bits 8..11
SCRIPT_BITS = {"reset_before": 1, "reset_mid_epoch": 2, "end_epoch": 4, "round_trip": 8, "calibrate": 16}
OFFSETS = snapshot.header_offsets()

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include FUZZ_HEADER


static const uint32_t *xs;
static const uint16_t *ys;
static uint32_t n_samples, iw;

/* Follow 40 samples of raw values, a quarter of them at the input type's limits. */
static uint32_t lcg = 12345u;
static int32_t calibrate(uint32_t *state)
{
    FUZZ_INPUT_T raw[FUZZ_VALUES];
    int64_t lo = FUZZ_CALIB.lo, span = (int64_t)FUZZ_CALIB.hi - lo + 1;
    uint32_t s, k;
    for (s = 0; s < 40u; ++s) {
        for (k = 0; k < FUZZ_VALUES; ++k) {
            lcg = lcg * 1664525u + 1013904223u;
            if ((lcg >> 28) < 4u) raw[k] = (FUZZ_INPUT_T)((lcg >> 27) & 1u ? FUZZ_CALIB.hi : FUZZ_CALIB.lo);
            else raw[k] = (FUZZ_INPUT_T)(lo + (int64_t)(((uint64_t)lcg * (uint64_t)span) >> 32));
        }
        if (FUZZ_CALIBRATE(state, STATE_BYTES, raw, FUZZ_VALUES) != BEP_OK) return -1;
    }
    return 0;
}

/* One batch of BATCH samples starting at sample `first` (wrapping), their labels within the
 * classes in use (a snapshot may hold fewer than the data has). */
static int32_t train_batch(uint32_t *state, uint32_t first)
{
    uint32_t x[BATCH * 64];
    uint16_t y[BATCH], pred[BATCH], classes;
    uint32_t k;
    if (FUZZ_READ_CLASSES(state, STATE_BYTES, &classes) != BEP_OK) return -1;
    for (k = 0; k < BATCH; ++k) {
        uint32_t i = (first + k) % n_samples;
        memcpy(x + k * iw, xs + (size_t)i * iw, 4u * iw);
        y[k] = (uint16_t)(ys[i] % classes);
    }
    return (int32_t)FUZZ_TRAIN_BATCH(state, STATE_BYTES, x, BATCH * iw, y, pred, BATCH);
}

int main(int argc, char **argv)
{
    FILE *out;
    uint8_t *corpus, *p;
    uint32_t n_cases, c, e, b;
    uint32_t *base, *state, *backup, *other;
    uint8_t *snap, *snap2;
    bep_schedule_info_t info;
    if (argc != 3) return 2;
    corpus = read_input(argv[1]);
    out = fopen(argv[2], "wb");
    if (corpus == NULL || out == NULL) return 2;
    if (memcmp(corpus, "BEPSNAP1", 8) != 0 || rd32(corpus + 8) != STATE_BYTES) return 3;
    n_samples = rd32(corpus + 12);
    iw = rd32(corpus + 16);
    if (iw > 64u || n_samples == 0u) return 3;
    p = corpus + 20;
    xs = (const uint32_t *)(const void *)p;
    p += 4u * n_samples * iw;
    ys = (const uint16_t *)(const void *)p;
    p += 2u * n_samples + (2u * n_samples) % 4u;
    base = (uint32_t *)malloc(STATE_BYTES);
    state = (uint32_t *)malloc(STATE_BYTES);
    backup = (uint32_t *)malloc(STATE_BYTES);
    other = (uint32_t *)malloc(STATE_BYTES);
    snap = (uint8_t *)malloc(SNAPSHOT_BYTES);
    snap2 = (uint8_t *)malloc(SNAPSHOT_BYTES);
    if (!base || !state || !backup || !other || !snap || !snap2) return 2;

    /* the base: a board that learnt two epochs in its own order, then wrote a snapshot */
    if (FUZZ_START(base, STATE_BYTES, rd32(p), 0u) != BEP_OK) return 4;
    for (e = 0; e < 2u; ++e) {
        for (b = 0; b + BATCH <= n_samples; b += BATCH) {
            uint32_t first;
            if (FUZZ_SAMPLE_INDEX(base, STATE_BYTES, n_samples, b, &first) != BEP_OK) return 4;
            if (train_batch(base, first) != BEP_OK) return 4;
        }
        if (FUZZ_END_EPOCH(base, STATE_BYTES) != BEP_OK) return 4;
    }
    if (FUZZ_SNAPSHOT(base, STATE_BYTES, snap, SNAPSHOT_BYTES) != BEP_OK) return 4;
    put(out, snap, SNAPSHOT_BYTES);
    p += 4;
    n_cases = rd32(p);
    p += 4;
    for (c = 0; c < n_cases; ++c) {
        uint32_t script = rd32(p), len = rd32(p + 4), batches = (script >> 8) & 15u;
        int32_t st_restore, st_epoch = 99, st_snap = 99;
        uint8_t *blob = (uint8_t *)malloc(len ? len : 1u); /* exact size: ASan sees any read past it */
        if (blob == NULL) return 2;
        memcpy(blob, p + 8, len);
        p += 8u + len;
        if (c & 1u) memset(state, 0xA5, STATE_BYTES); /* restore into a buffer never initialised */
        else memcpy(state, base, STATE_BYTES);
        memcpy(backup, state, STATE_BYTES);
        st_restore = (int32_t)FUZZ_RESTORE(state, STATE_BYTES, blob, len);
        free(blob);
        if (st_restore != BEP_OK && memcmp(state, backup, STATE_BYTES) != 0) {
            fprintf(stderr, "case %u: refused (%d) but the state changed\n", (unsigned)c, (int)st_restore);
            return 5;
        }
        if (st_restore == BEP_OK) {
            if (script & 1u) FUZZ_RESET_COUNTERS(state, STATE_BYTES);
            for (b = 0; b < batches; ++b) {
                if ((script & 2u) && b == batches / 2u) FUZZ_RESET_COUNTERS(state, STATE_BYTES);
                if (train_batch(state, b * 7u) != BEP_OK) return 4;
            }
            if ((script & 16u) && calibrate(state) != 0) return 4;
            if (script & 4u) {
                st_epoch = (int32_t)FUZZ_END_EPOCH(state, STATE_BYTES);
                if (FUZZ_READ_SCHEDULE(state, STATE_BYTES, &info) != BEP_OK) return 4;
                if (info.level > FUZZ_LEVELS) {
                    fprintf(stderr, "case %u: level %u past the Q table\n", (unsigned)c, (unsigned)info.level);
                    return 6;
                }
                if (st_epoch == BEP_OK && (info.marked_epoch < 1u || info.marked_epoch > info.budget_epochs)) {
                    fprintf(stderr, "case %u: the budget's mark %u outside 1..%u\n", (unsigned)c,
                            (unsigned)info.marked_epoch, (unsigned)info.budget_epochs);
                    return 8;
                }
                for (b = 0; b < 3u; ++b) { /* the budget at the smallest, a middle and the largest minimum */
                    uint32_t stop, least = b == 0u ? 1u : b == 1u ? 40u : 0x80000000u;
                    if (FUZZ_SHOULD_STOP(state, STATE_BYTES, least, &stop) != BEP_OK) return 4;
                }
            }
            if (script & 8u) {
                st_snap = (int32_t)FUZZ_SNAPSHOT(state, STATE_BYTES, snap, SNAPSHOT_BYTES);
                memset(other, 0x5A, STATE_BYTES);
                if (st_snap == BEP_OK && (FUZZ_RESTORE(other, STATE_BYTES, snap, SNAPSHOT_BYTES) != BEP_OK ||
                                          FUZZ_SNAPSHOT(other, STATE_BYTES, snap2, SNAPSHOT_BYTES) != BEP_OK ||
                                          memcmp(snap, snap2, SNAPSHOT_BYTES) != 0)) {
                    fprintf(stderr, "case %u: a written snapshot did not restore to itself\n", (unsigned)c);
                    return 7;
                }
            }
        }
        put(out, &st_restore, 4);
        put(out, &st_epoch, 4);
        put(out, &st_snap, 4);
    }
    fclose(out);
    free(corpus);
    free(base); free(state); free(backup); free(other); free(snap); free(snap2);
    return 0;
}
"""


def make_board_net(tmp_path_factory, centre: str = "off"):
    """A two-layer network (so γ and Q of a second layer are real) on real-valued inputs
    (thresholds to follow, as int16 of steps above 1), its training data, the generated
    library and where its snapshots hold the followed thresholds. ``centre`` "on": its first
    layer reads centred inputs (docs/algorithm.md §2.9), whose offsets a restore recomputes."""
    X, y = blobs(600, features=16, classes=4, seed=5)
    model = fit(X, y, hidden=(40, 24), epochs=1, patience=2, seed=3, binarize="thermometer:3", centre=centre)
    assert (model.input_means is not None) == (centre == "on")
    enc = EncodedData(model.encode(X), model.encode_labels(y))
    fmt = inputformat.choose(model.encoder, X)
    gen = generate(model, tmp_path_factory.mktemp("snapfuzz") / "gen", "net", fmt)
    return model, enc, gen, Followed.of(model, gen, fmt)


@pytest.fixture(scope="module")
def board_net(tmp_path_factory):
    return make_board_net(tmp_path_factory)


@pytest.fixture(scope="module")
def centred_board_net(tmp_path_factory):
    return make_board_net(tmp_path_factory, centre="on")


@dataclasses.dataclass(frozen=True)
class Followed:
    """Where a snapshot holds the followed input thresholds and what bounds them."""

    offset: int
    counts: np.ndarray
    lo: int
    hi: int
    window: np.ndarray

    @classmethod
    def of(cls, model, gen, fmt) -> "Followed":
        cal = recalibration.plan(model.encoder, fmt)
        assert cal.count == gen.plan.followed > 0 and cal.step.min() > 1
        return cls(snapshot.followed_offset(gen.plan), cal.counts, cal.lo, cal.hi, cal.window)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def index(self, feature: str, rank: str) -> tuple[int, int]:
        """(threshold index, its feature) of 'F:R' (either may be 'last')."""
        f = len(self.counts) - 1 if feature == "last" else int(feature)
        r = int(self.counts[f]) - 1 if rank == "last" else int(rank)
        assert 0 <= r < self.counts[f], (feature, rank)
        return int(self.counts[:f].sum()) + r, f

    def field(self, name: str) -> tuple[int, int] | None:
        """(byte offset, feature) of 'threshold:F:R' or 'accumulator:F:R', None for a header field."""
        kind, _, where = name.partition(":")
        if kind not in ("threshold", "accumulator"):
            return None
        k, f = self.index(*where.split(":"))
        return self.offset + 4 * (k + (self.count if kind == "accumulator" else 0)), f


SYMBOL = re.compile(r"(-?)(lo|hi|window|prev)([+-]\d+)?")


def edited(snap: bytes, edits: dict, fix_crc: bool, followed: Followed) -> bytes:
    """``snap`` with fields set: a header field (an int, or '+k'/'-k' relative to the field's
    value) or a followed threshold or accumulator ('threshold:F:R', 'accumulator:F:R'; an int
    as unsigned 32 bits, '+k'/'-k', or 'lo', 'hi', 'window', '-window' or 'prev' (the previous
    threshold of the feature), each with an optional '+k'/'-k')."""
    out = bytearray(snap)
    for name, value in edits.items():
        where = followed.field(name)
        off, size = OFFSETS[name] if where is None else (where[0], 4)
        code = "<I" if size == 4 else "<H"
        old = struct.unpack_from(code, out, off)[0]
        symbol = SYMBOL.fullmatch(value) if isinstance(value, str) else None
        if symbol:
            sign, word, delta = symbol.groups()
            base = {"lo": followed.lo, "hi": followed.hi, "window": int(followed.window[where[1]]),
                    "prev": struct.unpack_from("<i", out, off - 4)[0]}[word]
            new = (-base if sign else base) + int(delta or 0)
        else:
            new = old + int(value) if isinstance(value, str) else int(value)
        struct.pack_into(code, out, off, new % (1 << (8 * size)))
    if fix_crc:
        out = recrc(bytes(out))
    return bytes(out)


def build(gen, out: Path) -> Path:
    n = gen.name
    fns = {"TRAIN_BATCH": "train_batch", "START": "start", "SAMPLE_INDEX": "sample_index", "END_EPOCH": "end_epoch",
           "SNAPSHOT": "snapshot", "RESTORE": "restore", "RESET_COUNTERS": "reset_counters",
           "READ_SCHEDULE": "read_schedule", "CALIBRATE": "calibrate", "SHOULD_STOP": "should_stop",
           "READ_CLASSES": "read_classes"}
    defines = [f'-DFUZZ_HEADER="bep_{n}_board.h"', f"-DSTATE_BYTES={gen.plan.state_bytes}u",
               f"-DSNAPSHOT_BYTES=BEP_{n.upper()}_SNAPSHOT_BYTES", f"-DBATCH={BATCH}u",
               f"-DFUZZ_LEVELS=bep_{n}_schedule.levels", f"-DFUZZ_CALIB=bep_{n}_calibration",
               f"-DFUZZ_INPUT_T=bep_{n}_input_t", f"-DFUZZ_VALUES=BEP_{n.upper()}_INPUT_VALUES"]
    defines += [f"-DFUZZ_{k}=bep_{n}_{v}" for k, v in fns.items()]
    return build_sanitized(gen, DRIVER, out, defines)


def script_word(script: dict) -> int:
    word = sum(bit for key, bit in SCRIPT_BITS.items() if script.get(key))
    return word | (min(int(script.get("batches", 0)), 15) << 8)


def recrc(blob: bytes) -> bytes:
    """The CRC recomputed over the length the blob itself claims (when it can hold it)."""
    total = struct.unpack_from("<I", blob, OFFSETS["bytes"][0])[0]
    if not 4 <= total <= len(blob):
        return blob
    out = bytearray(blob)
    struct.pack_into("<I", out, total - 4, zlib.crc32(bytes(out[:total - 4])))
    return bytes(out)


EDGES = [0, 1, 2, 255, 256, 257, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]


def followed_values(rng: np.random.Generator, followed: Followed) -> bytes:
    """Thresholds and accumulators a board could hold: per feature sorted values of the input
    type (its limits often among them), accumulators strictly within ±window."""
    t, a = [], []
    for f, n in enumerate(followed.counts):
        edge = rng.choice([followed.lo, followed.hi, followed.lo + 1, followed.hi - 1], size=n)
        t += sorted(np.where(rng.random(n) < 0.3, edge, rng.integers(followed.lo, followed.hi + 1, n)).tolist())
        w = int(followed.window[f])
        a += np.where(rng.random(n) < 0.3, rng.choice([1 - w, w - 1], size=n), rng.integers(1 - w, w, n)).tolist()
    return np.asarray(t + a, dtype="<i4").tobytes()


def random_case(rng: np.random.Generator, snap: bytes, followed: Followed) -> tuple[str, bytes, int]:
    """(kind, blob, script): kind 'refused' must not be accepted; 'ok' must be; 'any' may be."""
    script = int(rng.integers(0, 32)) | (int(rng.integers(0, 5)) << 8)
    m = int(rng.integers(0, 10))
    if m <= 2:  # header fields edited, CRC recomputed: the checks behind it decide
        edits = {}
        for name in rng.choice([n for n in OFFSETS if n not in ("magic", "version")], size=int(rng.integers(1, 4))):
            old = struct.unpack_from("<I" if OFFSETS[name][1] == 4 else "<H", snap, OFFSETS[name][0])[0]
            edits[str(name)] = int(rng.choice([*EDGES, old + int(rng.integers(-3, 4)), int(rng.integers(0, 2**32))]))
        return "any", edited(snap, edits, True, followed), script
    if m == 8:  # followed thresholds and accumulators a board could hold, CRC recomputed
        values = followed_values(rng, followed)
        return "ok", recrc(snap[:followed.offset] + values + snap[followed.offset + len(values):]), script
    if m == 9:  # followed thresholds and accumulators set to edge or random values, CRC recomputed
        edits = {}
        for _ in range(int(rng.integers(1, 4))):
            kind = "threshold" if rng.random() < 0.5 else "accumulator"
            f = int(rng.integers(0, len(followed.counts)))
            name = f"{kind}:{f}:{int(rng.integers(0, followed.counts[f]))}"
            edits[name] = str(rng.choice(["lo", "hi", "lo-1", "hi+1", "window", "-window", "window-1", "-window+1",
                                          "prev", "prev-1", "+1", "-1"])) if rng.random() < 0.7 else \
                int(rng.choice([*EDGES, int(rng.integers(0, 2**32))]))
            if str(edits[name]).startswith("prev") and name.endswith(":0"):
                edits[name] = "lo"  # the first threshold of a feature has no previous one
        return "any", edited(snap, edits, True, followed), script
    if m == 3:  # counters and marks consistent by construction, anywhere in 32 bits
        s, e = int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32))
        n = int(rng.integers(0, 2**31))
        edits = {"samples": s, "errors": e, "start_samples": (s - n) % 2**32,
                 "start_errors": (e - int(rng.integers(0, n + 1))) % 2**32}
        return "ok", edited(snap, edits, True, followed), script
    if m == 4:  # hidden weights edited, CRC recomputed: any value is a weight
        out = bytearray(snap)
        for pos in rng.integers(snapshot.HEADER_BYTES, followed.offset, size=int(rng.integers(1, 9))):
            out[int(pos)] = int(rng.integers(0, 256))
        return "ok", recrc(bytes(out)), script
    if m == 5:  # bit flips, CRC as it was
        out = bytearray(snap)
        for bit in rng.choice(8 * len(out), size=int(rng.integers(1, 6)), replace=False):
            out[int(bit) // 8] ^= 1 << (int(bit) % 8)
        return "refused", bytes(out), script
    if m == 6:  # truncated (the CRC recomputed where the claimed length still fits)
        cut = int(rng.integers(0, len(snap)))
        return "refused", snap[:cut], script
    return "refused" if rng.random() < 0.5 else "any", bytes(rng.integers(0, 256, size=int(rng.integers(0, 200)),
                                                                         dtype=np.uint8)), script


def replay(driver: Path, work: Path, gen, enc: EncodedData, seed: int,
           cases: list[tuple[bytes, int]]) -> tuple[subprocess.CompletedProcess, bytes, np.ndarray]:
    """Replay ``cases`` ((blob, script)); (process, the base snapshot, per case the statuses
    of restore, end_epoch and snapshot (99: not called))."""
    xs = np.ascontiguousarray(enc.packed, dtype=np.uint32)
    ys = enc.y.astype(np.uint16)
    path, out = work / "cases.bin", work / "out.bin"
    path.write_bytes(b"BEPSNAP1" + struct.pack("<III", gen.plan.state_bytes, len(ys), xs.shape[1]) + xs.tobytes()
                     + ys.tobytes() + bytes((2 * len(ys)) % 4) + struct.pack("<II", seed, len(cases))
                     + b"".join(struct.pack("<II", script, len(blob)) + blob for blob, script in cases))
    proc = subprocess.run([str(driver), str(path), str(out)], capture_output=True, text=True, timeout=900,
                          env=SANITIZER_ENV)
    if proc.returncode != 0:
        return proc, b"", np.zeros((0, 3), np.int32)
    raw = out.read_bytes()
    size = len(raw) - 12 * len(cases)
    return proc, raw[:size], np.frombuffer(raw[size:], dtype="<i4").reshape(-1, 3)


def base_snapshot(driver: Path, work: Path, gen, enc, seed: int) -> bytes:
    proc, base, _ = replay(driver, work, gen, enc, seed, [])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base


def seed_cases(base: bytes, followed: Followed) -> list[tuple[str, bytes, int, str]]:
    """(name, blob, script, expected status) of the seed corpus."""
    spec = json.loads(SEEDS.read_text())
    return [(c["name"], edited(base, c["set"], c["fix_crc"], followed), script_word(c["script"]), c["expect"])
            for c in spec["cases"]]


def check(proc) -> None:
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, proc.stderr[-4000:]


def fuzz(board_net, tmp_path, n_cases: int) -> None:
    _, enc, gen, followed = board_net
    driver = build(gen, tmp_path / "snapfuzz")
    base = base_snapshot(driver, tmp_path, gen, enc, 11)
    seeds = seed_cases(base, followed)
    rng = np.random.default_rng(2026)
    randoms = [random_case(rng, base, followed) for _ in range(n_cases)]
    cases = [(blob, script) for _, blob, script, _ in seeds] + [(blob, script) for _, blob, script in randoms]
    proc, again, results = replay(driver, tmp_path, gen, enc, 11, cases)
    check(proc)
    assert again == base
    for (name, _, _, expect), (st, st_epoch, _) in zip(seeds, results):
        assert st == CODES[expect], f"{name}: restore gave {st}, not {expect}"
        if expect == "OK" and st_epoch != 99:
            assert st_epoch == CODES["OK"], f"{name}: end_epoch gave {st_epoch}"
    rand = results[len(seeds):]
    kinds = np.array([k for k, _, _ in randoms])
    assert not np.any(rand[kinds == "refused", 0] == CODES["OK"]), "a damaged snapshot was accepted"
    assert np.all(rand[kinds == "ok", 0] == CODES["OK"]), "a consistent snapshot was refused"
    accepted = rand[:, 0] == CODES["OK"]
    # the random cases reached both sides of every check, and training after a restore
    assert accepted.sum() > n_cases // 5 and (rand[:, 0] == CODES["ERR_CORRUPT"]).sum() > n_cases // 5
    assert {CODES["ERR_SIZE"], CODES["ERR_FOREIGN"]} <= set(rand[:, 0].tolist())
    assert (rand[accepted, 1] == CODES["OK"]).sum() > n_cases // 20


def test_restore_and_schedule_fuzz_under_asan_ubsan(board_net, tmp_path):
    fuzz(board_net, tmp_path, N_CASES)


def test_restore_and_schedule_fuzz_of_a_centred_network_under_asan_ubsan(centred_board_net, tmp_path):
    """The same on a network with centred inputs: every restore repacks its first layer and
    recomputes the offsets (bep_centre_row), and training after it takes the centred forward pass
    and update, under the sanitizers."""
    fuzz(centred_board_net, tmp_path, N_CASES // 3)


@pytest.mark.slow
def test_restore_and_schedule_fuzz_long(board_net, tmp_path):
    fuzz(board_net, tmp_path, N_CASES_SLOW)


def test_fuzz_catches_the_planted_out_of_bounds_read(board_net, tmp_path):
    """Negative control: without the restore's schedule check, the clamps in end_epoch and
    the runtime's care of the marks (reset with the counters, moved after 2^31 samples), the
    two proofs of concept make ASan report the read past the Q table."""
    _, enc, gen, followed = board_net
    bad = planted_library(
        gen, tmp_path / "gen",
        ("bep_standalone.c", "if (level > sc->levels || stalled >= sc->patience || best_errors > best_samples ||\n"
                             "        samples >= BEP_EPOCH_MAX_SAMPLES || errors > samples)",
         "if (level > sc->levels + 0u * (stalled + best_errors + best_samples + errors + samples))"),
        ("bep_standalone.c", "    if (errors > samples) errors = samples;\n", ""),
        ("bep_standalone.c", "    if (level > sc->levels) return BEP_ERR_STATE;\n", ""),
        ("bep_runtime.c", "    sched->start_errors = sched->start_samples = 0;\n", "    (void)sched;\n"),
        ("bep_runtime.c", ">= BEP_EPOCH_MAX_SAMPLES) {",
         ">= BEP_EPOCH_MAX_SAMPLES && hd->counters.samples == 0xFFFFFFFFu) {"))
    driver = build(bad, tmp_path / "planted")
    base = base_snapshot(driver, tmp_path, bad, enc, 11)
    for name, blob, script, _ in seed_cases(base, followed):
        if name.startswith(("errors since", "10 M samples")):
            proc, _, _ = replay(driver, tmp_path, bad, enc, 11, [(blob, script)])
            assert proc.returncode != 0 and "AddressSanitizer" in proc.stderr, (name, proc.stderr[-2000:])


def test_fuzz_catches_a_restore_that_does_not_check_the_followed_thresholds(board_net, tmp_path):
    """Negative control: a restore that takes the followed thresholds unchecked accepts an
    accumulator far outside its window, and following values after it overflows int32: the
    seed case makes UBSan report it."""
    _, enc, gen, followed = board_net
    bad = planted_library(gen, tmp_path / "gen", ("bep_standalone.c",
                                                  "if (st == BEP_OK && bep_followed(sc) != NULL) st = bep_check_calib(",
                                                  "if (0) st = bep_check_calib("))
    driver = build(bad, tmp_path / "planted")
    base = base_snapshot(driver, tmp_path, bad, enc, 11)
    cases = {name: (blob, script) for name, blob, script, _ in seed_cases(base, followed)}
    proc, _, _ = replay(driver, tmp_path, bad, enc, 11, [cases["an accumulator far above its window, then followed"]])
    assert proc.returncode != 0 and "signed integer overflow" in proc.stderr, proc.stderr[-2000:]
