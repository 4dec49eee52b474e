"""LIF vs QIF loss and gradient landscapes, side by side.

    python studies/landscape.py --lif RUN_LIF --qif RUN_QIF --out DIR [--train]

For each model: a 2-D landscape over a batch (``DIR/landscape_2d_{lif,qif}.nc``) and single-sample 1-D
scans (``DIR/landscape_sample_{lif,qif}.nc``); a figure ``DIR/landscape.png`` (loss and gradient-norm
landscapes with colour bars, LIF | QIF) and ``DIR/landscape_summary.json`` (fragmentation and gradient
metrics of the 2-D landscapes, event statistics of the scans). Every file resumes: rerunning finishes
what is missing and recomputes nothing. With ``--train`` a missing run directory is trained first
(``spikeode train --data synthetic --neuron NAME --epochs E --train-samples N``, same budget for both).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import spikeode

spikeode.use_fast_cpu_defaults()  # first, before any JAX computation: faster CPU code for event loops


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lif", type=Path, required=True, help="run directory of the LIF network")
    p.add_argument("--qif", type=Path, required=True, help="run directory of the QIF network")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--train", action="store_true", help="train missing runs first (same budget for both)")
    p.add_argument("--epochs", type=int, default=4, help="training epochs with --train")
    p.add_argument("--train-budget", type=int, default=400, help="training samples with --train")
    p.add_argument("--points", type=int, default=21, help="2-D grid points per axis")
    p.add_argument("--span", type=float, default=0.5, help="grid half-width (filter-normalised units)")
    p.add_argument("--train-samples", type=int, default=256, help="batch of the 2-D landscape")
    p.add_argument("--samples", default="0,1,2,3", help="samples of the 1-D single-sample scans")
    p.add_argument("--scan-train-samples", type=int, default=256,
                   help="training subset the scans' sample indices refer to")
    p.add_argument("--sample-points", type=int, default=201, help="points of each single-sample scan")
    p.add_argument("--seed", type=int, default=0, help="seed of the directions")
    p.add_argument("--point-batch", type=int, default=4, help="offsets per vmapped evaluation")
    p.add_argument("--dask-scheduler", default=None, help="Dask scheduler address (default: in process)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    runs = {"lif": args.lif, "qif": args.qif}
    for name, run in runs.items():
        if not (run / "checkpoint.json").exists():
            if not args.train:
                p.error(f"{run} holds no checkpoint; pass --train to train it")
            subprocess.run([sys.executable, "-m", "spikeode.cli", "train", "--data", "synthetic", "--neuron", name,
                            "--epochs", str(args.epochs), "--train-samples", str(args.train_budget),
                            "--out", str(run)] + (["--quiet"] if args.quiet else []), check=True)

    from spikeode.io.plotting import plot_landscape_planes
    from spikeode.study.diagnostics import scan_statistics
    from spikeode.study.landscape import LandscapeConfig, compute_landscape

    args.out.mkdir(parents=True, exist_ok=True)
    samples = tuple(int(s) for s in args.samples.split(","))
    grids, scans, summary = {}, {}, {}
    for name, run in runs.items():
        t0 = time.perf_counter()
        lc = LandscapeConfig(run=str(run), kind="2d", points=args.points, span=args.span, seed=args.seed,
                             train_samples=args.train_samples, point_batch=args.point_batch)
        grids[name] = compute_landscape(lc, args.out / f"landscape_2d_{name}.nc", progress=not args.quiet,
                                        dask_scheduler=args.dask_scheduler)
        t1 = time.perf_counter()
        lc = LandscapeConfig(run=str(run), kind="sample", points=args.sample_points, span=args.span, seed=args.seed,
                             train_samples=args.scan_train_samples, samples=samples,
                             point_batch=2 * args.point_batch)
        scans[name] = compute_landscape(lc, args.out / f"landscape_sample_{name}.nc", progress=not args.quiet,
                                        dask_scheduler=args.dask_scheduler)
        t2 = time.perf_counter()
        g, s = grids[name], scans[name]
        T = json.loads(g.attrs["config_json"])["run_config"]["T"]
        summary[name] = {
            "grid": {k: float(g[k]) for k in ("jump_fraction", "loss_total_variation", "jump_variation_share",
                                              "gradient_cosine_mean", "slope_correlation", "slope_relative_error")},
            "grid_center_loss": float(g.loss.sel(alpha=0.0, beta=0.0, method="nearest")),
            "scan": {k: float(s[k]) for k in ("jump_fraction", "gradient_cosine_mean", "slope_correlation",
                                              "slope_relative_error")},
            "scan_events": scan_statistics(s.spike_times.values, s.is_jump.sel(edge="alpha").values,
                                           s.order_changes.sel(edge="alpha").values, T),
            "wall_s_this_invocation": {"grid": t1 - t0, "scan": t2 - t1},
        }
    (args.out / "landscape_summary.json").write_text(json.dumps(summary, indent=1))
    plot_landscape_planes(grids, args.out / "landscape.png")
    print(json.dumps(summary, indent=1))
    print(f"figure: {args.out / 'landscape.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
