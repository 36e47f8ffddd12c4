#!/usr/bin/env bash
# Set up the environment and run the whole test suite (the same command CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
# Two workers (the 2-core CI machine), a test file per worker so module fixtures run once, the longest files first
# (tests/conftest.py; xdist would otherwise reorder them by their number of tests); XFR_TEST_WORKERS=0 runs in
# one process.
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${XFR_TEST_WORKERS:-2}" --dist loadfile \
  --no-loadscope-reorder "$@"
