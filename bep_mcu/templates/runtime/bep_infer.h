/*
 * bep_infer.h - inference only: a trained binary network predicting from its packed
 * visible weights in flash, with activations as its only RAM.
 *
 * Hand-written, copied verbatim by `bep-mcu generate --inference-only`, which renders
 * the weights (1 bit per weight, sign(H) with sign(0) = +1, each row padded to whole
 * words) and one const bep_infer_config_t. The forward pass and the prediction are
 * those of the training runtime (docs/algorithm.md §2.1, §3): XNOR and popcount, ties to
 * the lowest class. Integers only; no float, no allocation, no libc beyond
 * <stdint.h>/<stddef.h>.
 *
 * RAM: the caller's scratch of cfg->scratch_words words (two activation vectors of the
 * widest layer) and the packed input (cfg->input_words words); bep_infer_predict_raw
 * takes both in one work buffer and encodes raw device values into it first.
 */
#ifndef BEP_INFER_H
#define BEP_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "bep_encode.h"
#include "bep_status.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#define BEP_INFER_MAX_LAYERS 4

typedef struct {
    uint16_t rows;       /* neurons */
    uint16_t in_bits;    /* inputs of a row (rnn: the input part, K_x) */
    uint16_t in_words;   /* packed words of in_bits */
    uint16_t rec_words;  /* rnn: packed words of the recurrent part (rows bits); else 0 */
    const uint32_t *w;   /* rows x in_words */
    const uint32_t *wr;  /* rnn: rows x rec_words; else NULL */
    const int16_t *offset; /* a centred first layer: o_j subtracted from each row's z (bep_runtime.h,
                              bep_config_t.input_means); else NULL */
} bep_infer_layer_t;

typedef struct {
    uint8_t rnn;                 /* 1: an Elman cell run for `steps` steps (a_0 = +1) */
    uint8_t n_layers;
    uint16_t n_classes;
    uint16_t steps;
    uint16_t input_words;        /* of one sample: steps x layer[0].in_words */
    uint16_t class_words;        /* packed words of the last layer's width */
    uint16_t scratch_words;      /* 2 x the widest layer's packed words */
    const uint32_t *classifier;  /* n_classes x class_words, packed P */
    bep_infer_layer_t layer[BEP_INFER_MAX_LAYERS];
} bep_infer_config_t;

/** Predict one packed sample (x_words == cfg->input_words) into *out_class, using
 * scratch_words >= cfg->scratch_words words of scratch.
 * @return BEP_OK, BEP_ERR_NULL, BEP_ERR_SIZE */
bep_status_t bep_infer_predict(const bep_infer_config_t *cfg, const uint32_t *x, size_t x_words, uint32_t *scratch,
                               size_t scratch_words, uint16_t *out_class);

/** As bep_infer_predict, and the scores behind the class: the integer logits
 * y_c = <P_c, a_L> of every class, each in [-width, width] of the last hidden layer, into
 * scores[0 .. cfg->n_classes - 1] (n_scores >= cfg->n_classes); the class is the first largest.
 * @return BEP_OK, BEP_ERR_NULL, BEP_ERR_SIZE */
bep_status_t bep_infer_scores(const bep_infer_config_t *cfg, const uint32_t *x, size_t x_words, uint32_t *scratch,
                              size_t scratch_words, int32_t *scores, size_t n_scores, uint16_t *out_class);

/** Encode raw device values (bep_encode) into the first cfg->input_words words of `work`
 * and predict with the rest as scratch: work_words >= input_words + scratch_words. */
bep_status_t bep_infer_predict_raw(const bep_infer_config_t *cfg, const bep_encoder_t *enc, const void *raw,
                                   size_t n_values, uint32_t *work, size_t work_words, uint16_t *out_class);

/** bep_infer_predict_raw with the scores of bep_infer_scores (scores may be NULL: the class alone). */
bep_status_t bep_infer_scores_raw(const bep_infer_config_t *cfg, const bep_encoder_t *enc, const void *raw,
                                  size_t n_values, uint32_t *work, size_t work_words, int32_t *scores, size_t n_scores,
                                  uint16_t *out_class);

#ifdef __cplusplus
}
#endif

#endif /* BEP_INFER_H */
