#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs, idempotent:
#  - apt: the Arm and RISC-V cross compilers (C and C++ for Arm), QEMU for both (emulated boards;
#    qemu-system-misc holds qemu-system-riscv32), clang, g++, valgrind and cmake
#    (tests; cmake builds the generated library as a CMake project would);
#  - pip: the package with its data, test and sweep extras (numpy, click, jinja2, cffi, pyserial,
#    scikit-learn, aeon, pytest, hypothesis, unicorn, ..., Ray Tune and matplotlib: the tests of
#    bep-mcu sweep and bep-mcu plot run them; torch 2.13.0, a CPU build: the QAT baseline's test).
# Run as root (apt) or in a virtualenv on a machine that already has the apt packages.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc-arm-none-eabi qemu-system-arm gcc-riscv64-unknown-elf qemu-system-misc clang g++ valgrind make cmake)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing apt packages (${missing[*]}); run: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[dev,sweep,bench]'
