#!/usr/bin/env bash
# Install XFR Desktop from this offline bundle (Linux). Nothing is downloaded.
#
#   ./install.sh [--prefix DIR] [--python PYTHON] [--bin-dir DIR|none] [--no-desktop-entry]
#                [--apps-dir DIR] [--icons-dir DIR]   # where the desktop entry and the hicolor icons go
#   ./install.sh --verify-only          # check SHA256SUMS and stop
#   ./install.sh --uninstall [--prefix DIR]
#
# Steps: 1. verify every file against SHA256SUMS (and refuse files the manifest does not list) BEFORE anything
# is installed; 2. create a fresh virtual environment PREFIX/versions/<version>-<bundle id>/venv; 3. pip install
# --no-index --find-links wheelhouse --require-hashes; 4. copy models/ and resources/ beside the package;
# 5. switch PREFIX/current to the new version (the previous one stays until removed: roll back by pointing
# `current` at it); 6. link xfr and xfr-desktop into --bin-dir and add the desktop entry and icon.
# The case database lives in the user data folder (~/.local/share/xfr-desktop), never under PREFIX.
set -euo pipefail
# a PYTHONPATH pointing into a source checkout would make "the installed package" that checkout (and step 4 would
# copy models/ into it): the bundle is installed and checked on its own
unset PYTHONPATH

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "$(id -u)" = 0 ]; then
  PREFIX=/opt/xfr-desktop; BIN_DIR=/usr/local/bin; APPS_DIR=/usr/local/share/applications
  ICONS_DIR=/usr/local/share/icons/hicolor
else
  PREFIX="$HOME/.local/lib/xfr-desktop"; BIN_DIR="$HOME/.local/bin"
  APPS_DIR="${XDG_DATA_HOME:-$HOME/.local/share}/applications"; ICONS_DIR="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor"
fi
PYTHON=""; DESKTOP_ENTRY=1; VERIFY_ONLY=0; UNINSTALL=0; QUIET=-q

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=${2:?--prefix needs a folder}; shift 2 ;;
    --python) PYTHON=${2:?--python needs an interpreter}; shift 2 ;;
    --bin-dir) BIN_DIR=${2:?--bin-dir needs a folder or none}; shift 2 ;;
    --no-desktop-entry) DESKTOP_ENTRY=0; shift ;;
    --apps-dir) APPS_DIR=${2:?--apps-dir needs a folder}; shift 2 ;;
    --icons-dir) ICONS_DIR=${2:?--icons-dir needs a folder}; shift 2 ;;
    --verify-only) VERIFY_ONLY=1; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --verbose) QUIET=""; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
case "$PREFIX" in /*) ;; *) PREFIX="$PWD/$PREFIX" ;; esac  # absolute: it goes into symlinks and the desktop entry

if [ "$UNINSTALL" = 1 ]; then
  for link in "$BIN_DIR/xfr" "$BIN_DIR/xfr-desktop"; do
    if [ -L "$link" ] && [[ "$(readlink "$link")" == "$PREFIX"/* ]]; then rm -f "$link"; fi
  done
  rm -f "$APPS_DIR/xfr-desktop.desktop" "$ICONS_DIR/scalable/apps/xfr-desktop.svg" \
        "$ICONS_DIR/256x256/apps/xfr-desktop.png"
  rm -rf "$PREFIX/versions" "$PREFIX/current"
  rmdir "$PREFIX" 2>/dev/null || true
  say "removed XFR Desktop from $PREFIX (cases and reports in the user data folder are kept)"
  exit 0
fi

# --- 1. verify the bundle before touching anything ------------------------------------------------------------
START=$(date +%s)
cd "$HERE"
[ -f SHA256SUMS ] || die "SHA256SUMS is missing: this is not a complete XFR Desktop bundle"
[ -f bundle.json ] || die "bundle.json is missing: this is not a complete XFR Desktop bundle"
say "verifying $(wc -l < SHA256SUMS) files against SHA256SUMS ..."
if command -v sha256sum >/dev/null 2>&1; then
  if ! BAD=$(sha256sum --strict --quiet -c SHA256SUMS 2>&1); then
    echo "$BAD" | head -20 >&2
    die "checksum verification FAILED: the bundle is damaged or was altered; nothing was installed"
  fi
else
  VERIFY_PY=${PYTHON:-python3}
  "$VERIFY_PY" - <<'PYEOF' || die "checksum verification FAILED: the bundle is damaged or was altered; nothing was installed"
import hashlib, sys
bad = 0
for line in open("SHA256SUMS", encoding="utf-8"):
    digest, name = line.rstrip("\n").split("  ", 1)
    h = hashlib.sha256()
    try:
        with open(name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        print(f"{name}: MISSING", file=sys.stderr); bad += 1; continue
    if h.hexdigest() != digest:
        print(f"{name}: FAILED", file=sys.stderr); bad += 1
sys.exit(1 if bad else 0)
PYEOF
fi
# a file the manifest does not list (a wheel slipped into wheelhouse/, say) would be installed unchecked
UNLISTED=$(find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | \
           LC_ALL=C comm -23 - <(cut -c67- SHA256SUMS | LC_ALL=C sort))
[ -z "$UNLISTED" ] || die "files not in SHA256SUMS (remove them or use the original bundle): $(echo $UNLISTED | head -c 300)"
say "checksums OK"
[ "$VERIFY_ONLY" = 1 ] && exit 0

# --- 2. the interpreter -----------------------------------------------------------------------------------------
read_meta() { sed -n "s/^  \"$1\": \"\([^\"]*\)\".*/\1/p" bundle.json | head -1; }
WANT_PY=$(read_meta python); VERSION=$(read_meta version); PLATFORM=$(read_meta platform)
[ -n "$WANT_PY" ] && [ -n "$VERSION" ] || die "bundle.json lacks python/version"
case "$PLATFORM" in linux-*) ;; *) die "this bundle is for $PLATFORM; on Windows run install.ps1" ;; esac
if [ -z "$PYTHON" ]; then
  for cand in "python$WANT_PY" python3; do
    if command -v "$cand" >/dev/null 2>&1; then PYTHON=$cand; break; fi
  done
fi
[ -n "$PYTHON" ] || die "Python $WANT_PY not found; install it (e.g. python$WANT_PY and python$WANT_PY-venv) or pass --python"
HAVE_PY=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || die "cannot run $PYTHON"
[ "$HAVE_PY" = "$WANT_PY" ] || die "this bundle is built for Python $WANT_PY but $PYTHON is $HAVE_PY; pass --python python$WANT_PY"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON cannot create virtual environments (install python$WANT_PY-venv)"

# --- 3. a fresh virtual environment, installed from the wheelhouse only ------------------------------------------
mkdir -p "$PREFIX/versions" || die "cannot create the install folder $PREFIX"
BUNDLE_ID=$("$PYTHON" -c 'import hashlib; print(hashlib.sha256(open("SHA256SUMS", "rb").read()).hexdigest()[:12])')
TARGET="$PREFIX/versions/$VERSION-$BUNDLE_ID"
rm -rf "$TARGET"
say "creating $TARGET/venv with $PYTHON ($HAVE_PY)"
"$PYTHON" -m venv "$TARGET/venv" || die "cannot create the virtual environment in $TARGET"
VPY="$TARGET/venv/bin/python"
say "installing $(grep -c '^[^#]' requirements.lock) wheels from wheelhouse/ (no index, hash-checked) ..."
# no pip configuration of this machine applies: a configured index or proxy would be dead on an air-gapped host
if ! PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
     "$VPY" -m pip install $QUIET --no-index --find-links "$HERE/wheelhouse" --only-binary=:all: \
     --require-hashes -r "$HERE/requirements.lock"; then
  rm -rf "$TARGET"
  die "pip could not install the wheels (see above); nothing was changed in $PREFIX/current"
fi

# --- 4. models and resources where the package looks for them (beside the xfr_desktop package) -------------------
SITE=$("$VPY" -c 'import pathlib, xfr_desktop; print(pathlib.Path(xfr_desktop.__file__).resolve().parents[1])') \
  || die "the installed package cannot be imported"
cp -R "$HERE/models" "$SITE/models"
cp -R "$HERE/resources" "$SITE/resources"
"$VPY" - <<'PYEOF' || { rm -rf "$TARGET"; die "post-install check failed (see above)"; }
from xfr_desktop.core.alignment import default_detector_path
from xfr_desktop.core.model import default_model_path
path = default_detector_path()
assert path.is_file(), f"face detector not found at {path}"
print(f"install.sh: face detector {path}")
model = default_model_path()
print(f"install.sh: default model {model}" if model.is_file() else
      "install.sh: WARNING: this bundle has no default model; pass --model to xfr and xfr-desktop")
PYEOF
"$TARGET/venv/bin/xfr" --version >/dev/null || die "the xfr command does not start"

# --- 5. switch `current` to the new version ------------------------------------------------------------------------
ln -sfn "versions/$VERSION-$BUNDLE_ID" "$PREFIX/current.new" && mv -T "$PREFIX/current.new" "$PREFIX/current"

# --- 6. commands on PATH, desktop entry, icon -----------------------------------------------------------------------
if [ "$BIN_DIR" != none ]; then
  mkdir -p "$BIN_DIR"
  ln -sfn "$PREFIX/current/venv/bin/xfr" "$BIN_DIR/xfr"
  ln -sfn "$PREFIX/current/venv/bin/xfr-desktop" "$BIN_DIR/xfr-desktop"
  case ":$PATH:" in *":$BIN_DIR:"*) ;; *) say "note: $BIN_DIR is not on PATH; add it or run $PREFIX/current/venv/bin/xfr-desktop" ;; esac
fi
if [ "$DESKTOP_ENTRY" = 1 ]; then
  mkdir -p "$APPS_DIR" "$ICONS_DIR/scalable/apps" "$ICONS_DIR/256x256/apps"
  cp "$HERE/resources/icons/xfr-desktop.svg" "$ICONS_DIR/scalable/apps/xfr-desktop.svg" 2>/dev/null || true
  cp "$HERE/resources/icons/xfr-desktop.png" "$ICONS_DIR/256x256/apps/xfr-desktop.png" 2>/dev/null || true
  sed -e "s|^Exec=.*|Exec=\"$PREFIX/current/venv/bin/xfr-desktop\"|" \
      -e "s|^TryExec=.*|TryExec=$PREFIX/current/venv/bin/xfr-desktop|" \
      "$HERE/linux/xfr-desktop.desktop" > "$APPS_DIR/xfr-desktop.desktop"
  command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$APPS_DIR" 2>/dev/null || true
  command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$ICONS_DIR" 2>/dev/null || true
  say "desktop entry $APPS_DIR/xfr-desktop.desktop"
fi
say "XFR Desktop $VERSION installed in $PREFIX/current ($(( $(date +%s) - START )) s)"
say "start it with: $PREFIX/current/venv/bin/xfr-desktop   (or xfr-desktop --demo for the sample case)"
