"""`python -m xfr_desktop ...` is the `xfr` command (the desktop app: `xfr-desktop` or `python -m
xfr_desktop.gui.app`)."""
import sys

from .cli import main

sys.exit(main())
