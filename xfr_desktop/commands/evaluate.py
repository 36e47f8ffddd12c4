"""`xfr evaluate`: verification accuracy (verify), the hiding game (hiding-game) and explanation quality
(explanations)."""
from __future__ import annotations

import importlib
import importlib.util

SUBCOMMANDS = ["evaluate_verify", "evaluate_hiding", "evaluate_explanations"]


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="evaluate a model or the explanation methods on a pair list")
    sub = parser.add_subparsers(dest="evaluate_command", metavar="WHAT")
    for name in SUBCOMMANDS:
        modname = f"xfr_desktop.commands.{name}"
        if importlib.util.find_spec(modname) is not None:
            importlib.import_module(modname).register(sub)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
