/*
 * standalone.c - a board that learns on its own: training data in flash, no link.
 *
 * Replaces main.c in a standalone image (bep-mcu firmware MODEL --standalone-data DATA).
 * The training and test sets are raw device values (the network's input type) in a
 * generated C file of the build (bep_sa_data.c, rendered by bep_mcu/cgen/codegen.py), and
 * everything a host did before happens here:
 *
 *   bep_<net>_start                     weights from flash, the schedule's first γ and Q
 *   per epoch, per position i:          bep_<net>_sample_index (the board's own order),
 *                                       bep_<net>_encode (raw values -> packed bits),
 *                                       bep_<net>_train_sample, bep_<net>_end_batch
 *                                       every BEP_SA_BATCH samples and at the epoch's end
 *   bep_<net>_end_epoch                 the next epoch's Q and γ from this epoch's errors
 *   bep_<net>_should_stop               with BEP_SA_MIN_EPOCHS (`--follow-progress`): the
 *                                       budget ends the run once the training error stopped
 *                                       falling (at most BEP_SA_EPOCHS epochs); without, all
 *                                       BEP_SA_EPOCHS epochs run
 *   after epoch BEP_SA_SNAPSHOT_EPOCH:  bep_<net>_snapshot into RAM, the state wiped
 *                                       (bep_<net>_init with another seed), bep_<net>_restore:
 *                                       what a reset between two epochs does to a board
 *                                       that keeps its snapshot in flash
 *   then the test set:                  bep_<net>_encode, bep_<net>_infer
 *
 * With power cuts (BEP_SA_POWER_CUTS > 0, `--power-cuts K`), the image keeps its learning
 * in a store in the board's flash instead (bep_store.h, the port's flash driver): it opens
 * the store at boot (the newest valid snapshot, or a start when there is none), resumes at
 * the epoch and sample the snapshot was taken at, and saves every BEP_SA_SAVE_EVERY samples
 * after a batch; at K planned flash operations of the saves (BEP_SA_CUT_LIST: generation
 * being written, operation within the save) it resets the board, as a power cut would, and
 * the next boot resumes. A log page after the slots holds a record per boot (the generation
 * it restored, then where the power went, written at the cut itself); a cold start finds no
 * log and erases it. So each boot knows which cuts have happened, and reports the last one.
 *
 * In real use the flash arrays are replaced by the sensor: the generated README shows
 * the same loop around a read callback.
 *
 * Report (semihosting, one line each; the host parses them, bep_mcu/device/standalone.py):
 *   EPOCH <epoch> samples <n> errors <e> gamma <g,...> q <q,...>   (γ and Q this epoch used)
 *   SNAPSHOT after <e> bytes <n> crc <0x...>     (after the e-th epoch of this run: the snapshot's CRC)
 *   BOOT <k> restored <generation> epoch <e> position <i>          (power cuts: each boot; 0 = nothing)
 *   SAVE <generation> crc <0x...>                                  (power cuts: each completed save)
 *   CUT <k> generation <g> op <o>                                  (power cuts: where boot k+1's cut was)
 *   TEST correct <c> of <n> predictions_crc <0x...>                 (CRC-32 of the predicted classes)
 *   RESULT epochs <E> samples <S> batches <B> snapshot_crc <0x...>  (epochs run; a snapshot of the final state)
 * and QEMU's exit status: 0 done, 2 a runtime call failed ("ERROR <call>: status <s>").
 *
 * RAM is static and planned on the host (bep_mcu/device/firmware.py: plan_standalone_memory):
 * the state buffer, `bep_sa_buf` (one packed sample and one snapshot), the stack and the
 * port's receive ring (linked through the vector table, never enabled).
 */
#include <stddef.h>
#include <stdint.h>

#include "bep_cpu.h"
#include BEP_SA_BOARD_HEADER
#include "bep_semihost.h"

#if !defined(BEP_SA_TRAIN_N) || !defined(BEP_SA_TEST_N) || !defined(BEP_SA_EPOCHS) || !defined(BEP_SA_BATCH) || \
    !defined(BEP_SA_SNAPSHOT_EPOCH) || !defined(BEP_SA_BOARD_HEADER)
#error "BEP_SA_TRAIN_N, _TEST_N, _EPOCHS, _BATCH, _SNAPSHOT_EPOCH and _BOARD_HEADER come from the build"
#endif
#if !BEP_BOARD_QEMU
#error "the standalone image reports through semihosting: build it for an emulated board"
#endif
#ifndef BEP_SA_POWER_CUTS
#define BEP_SA_POWER_CUTS 0
#endif
#ifndef BEP_SA_MIN_EPOCHS
#define BEP_SA_MIN_EPOCHS 0 /* a fixed number of epochs */
#endif

#define BEP_FW_PASTE_(a, b, c) a##b##c
#define BEP_FW_PASTE(a, b, c) BEP_FW_PASTE_(a, b, c)
#define BEP_FW_NET_FN(op) BEP_FW_PASTE(bep_, BEP_FW_NET, _##op)
#define BEP_FW_NET_MACRO(m) BEP_FW_PASTE(BEP_, BEP_FW_NET_UPPER, _##m)
#define BEP_SA_INPUT_T BEP_FW_NET_FN(input_t)
#define BEP_SA_VALUES BEP_FW_NET_MACRO(INPUT_VALUES)

/* The training and test sets (bep_sa_data.c), in flash. */
extern const BEP_SA_INPUT_T bep_sa_train_x[BEP_SA_TRAIN_N * BEP_SA_VALUES];
extern const uint8_t bep_sa_train_y[BEP_SA_TRAIN_N];
extern const BEP_SA_INPUT_T bep_sa_test_x[BEP_SA_TEST_N * BEP_SA_VALUES];
extern const uint8_t bep_sa_test_y[BEP_SA_TEST_N];

__attribute__((section(".bep_board"), used)) static const char bep_fw_board_tag[] = BEP_BOARD_NAME;

static uint32_t bep_fw_state[BEP_FW_NET_MACRO(STATE_WORDS)];
#define BEP_SA_STATE bep_fw_state, sizeof bep_fw_state

/* One struct so the RAM plan is a plain sum (both members are whole words). */
static struct {
    uint32_t x[BEP_FW_NET_MACRO(INPUT_WORDS)];
    uint32_t snapshot[BEP_FW_NET_MACRO(SNAPSHOT_WORDS)];
} bep_sa_buf;

#define BEP_SA_CHECK(call)                                                                                       \
    do {                                                                                                         \
        bep_status_t st_ = (call);                                                                               \
        if (st_ != BEP_OK) {                                                                                     \
            bep_sh_say("ERROR %s: status %d", #call, (long)st_);                                                 \
            bep_sh_exit(2u);                                                                                     \
        }                                                                                                        \
    } while (0)

/* "a,b,c" of the first n values, into out (n <= BEP_MAX_LAYERS numbers of 10 digits). */
static const char *bep_sa_list(const uint32_t *v, uint32_t n, char *out)
{
    size_t len = 0;
    uint32_t k;
    for (k = 0; k < n; ++k) {
        char digits[10];
        size_t d = 0;
        uint32_t u = v[k];
        if (k > 0u) out[len++] = ',';
        do {
            digits[d++] = (char)('0' + (char)(u % 10u));
            u /= 10u;
        } while (u != 0u);
        while (d > 0u) out[len++] = digits[--d];
    }
    out[len] = '\0';
    return out;
}

/* The line of an epoch about to close: its samples and errors, the γ and Q it used
 * (not inlined: its buffers would sit in main's frame, under every save's deepest call). */
static __attribute__((noinline)) void bep_sa_report_epoch(void)
{
    bep_schedule_info_t s;
    uint32_t gamma[BEP_MAX_LAYERS], l;
    char g_text[BEP_MAX_LAYERS * 11u], q_text[BEP_MAX_LAYERS * 11u];
    BEP_SA_CHECK(BEP_FW_NET_FN(read_schedule)(BEP_SA_STATE, &s));
    for (l = 0; l < BEP_MAX_LAYERS; ++l) gamma[l] = s.gamma[l];
    bep_sh_say("EPOCH %u samples %u errors %u gamma %s q %s", (unsigned long)s.epoch, (unsigned long)s.epoch_samples,
               (unsigned long)s.epoch_errors, bep_sa_list(gamma, BEP_FW_NET_MACRO(N_LAYERS), g_text),
               bep_sa_list(s.q, BEP_FW_NET_MACRO(N_LAYERS), q_text));
}

/* A snapshot of the state into bep_sa_buf.snapshot; its CRC (the last word, little-endian). */
static uint32_t bep_sa_snapshot(void)
{
    const uint8_t *end = (const uint8_t *)bep_sa_buf.snapshot + BEP_FW_NET_MACRO(SNAPSHOT_BYTES) - 4u;
    BEP_SA_CHECK(BEP_FW_NET_FN(snapshot)(BEP_SA_STATE, bep_sa_buf.snapshot, sizeof bep_sa_buf.snapshot));
    return (uint32_t)end[0] | ((uint32_t)end[1] << 8) | ((uint32_t)end[2] << 16) | ((uint32_t)end[3] << 24);
}

static void bep_sa_after_batch(void);

/* Whether the budget ends the run after the epoch just closed (BEP_SA_MIN_EPOCHS 0: never). */
static uint32_t bep_sa_budget_stops(void)
{
    uint32_t stop = 0u;
    if (BEP_SA_MIN_EPOCHS) BEP_SA_CHECK(BEP_FW_NET_FN(should_stop)(BEP_SA_STATE, BEP_SA_MIN_EPOCHS, &stop));
    return stop;
}

/* The epoch's samples from position `first` on (0, or where a restored snapshot left it). */
static void bep_sa_train_epoch(uint32_t first)
{
    uint32_t i, idx;
    uint16_t pred;
    for (i = first; i < BEP_SA_TRAIN_N; ++i) {
        BEP_SA_CHECK(BEP_FW_NET_FN(sample_index)(BEP_SA_STATE, BEP_SA_TRAIN_N, i, &idx));
        BEP_SA_CHECK(BEP_FW_NET_FN(encode)(bep_sa_train_x + (size_t)idx * BEP_SA_VALUES, BEP_SA_VALUES, bep_sa_buf.x,
                                           BEP_FW_NET_MACRO(INPUT_WORDS)));
        BEP_SA_CHECK(BEP_FW_NET_FN(train_sample)(BEP_SA_STATE, bep_sa_buf.x, BEP_FW_NET_MACRO(INPUT_WORDS),
                                                 bep_sa_train_y[idx], &pred));
        if ((i + 1u) % BEP_SA_BATCH == 0u || i + 1u == BEP_SA_TRAIN_N) {
            BEP_SA_CHECK(BEP_FW_NET_FN(end_batch)(BEP_SA_STATE));
            bep_sa_after_batch();
        }
    }
}

#if BEP_SA_POWER_CUTS
/* ------------------------------------------------------------- a store, and power cuts */

#include "bep_port.h"

#define BEP_SA_SLOT_BYTES (BEP_SA_SLOT_PAGES * BEP_BOARD_FLASH_PAGE)
#define BEP_SA_LOG (BEP_SA_SLOTS * BEP_SA_SLOT_BYTES) /* the boot log's page, after the slots */
#define BEP_SA_LOG_MAGIC 0x4C504542u                 /* "BEPL" */
/* Boot k's record: 3 words after the magic (restored generation, cut generation, cut op). */
#define BEP_SA_RECORD(k, field) (BEP_SA_LOG + 4u + 12u * (k) + 4u * (field))
#if 4u + 12u * (BEP_SA_POWER_CUTS + 1u) > BEP_BOARD_FLASH_PAGE
#error "more power cuts than the boot log's page holds records"
#endif

static const uint32_t bep_sa_cuts[BEP_SA_POWER_CUTS][2] = {BEP_SA_CUT_LIST}; /* {generation, op}, in order */
static uint32_t bep_sa_cuts_done; /* = this boot's number: every boot after the first follows a cut */
static uint32_t bep_sa_writing;   /* the generation a save under way writes */
static uint32_t bep_sa_op;        /* flash operations of that save so far */
static bep_store_t bep_sa_store;

static void bep_sa_put_word(uint32_t offset, uint32_t v);

/* The power goes at the planned operation: before it happens, the board notes where in its
 * boot record (a few words of stack: this is the deepest call of a save) and resets. */
static void bep_sa_power(void)
{
    if (bep_sa_cuts_done < BEP_SA_POWER_CUTS && bep_sa_cuts[bep_sa_cuts_done][0] == bep_sa_writing &&
        bep_sa_cuts[bep_sa_cuts_done][1] == bep_sa_op) {
        bep_sa_put_word(BEP_SA_RECORD(bep_sa_cuts_done, 1u), bep_sa_writing);
        bep_sa_put_word(BEP_SA_RECORD(bep_sa_cuts_done, 2u), bep_sa_op);
        bep_system_reset();
    }
    ++bep_sa_op;
}

static int bep_sa_erase(void *ctx, uint32_t offset)
{
    bep_sa_power();
    return bep_port_flash_erase(ctx, offset);
}

static int bep_sa_program(void *ctx, uint32_t offset, const uint8_t *src, uint32_t n)
{
    bep_sa_power();
    return bep_port_flash_program(ctx, offset, src, n);
}

static const bep_flash_t bep_sa_flash = {NULL, BEP_BOARD_FLASH_PAGE, BEP_BOARD_FLASH_WRITE, BEP_SA_SLOT_PAGES,
                                         BEP_SA_SLOTS, bep_port_flash_read, bep_sa_erase, bep_sa_program};

static uint32_t bep_sa_word(uint32_t offset)
{
    uint8_t b[4];
    if (bep_port_flash_read(NULL, offset, b, 4u) != 0) bep_sh_exit(2u);
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

static void bep_sa_put_word(uint32_t offset, uint32_t v)
{
    uint8_t b[4];
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
    if (bep_port_flash_program(NULL, offset, b, 4u) != 0) bep_sh_exit(2u);
}

/* This boot's number from the log (the records written); a cold start (no log yet)
 * erases the log page and writes the magic. A boot after a cut reports it. */
static __attribute__((noinline)) uint32_t bep_sa_boot_number(void)
{
    uint32_t n = 0;
    if (bep_sa_word(BEP_SA_LOG) != BEP_SA_LOG_MAGIC) {
        if (bep_port_flash_erase(NULL, BEP_SA_LOG) != 0) bep_sh_exit(2u);
        bep_sa_put_word(BEP_SA_LOG, BEP_SA_LOG_MAGIC);
        return 0u;
    }
    while (n <= BEP_SA_POWER_CUTS && bep_sa_word(BEP_SA_RECORD(n, 0u)) != 0xFFFFFFFFu) ++n;
    if (n > 0u)
        bep_sh_say("CUT %u generation %u op %u", (unsigned long)(n - 1u),
                   (unsigned long)bep_sa_word(BEP_SA_RECORD(n - 1u, 1u)),
                   (unsigned long)bep_sa_word(BEP_SA_RECORD(n - 1u, 2u)));
    return n;
}

/* Save when the policy says so, and report a completed save with its CRC (its last word). */
static void bep_sa_after_batch(void)
{
    uint32_t before = bep_sa_store.generation;
    bep_sa_writing = before + 1u;
    bep_sa_op = 0u;
    BEP_SA_CHECK(BEP_FW_NET_FN(store_tick)(&bep_sa_store, BEP_SA_STATE));
    if (bep_sa_store.generation != before)
        bep_sh_say("SAVE %u crc %x", (unsigned long)bep_sa_store.generation,
                   (unsigned long)bep_sa_word(bep_sa_store.slot * BEP_SA_SLOT_BYTES +
                                              BEP_FW_NET_MACRO(SNAPSHOT_BYTES) - 4u));
}

/* Open the store (a start when it holds nothing) and log this boot; the epoch of the run
 * and the position in it to go on from. */
static __attribute__((noinline)) void bep_sa_resume(uint32_t *epoch, uint32_t *position)
{
    bep_schedule_info_t s;
    uint32_t boot = bep_sa_boot_number();
    bep_status_t st = BEP_FW_NET_FN(store_open)(&bep_sa_store, &bep_sa_flash, BEP_SA_SAVE_EVERY, BEP_SA_STATE);
    bep_sa_cuts_done = boot;
    if (st == BEP_ERR_EMPTY)
        BEP_SA_CHECK(BEP_FW_NET_FN(start)(BEP_SA_STATE, BEP_FW_NET_MACRO(SEED), BEP_FW_NET_MACRO(BATCHES)));
    else
        BEP_SA_CHECK(st);
    if (boot > BEP_SA_POWER_CUTS) bep_sh_exit(2u); /* more boots than cuts: a reset the plan does not know */
    bep_sa_put_word(BEP_SA_RECORD(boot, 0u), bep_sa_store.generation);
    BEP_SA_CHECK(BEP_FW_NET_FN(read_schedule)(BEP_SA_STATE, &s));
    bep_sh_say("BOOT %u restored %u epoch %u position %u", (unsigned long)boot, (unsigned long)bep_sa_store.generation,
               (unsigned long)s.epoch, (unsigned long)s.epoch_samples);
    *epoch = s.epoch - BEP_FW_NET_MACRO(EPOCHS);
    *position = s.epoch_samples;
}
#else
static void bep_sa_after_batch(void) {}
#endif

int main(void)
{
    bep_counters_t c;
    uint32_t e = 0, position = 0, ran = 0, i, correct = 0, crc = 0;
    uint16_t pred;
    uint8_t p;
#if BEP_SA_POWER_CUTS
    bep_sa_resume(&e, &position);
#else
    BEP_SA_CHECK(BEP_FW_NET_FN(start)(BEP_SA_STATE, BEP_FW_NET_MACRO(SEED), BEP_FW_NET_MACRO(BATCHES)));
#endif
    for (++e; e <= BEP_SA_EPOCHS; ++e, position = 0) {
        bep_sa_train_epoch(position);
        bep_sa_report_epoch();
        BEP_SA_CHECK(BEP_FW_NET_FN(end_epoch)(BEP_SA_STATE));
        if (!BEP_SA_POWER_CUTS && e == BEP_SA_SNAPSHOT_EPOCH) {
            uint32_t snap_crc = bep_sa_snapshot();
            /* A reset: the state wiped back to the flash tables (and another seed), then restored. */
            BEP_SA_CHECK(BEP_FW_NET_FN(init)(BEP_SA_STATE, ~BEP_FW_NET_MACRO(SEED), 0u));
            BEP_SA_CHECK(BEP_FW_NET_FN(restore)(BEP_SA_STATE, bep_sa_buf.snapshot, sizeof bep_sa_buf.snapshot));
            bep_sh_say("SNAPSHOT after %u bytes %u crc %x", (unsigned long)e,
                       (unsigned long)BEP_FW_NET_MACRO(SNAPSHOT_BYTES), (unsigned long)snap_crc);
        }
        ran = e;
        if (bep_sa_budget_stops()) break;
    }
    for (i = 0; i < BEP_SA_TEST_N; ++i) {
        BEP_SA_CHECK(BEP_FW_NET_FN(encode)(bep_sa_test_x + (size_t)i * BEP_SA_VALUES, BEP_SA_VALUES, bep_sa_buf.x,
                                           BEP_FW_NET_MACRO(INPUT_WORDS)));
        BEP_SA_CHECK(BEP_FW_NET_FN(infer)(BEP_SA_STATE, bep_sa_buf.x, BEP_FW_NET_MACRO(INPUT_WORDS), &pred));
        correct += (uint32_t)(pred == bep_sa_test_y[i]);
        p = (uint8_t)pred;
        crc = bep_crc32(crc, &p, 1u);
    }
    bep_sh_say("TEST correct %u of %u predictions_crc %x", (unsigned long)correct, (unsigned long)BEP_SA_TEST_N,
               (unsigned long)crc);
    BEP_SA_CHECK(BEP_FW_NET_FN(read_counters)(BEP_SA_STATE, &c));
    bep_sh_say("RESULT epochs %u samples %u batches %u snapshot_crc %x", (unsigned long)ran,
               (unsigned long)c.samples, (unsigned long)c.batches, (unsigned long)bep_sa_snapshot());
    bep_sh_exit(0u);
}
