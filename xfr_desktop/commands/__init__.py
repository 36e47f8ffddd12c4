"""`xfr` sub-commands: one module per command group, each exposing ``register(subparsers)``.

A registered parser sets ``func=run`` where ``run(args) -> int`` is the exit code.
"""

import argparse


def add_examiner_option(parser) -> None:
    """``--examiner NAME``: who audited writes are recorded under (before the preference, the case's examiner and
    the login; ``store.actor_name``). Global, and repeated on the commands that write (SUPPRESS: a command without
    it keeps the global value; `xfr --examiner NAME` is the global form)."""
    parser.add_argument("--examiner", dest="acting_examiner", metavar="NAME", default=argparse.SUPPRESS,
                        help="record audited actions under NAME (default: the examiner's name in the preferences, "
                             "else the case's examiner, else the login name)")
