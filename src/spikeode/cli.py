"""The ``spikeode`` command: one entry point, one module per subcommand in ``spikeode.commands``.

``main`` applies :func:`spikeode.use_fast_cpu_defaults` before anything else, so every subcommand runs
with the measured XLA CPU defaults (``SPIKEODE_XLA_DEFAULTS=0`` opts out).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from spikeode import __version__
from spikeode import commands
from spikeode import use_fast_cpu_defaults


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikeode",
        description="Spiking neural networks as declarative ODEs with exact, event-based gradients.",
    )
    parser.add_argument("--version", action="version", version=f"spikeode {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    use_fast_cpu_defaults()  # before any subcommand imports JAX or computes
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"spikeode {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
