"""``summary.md``: the claims table first, then per-model metrics and each winner's hyperparameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from spikeode.study.report.layout import StudyLayout
from spikeode.study.report.summary import study_config
from spikeode.study.stats import MIN_N, Claim

__all__ = ["claims_markdown", "summary_markdown"]

#: hyperparameters of a winner that summary.md shows
SHOWN_HYPERPARAMETERS = ("lr", "optimizer", "hidden", "neuron_params", "temperature", "gamma", "init", "weight_mean",
                         "weight_std", "T", "batch_size")


def _fmt(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:+.3g}" if abs(x) < 1e4 else f"{x:+.3e}"


def claims_markdown(claims: list[Claim]) -> list[str]:
    """The claims table: one row per claim with its number, 95 % CI, method, n and verdict."""
    lines = ["| claim | quantity | number | 95% CI | method | n | verdict |", "|---|---|---|---|---|---|---|"]
    for c in claims:
        iv = c.interval
        n = " / ".join(f"{k} {g.upper()}" for g, k in zip(c.groups, iv.n)) if c.groups else str(iv.n)
        ci = "n/a (n < 2)" if not np.isfinite(iv.low) else f"[{_fmt(iv.low)}, {_fmt(iv.high)}]"
        lines.append(f"| `{c.name}` (claimed {c.assertion}) | {c.description} | {_fmt(iv.estimate)} | {ci} | "
                     f"{iv.method} | {n} | **{c.verdict}** |")
    return lines


def _mean_sd(da: xr.DataArray) -> str:
    values = da.values[np.isfinite(da.values)]
    return "n/a" if not values.size else f"{values.mean():.3f} ± {values.std(ddof=1) if values.size > 1 else 0:.3f}"


def _per_model_rows(summary: xr.Dataset) -> list[str]:
    """One row per metric: mean ± sd over seeds, planes or samples per model; then the per-model scalars."""
    models = list(summary.neuron_model.values)
    lines = ["| metric | " + " | ".join(m.upper() for m in models) + " |", "|---|" + "---|" * len(models)]
    rows = [(summary.final_test_accuracy, "test accuracy, real spikes (mean ± sd over seeds)")]
    rows += [(summary[n], f"{summary[n].attrs['long_name']} (mean ± sd over planes)")
             for n in summary.data_vars if summary[n].dims == ("neuron_model", "plane")]
    rows += [(summary[n], f"{summary[n].attrs['long_name']} (mean ± sd over seeds)")
             for n in summary.data_vars if n.startswith("gradient_plane_")]
    rows += [(summary[n], f"{summary[n].attrs['long_name']} (mean ± sd over samples)")
             for n in summary.data_vars if summary[n].dims == ("neuron_model", "scan_sample")]
    for da, label in rows:
        lines.append(f"| {label} | " + " | ".join(_mean_sd(da.sel(neuron_model=m)) for m in models) + " |")
    for name in summary.data_vars:
        if summary[name].dims == ("neuron_model",):
            lines.append(f"| {summary[name].attrs.get('long_name', name)} | " + " | ".join(
                f"{float(v):.4g}" for v in summary[name].values) + " |")
    return lines


def summary_markdown(summary: xr.Dataset, claims: list[Claim], study_dir: Path, layout: StudyLayout) -> str:
    """The text of ``summary.md``."""
    config = study_config(study_dir)
    lines = [f"# {layout.title} — study summary", "",
             f"**Pair:** {summary.attrs['pair']}.  ",
             (f"**Data:** {summary.attrs['data_source']}; HPO budget {config.get('hpo_trials', '?')} trials per model "
             f"({config.get('hpo_epochs', '?')} epochs each); winners retrained with seeds {config.get('seeds', '?')} "
             f"for {config.get('retrain_epochs', '?')} epochs."), "",
             "## The seed's claims", "",
             ("Each row: the number, its 95% confidence interval (method named; `spikeode.study.stats`), the group "
              "sizes and the verdict: **holds** when the interval excludes the reference on the claimed side, **does "
              "not hold** when it excludes it on the other side, **inconclusive at this budget** otherwise, and "
              f"whenever a group has fewer than {MIN_N} values."), ""]
    lines += claims_markdown(claims)
    lines += ["", "## Per model", ""] + _per_model_rows(summary)
    for m in summary.neuron_model.values:
        best = layout.path(study_dir, "best", model=str(m))
        if best.exists():
            params = json.loads(best.read_text())
            keep = {k: params[k] for k in SHOWN_HYPERPARAMETERS if k in params}
            lines += ["", f"Best hyperparameters, {str(m).upper()}: `{json.dumps(keep)}`"]
    lines += ["", "Figures: " + ", ".join(f"`{p.name}`" for p in sorted(study_dir.glob("*.png")))]
    return "\n".join(lines) + "\n"
