"""`xfr` sub-commands: one module per command group, each exposing ``register(subparsers)``.

A registered parser sets ``func=run`` where ``run(args) -> int`` is the exit code.
"""
