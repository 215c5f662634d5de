/*
 * bep_encode.h - raw sensor integers to the packed network input, on the device.
 *
 * Hand-written, copied verbatim by `bep-mcu generate` (training and inference-only
 * output). The generator renders one const bep_encoder_t per network from the model's
 * encoder (bep_mcu/data/inputformat.py): the input type, how many bits of each feature
 * are kept (constant bits are dropped) and one integer threshold per kept bit. A kept
 * bit is +1 iff value >= threshold (value == threshold for passthrough inputs), so the
 * device sets exactly the bits bep_mcu's Python encoder sets for value / scale.
 * Integer comparisons only: no float, no division, no allocation.
 *
 * MLP: one sample is `features` values. RNN: one sample is `length` points of
 * `features` values (point-major); the series is cut into `steps` windows of `window`
 * points (the last window repeats the final point), each window one packed step of
 * `step_words` words. An RNN sample can also come from a ring buffer of the last
 * `length` points (bep_ring_push), oldest first. Every step (the MLP's one) ends with
 * `bias_bits` constant +1 bits after its window's kept bits: inputs whose weights act as
 * a trained threshold per neuron (bep_mcu/data/encoder.py). An RNN's thresholds are
 * shared by every point, or one set per time point of the series (`threshold_per_point`;
 * in a ring buffer, per position from the oldest point).
 */
#ifndef BEP_ENCODE_H
#define BEP_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "bep_status.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

/* Input types (the generator's names: bep_mcu/data/inputformat.py INPUT_TYPES), as bits. */
#define BEP_INPUT_UNSIGNED 1u
#define BEP_INPUT_16BIT 2u
#define BEP_INPUT_32BIT 4u
#define BEP_INPUT_INT8 0u
#define BEP_INPUT_UINT8 1u
#define BEP_INPUT_INT16 2u
#define BEP_INPUT_UINT16 3u
#define BEP_INPUT_INT32 4u

/* How a kept bit is read from its feature's value. */
#define BEP_ENCODE_AT_LEAST 0u /* median, thermometer: value >= threshold */
#define BEP_ENCODE_EQUAL 1u    /* passthrough: value == threshold (the scale of 1) */

typedef struct {
    uint8_t input_type;     /* BEP_INPUT_*: raw values are of this type */
    uint8_t compare;        /* BEP_ENCODE_* */
    uint8_t threshold_type; /* BEP_INPUT_*: of threshold[] (input_type; BEP_INPUT_INT32 for a board's own
                               recalibrated thresholds, bep_calibrate.h) */
    uint16_t point_bits;    /* kept bits of one point (mlp: of the sample) */
    uint8_t kept_stride;    /* 1: kept[] has an entry per feature; 0: one entry for all */
    uint8_t threshold_stride; /* 1: threshold[] has an entry per kept bit; 0: one for all */
    uint8_t threshold_per_point; /* 1: thresholds per time point, point_bits of them for each of the
                                    length points in turn (thermometer:N:point); 0: shared by every point */
    uint16_t bias_bits;     /* constant +1 bits after a step's window (window * point_bits on) */
    uint32_t features;      /* values of one point (mlp: of the sample) */
    uint32_t length;        /* points of a sample (mlp: 1) */
    uint32_t window;        /* points per step (mlp: 1) */
    uint32_t steps;         /* steps of a sample (mlp: 1) */
    uint32_t step_words;    /* packed words of one step */
    const uint8_t *kept;    /* per feature: how many of its bits are kept (in threshold order) */
    const void *threshold;  /* per kept bit, of threshold_type */
    /* A table whose entries are all equal is one entry (stride 0): a passthrough input
     * of 1000 features then needs two bytes of tables, not 2000. */
} bep_encoder_t;

/** Value i of an array of input type `type` (BEP_INPUT_*), widened to int32. */
int32_t bep_input_value(uint8_t type, const void *p, size_t i);

/** The threshold of kept bit j of a point (j < point_bits; with threshold_per_point, entry j of the
 * table: kept bit j % point_bits of point j / point_bits), widened to int32. */
int32_t bep_encode_threshold(const bep_encoder_t *enc, uint32_t j);

/** How many bits of feature f (< features) are kept. */
uint32_t bep_encode_kept(const bep_encoder_t *enc, uint32_t f);

/** Encode one sample into packed words x (enc->steps * enc->step_words of them).
 * @param raw       length * features values of enc->input_type (mlp: features values)
 * @param n_values  values at raw
 * @param oldest    index of the oldest point in raw (a ring buffer); 0 for a plain sample
 * @return BEP_OK, BEP_ERR_NULL, BEP_ERR_SIZE (n_values or x_words wrong), BEP_ERR_ARG (oldest >= length) */
bep_status_t bep_encode(const bep_encoder_t *enc, const void *raw, size_t n_values, uint32_t oldest, uint32_t *x,
                        size_t x_words);

/** Append one point (features values) to a ring of length points, overwriting the oldest.
 * *next is the slot the point goes to (then advanced); *count saturates at length. */
bep_status_t bep_ring_push(const bep_encoder_t *enc, void *ring, size_t ring_values, uint32_t *next,
                           uint32_t *count, const void *point, size_t n_values);

/** Encode the ring's series, oldest point (slot *next once full) first: BEP_ERR_SIZE
 * until the ring holds `length` points. */
bep_status_t bep_encode_ring(const bep_encoder_t *enc, const void *ring, size_t ring_values, uint32_t next,
                             uint32_t count, uint32_t *x, size_t x_words);

#ifdef __cplusplus
}
#endif

#endif /* BEP_ENCODE_H */
