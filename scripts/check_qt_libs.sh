#!/usr/bin/env bash
# Are the system libraries of Qt's xcb platform plugin (the app's window on a Linux desktop) installed? Qt itself
# names only xcb-cursor0 when any of them is missing, so ldd's "not found" lines are mapped to the Debian/Ubuntu
# packages here. One line naming what is missing and the apt-get command, exit 1; nothing and exit 0 when complete.
# XFR_QT_DIR: the PySide6 Qt folder (default: the one in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

# A missing library cannot be looked up with dpkg -S: Debian names library packages after the soname
# (libfoo.so.N -> libfooN, libfoo-1.so.N -> libfoo-1-N, lower case), except for these.
package_of() {
  case $1 in
    libglib-2.0.so.* | libgthread-2.0.so.*) echo libglib2.0-0 ;;
    libGLdispatch.so.*) echo libglvnd0 ;;
    *.so.*)
      local name=${1%%.so.*}
      [[ $name =~ [0-9]$ ]] && name+=-
      echo "$name${1##*.so.}" | tr '[:upper:]' '[:lower:]' ;;
    *) echo "$1" ;;
  esac
}

qt_dir=${XFR_QT_DIR:-$(ls -d .venv/lib/python3*/site-packages/PySide6/Qt 2>/dev/null | head -n 1)}
command -v ldd >/dev/null && [ -d "$qt_dir" ] || exit 0  # not glibc Linux, or no PySide6: nothing to check here

missing=$({ ldd "$qt_dir"/plugins/platforms/libqxcb.so "$qt_dir"/lib/libQt6XcbQpa.so* 2>/dev/null || true; } |
  awk '/=> not found/ {print $1}' | sort -u)
[ -z "$missing" ] && exit 0
packages=$(for lib in $missing; do package_of "$lib"; done | sort -u | tr '\n' ' ')
echo "xfr-desktop: the desktop window needs system libraries that are missing: ${packages% }" \
     "(Debian/Ubuntu: sudo apt-get install -y ${packages% }; README.md, System libraries)" >&2
exit 1
