"""The boards bep-mcu builds firmware for: one table, the only place board facts live.

Everything else derives from it: the linker script's MEMORY block and stack size
(:func:`memory_script`), the C macros the port and startup code compile with
(:func:`c_defines`), the QEMU command line (bep_mcu/device/emulate.py) and the RAM/flash
budgets of ``bep-mcu firmware``.

Emulated boards (``qemu`` set) were measured in QEMU 7.2 (see docs/embedded.md). Real
boards (``qemu`` None: ``nucleo-f401re``, ``nano33ble``, ``nrf52840dk``, ``bluepill``) build
with the same command but cannot run here: "builds, not run" (:attr:`Board.status`). Where
an emulator has a sibling part, the real board's port file also serves an emulated board,
so its code runs in the tests: ``port_stm32.c`` (NUCLEO) on ``netduinoplus2`` (STM32F405),
``port_stm32f1.c`` (Blue Pill) on ``stm32vldiscovery`` (STM32F100). QEMU 7.2 has no nRF52:
``port_nrf52.c`` shares its UART and flash drivers with the emulated micro:bit.
"""

from __future__ import annotations

from dataclasses import dataclass

from bep_mcu.cgen import toolchain
from bep_mcu.errors import BEPError

FW_VERSION = 1
"""Firmware version reported by HELLO (``fw_version``); bump when bep_mcu/fw changes behaviour."""

RX_RING_BYTES = 128
"""Receive ring of every port (a power of two). The host sends one frame and waits for
the reply, so the ring only has to absorb the bytes that arrive while the main loop is
between two reads; an overrun drops bytes, which the protocol sees as a bad frame and
retries."""

RX_RING_INDEX_BYTES = 8
"""The ring's two free-running uint32 indices (head written by the IRQ, tail by main)."""

RUNS_IN_QEMU = "runs in QEMU"
BUILDS_NOT_RUN = "builds, not run"

EMULATED_NOR = "emulated NOR (QEMU's code memory, kept across resets)"
"""QEMU's MPS2 boards have no flash controller; port_mps2.c keeps the store with NOR rules."""
EMULATED_NOR_VIRT = "emulated NOR (QEMU's RAM the image is loaded to, kept across resets)"
"""QEMU's RISC-V virt has no flash the core can run from while it programs it: port_virt.c keeps
the store in the memory that holds the image, with NOR rules, as port_mps2.c does."""
NRF52_NVMC = "nRF52 NVMC (the nRF51's registers: flash_nvmc.h)"
"""The micro:bit's driver (flash_nvmc.h), which its power-cut tests run in QEMU."""


@dataclass(frozen=True)
class Board:
    """One board. Addresses and sizes in bytes; ``uart_irq`` is the interrupt line (Cortex-M:
    NVIC line, vector 16 + n; RISC-V: the PLIC source)."""

    name: str
    qemu: str | None          # QEMU -M value (the emulator: its core's toolchain.ARCHES), None for a real board only
    cpu: str                  # a toolchain.CORES name: -mcpu (Arm) or -march (RISC-V) value
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    uart: str                 # driver: "cmsdk", "nrf51" or "stm32"
    uart_base: int
    uart_irq: int
    max_payload: int          # BEP_LINK_MAX_PAYLOAD of this board's firmware
    stack_bytes: int          # fixed in the linker script (multiple of 8)
    linker_script: str        # in bep_mcu/fw/ld; INCLUDEs the rendered memory.ld
    port_file: str            # in bep_mcu/fw
    serial_index: int = 0     # which QEMU -serial (serial_hd(n)) is this UART
    description: str = ""
    port_defines: tuple[tuple[str, str], ...] = ()  # macros only this board's port file reads
    flash_command: str = ""   # a real board: how to put firmware.elf on it (docs/porting.md)
    # The flash a store of snapshots uses (bep_store.h): the erase unit at the end of flash
    # where the store sits, the program unit, the erase cycles a page is rated for, and the
    # port's driver (None: the port has none; bep_port_flash_* in the port file).
    flash_page_bytes: int = 4096
    flash_write_bytes: int = 4
    flash_endurance: int = 10_000
    flash_driver: str | None = None
    clock_hz: int = 25_000_000  # the core clock the port runs at (the store's lifetime estimate)
    startup_file: str = "startup.c"   # in bep_mcu/fw: reset, vectors or trap handler, faults
    qemu_args: tuple[str, ...] = ()   # what else QEMU's machine needs (no firmware of its own)

    @property
    def arch(self) -> str:
        """The instruction-set family (toolchain.ARCHES): "arm" or "riscv"."""
        return toolchain.CORES[self.cpu].arch

    @property
    def emulated(self) -> bool:
        return self.qemu is not None

    @property
    def status(self) -> str:
        """How far this board's firmware has been taken here: it runs (in QEMU, in the
        tests), or it is built and sized but has never run."""
        return RUNS_IN_QEMU if self.emulated else BUILDS_NOT_RUN


BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("mps2-an385", "mps2-an385", "cortex-m3", 0x00000000, 4 << 20, 0x20000000, 4 << 20,
          "cmsdk", 0x40004000, 0, 1024, 4096, "bep_cortexm.ld", "port_mps2.c",
          description="Arm MPS2 FPGA, AN385 image: Cortex-M3 (QEMU)", flash_driver=EMULATED_NOR),
    Board("mps2-an386", "mps2-an386", "cortex-m4", 0x00000000, 4 << 20, 0x20000000, 4 << 20,
          "cmsdk", 0x40004000, 0, 1024, 4096, "bep_cortexm.ld", "port_mps2.c",
          description="Arm MPS2 FPGA, AN386 image: Cortex-M4 (QEMU)", flash_driver=EMULATED_NOR),
    Board("mps2-an500", "mps2-an500", "cortex-m7", 0x00000000, 4 << 20, 0x20000000, 4 << 20,
          "cmsdk", 0x40004000, 0, 1024, 4096, "bep_cortexm.ld", "port_mps2.c",
          description="Arm MPS2 FPGA, AN500 image: Cortex-M7 (QEMU)", flash_driver=EMULATED_NOR),
    Board("mps2-an505", "mps2-an505", "cortex-m33", 0x10000000, 4 << 20, 0x38000000, 4 << 20,
          "cmsdk", 0x50200000, 32, 1024, 4096, "bep_cortexm.ld", "port_mps2.c",
          description="Arm MPS2+ FPGA, AN505 image: Cortex-M33, runs Secure (QEMU)", flash_driver=EMULATED_NOR,
          clock_hz=20_000_000),
    Board("microbit", "microbit", "cortex-m0", 0x00000000, 256 << 10, 0x20000000, 16 << 10,
          "nrf51", 0x40002000, 2, 256, 1024, "bep_cortexm.ld", "port_microbit.c",
          description="BBC micro:bit v1, nRF51822: Cortex-M0, 16 KB RAM (QEMU)",
          # nRF51 product specification: 1 KB pages, word writes, 20,000 erase cycles; 16 MHz
          flash_page_bytes=1024, flash_endurance=20_000, flash_driver="nRF51 NVMC", clock_hz=16_000_000),
    # The two STM32F4 boards share port_stm32.c; the BEP_STM32_* macros say where their
    # USART, its clock enable and its pins are, and the core clock to run at.
    Board("nucleo-f401re", None, "cortex-m4", 0x08000000, 512 << 10, 0x20000000, 96 << 10,
          "stm32", 0x40004400, 38, 1024, 4096, "bep_cortexm.ld", "port_stm32.c",
          description="ST NUCLEO-F401RE: STM32F401RE Cortex-M4F, USART2 = ST-LINK virtual COM port",
          flash_command="pyocd flash -t stm32f401retx firmware.elf",
          port_defines=(("BEP_STM32_USART_APB", "1"), ("BEP_STM32_USART_RCC_BIT", "17u"),  # USART2 on APB1
                        ("BEP_STM32_GPIO_PORT", "0u"), ("BEP_STM32_TX_PIN", "2u"), ("BEP_STM32_RX_PIN", "3u"),
                        ("BEP_STM32_GPIO_AF", "7u"), ("BEP_STM32_SYSCLK_HZ", "84000000u")),
          # RM0368: the last sectors are 128 KB; 10,000 erase cycles (DS10086); no driver in the port
          flash_page_bytes=128 << 10, clock_hz=84_000_000),
    # QEMU 7.2 maps 192 KB of RAM at 0x20000000 and no CCM; the STM32F405 has 128 KB
    # there (SRAM1 + SRAM2) and 64 KB CCM at 0x10000000: the table keeps to the chip.
    # QEMU's first -serial is USART1 (0x40011000, line 37).
    Board("netduinoplus2", "netduinoplus2", "cortex-m4", 0x08000000, 1 << 20, 0x20000000, 128 << 10,
          "stm32", 0x40011000, 37, 1024, 4096, "bep_cortexm.ld", "port_stm32.c",
          description="Netduino Plus 2, STM32F405RG: Cortex-M4F, USART1 (QEMU)",
          port_defines=(("BEP_STM32_USART_APB", "2"), ("BEP_STM32_USART_RCC_BIT", "4u"),  # USART1 on APB2
                        ("BEP_STM32_GPIO_PORT", "0u"), ("BEP_STM32_TX_PIN", "9u"), ("BEP_STM32_RX_PIN", "10u"),
                        ("BEP_STM32_GPIO_AF", "7u"), ("BEP_STM32_SYSCLK_HZ", "168000000u")),
          flash_page_bytes=128 << 10, clock_hz=168_000_000),
    # nRF52840 boards share port_nrf52.c (the legacy UART0 through uart_nrf51.h; pins as 32 *
    # port + pin). nRF52840 product specification v1.7: 1 MB flash at 0 in 4 KB pages, written
    # a 32-bit word at a time, 10,000 erase cycles; 256 KB RAM at 0x20000000; UART0 at
    # 0x40002000, peripheral ID 2 = interrupt line 2; CPU at 64 MHz.
    Board("nano33ble", None, "cortex-m4", 0x00010000, 960 << 10, 0x20000000, 256 << 10,
          "nrf51", 0x40002000, 2, 1024, 4096, "bep_cortexm.ld", "port_nrf52.c",
          description="Arduino Nano 33 BLE (Sense), nRF52840: Cortex-M4F, UART0 on D1/TX, D0/RX, after "
                      "Arduino's bootloader",
          # Arduino's bootloader holds 0x0-0xFFFF and starts the image at 0x10000 (the Arduino
          # core's mbed_app_start and linker script); bossac is what the Arduino IDE runs.
          flash_command="bossac -d --port=ttyACM0 -U -i -e -w firmware.bin -R  (double-tap reset first)",
          port_defines=(("BEP_NRF52_TX_PIN", "35u"), ("BEP_NRF52_RX_PIN", "42u")),  # P1.03, P1.10
          flash_page_bytes=4096, flash_endurance=10_000, flash_driver=NRF52_NVMC, clock_hz=64_000_000),
    Board("nrf52840dk", None, "cortex-m4", 0x00000000, 1 << 20, 0x20000000, 256 << 10,
          "nrf51", 0x40002000, 2, 1024, 4096, "bep_cortexm.ld", "port_nrf52.c",
          description="Nordic nRF52840 DK (PCA10056): Cortex-M4F, UART0 = J-Link virtual COM port",
          flash_command="pyocd flash -t nrf52840 firmware.elf",
          port_defines=(("BEP_NRF52_TX_PIN", "6u"), ("BEP_NRF52_RX_PIN", "8u")),  # P0.06, P0.08
          flash_page_bytes=4096, flash_endurance=10_000, flash_driver=NRF52_NVMC, clock_hz=64_000_000),
    # STM32F1 boards share port_stm32f1.c, with port_stm32.c's macro names (no alternate
    # function number on the F1). USART1 at 0x40013800, interrupt line 37, on PA9/PA10.
    # STM32F103C8 (datasheet DS5319, RM0008): 64 KB flash at 0x08000000 in 1 KB pages
    # (medium density), programmed 16 bits at a time, 10,000 cycles; 20 KB RAM; 64 MHz from
    # HSI x PLL (port_stm32f1.c). 20 KB of RAM: the micro:bit's link and stack sizes.
    Board("bluepill", None, "cortex-m3", 0x08000000, 64 << 10, 0x20000000, 20 << 10,
          "stm32", 0x40013800, 37, 256, 1024, "bep_cortexm.ld", "port_stm32f1.c",
          description="\"Blue Pill\", STM32F103C8: Cortex-M3, USART1 on A9/A10",
          flash_command="openocd -f interface/stlink.cfg -f target/stm32f1x.cfg "
                        "-c \"program firmware.elf verify reset exit\"",
          port_defines=(("BEP_STM32_USART_APB", "2"), ("BEP_STM32_USART_RCC_BIT", "14u"),  # USART1 on APB2
                        ("BEP_STM32_GPIO_PORT", "0u"), ("BEP_STM32_TX_PIN", "9u"), ("BEP_STM32_RX_PIN", "10u"),
                        ("BEP_STM32_SYSCLK_HZ", "64000000u")),
          flash_page_bytes=1024, flash_write_bytes=2, flash_endurance=10_000,
          flash_driver="STM32F1 flash interface (unlock, PER, PG; read back)", clock_hz=64_000_000),
    # QEMU's STM32F100RB (hw/arm/stm32f100_soc.c): 128 KB flash, 8 KB RAM, USART1 on
    # serial_hd(0); RCC, GPIO and flash interface unimplemented (read 0), as on netduinoplus2.
    # STM32F100 (RM0041): 1 KB pages, half-word programming, 10,000 cycles, 24 MHz at most.
    # No store: port_stm32f1.c's flash driver needs the flash interface QEMU does not model.
    Board("stm32vldiscovery", "stm32vldiscovery", "cortex-m3", 0x08000000, 128 << 10, 0x20000000, 8 << 10,
          "stm32", 0x40013800, 37, 256, 1024, "bep_cortexm.ld", "port_stm32f1.c",
          description="ST STM32VLDISCOVERY, STM32F100RB: Cortex-M3, USART1, 8 KB RAM (QEMU)",
          port_defines=(("BEP_STM32_USART_APB", "2"), ("BEP_STM32_USART_RCC_BIT", "14u"),
                        ("BEP_STM32_GPIO_PORT", "0u"), ("BEP_STM32_TX_PIN", "9u"), ("BEP_STM32_RX_PIN", "10u"),
                        ("BEP_STM32_SYSCLK_HZ", "24000000u")),
          flash_page_bytes=1024, flash_write_bytes=2, flash_endurance=10_000, clock_hz=24_000_000),
    # QEMU's RISC-V "virt" machine with one rv32imac hart in machine mode, sized as an ESP32-C3
    # (400 KB RAM, 4 MB flash): both carved out of its DRAM at 0x80000000, the image at its
    # start (-bios none: no OpenSBI there; QEMU starts at the ELF's entry). NS16550A UART0 at
    # 0x10000000 on PLIC source 10 (hw/riscv/virt.c); the PLIC at 0x0C000000 and the SiFive
    # test device at 0x100000 (a write of 0x7777 resets the machine) are the port's.
    Board("riscv32-virt", "virt", "rv32imac", 0x80000000, 4 << 20, 0x80400000, 400 << 10,
          "ns16550a", 0x10000000, 10, 1024, 4096, "bep_riscv.ld", "port_virt.c",
          description="QEMU RISC-V virt: rv32imac, machine mode, 400 KB RAM / 4 MB flash as an ESP32-C3 (QEMU)",
          port_defines=(("BEP_VIRT_PLIC_BASE", "0x0C000000u"), ("BEP_RISCV_RESET_ADDR", "0x00100000u"),
                        ("BEP_RISCV_RESET_VALUE", "0x7777u"), ("BEP_RISCV_IRQ_CAUSE", "11u")),  # machine external
          flash_driver=EMULATED_NOR_VIRT, clock_hz=160_000_000,  # the ESP32-C3's, which it stands for
          startup_file="startup_riscv.c", qemu_args=("-bios", "none")),
    # Espressif ESP32-C3 (rv32imc; ESP32-C3 datasheet and TRM) by the ROM's direct boot
    # (bep_esp32c3.ld): 4 MB of flash mapped at 0x42000000 (code) and 0x3C000000 (data);
    # 400 KB of SRAM, of which the 16 KB cache and the ROM's own data at the top are not the
    # image's: 320 KB at 0x3FC80000 (Espressif's esp32c3-direct-boot-example). UART0 at
    # 0x60000000 is interrupt-matrix source 21, routed to CPU line 1. No store driver.
    Board("esp32c3", None, "rv32imc", 0x42000000, 4 << 20, 0x3FC80000, 320 << 10,
          "esp32c3", 0x60000000, 21, 1024, 4096, "bep_esp32c3.ld", "port_esp32c3.c",
          description="Espressif ESP32-C3 (e.g. ESP32-C3-DevKitM-1): rv32imc, UART0 = the USB serial bridge, "
                      "direct boot (chip revision 3 or later)",
          flash_command="esptool.py --chip esp32c3 write_flash 0x0 firmware.bin",
          port_defines=(("BEP_RISCV_IRQ_CAUSE", "1u"),),
          flash_page_bytes=4096, clock_hz=40_000_000, startup_file="startup_riscv.c"),
)}


def describe(b: Board) -> dict:
    """What ``bep-mcu boards`` lists about a board."""
    return {"name": b.name, "cpu": b.cpu, "ram_bytes": b.ram_bytes, "flash_bytes": b.flash_bytes,
            "emulated": b.emulated, "status": b.status, "qemu_machine": b.qemu, "description": b.description,
            "how_to_run": "bep-mcu emulate firmware.elf" if b.emulated else b.flash_command}


def board(name: str) -> Board:
    """The board called ``name``; an unknown name is a one-line ``BEPError`` listing them."""
    try:
        return BOARDS[name]
    except KeyError:
        raise BEPError(f"unknown board '{name}': choose one of {', '.join(BOARDS)}") from None


def firmware_static_bytes(b: Board) -> int:
    """RAM the firmware itself holds besides the state buffer, the link and the stack:
    the receive ring and its indices (nothing else in bep_mcu/fw has static data)."""
    return RX_RING_BYTES + RX_RING_INDEX_BYTES


def memory_script(b: Board, store_bytes: int = 0) -> str:
    """The ``memory.ld`` the shared linker script INCLUDEs: regions and stack size of ``b``,
    and the last ``store_bytes`` of flash (whole pages) kept out of the image for a store
    of snapshots (bep_port.h: __bep_store_start, __bep_store_bytes)."""
    if store_bytes % b.flash_page_bytes or not 0 <= store_bytes < b.flash_bytes:
        raise ValueError(f"a store of {store_bytes} B is not whole pages of {b.name}'s flash")  # a bep-mcu bug
    image = b.flash_bytes - store_bytes
    return (f"/* {b.name}: rendered by bep_mcu/device/boards.py, do not edit */\n"
            "MEMORY\n{\n"
            f"    FLASH (rx)  : ORIGIN = 0x{b.flash_origin:08X}, LENGTH = 0x{image:08X}\n"
            f"    RAM   (rwx) : ORIGIN = 0x{b.ram_origin:08X}, LENGTH = 0x{b.ram_bytes:08X}\n"
            "}\n"
            f"__bep_stack_bytes = 0x{b.stack_bytes:X};\n"
            f"__bep_store_start = 0x{b.flash_origin + image:08X};\n"
            f"__bep_store_bytes = 0x{store_bytes:X};\n")


def c_defines(b: Board) -> dict[str, str]:
    """Macros every firmware source (and the generated C) compiles with for ``b``."""
    return {
        "BEP_BOARD_NAME": f'"{b.name}"',
        "BEP_BOARD_FLASH_ORIGIN": f"0x{b.flash_origin:08X}u",  # the vector table (linker script)
        "BEP_BOARD_UART_BASE": f"0x{b.uart_base:08X}u",
        "BEP_BOARD_UART_IRQ": str(b.uart_irq),
        "BEP_BOARD_QEMU": "1" if b.emulated else "0",  # semihosting exit on faults, I/O kick
        "BEP_FW_VERSION": f"{FW_VERSION}u",
        "BEP_FW_RX_RING": f"{RX_RING_BYTES}u",
        "BEP_LINK_MAX_PAYLOAD": str(b.max_payload),
        "BEP_BOARD_FLASH_PAGE": f"{b.flash_page_bytes}u",
        "BEP_BOARD_FLASH_WRITE": f"{b.flash_write_bytes}u",
        **dict(b.port_defines),
    }
