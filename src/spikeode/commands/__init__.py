"""Subcommands of the ``spikeode`` CLI: each module has ``register(subparsers)``."""
