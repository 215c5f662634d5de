/*
 * flash_nvmc.h - Nordic's non-volatile memory controller (NVMC) at 0x4001E000, the same
 * registers on the nRF51 (reference manual v3.0 §6; QEMU's "nrf51_soc.nvmc") and the
 * nRF52840 (product specification v1.7 §4.3): READY 0x400 (bit 0), CONFIG 0x504 (0 = read
 * only, 1 = write, 2 = erase), ERASEPAGE 0x508. An erase of a page writes the page's
 * address to ERASEPAGE; a write is one aligned word to the flash address, which can only
 * clear bits. READY is polled after each operation (the CPU stalls while the NVMC works:
 * an erase takes 21 ms on the nRF51, 85 ms on the nRF52840; a word 46 us / 41 us).
 *
 * It defines bep_port.h's three flash functions for the store on top of it: a port whose
 * store is the NVMC (port_microbit.c, port_nrf52.c) includes this header once and is done.
 * Offsets from __bep_store_start, pages of BEP_BOARD_FLASH_PAGE bytes.
 */
#ifndef BEP_FLASH_NVMC_H
#define BEP_FLASH_NVMC_H

#include <stdint.h>

#include "bep_cortexm.h"
#include "bep_port.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#define BEP_NVMC_READY BEP_REG32(0x4001E400u)
#define BEP_NVMC_CONFIG BEP_REG32(0x4001E504u)
#define BEP_NVMC_ERASEPAGE BEP_REG32(0x4001E508u)
#define BEP_NVMC_READ_ONLY 0u
#define BEP_NVMC_WRITE 1u
#define BEP_NVMC_ERASE 2u

static inline void bep_nvmc_wait(void)
{
    while ((BEP_NVMC_READY & 1u) == 0u) {
    }
}

/** Erase the store's page at offset; 0, or -1 outside the store or off a page boundary. */
static inline int bep_nvmc_erase(uint32_t offset)
{
    if (!bep_port_store_span(offset, BEP_BOARD_FLASH_PAGE, BEP_BOARD_FLASH_PAGE)) return -1;
    BEP_NVMC_CONFIG = BEP_NVMC_ERASE;
    bep_nvmc_wait();
    BEP_NVMC_ERASEPAGE = (uint32_t)(uintptr_t)(__bep_store_start + offset);
    bep_nvmc_wait();
    BEP_NVMC_CONFIG = BEP_NVMC_READ_ONLY;
    bep_nvmc_wait();
    return 0;
}

/** Program n bytes (whole words) at offset; 0, or -1 outside the store or misaligned. */
static inline int bep_nvmc_program(uint32_t offset, const uint8_t *src, uint32_t n)
{
    uint32_t k;
    if (n % 4u != 0u || !bep_port_store_span(offset, n, 4u)) return -1;
    BEP_NVMC_CONFIG = BEP_NVMC_WRITE;
    bep_nvmc_wait();
    for (k = 0; k < n; k += 4u) {
        BEP_REG32((uintptr_t)(__bep_store_start + offset + k)) = (uint32_t)src[k] | ((uint32_t)src[k + 1u] << 8) |
                                                                 ((uint32_t)src[k + 2u] << 16) |
                                                                 ((uint32_t)src[k + 3u] << 24);
        bep_nvmc_wait();
    }
    BEP_NVMC_CONFIG = BEP_NVMC_READ_ONLY;
    bep_nvmc_wait();
    return 0;
}

int bep_port_flash_read(void *ctx, uint32_t offset, uint8_t *dst, uint32_t n)
{
    (void)ctx;
    return bep_port_store_read(offset, dst, n);
}

int bep_port_flash_erase(void *ctx, uint32_t offset)
{
    (void)ctx;
    return bep_nvmc_erase(offset);
}

int bep_port_flash_program(void *ctx, uint32_t offset, const uint8_t *src, uint32_t n)
{
    (void)ctx;
    return bep_nvmc_program(offset, src, n);
}

#ifdef __cplusplus
}
#endif

#endif /* BEP_FLASH_NVMC_H */
