/*
 * bep_encode.c - the device encoder (see bep_encode.h); mirrors bep_mcu/data/inputformat.py:encode.
 */
#include "bep_encode.h"

/* Value i of an array of `type`, widened to int32 (every input type fits). Decoded by
 * its bits (bep_encode.h), not with a switch: GCC turns a switch, or an if chain on
 * the whole code, into a libgcc table helper on ARMv6-M. */
static int32_t bep_value(const void *p, uint8_t type, size_t i)
{
    if (type & BEP_INPUT_32BIT) return ((const int32_t *)p)[i];
    if (type & BEP_INPUT_16BIT) return (type & BEP_INPUT_UNSIGNED) ? ((const uint16_t *)p)[i] : ((const int16_t *)p)[i];
    return (type & BEP_INPUT_UNSIGNED) ? ((const uint8_t *)p)[i] : ((const int8_t *)p)[i];
}

static size_t bep_type_bytes(uint8_t type)
{
    return (type & BEP_INPUT_32BIT) ? 4u : ((type & BEP_INPUT_16BIT) ? 2u : 1u);
}

int32_t bep_input_value(uint8_t type, const void *p, size_t i)
{
    return bep_value(p, type, i);
}

int32_t bep_encode_threshold(const bep_encoder_t *enc, uint32_t j)
{
    return bep_value(enc->threshold, enc->threshold_type, (size_t)j * enc->threshold_stride);
}

uint32_t bep_encode_kept(const bep_encoder_t *enc, uint32_t f)
{
    return enc->kept[f * enc->kept_stride];
}

/* The kept bits of one point (values at `raw`, starting at value `first`; thresholds from table entry
 * `j` on) into v from bit `bit` on. */
static void bep_encode_point(const bep_encoder_t *enc, const void *raw, size_t first, uint32_t j, uint32_t *v,
                             uint32_t bit)
{
    uint32_t f, k;
    for (f = 0; f < enc->features; ++f) {
        int32_t value = bep_value(raw, enc->input_type, first + f);
        uint32_t kept = enc->kept[f * enc->kept_stride];
        for (k = 0; k < kept; ++k, ++j, ++bit) {
            int32_t t = bep_value(enc->threshold, enc->threshold_type, (size_t)j * enc->threshold_stride);
            uint32_t on = enc->compare == BEP_ENCODE_EQUAL ? (uint32_t)(value == t) : (uint32_t)(value >= t);
            v[bit >> 5] |= on << (bit & 31u);
        }
    }
}

bep_status_t bep_encode(const bep_encoder_t *enc, const void *raw, size_t n_values, uint32_t oldest, uint32_t *x,
                        size_t x_words)
{
    uint32_t s, w, k, bit;
    if (enc == NULL || raw == NULL || x == NULL) return BEP_ERR_NULL;
    if (n_values != (size_t)enc->length * enc->features || x_words != (size_t)enc->steps * enc->step_words)
        return BEP_ERR_SIZE;
    if (oldest >= enc->length) return BEP_ERR_ARG;
    for (k = 0; k < x_words; ++k) x[k] = 0;
    for (s = 0; s < enc->steps; ++s) {
        for (w = 0; w < enc->window; ++w) {
            /* Points past the end repeat the final one (the last window's padding). */
            uint32_t p = s * enc->window + w;
            uint32_t q = p < enc->length ? p : enc->length - 1u;
            uint32_t slot = q < enc->length - oldest ? oldest + q : q - (enc->length - oldest);
            uint32_t first = enc->threshold_per_point ? q * enc->point_bits : 0u; /* point q's thresholds */
            bep_encode_point(enc, raw, (size_t)slot * enc->features, first, x + (size_t)s * enc->step_words,
                             w * enc->point_bits);
        }
        for (k = 0, bit = enc->window * enc->point_bits; k < enc->bias_bits; ++k, ++bit)
            x[(size_t)s * enc->step_words + (bit >> 5)] |= 1u << (bit & 31u);
    }
    return BEP_OK;
}

bep_status_t bep_ring_push(const bep_encoder_t *enc, void *ring, size_t ring_values, uint32_t *next,
                           uint32_t *count, const void *point, size_t n_values)
{
    size_t size, k;
    uint8_t *dst;
    const uint8_t *src = (const uint8_t *)point;
    if (enc == NULL || ring == NULL || next == NULL || count == NULL || point == NULL) return BEP_ERR_NULL;
    if (ring_values != (size_t)enc->length * enc->features || n_values != enc->features) return BEP_ERR_SIZE;
    if (*next >= enc->length) return BEP_ERR_ARG;
    size = bep_type_bytes(enc->input_type) * enc->features;
    dst = (uint8_t *)ring + (size_t)*next * size;
    for (k = 0; k < size; ++k) dst[k] = src[k];
    *next = *next + 1u == enc->length ? 0u : *next + 1u;
    if (*count < enc->length) ++*count;
    return BEP_OK;
}

bep_status_t bep_encode_ring(const bep_encoder_t *enc, const void *ring, size_t ring_values, uint32_t next,
                             uint32_t count, uint32_t *x, size_t x_words)
{
    if (enc == NULL) return BEP_ERR_NULL;
    if (count < enc->length) return BEP_ERR_SIZE;
    return bep_encode(enc, ring, ring_values, next, x, x_words);
}
