#!/usr/bin/env bash
# Set up, then run the main job end to end: train a binary MLP with BEP on the Random
# Prototypes benchmark, evaluate the saved model and describe it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out="${BEP_OUT:-build/prototypes-512.npz}"
mkdir -p "$(dirname "$out")"
bep-mcu train --dataset prototypes --hidden 512 --out "$out" "$@"
bep-mcu eval "$out" --dataset prototypes
bep-mcu info "$out"
