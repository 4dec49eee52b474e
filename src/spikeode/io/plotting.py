"""Figures from result Datasets. LIF and QIF keep the same colours in every figure.

Learning curves (``run.nc``), gradient statistics over training (``gradstats.nc``) and loss / gradient-norm
planes of 2-D landscapes (``landscape.nc``). Importing this module selects matplotlib's ``Agg`` backend.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

__all__ = ["GRADSTATS_PANELS", "MODEL_COLORS", "axis_label", "model_color", "plot_gradstats", "plot_landscape_planes",
           "plot_learning_curves", "real_accuracy", "save"]

MODEL_COLORS = {"lif": "#d62728", "qif": "#1f77b4", "eif": "#2ca02c"}


def model_color(name: str) -> str:
    return MODEL_COLORS.get(name.lower(), "#7f7f7f")


def axis_label(da: xr.DataArray) -> str:
    """``long_name [units]`` of a variable (units omitted when dimensionless)."""
    name = da.attrs.get("long_name", da.name)
    units = da.attrs.get("units", "1")
    return name if units in ("1", "", None) else f"{name} [{units}]"


def _accuracy_names(history: xr.Dataset) -> tuple[str, str]:
    """(real spikes only, with pseudospikes) test-accuracy names of a ``run.nc``: ``test_accuracy`` /
    ``test_accuracy_pseudo``, or, in files written before that naming, ``test_accuracy_real`` /
    ``test_accuracy``."""
    if "test_accuracy_pseudo" in history:
        return "test_accuracy", "test_accuracy_pseudo"
    if "test_accuracy_real" in history:
        return "test_accuracy_real", "test_accuracy"
    raise KeyError("the history holds neither test_accuracy_pseudo nor test_accuracy_real")


def real_accuracy(history: xr.Dataset) -> xr.DataArray:
    """The test accuracy of a ``run.nc`` history counting real spikes only (per epoch)."""
    return history[_accuracy_names(history)[0]]


def save(fig, path: str | Path, *, dpi: int = 130, tight: bool = True) -> Path:
    """Write ``fig`` to ``path`` (parent folders created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    plt.close(fig)
    return path


def plot_learning_curves(runs: Mapping[str, list[xr.Dataset]], path: str | Path) -> Path:
    """Test accuracy (real spikes only, and with pseudospikes) and silent fraction over epochs, mean ± spread over seeds.

    Args:
        runs: neuron model name -> the history Datasets (``run.nc``) of its seeds.
    """
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    real, pseudo = _accuracy_names(next(iter(runs.values()))[0])
    panels = [(real, None), (pseudo, None), ("silent_fraction", "hidden1")]
    for ax, (name, layer) in zip(axes, panels):
        for model, histories in runs.items():
            curves = [h[name].sel(layer=layer) if layer else h[name] for h in histories]
            stack = xr.concat(curves, dim="seed")
            mean, lo, hi = stack.mean("seed"), stack.min("seed"), stack.max("seed")
            color = model_color(model)
            ax.plot(mean["epoch"], mean, color=color, label=f"{model.upper()} (n={len(histories)})")
            if len(histories) > 1:
                ax.fill_between(mean["epoch"], lo, hi, color=color, alpha=0.2, linewidth=0)
        sample = next(iter(runs.values()))[0][name]
        ax.set_xlabel(axis_label(sample["epoch"]))
        ax.set_ylabel("fraction" if sample.attrs.get("units", "1") == "1" else sample.attrs["units"])
        title = sample.attrs.get("long_name", name) + (f" ({layer})" if layer else "")
        ax.set_title(textwrap.fill(title, 40), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False)
    fig.suptitle("LIF vs QIF: learning curves (mean, min–max over seeds)", y=1.04)
    return save(fig, path)



#: panels of ``plot_gradstats``: (variable, selection, log scale)
GRADSTATS_PANELS: tuple[tuple[str, dict, bool], ...] = (
    ("snr", {"layer": "all"}, True),
    ("cosine", {"layer": "all"}, False),
    ("zero_grad_fraction", {"layer": "all", "pseudospikes": 1}, False),
    ("zero_grad_fraction", {"layer": "all", "pseudospikes": 0}, False),
    ("ascent_fraction", {"step_scale": 1.0}, False),
    ("predictiveness_ratio", {"step_scale": 1.0}, False),
    ("grad_change_relative", {"layer": "all", "step_scale": 1.0}, True),
    ("fd_slope_ratio", {}, False),
)


def plot_gradstats(ds: xr.Dataset, path: str | Path) -> Path:
    """PNG of the gradient statistics (``spikeode gradstats``) over training per neuron model: mean over seeds,
    band = min–max over seeds; one panel per entry of ``GRADSTATS_PANELS`` that ``ds`` holds."""
    panels = [(n, sel, log) for n, sel, log in GRADSTATS_PANELS if n in ds]
    ncol = 4
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.3 * nrow), constrained_layout=True, squeeze=False)
    for ax, (name, sel, log) in zip(axes.flat, panels):
        sel = {k: v for k, v in sel.items() if k in ds[name].dims}
        da = ds[name].sel(sel)
        for model in ds["neuron_model"].values.tolist():
            cur = da.sel(neuron_model=model)
            n_seeds = int(np.isfinite(cur).any("epoch").sum())
            mean, lo, hi = cur.mean("seed"), cur.min("seed"), cur.max("seed")
            color = model_color(model)
            ax.plot(ds["epoch"], mean, "o-", color=color, label=f"{model.upper()} (n={n_seeds})")
            if n_seeds > 1:
                ax.fill_between(ds["epoch"], lo, hi, color=color, alpha=0.2, linewidth=0)
        if log and np.nanmin(np.where(da.values > 0, da.values, np.nan), initial=np.inf) < np.inf:
            ax.set_yscale("log")
        ax.set_xlabel(axis_label(ds["epoch"]))
        title = axis_label(ds[name])
        extra = ", ".join(f"{k}={v}" for k, v in sel.items())
        ax.set_title(f"{title}\n({extra})" if extra else title, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(frameon=False, fontsize=8)
    nb = json.loads(ds.attrs.get("config_json", "{}")).get("n_batches", "?")
    fig.suptitle(f"Gradient statistics over training (B = {nb} minibatches; mean, min–max over seeds)")
    return save(fig, path)


def plot_landscape_planes(grids: Mapping[str, xr.Dataset], path: str | Path) -> Path:
    """Loss (top) and gradient-norm (bottom) planes of 2-D landscapes, one column per neuron model; ``+``
    marks the checkpoint ``alpha = beta = 0``.

    Args:
        grids: neuron model name -> its ``2d`` landscape Dataset (``spikeode landscape --kind 2d``).
    """
    fig, axes = plt.subplots(2, len(grids), figsize=(5 * len(grids), 8), constrained_layout=True, squeeze=False)
    for col, (name, ds) in enumerate(grids.items()):
        for row, var in enumerate(("loss", "grad_norm")):
            ax = axes[row, col]
            ds[var].plot(ax=ax, x="alpha", y="beta", cmap="viridis" if var == "loss" else "magma")
            ax.set_title(f"{name.upper()}: {ds[var].attrs['long_name']} (jump fraction {float(ds.jump_fraction):.2f})"
                         if row == 0 else f"{name.upper()}: {ds[var].attrs['long_name']}")
            ax.plot([0], [0], "w+", ms=10)
    return save(fig, path, dpi=120, tight=False)
