"""``spikeode gradstats``: gradient statistics (SNR, cosine similarity, silent pathways, predictiveness)
of trained runs over training, combined into one netCDF file with dims (neuron_model, seed, epoch, layer).

Definitions: ``spikeode.study.gradstats.DEFINITIONS`` and each variable's ``description`` attribute.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("gradstats", help="gradient statistics of trained runs (issue 8)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", type=str, help="one run directory (holds checkpoint.json)")
    which.add_argument("--runs", type=str, nargs="+", help="run directories or globs, e.g. 'runs/*'")
    p.add_argument("--out", type=Path, default=None, help="netCDF output (default RUN/gradstats.nc for --run)")
    p.add_argument("--batches", type=int, default=16, help="minibatches of the training split (>= 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the minibatch draw")
    p.add_argument("--epochs", type=str, default=None,
                   help="comma list of epochs and/or first, middle, last, all (default: last)")
    p.add_argument("--every", type=int, default=None, help="every K-th stored epoch (and the last)")
    p.add_argument("--step-scales", type=lambda s: tuple(float(x) for x in s.split(",")), default=(0.5, 1.0, 2.0),
                   help="step scales s of the predictiveness steps -lr*s*c*g (1 is always added)")
    p.add_argument("--step-kind", choices=("auto", "sgd", "adam"), default="auto",
                   help="step length: sgd (c = 1), adam (each weight moves ~lr), auto (from the run's optimizer)")
    p.add_argument("--chunk", type=int, default=4, help="minibatches vmapped at once (memory vs speed)")
    p.add_argument("--probes", type=int, default=4,
                   help="minibatches (of --batches) for the step-based statistics and the zero fractions")
    p.add_argument("--plot", type=Path, default=None,
                   help="also write the figure (spikeode.io.plotting.plot_gradstats) here")
    p.add_argument("--quiet", action="store_true", help="no per-checkpoint lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.batches < 2:
        raise ValueError("--batches must be >= 2")
    from spikeode.io.netcdf import write_dataset
    from spikeode.io.plotting import plot_gradstats
    from spikeode.study.gradstats import run_gradstats

    runs = [args.run] if args.run else args.runs
    out = args.out or (Path(args.run) / "gradstats.nc" if args.run else None)
    if out is None:
        raise ValueError("--out is required with --runs")
    ds = run_gradstats(runs, n_batches=args.batches, seed=args.seed, epochs=args.epochs, every=args.every,
                       step_scales=args.step_scales, step_kind=args.step_kind, chunk=args.chunk, probes=args.probes,
                       progress=not args.quiet)
    write_dataset(ds, out)
    print(f"gradient statistics of {ds.sizes['neuron_model']} model(s) x {ds.sizes['seed']} seed(s) x "
          f"{ds.sizes['epoch']} epoch(s) in {out}")
    if args.plot:
        print(f"figure in {plot_gradstats(ds, args.plot)}")
    return 0
