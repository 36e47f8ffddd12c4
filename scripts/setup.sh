#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv). Idempotent: re-running installs only what changed.
# XFR_TORCH=cpu (default) installs the CPU build of torch; on a GPU workstation set XFR_TORCH=skip after
# installing the CUDA build yourself (see README, "GPU workstations"), or use the offline bundle (packaging/).
# --no-compile: Python compiles what it imports on first use; compiling all of torch up front took 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
if [ "${XFR_TORCH:-cpu}" = "cpu" ] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # An unpinned torch pulls a multi-GB CUDA build; this pin takes the CPU wheel.
  .venv/bin/python -m pip install -q --no-compile torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
fi
# setuptools' notice on every editable install is advice, not a problem with this project
PYTHONWARNINGS="ignore:Editable installation" \
  .venv/bin/python -m pip install -q --no-compile -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, PySide6, cv2, xfr_desktop" >/dev/null
