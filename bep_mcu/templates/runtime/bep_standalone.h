/*
 * bep_standalone.h - what a board needs to learn on its own: the epoch schedule, the
 * sample order, and snapshots of what it learnt.
 *
 * Hand-written, copied verbatim by `bep-mcu generate`; works on a state buffer of
 * bep_runtime.h and never changes how a training step runs.
 *
 * The schedule (docs/algorithm.md §6; bep_mcu/engine/schedule.py:IntegerSchedule runs
 * the same lines on the host): at the end of an epoch, the epoch's own error count
 * (from the state's counters) becomes a level = round(errors * levels / samples), and
 * Q of every layer for the next epoch is read from a table over levels generated on the
 * host. γ grows, γ' = min(cap, ceil(γ * growth_num / growth_den)), after `patience`
 * epochs whose error rate is not lower than the best epoch's (compared exactly:
 * errors * best_samples < best_errors * samples). Integers only.
 *
 * The budget (bep_mcu/engine/schedule.py:ProgressBudget runs the same lines on the host):
 * bep_end_epoch also counts the epochs since bep_schedule_start and keeps a mark, the last
 * epoch whose error count fell by the gain, max(1, samples / BEP_BUDGET_GAIN_DIV), below the
 * marked count (the first epoch always marks). bep_should_stop says, from these three
 * integers and a minimum budget E0, whether the training error has stopped falling: after
 * BEP_BUDGET_CAP_FACTOR * E0 epochs, or from E0 on once the mark is a window of
 * max(BEP_BUDGET_MIN_WINDOW, E0 / BEP_BUDGET_WINDOW_DIV) epochs old. Nothing stops by itself:
 * the caller asks after each bep_end_epoch and stops training (or asking for data).
 *
 * The sample order (bep_mcu/engine/rng.py:sample_order): position i of epoch e visits
 * sample bep_sample_index(seed, e, n, i), a permutation computed without memory.
 *
 * Snapshots: hidden weights, counters, seed, γ, Q, the schedule's and the budget's state and
 * the followed input thresholds written to a caller buffer with the config hash and a CRC-32,
 * so a board can keep its learning across resets in its own flash; bep_restore refuses a
 * foreign or damaged snapshot and leaves the state untouched. Layout (little-endian, 4-byte fields):
 *   0 magic "BEPS", 4 version, 8 config hash, 12 total bytes, 16 seed,
 *   20 counters (samples, triggered, errors, updates, batches), 40 gamma[4] (uint16),
 *   48 q[4], 64 schedule (epoch, level, stalled, best_errors, best_samples,
 *   start_errors, start_samples), 92 generation (a store's write count, bep_store.h; 0
 *   from bep_snapshot), 96 budget (budget_epochs, marked_epoch, marked_errors), 108 classes
 *   in use (bep_set_classes), 112 hidden weights of each layer (int8 or int16 little-endian,
 *   each padded to 4 bytes), then the followed input thresholds and their accumulators (int32
 *   each, bep_calibrate.h; none when the board follows none), then the CRC-32 (IEEE, as
 *   zlib.crc32) of every byte before it. Version 2 added the thresholds, version 3 the budget,
 *   version 4 the classes in use.
 * A snapshot is written and read in pieces through a sink or a source (a buffer here, the
 * pages of a flash store in bep_store.c), so it never has to be whole in RAM.
 */
#ifndef BEP_STANDALONE_H
#define BEP_STANDALONE_H

#include <stddef.h>
#include <stdint.h>

#include "bep_calibrate.h"
#include "bep_runtime.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

/* The sample-order draws' "layer" (bep_mcu/engine/rng.py ORDER_LAYER). */
#define BEP_ORDER_LAYER 0x5EEDu
#define BEP_SNAPSHOT_MAGIC 0x53504542u /* "BEPS" */
#define BEP_SNAPSHOT_VERSION 4u
#define BEP_SNAPSHOT_HEADER_BYTES 112u

/* The budget's rule (bep_mcu/engine/schedule.py ProgressBudget has the same numbers; a test
 * compares them). */
#define BEP_BUDGET_GAIN_DIV 100u     /* the error count must fall by 1 % of the samples, */
#define BEP_BUDGET_MIN_WINDOW 10u    /* within max(10, E0 / 4) epochs, */
#define BEP_BUDGET_WINDOW_DIV 4u
#define BEP_BUDGET_CAP_FACTOR 4u     /* and training stops after 4 * E0 epochs at the latest */
#define BEP_BUDGET_MAX_MIN 0x80000000u /* the largest E0 */

/* The schedule of one network; generated, const (flash). */
typedef struct {
    uint32_t levels;                    /* error levels: the Q table has levels + 1 columns */
    uint32_t growth_num, growth_den;    /* γ growth factor on a stall */
    uint32_t patience;                  /* epochs without a better error rate before γ grows */
    uint32_t epoch0;                    /* epochs the model had trained before */
    uint32_t level0;                    /* level of the model's last training error */
    uint32_t snapshot_bytes;
    uint16_t gamma0[BEP_MAX_LAYERS];    /* γ of the first epoch */
    uint16_t cap[BEP_MAX_LAYERS];       /* largest γ per layer */
    const uint32_t *q_table;            /* n_layers x (levels + 1) */
    const bep_calib_config_t *calib;    /* the input thresholds a snapshot carries (NULL: none) */
} bep_schedule_config_t;

/* BEP_CDEF_BEGIN */
/* Where the schedule stands (bep_read_schedule). */
typedef struct {
    uint32_t epoch;
    uint32_t level;
    uint32_t stalled;
    uint32_t best_errors;
    uint32_t best_samples;
    uint16_t gamma[4];  /* BEP_MAX_LAYERS */
    uint32_t q[4];
    uint32_t epoch_samples; /* samples and errors since the open epoch began (its position, */
    uint32_t epoch_errors;  /* unless the counters were reset within it) */
    uint32_t budget_epochs; /* the budget: epochs closed since the schedule started, */
    uint32_t marked_epoch;  /* the mark's epoch (of that count; 0: none yet) */
    uint32_t marked_errors; /* and error count */
} bep_schedule_info_t;
/* BEP_CDEF_END */

/** Start the schedule: γ and Q of the first epoch, epoch counter, no best epoch yet. */
bep_status_t bep_schedule_start(const bep_config_t *cfg, const bep_schedule_config_t *sc, void *state,
                                size_t state_len);

/** Close an epoch (call after its last bep_end_batch): the next epoch's Q and γ from
 * this epoch's error count. BEP_ERR_STATE before bep_schedule_start, BEP_ERR_ARG when
 * the epoch saw no sample, BEP_ERR_BATCH_OPEN inside a batch that triggered. */
bep_status_t bep_end_epoch(const bep_config_t *cfg, const bep_schedule_config_t *sc, void *state, size_t state_len);

/** Whether the budget says stop (*stop 1) or go on (0) after the epochs closed so far, for a
 * minimum budget of min_epochs (1..BEP_BUDGET_MAX_MIN, else BEP_ERR_ARG); BEP_ERR_STATE before
 * bep_schedule_start. */
bep_status_t bep_should_stop(const bep_config_t *cfg, const bep_schedule_config_t *sc, const void *state,
                             size_t state_len, uint32_t min_epochs, uint32_t *stop);

/** Where the schedule stands, with the γ and Q in use. */
bep_status_t bep_read_schedule(const bep_config_t *cfg, const bep_schedule_config_t *sc, const void *state,
                               size_t state_len, bep_schedule_info_t *out);

/** The sample visited at position i (< n) of epoch `epoch`: a permutation of 0..n-1. */
uint32_t bep_sample_index(uint32_t seed, uint32_t epoch, uint32_t n, uint32_t i);

/** The sample to visit at position i (< n) of the current epoch: bep_sample_index with
 * the state's seed and the schedule's epoch counter. */
bep_status_t bep_epoch_sample(const bep_config_t *cfg, const bep_schedule_config_t *sc, const void *state,
                              size_t state_len, uint32_t n, uint32_t i, uint32_t *out);

/** Where a snapshot is written to or read from, piece by piece: `n` bytes at byte
 * `offset` of the snapshot. Return 0 on success, anything else on a failure (a flash
 * driver's error), which the caller reports as BEP_ERR_FLASH. Pieces are written in order,
 * each at most 96 bytes. */
typedef int (*bep_snapshot_write_fn)(void *ctx, uint32_t offset, const uint8_t *src, uint32_t n);
typedef int (*bep_snapshot_read_fn)(void *ctx, uint32_t offset, uint8_t *dst, uint32_t n);

/** Write the state's snapshot (sc->snapshot_bytes bytes) through `write`, with
 * `generation` at offset 92. BEP_ERR_BATCH_OPEN inside a batch that triggered,
 * BEP_ERR_FLASH when `write` fails. */
bep_status_t bep_snapshot_to(const bep_config_t *cfg, const bep_schedule_config_t *sc, const void *state,
                             size_t state_len, uint32_t generation, bep_snapshot_write_fn write, void *ctx);

/** Check the snapshot `read` gives (`available` bytes at most) without restoring it: the
 * statuses of bep_restore, BEP_ERR_FLASH when `read` fails; on BEP_OK its generation goes to
 * *generation (when not NULL). */
bep_status_t bep_snapshot_check(const bep_config_t *cfg, const bep_schedule_config_t *sc, bep_snapshot_read_fn read,
                                void *ctx, size_t available, uint32_t *generation);

/** bep_restore from a source: checked whole first (refused: the state untouched); a source
 * that fails after the check gives BEP_ERR_FLASH with the state initialised but incomplete. */
bep_status_t bep_restore_from(const bep_config_t *cfg, const bep_schedule_config_t *sc, void *state,
                              size_t state_len, bep_snapshot_read_fn read, void *ctx, size_t available);

/** Write a snapshot (sc->snapshot_bytes bytes) to buf. BEP_ERR_SIZE when buf_len is
 * short, BEP_ERR_BATCH_OPEN inside a batch that triggered (its rows are not repacked). */
bep_status_t bep_snapshot(const bep_config_t *cfg, const bep_schedule_config_t *sc, const void *state,
                          size_t state_len, void *buf, size_t buf_len);

/** Restore a snapshot into a state buffer (initialised or not). Refused, with the state
 * untouched: BEP_ERR_SIZE (buffer shorter than the snapshot), BEP_ERR_FOREIGN (written
 * by another network configuration), BEP_ERR_CORRUPT (bad magic, version, length,
 * CRC or contents). */
bep_status_t bep_restore(const bep_config_t *cfg, const bep_schedule_config_t *sc, void *state, size_t state_len,
                         const void *buf, size_t buf_len);

/** CRC-32 (IEEE 802.3, reflected, as zlib.crc32) of n bytes, continuing from crc (0 to start). */
uint32_t bep_crc32(uint32_t crc, const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* BEP_STANDALONE_H */
