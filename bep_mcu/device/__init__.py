"""Devices: the board table, firmware images, QEMU, the serial protocol and link,
and training on a board."""
