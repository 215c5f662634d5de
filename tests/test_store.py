"""A board's flash store (bep_store.h) under power cuts, in a simulated NOR flash, under
ASan and UBSan.

The host program (``DRIVER``) links the generated board library with a flash simulated
in RAM as NOR flash behaves: erase sets a page to 0xFF, program can only clear bits
(new = old AND data), the program unit is 4 bytes. A board learns, saves (generation 1),
learns, saves (2), learns more; then the third save is cut by a power loss at every byte
of its flash operations in turn (each erased byte, each programmed byte; the byte being
programmed when the power goes keeps a random part of its bits), and the board boots
again: ``bep_<net>_store_open`` must restore the newest snapshot written whole (the second
one, or the third when every byte of it made it), byte for byte the state that was saved.
Also: a flash that silently drops writes or fails an erase, a third slot, generations
across the 2^32 wrap, a damaged newest slot, and flash geometries the store refuses.

A negative control plants the pattern the store replaces, one snapshot rewritten in place
(the save targets the newest slot): the same cuts then lose everything learnt.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bep_mcu.cgen.status import STATUS

from .conftest import SANITIZER_ENV, build_sanitized, planted_library
from .test_snapshot_fuzz import board_net  # noqa: F401  (module fixture)

CODES = {name: value for name, value, _ in STATUS}
PAGE = 256

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include FUZZ_HEADER

#define FN(op) FUZZ_FN(op)
enum { PAGE = PAGE_BYTES, SLOT_PAGES = (SNAPSHOT_BYTES + PAGE - 1) / PAGE, MAX_SLOTS = 3 };

/* The simulated flash: NOR semantics, a power cut after `budget` byte operations. */
static uint8_t flash[MAX_SLOTS * SLOT_PAGES * PAGE];
static long budget = -1;     /* byte operations left before the power goes (-1: no cut) */
static uint32_t rng = 12345u, ops;
static int drop_writes, fail_erase;

static uint32_t next_rand(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }

static int sim_read(void *ctx, uint32_t off, uint8_t *dst, uint32_t n)
{
    (void)ctx;
    if ((size_t)off + n > sizeof flash) return -1;
    memcpy(dst, flash + off, n);
    return 0;
}

static int sim_erase(void *ctx, uint32_t off)
{
    uint32_t k;
    (void)ctx;
    if (off % PAGE != 0u || off + PAGE > sizeof flash || fail_erase) return -1;
    for (k = 0; k < PAGE; ++k, ++ops) {
        if (budget == 0) return -1; /* power lost: nothing after this happens */
        if (budget > 0) --budget;
        flash[off + k] = 0xFFu;
    }
    return 0;
}

static int sim_program(void *ctx, uint32_t off, const uint8_t *src, uint32_t n)
{
    uint32_t k;
    (void)ctx;
    if (off % 4u != 0u || n % 4u != 0u || (size_t)off + n > sizeof flash) return -1;
    for (k = 0; k < n; ++k, ++ops) {
        if (budget == 0) { /* the byte being programmed keeps some of its bits: at least one it was to clear */
            uint8_t clear = (uint8_t)~src[k];
            flash[off + k] &= (uint8_t)(src[k] | (uint8_t)next_rand() | (clear & (uint8_t)(0u - clear)));
            return -1;
        }
        if (budget > 0) --budget;
        if (!drop_writes) flash[off + k] &= src[k];
    }
    return 0;
}

static bep_flash_t geometry(uint32_t slots)
{
    bep_flash_t f;
    f.ctx = NULL;
    f.page_bytes = PAGE;
    f.write_bytes = 4u;
    f.slot_pages = SLOT_PAGES;
    f.n_slots = slots;
    f.read = sim_read;
    f.erase = sim_erase;
    f.program = sim_program;
    return f;
}


static const uint32_t *xs;
static const uint16_t *ys;
static uint32_t n_samples, iw, cursor;
static uint32_t state[STATE_WORDS], booted[STATE_WORDS];
static uint8_t snap[SNAPSHOT_BYTES], snap2[SNAPSHOT_BYTES];

static void learn(uint32_t *st, uint32_t batches)
{
    uint32_t x[10 * 64], b, k;
    uint16_t y[10], pred[10];
    for (b = 0; b < batches; ++b) {
        for (k = 0; k < 10u; ++k, ++cursor) {
            memcpy(x + k * iw, xs + (size_t)(cursor % n_samples) * iw, 4u * iw);
            y[k] = ys[cursor % n_samples];
        }
        if (FN(train_batch)(st, sizeof state, x, 10u * iw, y, pred, 10u) != BEP_OK) exit(4);
    }
}

/* The state's snapshot into a buffer (generation 0): what a restore must give back. */
static void snapshot_of(const uint32_t *st, uint8_t *out)
{
    if (FN(snapshot)(st, sizeof state, out, SNAPSHOT_BYTES) != BEP_OK) exit(4);
}

int main(int argc, char **argv)
{
    FILE *out;
    uint8_t *data, *saved_flash = (uint8_t *)malloc(sizeof flash);
    uint8_t *after_two = (uint8_t *)malloc(SNAPSHOT_BYTES);
    bep_store_t store;
    bep_flash_t f2 = geometry(2u), f3 = geometry(3u), bad;
    uint32_t total_ops, t, mode;
    int32_t st;
    if (argc != 3 || saved_flash == NULL || after_two == NULL) return 2;
    data = read_input(argv[1]);
    out = fopen(argv[2], "wb");
    if (data == NULL || out == NULL) return 2;
    n_samples = rd32(data);
    iw = rd32(data + 4);
    if (iw > 64u) return 3;
    xs = (const uint32_t *)(const void *)(data + 8);
    ys = (const uint16_t *)(const void *)(data + 8 + 4u * n_samples * iw);

    for (mode = 0; mode < 2u; ++mode) { /* 0: two slots, 1: three slots */
        const bep_flash_t *f = mode ? &f3 : &f2;
        memset(flash, 0, sizeof flash); /* a fresh part: neither erased nor valid */
        cursor = 0;
        st = (int32_t)FN(store_open)(&store, f, 0u, state, sizeof state);
        put(out, &st, 4); /* BEP_ERR_EMPTY */
        if (FN(start)(state, sizeof state, 7u, 0u) != BEP_OK) return 4;
        learn(state, 3);
        st = (int32_t)FN(store_save)(&store, state, sizeof state);
        put(out, &st, 4);
        learn(state, 3);
        st = (int32_t)FN(store_save)(&store, state, sizeof state);
        put(out, &st, 4);
        snapshot_of(state, after_two);
        learn(state, 3);
        memcpy(saved_flash, flash, sizeof flash);
        /* the third save, uncut, counting its byte operations */
        ops = 0;
        {
            bep_store_t s2 = store;
            st = (int32_t)FN(store_save)(&s2, state, sizeof state);
            put(out, &st, 4);
            put(out, &s2.generation, 4);
            put(out, &s2.slot, 4);
        }
        total_ops = ops;
        put(out, &total_ops, 4);
        for (t = 0; t <= total_ops; ++t) {
            bep_store_t s2 = store, boot;
            int32_t st_save, st_open, same;
            memcpy(flash, saved_flash, sizeof flash);
            budget = (long)t;
            st_save = (int32_t)FN(store_save)(&s2, state, sizeof state);
            budget = -1;
            memset(booted, 0xA5, sizeof booted); /* the reset: RAM holds anything */
            st_open = (int32_t)FN(store_open)(&boot, f, 0u, booted, sizeof booted);
            same = -1;
            if (st_open == BEP_OK) {
                snapshot_of(booted, snap2);
                snapshot_of(state, snap);
                same = memcmp(snap2, boot.generation == 3u ? snap : after_two, SNAPSHOT_BYTES) == 0;
            }
            put(out, &st_save, 4);
            put(out, &st_open, 4);
            put(out, &boot.generation, 4);
            put(out, &same, 4);
        }
        /* a flash that drops writes, then one whose erase fails: the store keeps generation 2 */
        memcpy(flash, saved_flash, sizeof flash);
        drop_writes = 1;
        {
            bep_store_t s2 = store, boot;
            st = (int32_t)FN(store_save)(&s2, state, sizeof state);
            put(out, &st, 4);
            put(out, &s2.generation, 4);
            drop_writes = 0;
            fail_erase = 1;
            st = (int32_t)FN(store_save)(&s2, state, sizeof state);
            put(out, &st, 4);
            fail_erase = 0;
            st = (int32_t)FN(store_open)(&boot, f, 0u, booted, sizeof booted);
            put(out, &st, 4);
            put(out, &boot.generation, 4);
        }
    }
    /* generations across the wrap: slots written with 0xFFFFFFFE and 0xFFFFFFFF, then a save */
    {
        bep_store_t s, boot;
        memset(flash, 0, sizeof flash);
        if (FN(store_open)(&s, &f2, 0u, state, sizeof state) != BEP_ERR_EMPTY) return 5;
        s.generation = 0xFFFFFFFDu;
        if (FN(store_save)(&s, state, sizeof state) != BEP_OK || s.generation != 0xFFFFFFFEu) return 5;
        if (FN(store_save)(&s, state, sizeof state) != BEP_OK || s.generation != 0xFFFFFFFFu) return 5;
        if (FN(store_open)(&boot, &f2, 0u, booted, sizeof booted) != BEP_OK || boot.generation != 0xFFFFFFFFu) return 5;
        if (FN(store_save)(&boot, state, sizeof state) != BEP_OK || boot.generation != 1u) return 5;
        if (FN(store_open)(&s, &f2, 0u, booted, sizeof booted) != BEP_OK || s.generation != 1u) return 5;
        /* the newest slot damaged (one byte of its weights): the older one is restored */
        flash[s.slot * SLOT_PAGES * PAGE + 200u] ^= 0x10u;
        if (FN(store_open)(&boot, &f2, 0u, booted, sizeof booted) != BEP_OK || boot.generation != 0xFFFFFFFFu) return 5;
    }
    /* the policy: bep_store_tick saves every 50 samples (5 batches of 10) */
    {
        bep_store_t s;
        uint32_t b, saves = 0, last = 0;
        memset(flash, 0, sizeof flash);
        (void)FN(store_open)(&s, &f2, 50u, state, sizeof state);
        if (FN(start)(state, sizeof state, 7u, 0u) != BEP_OK) return 4;
        for (b = 0; b < 23u; ++b) {
            learn(state, 1);
            if (FN(store_tick)(&s, state, sizeof state) != BEP_OK) return 6;
            if (s.generation != last) { ++saves; last = s.generation; }
        }
        put(out, &saves, 4);
    }
    /* geometries a store refuses */
    {
        bep_store_t s;
        int32_t codes[6];
        bad = f2; bad.n_slots = 1u;                         codes[0] = (int32_t)FN(store_open)(&s, &bad, 0u, state, sizeof state);
        bad = f2; bad.write_bytes = 3u;                     codes[1] = (int32_t)FN(store_open)(&s, &bad, 0u, state, sizeof state);
        bad = f2; bad.write_bytes = 32u;                    codes[2] = (int32_t)FN(store_open)(&s, &bad, 0u, state, sizeof state);
        bad = f2; bad.slot_pages = SLOT_PAGES - 1u;         codes[3] = (int32_t)FN(store_open)(&s, &bad, 0u, state, sizeof state);
        bad = f2; bad.program = NULL;                       codes[4] = (int32_t)FN(store_open)(&s, &bad, 0u, state, sizeof state);
        bad = f2; bad.page_bytes = 0x80000000u;             codes[5] = (int32_t)FN(store_open)(&s, &bad, 0u, state, sizeof state);
        put(out, codes, sizeof codes);
    }
    fclose(out);
    free(data);
    free(saved_flash);
    free(after_two);
    return 0;
}
"""


def run_store(gen, enc, work: Path) -> tuple[subprocess.CompletedProcess, np.ndarray]:
    """Build the driver for ``gen`` and run it: (process, the words it wrote, all of them if it ended well)."""
    work.mkdir(parents=True, exist_ok=True)
    n = gen.name
    defines = [f'-DFUZZ_HEADER="bep_{n}_board.h"', f"-DFUZZ_FN(op)=bep_{n}_##op", f"-DPAGE_BYTES={PAGE}",
               f"-DSNAPSHOT_BYTES=BEP_{n.upper()}_SNAPSHOT_BYTES", f"-DSTATE_WORDS=BEP_{n.upper()}_STATE_WORDS"]
    driver = build_sanitized(gen, DRIVER, work / "store_driver", defines)
    xs = np.ascontiguousarray(enc.packed, dtype=np.uint32)
    (work / "in.bin").write_bytes(struct.pack("<II", len(enc.y), xs.shape[1]) + xs.tobytes()
                                  + enc.y.astype(np.uint16).tobytes())
    proc = subprocess.run([str(driver), str(work / "in.bin"), str(work / "out.bin")], capture_output=True, text=True,
                          timeout=900, env=SANITIZER_ENV)
    assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, proc.stderr[-4000:]
    return proc, np.frombuffer((work / "out.bin").read_bytes(), dtype="<i4").copy()


@pytest.fixture(scope="module")
def store_run(board_net, tmp_path_factory):  # noqa: F811
    model, enc, gen, _ = board_net
    proc, words = run_store(gen, enc, tmp_path_factory.mktemp("store"))
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return words


def parse(words: np.ndarray, modes_only: int = 0) -> tuple[list[dict], int, list[int]]:
    """The driver's output: per flash (two slots, three) the cut runs; the saves the policy
    made; the refused geometries' statuses (``modes_only``: just the first modes)."""
    pos, modes = 0, []

    def take(n: int) -> np.ndarray:
        nonlocal pos
        pos += n
        return words[pos - n:pos]

    for _ in range(modes_only or 2):
        empty, save1, save2 = take(3)
        save3, gen3, slot3, total = take(4)
        cuts = take(4 * (int(total) + 1)).reshape(-1, 4)
        faults = take(5)
        modes.append({"empty": empty, "saves": (save1, save2, save3), "gen3": gen3, "slot3": slot3, "total": total,
                      "cuts": cuts, "faults": faults})
    if modes_only:
        return modes, 0, []
    saves = int(take(1)[0])
    codes = take(6).tolist()
    assert pos == len(words)
    return modes, saves, codes


def test_every_power_cut_of_a_save_keeps_the_last_snapshot(store_run):
    modes, _, _ = parse(store_run)
    for slots, m in zip((2, 3), modes):
        assert m["empty"] == CODES["ERR_EMPTY"]
        assert m["saves"] == (0, 0, 0) and m["gen3"] == 3 and m["slot3"] == 2 % slots
        cuts = m["cuts"]
        assert len(cuts) == m["total"] + 1 > 2 * PAGE  # every erased and programmed byte of the save
        whole = cuts[:, 0] == CODES["OK"]
        assert whole.sum() == 1 and whole[-1]  # only the uncut save reports success
        assert np.all(cuts[:, 1] == CODES["OK"]), "a boot after a cut found nothing to restore"
        assert np.all(cuts[:, 3] == 1), "a boot restored something else than the snapshot it found"
        assert np.all(cuts[:-1, 2] == 2) and cuts[-1, 2] == 3  # nothing learnt before the cut is lost
        # a flash that drops writes, one whose erase fails: refused, generation 2 stays the newest
        assert m["faults"].tolist() == [CODES["ERR_FLASH"], 2, CODES["ERR_FLASH"], CODES["OK"], 2]


def test_generations_wrap_and_a_damaged_newest_slot_falls_back(store_run):
    # the driver exits 5 if any of these checks fails (store_run asserts exit 0)
    assert parse(store_run)[0]


def test_tick_saves_every_n_samples(store_run):
    assert parse(store_run)[1] == 4  # 230 samples, a save every 50


def test_store_refuses_a_flash_it_cannot_use(store_run):
    assert parse(store_run)[2] == [CODES["ERR_ARG"]] * 6


def test_one_slot_rewritten_in_place_loses_what_the_store_keeps(board_net, tmp_path):  # noqa: F811
    """Negative control: a save that overwrites the newest slot (one snapshot rewritten in
    place, the pattern the store replaces) leaves nothing to restore after most cuts."""
    model, enc, gen, _ = board_net
    planted = planted_library(gen, tmp_path / "gen", ("bep_store.c",
                                                      "target = store->slot >= f->n_slots - 1u ? 0u : store->slot + 1u;",
                                                      "target = store->slot >= f->n_slots ? 0u : store->slot;"))
    _, words = run_store(planted, enc, tmp_path / "run")
    cuts = parse(words, modes_only=1)[0][0]["cuts"]
    lost = int(np.sum(cuts[:-1, 1] != CODES["OK"]))
    assert lost > 0.9 * (len(cuts) - 1), lost
