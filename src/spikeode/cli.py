"""The ``spikeode`` command: one entry point, one module per subcommand in ``spikeode.commands``.

``main`` applies :func:`spikeode.use_fast_cpu_defaults` before anything else, so every subcommand runs
with the measured XLA CPU defaults (``SPIKEODE_XLA_DEFAULTS=0`` opts out), and
:func:`spikeode.enable_compilation_cache` for every subcommand but ``bench`` (which measures compile
times), so a program compiled by an earlier run is loaded (``SPIKEODE_COMPILATION_CACHE=0`` opts out).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from spikeode import __version__, commands, enable_compilation_cache, use_fast_cpu_defaults

#: Subcommands that run without the persistent compilation cache (they measure compilation).
UNCACHED = frozenset({"bench"})


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
    if args.command not in UNCACHED:
        enable_compilation_cache()
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"spikeode {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
