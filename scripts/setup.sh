#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs, idempotent: Python package with its
# data and test extras. (Run as root or in a virtualenv.)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
