"""The study's figures: HPO progress, landscapes and single-sample scans with their spike events (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from spikeode.io.netcdf import read_dataset
from spikeode.io.plotting import axis_label, model_color, plt, save
from spikeode.study.report.layout import StudyLayout

__all__ = ["plot_hpo", "plot_landscapes", "plot_samples"]


def _existing(study_dir: Path, layout: StudyLayout, name: str) -> dict[str, Path]:
    paths = {m: layout.path(study_dir, name, model=m) for m in layout.models}
    return {m: p for m, p in paths.items() if p.exists()}


def plot_hpo(study_dir: Path, layout: StudyLayout, path: Path) -> Path | None:
    """Objective per trial and best so far, per model; None without search results."""
    files = _existing(study_dir, layout, "hpo")
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


def plot_landscapes(study_dir: Path, layout: StudyLayout, path: Path) -> Path | None:
    """Loss and gradient norm over random plane 0, per model; None without landscapes."""
    files = _existing(study_dir, layout, "first_plane")
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


def plot_samples(study_dir: Path, layout: StudyLayout, path: Path) -> Path | None:
    """The first scanned sample per model: loss and output spike times along alpha, with the spike events."""
    files = _existing(study_dir, layout, "samples")
    if not files:
        return None
    fig, axes = plt.subplots(2, len(files), figsize=(6 * len(files), 7), constrained_layout=True, squeeze=False,
                             sharex="col")
    for col, (m, f) in enumerate(files.items()):
        full = read_dataset(f)
        ds = full.isel(sample=0)
        events = _sample_events(full, int(ds.sample))
        alpha = ds.alpha.values
        ax = axes[0, col]
        ax.plot(alpha, ds.loss, color=model_color(m), lw=1.2)
        _mark_events(ax, ds, alpha, events)
        ax.set_ylabel(axis_label(ds.loss))
        ax.set_title(f"{m.upper()}: single-sample scan (sample {int(ds.sample)})", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.02), ncols=3)
        ax = axes[1, col]
        times = ds.spike_times.isel(layer=-1)  # output layer: (alpha, neuron, slot)
        for n in range(times.sizes["neuron"]):
            t = times.isel(neuron=n).values
            a = np.broadcast_to(alpha[:, None], t.shape)
            ok = np.isfinite(t)
            ax.plot(a[ok], t[ok], ".", ms=3, color=plt.cm.tab20(n % 20))
        _mark_events(ax, ds, alpha, events, legend=False)
        ax.set_xlabel(axis_label(ds.alpha))
        ax.set_ylabel("output spike times")
    return save(fig, path)


def _sample_events(ds: xr.Dataset, sample: int) -> dict[str, np.ndarray] | None:
    """Exact locations per event kind of one sample's scan (``spikeode.study.scan_events``), None without events."""
    if "event_kind" not in ds:
        return None
    from spikeode.study.scan_events import EVENT_KINDS

    mine = ds.event_sample.values == sample
    return {kind: ds.event_alpha.values[mine & (ds.event_kind.values == i)] for i, kind in enumerate(EVENT_KINDS)}


_EVENT_STYLE = {"appearance": "#2ca02c", "disappearance": "#9467bd", "order_swap": "#ff7f0e"}
_EDGE_STYLE = {"spike_appearances": ("#2ca02c", "-"), "spike_disappearances": ("#9467bd", "-"),
               "order_changes": ("#ff7f0e", ":")}


def _mark_events(ax, ds: xr.Dataset, alpha: np.ndarray, events: dict[str, np.ndarray] | None,
                 legend: bool = True) -> None:
    """Spike (dis)appearances and order swaps: ticks at their exact locations along the top of the axes when
    the scan has located events, else vertical lines at the grid edges where they happen (any layer)."""
    if events is not None:
        for row, (kind, color) in enumerate(_EVENT_STYLE.items()):
            where = events.get(kind, np.empty(0))
            y0 = 0.97 - 0.04 * row
            ax.vlines(where, y0 - 0.035, y0, transform=ax.get_xaxis_transform(), color=color, lw=1.0,
                      label=f"{kind.replace('_', ' ')} ({len(where)})" if legend and len(where) else None)
        return
    for name, (color, ls) in _EDGE_STYLE.items():
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
