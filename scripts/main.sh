#!/usr/bin/env bash
# Set up, then run the main job end to end: pre-train a binary network with BEP on the
# host, generate its C, verify the C twin bit for bit, build the firmware, boot it on an
# emulated Cortex-M4 (QEMU mps2-an386), keep training on the device over the serial link,
# pull the weights back and report host vs device (extra options go to bep-mcu demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec bep-mcu demo "$@"
