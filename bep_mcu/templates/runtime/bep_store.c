/*
 * bep_store.c - snapshots in flash slots (see bep_store.h).
 */
#include "bep_store.h"

#if defined(__GNUC__)
#define BEP_STORE_NOINLINE __attribute__((noinline))
#else
#define BEP_STORE_NOINLINE
#endif

typedef char bep_store_size_check[(sizeof(void *) != 4u || sizeof(bep_store_t) == BEP_STORE_BYTES) ? 1 : -1];

static uint32_t bep_slot_bytes(const bep_flash_t *f) { return f->slot_pages * f->page_bytes; }

/* A flash geometry a store can use for this network's snapshots. */
static int bep_flash_ok(const bep_flash_t *f, uint32_t snapshot_bytes)
{
    uint32_t w = f->write_bytes;
    if (f->read == NULL || f->erase == NULL || f->program == NULL || f->n_slots < 2u || f->page_bytes == 0u)
        return 0;
    if (w == 0u || w > BEP_STORE_MAX_WRITE_BYTES || (w & (w - 1u)) != 0u || f->page_bytes % w != 0u) return 0;
    if ((uint64_t)f->slot_pages * f->page_bytes * f->n_slots > 0xFFFFFFFFu) return 0;
    return (uint64_t)f->slot_pages * f->page_bytes >= ((uint64_t)snapshot_bytes + w - 1u) / w * w;
}

/* 1 if generation a is newer than b (serial arithmetic: right across a wrap). */
static int bep_newer(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }

/* One slot as a snapshot source. */
typedef struct {
    const bep_flash_t *flash;
    uint32_t base;
} bep_slot_t;

static int bep_slot_read(void *ctx, uint32_t offset, uint8_t *dst, uint32_t n)
{
    const bep_slot_t *s = (const bep_slot_t *)ctx;
    return s->flash->read(s->flash->ctx, s->base + offset, dst, n);
}

/* The snapshot's pieces gathered into whole write units and programmed in order. */
typedef struct {
    const bep_flash_t *flash;
    uint32_t at;    /* where the next unit goes */
    uint32_t fill;  /* bytes gathered in unit */
    uint8_t unit[BEP_STORE_MAX_WRITE_BYTES];
} bep_programmer_t;

static int bep_program_unit(bep_programmer_t *p)
{
    int rc = p->flash->program(p->flash->ctx, p->at, p->unit, p->flash->write_bytes);
    p->at += p->flash->write_bytes;
    p->fill = 0u;
    return rc;
}

static int bep_program_piece(void *ctx, uint32_t offset, const uint8_t *src, uint32_t n)
{
    bep_programmer_t *p = (bep_programmer_t *)ctx;
    uint32_t k;
    (void)offset; /* pieces come in order: offset is always where the last one ended */
    for (k = 0; k < n; ++k) {
        p->unit[p->fill++] = src[k];
        if (p->fill == p->flash->write_bytes && bep_program_unit(p) != 0) return -1;
    }
    return 0;
}

/* The samples counter of a valid state (its own frame: callers are on a save's deepest call). */
static BEP_STORE_NOINLINE bep_status_t bep_samples(const bep_config_t *cfg, const void *state, size_t state_len,
                                                   uint32_t *samples)
{
    bep_counters_t c;
    bep_status_t st = bep_read_counters(cfg, state, state_len, &c);
    *samples = c.samples;
    return st;
}

bep_status_t bep_store_open(const bep_config_t *cfg, const bep_schedule_config_t *sc, bep_store_t *store,
                            const bep_flash_t *flash, uint32_t every_samples, void *state, size_t state_len)
{
    bep_slot_t slot;
    uint32_t i, generation;
    bep_status_t st;
    if (cfg == NULL || sc == NULL || store == NULL || flash == NULL || state == NULL) return BEP_ERR_NULL;
    if (!bep_flash_ok(flash, sc->snapshot_bytes)) return BEP_ERR_ARG;
    store->flash = flash;
    store->generation = 0u;
    store->slot = flash->n_slots;
    store->every = every_samples;
    store->last_samples = 0u;
    slot.flash = flash;
    for (i = 0; i < flash->n_slots; ++i) {
        slot.base = i * bep_slot_bytes(flash);
        st = bep_snapshot_check(cfg, sc, bep_slot_read, &slot, bep_slot_bytes(flash), &generation);
        if (st == BEP_ERR_FLASH) return st;
        if (st == BEP_OK && (store->slot == flash->n_slots || bep_newer(generation, store->generation))) {
            store->slot = i;
            store->generation = generation;
        }
    }
    if (store->slot == flash->n_slots) return BEP_ERR_EMPTY;
    slot.base = store->slot * bep_slot_bytes(flash);
    st = bep_restore_from(cfg, sc, state, state_len, bep_slot_read, &slot, bep_slot_bytes(flash));
    return st != BEP_OK ? st : bep_samples(cfg, state, state_len, &store->last_samples);
}

bep_status_t bep_store_save(const bep_config_t *cfg, const bep_schedule_config_t *sc, bep_store_t *store,
                            const void *state, size_t state_len)
{
    const bep_flash_t *f;
    bep_programmer_t p;
    bep_slot_t slot;
    uint32_t target, generation, written, samples, k;
    bep_status_t st;
    if (cfg == NULL || sc == NULL || store == NULL || store->flash == NULL) return BEP_ERR_NULL;
    f = store->flash;
    if (!bep_flash_ok(f, sc->snapshot_bytes)) return BEP_ERR_ARG; /* the flash was changed since the open */
    st = bep_samples(cfg, state, state_len, &samples);
    if (st != BEP_OK) return st;
    if (((const bep_state_header_t *)state)->batch_triggered != 0u) return BEP_ERR_BATCH_OPEN;
    target = store->slot >= f->n_slots - 1u ? 0u : store->slot + 1u; /* none yet: slot 0 */
    generation = store->generation + 1u == 0u ? 1u : store->generation + 1u; /* 0 marks a buffer's snapshot */
    slot.flash = f;
    slot.base = target * bep_slot_bytes(f);
    for (k = 0; k < f->slot_pages; ++k)
        if (f->erase(f->ctx, slot.base + k * f->page_bytes) != 0) return BEP_ERR_FLASH;
    p.flash = f;
    p.at = slot.base;
    p.fill = 0u;
    st = bep_snapshot_to(cfg, sc, state, state_len, generation, bep_program_piece, &p);
    if (st != BEP_OK) return st;
    if (p.fill != 0u) { /* the last unit, padded as erased flash reads */
        for (k = p.fill; k < f->write_bytes && k < BEP_STORE_MAX_WRITE_BYTES; ++k) p.unit[k] = 0xFFu;
        if (bep_program_unit(&p) != 0) return BEP_ERR_FLASH;
    }
    /* Verify: the slot must read back as a valid snapshot of this generation. */
    st = bep_snapshot_check(cfg, sc, bep_slot_read, &slot, bep_slot_bytes(f), &written);
    if (st != BEP_OK || written != generation) return BEP_ERR_FLASH;
    store->slot = target;
    store->generation = generation;
    store->last_samples = samples;
    return BEP_OK;
}

bep_status_t bep_store_tick(const bep_config_t *cfg, const bep_schedule_config_t *sc, bep_store_t *store,
                            const void *state, size_t state_len)
{
    uint32_t samples;
    bep_status_t st;
    if (store == NULL) return BEP_ERR_NULL;
    st = bep_samples(cfg, state, state_len, &samples);
    if (st != BEP_OK || store->every == 0u || samples - store->last_samples < store->every) return st;
    return bep_store_save(cfg, sc, store, state, state_len);
}
