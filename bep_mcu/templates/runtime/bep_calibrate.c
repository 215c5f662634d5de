/*
 * bep_calibrate.c - the input thresholds follow the raw values (see bep_calibrate.h); mirrors
 * bep_mcu/data/recalibration.py:Calibration.observe.
 */
#include "bep_calibrate.h"

static uint32_t *bep_calib_magic(const bep_calib_config_t *cal, const void *state)
{
    return (uint32_t *)((uintptr_t)state + cal->state_off);
}

static int32_t *bep_calib_thresholds(const bep_calib_config_t *cal, const void *state)
{
    return (int32_t *)((uintptr_t)state + cal->state_off + 4u);
}

/* An initialised state of this network whose plan holds the region. */
static bep_status_t bep_calib_check(const bep_config_t *cfg, const bep_calib_config_t *cal, const void *state,
                                    size_t state_len)
{
    bep_counters_t c;
    bep_status_t st;
    if (cal == NULL) return BEP_ERR_NULL;
    st = bep_read_counters(cfg, state, state_len, &c);
    if (st != BEP_OK) return st;
    if (cal->count != 0u && (uint64_t)cal->state_off + 4u + 8u * (uint64_t)cal->count > cfg->state_bytes)
        return BEP_ERR_SIZE;
    return BEP_OK;
}

void bep_calib_entry(const bep_calib_config_t *cal, const void *state, uint32_t k, int32_t *t, int32_t *a)
{
    const int32_t *T = bep_calib_thresholds(cal, state);
    int started = *bep_calib_magic(cal, state) == BEP_CALIB_MAGIC;
    *t = started ? T[k] : bep_encode_threshold(cal->encoder, k);
    *a = started ? T[cal->count + k] : 0;
}

void bep_calib_put(const bep_calib_config_t *cal, void *state, uint32_t k, int32_t t, int32_t a)
{
    int32_t *T = bep_calib_thresholds(cal, state);
    *bep_calib_magic(cal, state) = BEP_CALIB_MAGIC;
    T[k] = t;
    T[cal->count + k] = a;
}

/* The region holds the board's own thresholds from here on: the model's, accumulators at 0. */
static void bep_calib_start(const bep_calib_config_t *cal, void *state)
{
    uint32_t k;
    for (k = 0; k < cal->count; ++k) bep_calib_put(cal, state, k, bep_encode_threshold(cal->encoder, k), 0);
}

/* Ascending again after a step (a threshold that passed its neighbour swaps places with it). */
static void bep_calib_sort(int32_t *t, uint32_t n)
{
    uint32_t i, j;
    for (i = 1u; i < n; ++i) {
        int32_t v = t[i];
        for (j = i; j > 0u && t[j - 1u] > v; --j) t[j] = t[j - 1u];
        t[j] = v;
    }
}

bep_status_t bep_calib_observe(const bep_config_t *cfg, const bep_calib_config_t *cal, void *state,
                               size_t state_len, const void *raw, size_t n_values)
{
    const bep_encoder_t *enc;
    int32_t *T, *a;
    size_t p, points;
    uint32_t f, k, j;
    bep_status_t st = bep_calib_check(cfg, cal, state, state_len);
    if (st != BEP_OK) return st;
    if (raw == NULL) return BEP_ERR_NULL;
    enc = cal->encoder;
    if (n_values == 0u || n_values % enc->features != 0u) return BEP_ERR_SIZE;
    if (cal->count == 0u) return BEP_OK;
    if (*bep_calib_magic(cal, state) != BEP_CALIB_MAGIC) bep_calib_start(cal, state);
    T = bep_calib_thresholds(cal, state);
    a = T + cal->count;
    points = n_values / enc->features;
    for (p = 0; p < points; ++p) {
        for (f = 0, j = 0; f < enc->features; ++f) {
            int32_t v = bep_input_value(enc->input_type, raw, p * enc->features + f);
            int32_t step = cal->step[f], window = cal->window[f];
            uint32_t kept = bep_encode_kept(enc, f), first = j;
            /* a within ±window and step, window at most 2^30 (the host's plan, a restore's
             * checks): neither the sums nor lo + step, hi - step leave int32. */
            for (k = 0; k < kept; ++k, ++j) {
                a[j] += v < T[j] ? (int32_t)(cal->one - cal->below[j]) : -(int32_t)cal->below[j];
                if (a[j] >= window) {
                    T[j] = T[j] < cal->lo + step ? cal->lo : T[j] - step;
                    a[j] -= window;
                } else if (a[j] <= -window) {
                    T[j] = T[j] > cal->hi - step ? cal->hi : T[j] + step;
                    a[j] += window;
                }
            }
            bep_calib_sort(T + first, kept);
        }
    }
    return BEP_OK;
}

bep_status_t bep_calib_encoder(const bep_config_t *cfg, const bep_calib_config_t *cal, const void *state,
                               size_t state_len, bep_encoder_t *out)
{
    bep_status_t st = bep_calib_check(cfg, cal, state, state_len);
    if (st != BEP_OK) return st;
    if (out == NULL) return BEP_ERR_NULL;
    *out = *cal->encoder;
    if (cal->count != 0u && *bep_calib_magic(cal, state) == BEP_CALIB_MAGIC) {
        out->threshold = bep_calib_thresholds(cal, state);
        out->threshold_type = BEP_INPUT_INT32;
        out->threshold_stride = 1u;
    }
    return BEP_OK;
}

bep_status_t bep_calib_reset(const bep_config_t *cfg, const bep_calib_config_t *cal, void *state,
                             size_t state_len)
{
    bep_status_t st = bep_calib_check(cfg, cal, state, state_len);
    if (st != BEP_OK) return st;
    if (cal->count != 0u) *bep_calib_magic(cal, state) = 0u;
    return BEP_OK;
}

bep_status_t bep_calib_read(const bep_config_t *cfg, const bep_calib_config_t *cal, const void *state,
                            size_t state_len, int32_t *thresholds, int32_t *accumulators, size_t n)
{
    uint32_t k;
    int32_t t, a;
    bep_status_t st = bep_calib_check(cfg, cal, state, state_len);
    if (st != BEP_OK) return st;
    if (n != cal->count) return BEP_ERR_SIZE;
    for (k = 0; k < cal->count; ++k) {
        bep_calib_entry(cal, state, k, &t, &a);
        if (thresholds != NULL) thresholds[k] = t;
        if (accumulators != NULL) accumulators[k] = a;
    }
    return BEP_OK;
}
