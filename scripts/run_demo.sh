#!/usr/bin/env bash
# Set up the environment and run the main job: the desktop app on the bundled sample case with the bundled
# model. Without a display it runs offscreen, writes its outputs and prints where they are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [[ " $* " != *" --offscreen "* ]]; then
  bash scripts/check_qt_libs.sh  # a window needs Qt's xcb libraries; offscreen needs none of them
fi
export OMP_WAIT_POLICY=PASSIVE
exec .venv/bin/xfr-desktop --demo "$@"
