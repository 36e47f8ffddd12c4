"""The `xfr` command line. Sub-command groups live in `xfr_desktop.commands`, imported only when present."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys

from . import __version__

# Order is the order of `xfr --help`.
COMMAND_MODULES = [
    "explain", "demo", "evaluate", "calibrate", "models", "train", "cases", "report", "keys", "audit",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xfr", description="XFR Desktop: explainable face recognition.")
    parser.add_argument("--version", action="version", version=f"xfr {__version__}")
    parser.add_argument("--data-dir", help="folder of the case database and image store (default: the user data dir)")
    parser.add_argument("--examiner", dest="acting_examiner", metavar="NAME",
                        help="record audited actions under NAME (as each writing command's --examiner)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        modname = f"xfr_desktop.commands.{name}"
        if importlib.util.find_spec(modname) is None:
            continue
        importlib.import_module(modname).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .core.errors import XfrError, user_message

    # Before torch loads: idle OpenMP threads sleep instead of spinning (torch's busy-wait made 2-thread runs
    # many times slower on a shared machine).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # repeated by --workers (core/evaluation/sharding.py)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("xfr: interrupted", file=sys.stderr)
        return 130
    except (XfrError, MemoryError, OSError) as exc:  # OSError: full disk, permissions (says what and where)
        print(f"xfr: error: {user_message(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
