"""``spikeode bench``: throughput, compile time and peak memory on standard workloads.

Each run (workload x integrator x mode x size) is measured in a fresh subprocess. Lists of
``--input-spikes`` / ``--hidden`` give a scaling table in one call.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    from spikeode.bench import INTEGRATORS, MODES, WORKLOADS

    p = subparsers.add_parser("bench", help="throughput / compile time / peak memory of the engine", description=__doc__)
    p.add_argument("--workload", nargs="+", default=["shd"], choices=sorted(WORKLOADS), help="default: shd")
    p.add_argument("--integrator", default="closed_form", choices=[*INTEGRATORS, "both"])
    p.add_argument("--mode", default="both", choices=[*MODES, "both"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--input-spikes", type=int, nargs="+", default=[2000], help="input spikes per sample (list: scaling)")
    p.add_argument("--hidden", type=int, nargs="+", default=[128], help="hidden width (list: scaling)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=5, help="steady-state calls timed per run (median)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per run")
    p.add_argument("--gradient", default="autodiff", choices=["autodiff", "adjoint"],
                   help="reverse mode through the event loop (autodiff) or the event adjoint")
    p.add_argument("--json", action="store_true", help="print one JSON object per run instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spikeode.bench import (
        INTEGRATORS,
        MODES,
        expand_runs,
        flagged_warnings,
        format_table,
        run_in_subprocess,
    )

    runs = expand_runs(
        args.workload,
        INTEGRATORS if args.integrator == "both" else [args.integrator],
        MODES if args.mode == "both" else [args.mode],
        dtype=args.dtype,
        batch=args.batch,
        input_spikes=args.input_spikes,
        hidden=args.hidden,
        repeats=args.repeats,
        gradient=args.gradient,
    )
    results = []
    for cfg in runs:
        result = run_in_subprocess(cfg, timeout=args.timeout)
        results.append(result)
        if args.json:
            print(json.dumps(result), flush=True)
    if not args.json:
        print(format_table(results))
    for line in flagged_warnings(results):
        print(line, file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0
