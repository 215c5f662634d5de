/*
 * infer_main.c - one program holding the training and the inference-only code of network
 * "net", generated into one directory and linked through their CMake targets (bep_net and
 * bep_net_infer: their files and symbols do not clash). For each of case.h's CASE_N packed
 * samples it prints the class of the training API (bep_net_infer on the untrained state, the
 * model's own weights) and the class and scores of the inference-only API
 * (bep_net_infer_scores); tests/test_package.py checks every line against numpy.
 */
#include <stddef.h>
#include <stdint.h>

#include "bep_net.h"
#include "bep_net_infer.h"
#include "bep_test_io.h"
#include "case.h"

static uint32_t state[BEP_NET_STATE_WORDS];
static uint32_t scratch[BEP_NET_INFER_SCRATCH_WORDS];
static char line[1024];
static size_t used;

static void put_str(const char *s)
{
    while (*s != '\0' && used < sizeof line - 2u) line[used++] = *s++;
}

static void put_i32(int32_t v)
{
    char digits[11];
    size_t n = 0;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    if (v < 0) put_str("-");
    do {
        digits[n++] = (char)('0' + (char)(u % 10u));
        u /= 10u;
    } while (u != 0u);
    while (n > 0u && used < sizeof line - 2u) line[used++] = digits[--n];
}

static void end_line(void)
{
    line[used++] = '\n';
    line[used] = '\0';
    bep_test_print(line);
    used = 0;
}

int main(void)
{
    int32_t scores[BEP_NET_INFER_N_CLASSES];
    uint16_t trained, predicted;
    uint32_t i, c;
    if (bep_net_init(state, sizeof state, BEP_NET_SEED, BEP_NET_BATCHES) != BEP_OK) return 1;
    for (i = 0; i < CASE_N; ++i) {
        const uint32_t *x = case_x + (size_t)i * BEP_NET_INPUT_WORDS;
        if (bep_net_infer(state, sizeof state, x, BEP_NET_INPUT_WORDS, &trained) != BEP_OK) return 2;
        if (bep_net_infer_scores(x, BEP_NET_INFER_INPUT_WORDS, scratch, BEP_NET_INFER_SCRATCH_WORDS, scores,
                                 BEP_NET_INFER_N_CLASSES, &predicted) != BEP_OK)
            return 3;
        put_str("sample ");
        put_i32((int32_t)trained);
        put_str(" ");
        put_i32((int32_t)predicted);
        for (c = 0; c < BEP_NET_INFER_N_CLASSES; ++c) {
            put_str(" ");
            put_i32(scores[c]);
        }
        end_line();
    }
    put_str("done");
    end_line();
    return 0;
}
