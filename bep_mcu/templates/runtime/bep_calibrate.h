/*
 * bep_calibrate.h - label-free recalibration: the input encoder's thresholds follow the raw
 * values the board sees, so a sensor whose gain or offset drifts keeps giving the network the
 * bits it was trained on (docs/adaptation.md). No label, integers only, no allocation.
 *
 * Hand-written, copied verbatim by `bep-mcu generate` (the board part). The same lines run on
 * the host in bep_mcu/data/recalibration.py, bit for bit. Each followed threshold t_k (a kept bit
 * of one point, in the encoder's order) has a target below[k]: the fraction, in 1/one, of the
 * training values that fall below it. Per raw value v of feature f, a point's features in order
 * and a feature's thresholds in order:
 *     a_k += v < t_k ? one - below[k] : -below[k]
 *     a_k >= window[f]:  t_k = max(lo, t_k - step[f]),  a_k -= window[f]
 *     a_k <= -window[f]: t_k = min(hi, t_k + step[f]),  a_k += window[f]
 * then the feature's thresholds are sorted ascending again (each keeps its own target and
 * accumulator), so a thermometer code stays monotone. t_k settles where the fraction of values
 * below it is its training fraction; step and window (chosen on the host from the feature's
 * training spread and the adaptation rate) set how fast it follows and how much it wanders.
 *
 * Where it lives: a region of the state buffer planned on the host (bep_mcu/cgen/layout.py) at
 * state_off: a word that says whether the board has begun following (BEP_CALIB_MAGIC; bep_init
 * zeroes it), then `count` int32 thresholds and `count` int32 accumulators. Until the first
 * observed value the model's thresholds are in effect. Snapshots carry the thresholds and
 * accumulators (bep_standalone.h), and bep_restore refuses any outside the input type, out of
 * order within a feature, or with an accumulator not strictly within ±window.
 */
#ifndef BEP_CALIBRATE_H
#define BEP_CALIBRATE_H

#include <stddef.h>
#include <stdint.h>

#include "bep_encode.h"
#include "bep_runtime.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#define BEP_CALIB_MAGIC 0x424C4143u /* "CALB": the region holds the board's own thresholds */

/* How one network follows its thresholds; generated, const (flash). count 0: nothing to follow
 * (binary inputs), every call then leaves the encoder as it is. */
typedef struct {
    uint32_t one;                  /* fixed point of below[]: the fraction 1 */
    uint32_t count;                /* thresholds followed: the encoder's kept bits of one point */
    uint32_t state_off;            /* the region in the state buffer (4 + 8 * count bytes) */
    int32_t lo, hi;                /* the input type's range: a threshold stays within it */
    const bep_encoder_t *encoder;  /* the model's encoder: features, kept bits, first thresholds */
    const uint16_t *below;         /* per threshold: training fraction below it, in 1/one */
    const int32_t *step;           /* per feature: how far a threshold moves, in device units */
    const int32_t *window;         /* per feature: the accumulator's bound */
} bep_calib_config_t;

/** Follow n_values raw values (whole points: a multiple of the encoder's features), point
 * after point. BEP_ERR_SIZE when n_values is 0 or not whole points. */
bep_status_t bep_calib_observe(const bep_config_t *cfg, const bep_calib_config_t *cal, void *state,
                               size_t state_len, const void *raw, size_t n_values);

/** A copy of the model's encoder that reads the thresholds where they stand now (it points
 * into the state: valid while the state is). */
bep_status_t bep_calib_encoder(const bep_config_t *cfg, const bep_calib_config_t *cal, const void *state,
                               size_t state_len, bep_encoder_t *out);

/** Back to the model's thresholds (and accumulators at 0). */
bep_status_t bep_calib_reset(const bep_config_t *cfg, const bep_calib_config_t *cal, void *state,
                             size_t state_len);

/** The thresholds and accumulators (n == count of each; either pointer may be NULL). */
bep_status_t bep_calib_read(const bep_config_t *cfg, const bep_calib_config_t *cal, const void *state,
                            size_t state_len, int32_t *thresholds, int32_t *accumulators, size_t n);

/* For snapshots (bep_standalone.c), on a state the caller has checked: threshold and
 * accumulator k as they stand (the model's and 0 before the first observed value), and
 * written back (which starts the region). */
void bep_calib_entry(const bep_calib_config_t *cal, const void *state, uint32_t k, int32_t *t, int32_t *a);
void bep_calib_put(const bep_calib_config_t *cal, void *state, uint32_t k, int32_t t, int32_t a);

#ifdef __cplusplus
}
#endif

#endif /* BEP_CALIBRATE_H */
