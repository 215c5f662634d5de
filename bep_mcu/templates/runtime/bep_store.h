/*
 * bep_store.h - what a board learnt, kept in its own flash across resets and power cuts.
 *
 * Hand-written, copied verbatim by `bep-mcu generate` (the board part). A store is two or
 * more slots of flash pages, each able to hold one snapshot (bep_standalone.h). A save
 * writes the state's snapshot, with a generation one above the newest, into the slot after
 * the newest valid one (round robin: every slot wears alike), never over the newest valid
 * one: erase the slot's pages, program the snapshot in the flash's write units, read it
 * back and check it (CRC, header, generation) before the store counts it. A boot opens the
 * store: every slot is checked and the valid one with the newest generation (compared with
 * serial arithmetic, so generations may wrap) is restored. A reset or power cut at any
 * moment of a save therefore leaves the previous snapshot valid, and the next boot resumes
 * from it: at most the samples since the previous save are learnt again.
 *
 * The flash is the port's (or the application's): a bep_flash_t says how big its pages and
 * write units are and how to read, erase and program them, at offsets from the store's
 * first byte. The store's RAM is the bep_store_t below and at most 128 bytes of stack; a
 * snapshot is never whole in RAM.
 *
 * Wear: each save erases the pages of one slot once, so a page is erased once every
 * n_slots saves. With E erase cycles per page (10,000 on STM32F4, 20,000 on nRF51), one
 * save every N samples and R samples a second, the store lasts E * n_slots * N / R seconds
 * (`bep-mcu size --snapshot-every N` works it out for a board).
 *
 * Example usage (a network called "net"; docs/porting.md has a port's flash driver):
 *     static uint32_t state[BEP_NET_STATE_WORDS];
 *     static bep_store_t store;
 *     if (bep_net_store_open(&store, &port_flash, 5000u, state, sizeof state) != BEP_OK)
 *         bep_net_start(state, sizeof state, BEP_NET_SEED, BEP_NET_BATCHES);   (nothing saved yet)
 *     for each batch: train it, bep_net_end_batch, then bep_net_store_tick(&store, state, sizeof state);
 */
#ifndef BEP_STORE_H
#define BEP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "bep_standalone.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#define BEP_STORE_MAX_WRITE_BYTES 16u
#define BEP_STORE_BYTES 20u /* sizeof(bep_store_t) where pointers are 32 bits: the host's RAM plans */

/* A flash region for a store (supplied by the port). Offsets count from the region's first
 * byte; slot i starts at i * slot_pages * page_bytes. Each function returns 0 on success. */
typedef struct {
    void *ctx;              /* passed to the functions below */
    uint32_t page_bytes;    /* erase unit */
    uint32_t write_bytes;   /* program unit: 1, 2, 4, 8 or 16, dividing page_bytes */
    uint32_t slot_pages;    /* pages per slot: enough for one snapshot */
    uint32_t n_slots;       /* 2 or more */
    int (*read)(void *ctx, uint32_t offset, uint8_t *dst, uint32_t n);
    int (*erase)(void *ctx, uint32_t offset);                            /* the page starting at offset */
    int (*program)(void *ctx, uint32_t offset, const uint8_t *src, uint32_t n); /* whole, aligned units */
} bep_flash_t;

/* A store in use (caller-owned RAM, set by bep_store_open). */
typedef struct {
    const bep_flash_t *flash;
    uint32_t generation;    /* the newest valid slot's generation (0: no valid slot) */
    uint32_t slot;          /* the newest valid slot (flash->n_slots: none) */
    uint32_t every;         /* bep_store_tick saves every this many samples (0: only bep_store_save) */
    uint32_t last_samples;  /* the samples counter at the last save or restore */
} bep_store_t;

/** Open a store and restore the newest valid snapshot into `state`.
 * @param[out] store          the store (every field set, also on BEP_ERR_EMPTY)
 * @param[in]  flash          its flash; checked: BEP_ERR_ARG when a unit, size or function is wrong
 * @param[in]  every_samples  bep_store_tick's policy: a save every this many samples (0: on request only)
 * @return BEP_OK (restored), BEP_ERR_EMPTY (no valid snapshot of this network: the state is
 *         untouched, start it), BEP_ERR_FLASH (a read failed), BEP_ERR_ARG, BEP_ERR_NULL */
bep_status_t bep_store_open(const bep_config_t *cfg, const bep_schedule_config_t *sc, bep_store_t *store,
                            const bep_flash_t *flash, uint32_t every_samples, void *state, size_t state_len);

/** Save the state's snapshot into the next slot (erase, program, verify).
 * @return BEP_OK, BEP_ERR_BATCH_OPEN (inside a batch that triggered), BEP_ERR_FLASH (the
 *         driver failed or the slot did not read back: the store still has its newest
 *         valid snapshot), or the statuses of bep_snapshot_to */
bep_status_t bep_store_save(const bep_config_t *cfg, const bep_schedule_config_t *sc, bep_store_t *store,
                            const void *state, size_t state_len);

/** After a batch: save when `every_samples` samples have passed since the last save or
 * restore (a counter reset counts as a full interval); BEP_OK when no save is due. */
bep_status_t bep_store_tick(const bep_config_t *cfg, const bep_schedule_config_t *sc, bep_store_t *store,
                            const void *state, size_t state_len);

#ifdef __cplusplus
}
#endif

#endif /* BEP_STORE_H */
