/*
 * flash_ram_nor.h - the store's flash driver of an emulator whose image memory is RAM that
 * it keeps across a system reset except where the image is loaded (QEMU's MPS2 boards,
 * RISC-V virt). The store region lies outside the image (memory.ld); this keeps it with
 * NOR flash's rules: an erase sets a page to 0xFF, programming can only clear bits.
 *
 * Defines the port's bep_port_flash_* functions: include from exactly one file (the port file).
 */
#ifndef BEP_FLASH_RAM_NOR_H
#define BEP_FLASH_RAM_NOR_H

#include <stdint.h>

#include "bep_port.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

int bep_port_flash_read(void *ctx, uint32_t offset, uint8_t *dst, uint32_t n)
{
    (void)ctx;
    return bep_port_store_read(offset, dst, n);
}

int bep_port_flash_erase(void *ctx, uint32_t offset)
{
    volatile uint8_t *page = __bep_store_start + offset;
    uint32_t k;
    (void)ctx;
    if (!bep_port_store_span(offset, BEP_BOARD_FLASH_PAGE, BEP_BOARD_FLASH_PAGE)) return -1;
    for (k = 0; k < BEP_BOARD_FLASH_PAGE; ++k) page[k] = 0xFFu;
    return 0;
}

int bep_port_flash_program(void *ctx, uint32_t offset, const uint8_t *src, uint32_t n)
{
    volatile uint8_t *dst = __bep_store_start + offset;
    uint32_t k;
    (void)ctx;
    if (n % BEP_BOARD_FLASH_WRITE != 0u || !bep_port_store_span(offset, n, BEP_BOARD_FLASH_WRITE)) return -1;
    for (k = 0; k < n; ++k) dst[k] &= src[k];
    return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* BEP_FLASH_RAM_NOR_H */
