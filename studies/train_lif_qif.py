"""Train LIF and QIF with the same budget and seeds; write both runs and a PNG of the learning curves.

    python studies/train_lif_qif.py --quick --out out/train_lif_qif          # minutes, synthetic data
    python studies/train_lif_qif.py --data yinyang --seeds 0 1 2 --out out/yy

Each run lives in OUT/<model>/seed<k>/ (run.nc, checkpoint.eqx) and resumes if interrupted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import spikeode

spikeode.use_fast_cpu_defaults()  # first, before any JAX computation: faster CPU code for event loops

from spikeode.io.plotting import plot_learning_curves  # noqa: E402
from spikeode.training import default_config, train  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic", help="synthetic | yinyang | shd:DIR")
    parser.add_argument("--out", type=Path, default=Path("out/train_lif_qif"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the data source's recipe")
    parser.add_argument("--quick", action="store_true", help="a small subset and few epochs (a smoke run)")
    args = parser.parse_args(argv)

    overrides = {}
    if args.quick:
        overrides = dict(train_samples=300, test_samples=150, epochs=3, hidden=(32,))
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    runs = {}
    for model in ("lif", "qif"):
        runs[model] = []
        for seed in args.seeds:
            config = default_config(args.data, model, seed=seed, **overrides)
            print(f"== {model.upper()} seed {seed}")
            runs[model].append(train(config, args.out / model / f"seed{seed}"))
    figure = plot_learning_curves(runs, args.out / "learning_curves.png")
    for model, histories in runs.items():
        finals = [float(h.test_accuracy[-1]) for h in histories]
        print(f"{model.upper()}: final test accuracy {', '.join(f'{a:.3f}' for a in finals)}")
    print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
