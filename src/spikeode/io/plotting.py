"""Figures from result Datasets. LIF and QIF keep the same colours in every figure."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

__all__ = ["MODEL_COLORS", "model_color", "axis_label", "plot_learning_curves", "real_accuracy", "save"]

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


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
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


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]
