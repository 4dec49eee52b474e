"""``spikeode report DIR``: every figure, ``summary.nc`` and ``summary.md`` of a study, from its netCDF files alone.

Reads what ``studies/lif_vs_qif.py`` writes (each part optional, a missing one is skipped and named):
``runs/<model>/seed<k>/run.nc``, ``hpo_<model>.nc``, ``gradstats.nc``, ``landscape_<model>.nc``,
``samples_<model>.nc``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from .plotting import axis_label, model_color, plot_learning_curves, plt, save
from .results import provenance_attrs, read_dataset, variable, write_dataset

__all__ = ["collect_runs", "summary_dataset", "make_report"]

MODELS = ("lif", "qif")


def collect_runs(study_dir: Path) -> dict[str, dict[int, xr.Dataset]]:
    """``{model: {seed: run.nc Dataset}}`` of ``runs/<model>/seed<k>/``."""
    runs: dict[str, dict[int, xr.Dataset]] = {}
    for path in sorted(study_dir.glob("runs/*/seed*/run.nc")):
        model, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
        runs.setdefault(model, {})[seed] = read_dataset(path)
    return runs


def _landscape_metrics(ds: xr.Dataset) -> dict[str, float]:
    """The scalar summary metrics a landscape file stores (0-d variables)."""
    return {name: float(ds[name]) for name in ds.data_vars if ds[name].ndim == 0}


def summary_dataset(study_dir: Path) -> xr.Dataset:
    """One Dataset: learning curves on (``neuron_model``, ``seed``, ``epoch``) plus per-model summary metrics."""
    runs = collect_runs(study_dir)
    if not runs:
        raise FileNotFoundError(f"{study_dir} has no runs/<model>/seed<k>/run.nc")
    models = sorted(runs)
    seeds = sorted({s for per_model in runs.values() for s in per_model})
    epochs = sorted({int(e) for per_model in runs.values() for ds in per_model.values() for e in ds.epoch.values})
    curves = {}
    for name in ("test_accuracy", "test_accuracy_real", "train_loss", "test_loss", "grad_norm"):
        values = np.full((len(models), len(seeds), len(epochs)), np.nan)
        template = None
        for i, m in enumerate(models):
            for j, s in enumerate(seeds):
                ds = runs[m].get(s)
                if ds is not None:
                    template = ds[name]
                    values[i, j, [epochs.index(int(e)) for e in ds.epoch.values]] = ds[name].values
        curves[name] = variable(("neuron_model", "seed", "epoch"), values, template.attrs["long_name"],
                                template.attrs.get("units", "1"))
    silent = np.full((len(models), len(seeds), len(epochs)), np.nan)
    for i, m in enumerate(models):
        for j, s in enumerate(seeds):
            ds = runs[m].get(s)
            if ds is not None:
                silent[i, j, [epochs.index(int(e)) for e in ds.epoch.values]] = ds.silent_fraction.isel(layer=0).values
    curves["hidden_silent_fraction"] = variable(("neuron_model", "seed", "epoch"), silent,
                                                "fraction of first-hidden-layer neurons silent on the test split")
    final = np.array([[float(runs[m][s].test_accuracy[-1]) if s in runs[m] else np.nan for s in seeds] for m in models])
    curves["final_test_accuracy"] = variable(("neuron_model", "seed"), final, "test accuracy after the last epoch")
    metrics: dict[str, np.ndarray] = {}
    for i, m in enumerate(models):
        path = study_dir / f"landscape_{m}.nc"
        if path.exists():
            for key, value in _landscape_metrics(read_dataset(path)).items():
                metrics.setdefault(key, np.full(len(models), np.nan))[i] = value
        hpo = study_dir / f"hpo_{m}.nc"
        if hpo.exists():
            h = read_dataset(hpo)
            metrics.setdefault("hpo_best_objective", np.full(len(models), np.nan))[i] = float(np.nanmax(h.objective))
            metrics.setdefault("hpo_trials", np.full(len(models), np.nan))[i] = float(h.sizes["trial"])
    for key, values in metrics.items():
        curves[f"landscape_{key}" if not key.startswith("hpo_") else key] = variable(
            ("neuron_model",), values, key.replace("_", " "))
    ds = xr.Dataset(curves, coords={"neuron_model": models, "seed": seeds, "epoch": epochs})
    study = study_dir / "study.json"
    config = json.loads(study.read_text()) if study.exists() else {}
    ds.attrs.update(provenance_attrs("spikeode study summary: LIF vs QIF", config, None))
    return ds


def _plot_hpo(study_dir: Path, path: Path) -> Path | None:
    files = {m: study_dir / f"hpo_{m}.nc" for m in MODELS if (study_dir / f"hpo_{m}.nc").exists()}
    if not files:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
    for m, f in files.items():
        h = read_dataset(f)
        values = h.objective.values.astype(float)
        ax.plot(h.trial.values, values, "o", color=model_color(m), alpha=0.5, ms=4)
        ax.plot(h.trial.values, np.fmax.accumulate(np.where(np.isfinite(values), values, -np.inf)),
                "-", color=model_color(m), label=f"{m.upper()} best so far")
        ax.set_ylabel(axis_label(h.objective))
    ax.set_xlabel("trial")
    ax.set_title("hyperparameter search (equal budget)")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return save(fig, path)


def _plot_landscapes(study_dir: Path, path: Path) -> Path | None:
    files = {m: study_dir / f"landscape_{m}.nc" for m in MODELS if (study_dir / f"landscape_{m}.nc").exists()}
    if not files:
        return None
    fig, axes = plt.subplots(2, len(files), figsize=(5.2 * len(files), 8), constrained_layout=True, squeeze=False)
    for col, (m, f) in enumerate(files.items()):
        ds = read_dataset(f)
        for row, name in enumerate(("loss", "grad_norm")):
            ax = axes[row, col]
            da = ds[name]
            if "beta" in da.dims:
                mesh = ax.pcolormesh(ds.alpha, ds.beta, da.transpose("beta", "alpha"), shading="auto", cmap="viridis")
                fig.colorbar(mesh, ax=ax, label=axis_label(da))
                ax.set_ylabel(axis_label(ds.beta))
            else:
                ax.plot(ds.alpha, da, color=model_color(m))
                ax.set_ylabel(axis_label(da))
            ax.set_xlabel(axis_label(ds.alpha))
            ax.set_title(f"{m.upper()}: {da.attrs.get('long_name', name)}", fontsize=10)
    return save(fig, path)


def _plot_samples(study_dir: Path, path: Path) -> Path | None:
    files = {m: study_dir / f"samples_{m}.nc" for m in MODELS if (study_dir / f"samples_{m}.nc").exists()}
    if not files:
        return None
    fig, axes = plt.subplots(2, len(files), figsize=(6 * len(files), 7), constrained_layout=True, squeeze=False,
                             sharex="col")
    for col, (m, f) in enumerate(files.items()):
        ds = read_dataset(f).isel(sample=0)
        alpha = ds.alpha.values
        ax = axes[0, col]
        ax.plot(alpha, ds.loss, color=model_color(m), lw=1.2)
        _mark_events(ax, ds, alpha)
        ax.set_ylabel(axis_label(ds.loss))
        ax.set_title(f"{m.upper()}: single-sample scan (sample {int(ds.sample)})", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=False, fontsize=8, loc="best")
        ax = axes[1, col]
        times = ds.spike_times.isel(layer=-1)  # output layer: (alpha, neuron, slot)
        for n in range(times.sizes["neuron"]):
            t = times.isel(neuron=n).values
            a = np.broadcast_to(alpha[:, None], t.shape)
            ok = np.isfinite(t)
            ax.plot(a[ok], t[ok], ".", ms=3, color=plt.cm.tab20(n % 20))
        _mark_events(ax, ds, alpha, legend=False)
        ax.set_xlabel(axis_label(ds.alpha))
        ax.set_ylabel("output spike times")
    return save(fig, path)


def _mark_events(ax, ds: xr.Dataset, alpha: np.ndarray, legend: bool = True) -> None:
    """Vertical markers at alpha edges with spike (dis)appearances and order changes (any layer)."""
    style = {"spike_appearances": ("#2ca02c", "-"), "spike_disappearances": ("#9467bd", "-"),
             "order_changes": ("#ff7f0e", ":")}
    for name, (color, ls) in style.items():
        if name not in ds:
            continue
        da = ds[name]
        if "edge" in da.dims:
            da = da.isel(edge=0)
        if "layer" in da.dims:
            da = da.sum("layer")
        edges = np.flatnonzero(np.nan_to_num(da.values) > 0)
        for k, e in enumerate(edges):
            mid = 0.5 * (alpha[e] + alpha[min(e + 1, len(alpha) - 1)])
            ax.axvline(mid, color=color, ls=ls, lw=0.8, alpha=0.7,
                       label=name.replace("_", " ") if (legend and k == 0) else None)


def _markdown(summary: xr.Dataset, study_dir: Path) -> str:
    study = study_dir / "study.json"
    config = json.loads(study.read_text()) if study.exists() else {}
    lines = ["# LIF vs QIF — study summary", "",
             f"Data: `{config.get('data', '?')}`; HPO budget: {config.get('hpo_trials', '?')} trials per model "
             f"({config.get('hpo_epochs', '?')} epochs each); winners retrained with seeds {config.get('seeds', '?')} "
             f"for {config.get('retrain_epochs', '?')} epochs.", ""]
    lines += ["| metric | " + " | ".join(m.upper() for m in summary.neuron_model.values) + " |",
              "|---|" + "---|" * summary.sizes["neuron_model"]]
    acc = summary.final_test_accuracy
    lines.append("| test accuracy (mean ± std over seeds) | " + " | ".join(
        f"{float(acc.sel(neuron_model=m).mean()):.3f} ± {float(acc.sel(neuron_model=m).std()):.3f}"
        for m in summary.neuron_model.values) + " |")
    for name in summary.data_vars:
        if summary[name].dims == ("neuron_model",):
            lines.append(f"| {summary[name].attrs.get('long_name', name)} | " + " | ".join(
                f"{float(v):.4g}" for v in summary[name].values) + " |")
    for m in summary.neuron_model.values:
        best = study_dir / f"best_{m}.json"
        if best.exists():
            params = json.loads(best.read_text())
            keep = {k: params[k] for k in ("lr", "optimizer", "hidden", "neuron_params", "temperature", "gamma",
                                           "weight_mean", "weight_std", "T", "batch_size") if k in params}
            lines += ["", f"Best hyperparameters, {m.upper()}: `{json.dumps(keep)}`"]
    lines += ["", "Figures: " + ", ".join(f"`{p.name}`" for p in sorted(study_dir.glob("*.png")))]
    return "\n".join(lines) + "\n"


def make_report(study_dir: str | Path) -> list[Path]:
    """Write ``summary.nc``, every figure and ``summary.md``; returns the files written."""
    study_dir = Path(study_dir)
    written = []
    summary = summary_dataset(study_dir)
    written.append(write_dataset(summary, study_dir / "summary.nc"))
    runs = collect_runs(study_dir)
    written.append(plot_learning_curves({m: list(per.values()) for m, per in sorted(runs.items())},
                                        study_dir / "learning_curves.png"))
    for maker, name in ((_plot_hpo, "hpo.png"), (_plot_landscapes, "landscapes.png"), (_plot_samples, "samples.png")):
        out = maker(study_dir, study_dir / name)
        if out is None:
            print(f"report: no input for {name}, skipped")
        else:
            written.append(out)
    gradstats = study_dir / "gradstats.nc"
    if gradstats.exists():
        from .gradstats import plot_gradstats

        written.append(plot_gradstats(read_dataset(gradstats), study_dir / "gradstats.png"))
    md = study_dir / "summary.md"
    md.write_text(_markdown(summary, study_dir))
    written.append(md)
    return written
