"""``spikeode landscape``: loss and gradient landscapes around a trained checkpoint, with spike-order
diagnostics (spike appearances/disappearances, order changes, loss jumps) -> a netCDF file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def register(subparsers) -> None:
    p = subparsers.add_parser("landscape", help="loss/gradient landscapes and spike-order diagnostics",
                              description=__doc__)
    p.add_argument("--run", type=Path, required=True, help="run directory of `spikeode train` (checkpoint)")
    p.add_argument("--kind", choices=("2d", "1d", "sample"), default="2d",
                   help="2d: alpha x beta over a batch; 1d: alpha over a batch; sample: alpha per single sample")
    p.add_argument("--points", type=int, default=21, help="grid points per axis")
    p.add_argument("--span", type=float, default=1.0, help="grid covers [-span, span] per axis")
    p.add_argument("--out", type=Path, required=True, help="netCDF file (resumed if it exists)")
    p.add_argument("--train-samples", type=int, default=256,
                   help="seeded training subset (as `spikeode train --train-samples N`); the batch of 2d/1d")
    p.add_argument("--samples", type=_ints, default=(0,), help="sample indices into that subset (kind sample)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions")
    p.add_argument("--direction", default="random", help="alpha direction: random | gradient | checkpoint:DIR")
    p.add_argument("--point-batch", type=int, default=4, help="parameter offsets per vmapped evaluation")
    p.add_argument("--chunk-rows", type=int, default=None, help="alpha rows per chunk (default points/4)")
    p.add_argument("--dask-scheduler", default=None, help="address of a Dask distributed scheduler (default none)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    meta = json.loads((args.run / "checkpoint.json").read_text()) if (args.run / "checkpoint.json").exists() else None
    if meta is None:
        raise FileNotFoundError(f"no checkpoint in {args.run}")
    from spikeode.precision import ensure_precision

    ensure_precision(meta["config"].get("dtype", "float32"))
    from spikeode.study.landscape import LandscapeConfig, compute_landscape

    lc = LandscapeConfig(run=str(args.run), kind=args.kind, points=args.points, span=args.span, seed=args.seed,
                         train_samples=args.train_samples, samples=args.samples, direction=args.direction,
                         point_batch=args.point_batch, chunk_rows=args.chunk_rows)
    t0 = time.perf_counter()
    ds = compute_landscape(lc, args.out, progress=not args.quiet, dask_scheduler=args.dask_scheduler)
    wall = time.perf_counter() - t0
    print(f"landscape written to {args.out} in {wall:.1f} s: jump_fraction {float(ds.jump_fraction):.3f}, "
          f"gradient_cosine_mean {float(ds.gradient_cosine_mean):.3f}, "
          f"slope_correlation {float(ds.slope_correlation):.3f}")
    return 0
