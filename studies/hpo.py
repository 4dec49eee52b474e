"""Hyperparameter search for LIF and QIF with an equal budget, then histories and importances side by side.

    python studies/hpo.py                      # synthetic data, 12 trials x 3 epochs per model
    python studies/hpo.py --quick              # a tiny budget (smoke run)
    python studies/hpo.py --models qif --trials 6 --epochs 2 --train-samples 400   # one model (e.g. in parallel)
    python studies/hpo.py --plot-only          # redraw from the netCDF files

Each model gets its own study (journal file ``hpo_<model>.log`` in ``--outdir``, or ``--storage URL``), the
built-in search space of the model (``spikeode.study.hpo.SEARCH_SPACES``) and the same fixed settings and number of
trials. Results: ``hpo_<model>.nc`` (one row per trial), ``hpo.png`` and ``hpo_summary.json`` (the best trial of
each model: validation and test accuracy and hyperparameters). Rerunning continues the studies.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import spikeode

os.environ.setdefault("EQX_ON_ERROR", "nan")  # lets JAX cache compiled programs (before equinox is imported)
spikeode.use_fast_cpu_defaults()  # first, before any JAX computation: faster CPU code for event loops


def run_model(neuron: str, args) -> Path:
    from spikeode.study.hpo import default_space, run_search
    from spikeode.training import default_config

    fixed = {"epochs": args.epochs, "train_samples": args.train_samples, "test_samples": args.test_samples,
             "validation_fraction": args.validation_fraction, "seed": args.seed}
    base = default_config(args.data, neuron, **fixed)
    out = args.outdir / f"hpo_{neuron}.nc"
    storage = args.storage or str(args.outdir / f"hpo_{neuron}.log")
    print(f"== {neuron}: {args.trials} trials of {args.epochs} epochs on {args.data} ({args.train_samples} train)")
    run_search(base, default_space(neuron, base.init, base.data), storage=storage,
               study_name=f"{args.study_prefix}{neuron}",
               n_trials=args.trials, out=out, seed=args.seed, pruner=args.pruner,
               echo=lambda line: print(f"{neuron}: {line}", flush=True))
    return out


def _param_value(raw, spec: dict):
    if "choices" in spec:
        for choice in spec["choices"]:
            if isinstance(choice, bool) or isinstance(raw, (bool, int)) and not isinstance(choice, str):
                if not isinstance(raw, str) and float(raw) == float(choice):
                    return choice
            elif str(choice) == str(raw) or choice == raw:
                return choice
        raise ValueError(f"value {raw!r} is not one of {spec['choices']}")
    return int(raw) if "int" in spec else float(raw)


def importances(ds) -> dict[str, float]:
    """Optuna's default parameter importances of the complete trials stored in an ``hpo.nc`` Dataset."""
    import optuna

    from spikeode.study.hpo import distributions

    space = json.loads(ds.attrs["search_space_json"])
    names = json.loads(ds.attrs["hyperparameters_json"])  # variable -> hyperparameter name
    dists = distributions(space)
    study = optuna.create_study(direction="maximize")
    for i in range(ds.sizes["trial"]):
        row = ds.isel(trial=i)
        if str(row.state.values) != "COMPLETE":
            continue
        params = {name: _param_value(row[var].values.item(), space[name]) for var, name in names.items()}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                  value=float(row.objective.values)))
    if len(study.trials) < 2:
        return {}
    try:
        return optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):
        return {}


def plot(files: list[Path], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from spikeode.io.netcdf import read_dataset

    fig, axes = plt.subplots(2, len(files), figsize=(6 * len(files), 8), squeeze=False)
    for col, path in enumerate(files):
        ds = read_dataset(path)
        model = ds.attrs.get("neuron_model", path.stem)
        order = np.argsort(ds.trial.values)
        trial, value = ds.trial.values[order], ds.objective.values[order]
        states = ds.state.values[order]
        ax = axes[0, col]
        for state, marker in (("COMPLETE", "o"), ("PRUNED", "x"), ("FAIL", "s")):
            sel = states == state
            if sel.any():
                ax.plot(trial[sel], value[sel], marker, ls="", label=state.lower(), alpha=0.8)
        best = np.fmax.accumulate(np.where(states == "COMPLETE", value, np.nan))
        ax.step(trial, best, where="post", color="k", label="best so far")
        ax.plot(trial, ds.test_accuracy.values[order], ".", color="tab:red", alpha=0.5, label="test (not used)")
        ax.set(xlabel="trial", ylabel="validation accuracy (final epoch)", title=f"{model}: optimisation history",
               ylim=(0, 1))
        ax.legend(fontsize=8)
        imp = importances(ds)
        ax = axes[1, col]
        if imp:
            names = list(imp)[::-1]
            ax.barh(names, [imp[n] for n in names])
            ax.set(xlabel="importance (Optuna default evaluator)", title=f"{model}: parameter importances")
        else:
            ax.text(0.5, 0.5, "too few complete trials for importances", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)


def summary(files: list[Path]) -> dict:
    import numpy as np

    from spikeode.io.netcdf import read_dataset

    out = {}
    for path in files:
        ds = read_dataset(path)
        complete = ds.where(ds.state == "COMPLETE", drop=True)
        model = ds.attrs.get("neuron_model", path.stem)
        if complete.sizes["trial"] == 0:
            out[model] = {"trials": int(ds.sizes["trial"]), "complete": 0}
            continue
        best = complete.isel(trial=int(np.nanargmax(complete.objective.values)))
        names = json.loads(ds.attrs["hyperparameters_json"])
        space = json.loads(ds.attrs["search_space_json"])
        out[model] = {
            "trials": int(ds.sizes["trial"]),
            "complete": int(complete.sizes["trial"]),
            "best_trial": int(best.trial),
            "validation_accuracy": float(best.objective),
            "test_accuracy": float(best.test_accuracy),
            "params": {name: _param_value(best[var].values.item(), space[name]) for var, name in names.items()},
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="lif,qif", help="comma-separated neuron models")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--trials", type=int, default=12, help="trials per model (this run)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-samples", type=int, default=400)
    p.add_argument("--test-samples", type=int, default=200)
    p.add_argument("--validation-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pruner", default="median", choices=["median", "none"])
    p.add_argument("--storage", default=None, help="DB URL shared by all models (default: a journal file each)")
    p.add_argument("--study-prefix", default="hpo_")
    p.add_argument("--outdir", type=Path, default=Path("studies/out/hpo"))
    p.add_argument("--quick", action="store_true", help="tiny budget: 2 trials of 1 epoch on 48 samples")
    p.add_argument("--plot-only", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.trials, args.epochs, args.train_samples, args.test_samples = 2, 1, 48, 32
    args.outdir.mkdir(parents=True, exist_ok=True)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.plot_only:
        for neuron in models:
            run_model(neuron, args)
    files = [args.outdir / f"hpo_{m}.nc" for m in models if (args.outdir / f"hpo_{m}.nc").exists()]
    if not files:
        raise SystemExit(f"no results in {args.outdir}")
    plot(files, args.outdir / "hpo.png")
    table = summary(files)
    (args.outdir / "hpo_summary.json").write_text(json.dumps(table, indent=1))
    print(json.dumps(table, indent=1))
    print(f"figure {args.outdir / 'hpo.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
