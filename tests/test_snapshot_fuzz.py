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
  counters are reset mid-epoch; and the edges of the 2^31-sample epoch bound), each with
  the status it must get;
* random cases: header fields set to edge or random values with the CRC recomputed (so they
  reach the checks behind it), bit flips without (refused), truncations, length edits,
  random bytes, and edits of the hidden weights (accepted: any value is a weight).

The driver (``DRIVER``) checks, and exits non-zero on the first failure: a refused
snapshot leaves the state byte for byte as it was (an initialised state, or a buffer of
garbage for every other case); after every ``end_epoch`` the level is within the Q table;
a snapshot written after training restores into a second state that writes the same bytes
again. The number of cases bounds the time: ``N_CASES`` in the default run (about 10 s with
the build), ``N_CASES_SLOW`` under ``-m slow`` (about a minute). A negative control plants the original bug
(the restore check of the schedule and the reset of its marks removed) and shows the seed
cases catch it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from bep_mcu.cgen import snapshot
from bep_mcu.cgen.codegen import generate
from bep_mcu.cgen.status import STATUS
from bep_mcu.data.datasets import load_dataset
from bep_mcu.training import EncodedData

from .conftest import SANITIZER_ENV, build_sanitized, fit

SEEDS = Path(__file__).parent / "corpus" / "snapshot_seeds.json"
CODES = {name: value for name, value, _ in STATUS}
N_CASES, N_CASES_SLOW = 30000, 400000
BATCH = 10
SCRIPT_BITS = {"reset_before": 1, "reset_mid_epoch": 2, "end_epoch": 4, "round_trip": 8}  # batches: bits 8..11
OFFSETS = snapshot.header_offsets()

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include FUZZ_HEADER


static const uint32_t *xs;
static const uint16_t *ys;
static uint32_t n_samples, iw;

/* One batch of BATCH samples starting at sample `first` (wrapping). */
static int32_t train_batch(uint32_t *state, uint32_t first)
{
    uint32_t x[BATCH * 64];
    uint16_t y[BATCH], pred[BATCH];
    uint32_t k;
    for (k = 0; k < BATCH; ++k) {
        uint32_t i = (first + k) % n_samples;
        memcpy(x + k * iw, xs + (size_t)i * iw, 4u * iw);
        y[k] = ys[i];
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
            if (script & 4u) {
                st_epoch = (int32_t)FUZZ_END_EPOCH(state, STATE_BYTES);
                if (FUZZ_READ_SCHEDULE(state, STATE_BYTES, &info) != BEP_OK) return 4;
                if (info.level > FUZZ_LEVELS) {
                    fprintf(stderr, "case %u: level %u past the Q table\n", (unsigned)c, (unsigned)info.level);
                    return 6;
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


@pytest.fixture(scope="module")
def board_net(tmp_path_factory):
    """A two-layer network (so γ and Q of a second layer are real), its training data and
    the generated library."""
    data = load_dataset("prototypes:classes=4,features=64,samples=600")
    model = fit(data.X_train, data.y_train, hidden=(40, 24), epochs=1, patience=2, seed=3)
    enc = EncodedData(model.encode(data.X_train), model.encode_labels(data.y_train))
    gen = generate(model, tmp_path_factory.mktemp("snapfuzz") / "gen", "net")
    return model, enc, gen


def build(gen, out: Path) -> Path:
    n = gen.name
    fns = {"TRAIN_BATCH": "train_batch", "START": "start", "SAMPLE_INDEX": "sample_index", "END_EPOCH": "end_epoch",
           "SNAPSHOT": "snapshot", "RESTORE": "restore", "RESET_COUNTERS": "reset_counters",
           "READ_SCHEDULE": "read_schedule"}
    defines = [f'-DFUZZ_HEADER="bep_{n}_board.h"', f"-DSTATE_BYTES={gen.plan.state_bytes}u",
               f"-DSNAPSHOT_BYTES=BEP_{n.upper()}_SNAPSHOT_BYTES", f"-DBATCH={BATCH}u",
               f"-DFUZZ_LEVELS=bep_{n}_schedule.levels"]
    defines += [f"-DFUZZ_{k}=bep_{n}_{v}" for k, v in fns.items()]
    return build_sanitized(gen, DRIVER, out, defines)


def script_word(script: dict) -> int:
    word = sum(bit for key, bit in SCRIPT_BITS.items() if script.get(key))
    return word | (min(int(script.get("batches", 0)), 15) << 8)


def edited(snap: bytes, edits: dict, fix_crc: bool) -> bytes:
    """``snap`` with header fields set (an int, or '+k'/'-k' relative to the field's value)."""
    out = bytearray(snap)
    for name, value in edits.items():
        off, size = OFFSETS[name]
        code = "<I" if size == 4 else "<H"
        old = struct.unpack_from(code, out, off)[0]
        new = old + int(value) if isinstance(value, str) else int(value)
        struct.pack_into(code, out, off, new % (1 << (8 * size)))
    if fix_crc:
        out = recrc(bytes(out))
    return bytes(out)


def recrc(blob: bytes) -> bytes:
    """The CRC recomputed over the length the blob itself claims (when it can hold it)."""
    total = struct.unpack_from("<I", blob, OFFSETS["bytes"][0])[0]
    if not 4 <= total <= len(blob):
        return blob
    out = bytearray(blob)
    struct.pack_into("<I", out, total - 4, zlib.crc32(bytes(out[:total - 4])))
    return bytes(out)


EDGES = [0, 1, 2, 255, 256, 257, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]


def random_case(rng: np.random.Generator, snap: bytes) -> tuple[str, bytes, int]:
    """(kind, blob, script): kind 'refused' must not be accepted; 'any' may be."""
    script = int(rng.integers(0, 16)) | (int(rng.integers(0, 5)) << 8)
    m = int(rng.integers(0, 8))
    if m <= 2:  # header fields edited, CRC recomputed: the checks behind it decide
        edits = {}
        for name in rng.choice([n for n in OFFSETS if n not in ("magic", "version")], size=int(rng.integers(1, 4))):
            old = struct.unpack_from("<I" if OFFSETS[name][1] == 4 else "<H", snap, OFFSETS[name][0])[0]
            edits[str(name)] = int(rng.choice([*EDGES, old + int(rng.integers(-3, 4)), int(rng.integers(0, 2**32))]))
        return "any", edited(snap, edits, True), script
    if m == 3:  # counters and marks consistent by construction, anywhere in 32 bits
        s, e = int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32))
        n = int(rng.integers(0, 2**31))
        edits = {"samples": s, "errors": e, "start_samples": (s - n) % 2**32,
                 "start_errors": (e - int(rng.integers(0, n + 1))) % 2**32}
        return "ok", edited(snap, edits, True), script
    if m == 4:  # hidden weights edited, CRC recomputed: any value is a weight
        out = bytearray(snap)
        for pos in rng.integers(snapshot.HEADER_BYTES, len(snap) - 4, size=int(rng.integers(1, 9))):
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


def seed_cases(base: bytes) -> list[tuple[str, bytes, int, str]]:
    """(name, blob, script, expected status) of the seed corpus."""
    spec = json.loads(SEEDS.read_text())
    return [(c["name"], edited(base, c["set"], c["fix_crc"]), script_word(c["script"]), c["expect"])
            for c in spec["cases"]]


def check(proc) -> None:
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, proc.stderr[-4000:]


def fuzz(board_net, tmp_path, n_cases: int) -> None:
    model, enc, gen = board_net
    driver = build(gen, tmp_path / "snapfuzz")
    base = base_snapshot(driver, tmp_path, gen, enc, 11)
    seeds = seed_cases(base)
    rng = np.random.default_rng(2026)
    randoms = [random_case(rng, base) for _ in range(n_cases)]
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


@pytest.mark.slow
def test_restore_and_schedule_fuzz_long(board_net, tmp_path):
    fuzz(board_net, tmp_path, N_CASES_SLOW)


def test_fuzz_catches_the_planted_out_of_bounds_read(board_net, tmp_path):
    """Negative control: without the restore's schedule check, the clamps in end_epoch and
    the runtime's care of the marks (reset with the counters, moved after 2^31 samples), the
    two proofs of concept make ASan report the read past the Q table."""
    model, enc, gen = board_net
    planted = tmp_path / "gen"
    shutil.copytree(gen.directory, planted)
    for file, old, new in (
            ("bep_standalone.c", "if (level > sc->levels || stalled >= sc->patience || best_errors > best_samples ||\n"
                                 "        samples >= BEP_EPOCH_MAX_SAMPLES || errors > samples)",
             "if (level > sc->levels + 0u * (stalled + best_errors + best_samples + errors + samples))"),
            ("bep_standalone.c", "    if (errors > samples) errors = samples;\n", ""),
            ("bep_standalone.c", "    if (level > sc->levels) return BEP_ERR_STATE;\n", ""),
            ("bep_runtime.c", "    sched->start_errors = sched->start_samples = 0;\n", "    (void)sched;\n"),
            ("bep_runtime.c", ">= BEP_EPOCH_MAX_SAMPLES) {",
             ">= BEP_EPOCH_MAX_SAMPLES && hd->counters.samples == 0xFFFFFFFFu) {")):
        source = (planted / "src" / file).read_text()
        assert source.count(old) == 1, (file, old)
        (planted / "src" / file).write_text(source.replace(old, new))
    bad = dataclasses.replace(gen, directory=planted)
    driver = build(bad, tmp_path / "planted")
    base = base_snapshot(driver, tmp_path, bad, enc, 11)
    for name, blob, script, _ in seed_cases(base):
        if name.startswith(("errors since", "10 M samples")):
            proc, _, _ = replay(driver, tmp_path, bad, enc, 11, [(blob, script)])
            assert proc.returncode != 0 and "AddressSanitizer" in proc.stderr, (name, proc.stderr[-2000:])
