#!/usr/bin/env bash
# Set up, then run the whole test suite (slow end-to-end tests included) on all cores.
# Locally, skip the slow ones with:  bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec python3 -m pytest -n auto -q "$@"
