"""``spikeode check --neuron NAME``: exactness report of a neuron model (float64)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "check",
        help="exactness report of a neuron model (analytic, closed form vs diffrax, finite differences)",
        description=__doc__,
    )
    p.add_argument("--neuron", required=True, help="lif | qif | eif | package.module:Class")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input trains")
    p.add_argument("--variant", action="append", default=None, metavar="LABEL",
                   help="only this variant (repeatable; labels as in the report's first column)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spikeode.precision import ensure_precision

    ensure_precision("float64")
    from spikeode.check import format_rows, run_check

    rows = run_check(args.neuron, seed=args.seed, variants=args.variant)
    print(format_rows(rows))
    failed = [r for r in rows if not r.passed]
    for r in failed:
        print(f"FAILED: {r.variant}: {r.quantity} = {r.error:.3e} > {r.tolerance:.0e} {r.note}".rstrip())
    return 1 if failed else 0
