// train_main.cpp - a C++ program that uses a generated network the way a C++ firmware
// or application would: includes the generated headers, trains, reads the weights back,
// and answers one serial-protocol frame through bep_link. Built and run by
// tests/test_cpp.py, which renders the case (`cpp_case.h`: inputs, labels, the epoch's
// gamma and Q, one HELLO request frame) and compares what this prints with the numpy
// engine. C++ on purpose (namespaces, constexpr, static_assert, a lambda as the link's
// C callback), so it only builds if the headers give the library C linkage.
//
// Output, one record per line:
//   status <string of BEP_OK> | <string of a short state buffer's error>
//   batch <prediction>...          one line per training batch
//   hidden <layer> <weight>...     every hidden weight, row-major, after the last batch
//   infer <prediction>             the first sample, after training
//   counters <samples> <triggered> <errors> <updates> <batches>
//   reply <hex bytes>              what the link wrote for the HELLO frame
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "bep_link.h"
#include "bep_net.h"
#include "cpp_case.h"

namespace {

uint32_t state[BEP_NET_STATE_WORDS];
static_assert(sizeof state == BEP_NET_STATE_BYTES, "the state buffer is the planned size");
bep_link_t link;
std::vector<uint8_t> reply;

constexpr std::size_t batches(std::size_t n, std::size_t batch) { return (n + batch - 1) / batch; }

int fail(const char *what, bep_status_t st)
{
    std::printf("error %s: %s\n", what, bep_status_str(st));
    return 1;
}

} // namespace

int main()
{
    bep_status_t st = bep_net_init(state, 4, BEP_NET_SEED, BEP_NET_BATCHES); // too short on purpose
    std::printf("status %s | %s\n", bep_status_str(BEP_OK), bep_status_str(st));

    st = bep_net_init(state, sizeof state, BEP_NET_SEED, BEP_NET_BATCHES);
    if (st != BEP_OK) return fail("init", st);
    st = bep_net_set_epoch(state, sizeof state, case_gamma, BEP_NET_N_LAYERS, case_q, BEP_NET_N_LAYERS);
    if (st != BEP_OK) return fail("set_epoch", st);

    for (std::size_t b = 0; b < batches(CASE_N, CASE_BATCH); ++b) {
        const std::size_t first = b * CASE_BATCH;
        const std::size_t n = CASE_N - first < CASE_BATCH ? CASE_N - first : CASE_BATCH;
        uint16_t pred[CASE_BATCH];
        st = bep_net_train_batch(state, sizeof state, &case_x[first * BEP_NET_INPUT_WORDS], n * BEP_NET_INPUT_WORDS,
                                 &case_y[first], pred, n);
        if (st != BEP_OK) return fail("train_batch", st);
        std::printf("batch");
        for (std::size_t i = 0; i < n; ++i) std::printf(" %u", static_cast<unsigned>(pred[i]));
        std::printf("\n");
    }

    for (uint32_t layer = 0; layer < BEP_NET_N_LAYERS; ++layer) {
        const bep_layer_t &L = bep_net_config.layer[layer];
        const std::size_t count = static_cast<std::size_t>(L.rows) * L.cols;
        std::vector<uint8_t> raw(count * (BEP_NET_HIDDEN_BITS / 8u));
        st = bep_net_read_hidden(state, sizeof state, layer, raw.data(), raw.size());
        if (st != BEP_OK) return fail("read_hidden", st);
        std::printf("hidden %u", static_cast<unsigned>(layer));
        for (std::size_t i = 0; i < count; ++i) {
            const int v = BEP_NET_HIDDEN_BITS == 8u ? static_cast<int8_t>(raw[i])
                                                    : static_cast<int16_t>(raw[2 * i] | (raw[2 * i + 1] << 8));
            std::printf(" %d", v);
        }
        std::printf("\n");
    }

    uint16_t first_pred = 0;
    st = bep_net_infer(state, sizeof state, case_x, BEP_NET_INPUT_WORDS, &first_pred);
    if (st != BEP_OK) return fail("infer", st);
    std::printf("infer %u\n", static_cast<unsigned>(first_pred));

    bep_counters_t c;
    st = bep_net_read_counters(state, sizeof state, &c);
    if (st != BEP_OK) return fail("read_counters", st);
    std::printf("counters %u %u %u %u %u\n", static_cast<unsigned>(c.samples), static_cast<unsigned>(c.triggered),
                static_cast<unsigned>(c.errors), static_cast<unsigned>(c.updates), static_cast<unsigned>(c.batches));

    static const bep_board_info_t info = {"c++ host", 0u, 0u, 1u};
    bep_link_init(&link, &bep_net_config, state, sizeof state, &info,
                  [](void *, const uint8_t *data, std::size_t n) { reply.insert(reply.end(), data, data + n); },
                  nullptr);
    bep_link_rx(&link, case_hello, sizeof case_hello);
    std::printf("reply");
    for (uint8_t byte : reply) std::printf(" %02x", static_cast<unsigned>(byte));
    std::printf("\n");
    return 0;
}
