/*
 * train_main.c - a program built on the generated library through its CMake targets
 * (tests/test_package.py renders case.h and checks every line against numpy):
 *   1. trains CASE_N samples in batches of CASE_BATCH with the bep_net_* API, one epoch
 *      with the case's gamma and Q: the predictions of each batch, the counters, a hash
 *      of each layer's hidden weights, an inference;
 *   2. answers a HELLO frame through bep_link (the link target);
 *   3. trains a fresh network with the example trainer over CASE_TRAINER_EPOCHS epochs of
 *      the same samples, repeated in order: each epoch's errors and next schedule, the
 *      hashes at the end.
 * No libc: lines go out through bep_test_print (host_io.c or cortexm_start.c). Valid C99
 * and C++ (train_main.cpp compiles it as C++).
 */
#include <stddef.h>
#include <stdint.h>

#include "bep_link.h"
#include "bep_net.h"
#include "bep_net_trainer.h"
#include "bep_test_io.h"
#include "case.h"

static uint32_t state[BEP_NET_STATE_WORDS];
static bep_link_t link_state;
static uint8_t hidden[CASE_HIDDEN_MAX_BYTES];
static char line[1024];
static size_t used;

static void put_str(const char *s)
{
    while (*s != '\0' && used < sizeof line - 2u) line[used++] = *s++;
}

static void put_u32(uint32_t v)
{
    char digits[10];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + (char)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    while (n > 0u && used < sizeof line - 2u) line[used++] = digits[--n];
}

static void put_hex8(uint32_t v)
{
    static const char hex[] = "0123456789abcdef";
    char two[3];
    two[0] = hex[(v >> 4) & 15u];
    two[1] = hex[v & 15u];
    two[2] = '\0';
    put_str(two);
}

static void end_line(void)
{
    line[used++] = '\n';
    line[used] = '\0';
    bep_test_print(line);
    used = 0;
}

static int check(const char *what, bep_status_t st)
{
    if (st == BEP_OK) return 0;
    put_str("error ");
    put_str(what);
    put_str(" ");
    put_str(bep_status_str(st));
    end_line();
    return 1;
}

/* FNV-1a over a layer's hidden weights as bep_net_read_hidden returns them. */
static int put_hidden(const char *tag)
{
    uint32_t layer;
    for (layer = 0; layer < BEP_NET_N_LAYERS; layer++) {
        uint32_t h = 2166136261u;
        size_t i;
        if (check("read_hidden", bep_net_read_hidden(state, sizeof state, layer, hidden, case_hidden_bytes[layer])))
            return 1;
        for (i = 0; i < case_hidden_bytes[layer]; i++) h = (h ^ hidden[i]) * 16777619u;
        put_str(tag);
        put_str(" ");
        put_u32(layer);
        put_str(" ");
        put_u32(h);
        end_line();
    }
    return 0;
}

static void put_reply(void *ctx, const uint8_t *data, size_t n)
{
    size_t i;
    (void)ctx;
    put_str("reply ");
    for (i = 0; i < n; i++) put_hex8(data[i]);
    end_line();
}

static int train_with_the_api(void)
{
    bep_counters_t c;
    uint32_t i;
    uint16_t pred;
    if (check("init", bep_net_init(state, sizeof state, BEP_NET_SEED, BEP_NET_BATCHES))) return 1;
    if (check("set_epoch", bep_net_set_epoch(state, sizeof state, case_gamma, BEP_NET_N_LAYERS, case_q,
                                             BEP_NET_N_LAYERS)))
        return 1;
    for (i = 0; i < CASE_N; i++) {
        if (i % CASE_BATCH == 0u) put_str("batch");
        if (check("train_sample", bep_net_train_sample(state, sizeof state, case_x + i * BEP_NET_INPUT_WORDS,
                                                       BEP_NET_INPUT_WORDS, case_y[i], &pred)))
            return 1;
        put_str(" ");
        put_u32(pred);
        if (i % CASE_BATCH == CASE_BATCH - 1u || i == CASE_N - 1u) {
            end_line();
            if (check("end_batch", bep_net_end_batch(state, sizeof state))) return 1;
        }
    }
    if (check("read_counters", bep_net_read_counters(state, sizeof state, &c))) return 1;
    put_str("counters ");
    put_u32(c.samples);
    put_str(" ");
    put_u32(c.triggered);
    put_str(" ");
    put_u32(c.errors);
    put_str(" ");
    put_u32(c.updates);
    put_str(" ");
    put_u32(c.batches);
    end_line();
    if (put_hidden("hidden")) return 1;
    if (check("infer", bep_net_infer(state, sizeof state, case_x, BEP_NET_INPUT_WORDS, &pred))) return 1;
    put_str("infer ");
    put_u32(pred);
    end_line();
    return 0;
}

static int hello_through_the_link(void)
{
    static const bep_board_info_t info = {"cmake", 0u, 0u, 1u};
    bep_link_init(&link_state, &bep_net_config, state, sizeof state, &info, put_reply, NULL);
    bep_link_rx(&link_state, case_hello, sizeof case_hello);
    return 0;
}

static int train_with_the_trainer(void)
{
    bep_net_trainer_info_t t;
    uint32_t epochs = 0, i = 0, l;
    uint16_t pred;
    if (check("trainer_init", bep_net_trainer_init(state, sizeof state, NULL))) return 1;
    while (epochs < CASE_TRAINER_EPOCHS) {
        if (check("trainer_sample", bep_net_trainer_sample(case_x + i * BEP_NET_INPUT_WORDS, case_y[i], &pred)))
            return 1;
        i = (i + 1u) % CASE_N;
        if (check("trainer_info", bep_net_trainer_info(&t))) return 1;
        if (t.epochs == epochs) continue;
        epochs = t.epochs;
        put_str("epoch ");
        put_u32(t.epochs);
        put_str(" errors ");
        put_u32(t.errors);
        put_str(" gamma");
        for (l = 0; l < BEP_NET_N_LAYERS; l++) {
            put_str(" ");
            put_u32(t.gamma[l]);
        }
        put_str(" q");
        for (l = 0; l < BEP_NET_N_LAYERS; l++) {
            put_str(" ");
            put_u32(t.q[l]);
        }
        end_line();
    }
    return put_hidden("trained");
}

int main(void)
{
    int failed = train_with_the_api() || hello_through_the_link() || train_with_the_trainer();
    put_str(failed ? "failed" : "done");
    end_line();
    return failed;
}
