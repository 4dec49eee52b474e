"""The study's summary Dataset: learning curves, landscape and scan metrics, HPO summaries and the claims.

Dimensions: ``neuron_model``, ``seed``, ``epoch`` (learning curves), ``plane`` (random landscape planes),
``scan_sample`` (single-sample scans) and ``claim`` (``spikeode.study.report.claims``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from spikeode.io.netcdf import provenance_attrs, read_dataset, variable
from spikeode.io.plotting import real_accuracy
from spikeode.study.report.claims import (
    claims_dataset,
    collect_runs,
    landscape_metrics,
    sample_event_fractions,
    study_claims,
)
from spikeode.study.report.layout import StudyLayout
from spikeode.study.stats import Claim

__all__ = ["CURVES", "data_label", "pair_label", "study_config", "summary_dataset"]

#: run.nc curves copied into summary.nc where the runs have them (``test_accuracy``: real spikes only)
CURVES = ("test_accuracy", "test_accuracy_pseudo", "output_silent_sample_fraction", "train_loss", "test_loss",
          "grad_norm")


def _on_grid(runs, models, seeds, epochs, get) -> np.ndarray:
    """``get(run.nc Dataset)`` (one value per epoch) on the (model, seed, epoch) grid, NaN where missing."""
    values = np.full((len(models), len(seeds), len(epochs)), np.nan)
    for i, m in enumerate(models):
        for j, s in enumerate(seeds):
            ds = runs[m].get(s)
            if ds is not None:
                values[i, j, [epochs.index(int(e)) for e in ds.epoch.values]] = get(ds)
    return values


def _plane_variables(study_dir: Path, layout: StudyLayout, models: list[str], seeds: list[int]) -> tuple[dict, dict]:
    """Landscape metrics per random plane (``landscape_<metric>`` on ``neuron_model, plane``) and per gradient
    plane (``gradient_plane_<metric>`` on ``neuron_model, seed``); and the ``plane`` coordinate."""
    random = {m: [landscape_metrics(read_dataset(p)) for p in layout.random_planes(study_dir, m)] for m in models}
    gradient = {m: {s: landscape_metrics(read_dataset(p)) for s, p in layout.gradient_planes(study_dir, m).items()}
                for m in models}
    n_planes = max((len(v) for v in random.values()), default=0)
    out = {}
    for key in sorted({k for per in random.values() for x in per for k in x}):
        arr = np.full((len(models), n_planes), np.nan)
        for i, m in enumerate(models):
            arr[i, :len(random[m])] = [x.get(key, np.nan) for x in random[m]]
        out[f"landscape_{key}"] = variable(("neuron_model", "plane"), arr,
                                           f"{key.replace('_', ' ')} (random plane)")
    for key in sorted({k for per in gradient.values() for x in per.values() for k in x}):
        arr = np.array([[gradient[m].get(s, {}).get(key, np.nan) for s in seeds] for m in models])
        out[f"gradient_plane_{key}"] = variable(("neuron_model", "seed"), arr,
                                                f"{key.replace('_', ' ')} (gradient plane of the seed's winner)")
    coord = variable(("plane",), np.arange(n_planes), "random plane (its direction seed)")
    return out, ({"plane": coord} if n_planes else {})


def _scan_variables(study_dir: Path, layout: StudyLayout, models: list[str]) -> tuple[dict, dict]:
    """Per-sample event fractions of the single-sample scans (``sample_event_fractions``) on
    ``neuron_model, scan_sample``; and the ``scan_sample`` coordinate (empty without located events)."""
    paths = {m: layout.path(study_dir, "samples", model=m) for m in models}
    scans = {m: read_dataset(p) for m, p in paths.items() if p.exists()}
    scans = {m: ds for m, ds in scans.items() if "event_kind" in ds}
    if not scans:
        return {}, {}
    ids = sorted({int(s) for ds in scans.values() for s in ds["sample"].values})
    out = {}
    for key, long_name in (("mid_trial", "share of spike (dis)appearances before the trial end"),
                           ("order_preceded_excess", ("share of spike (dis)appearances an order swap precedes, "
                            "minus its chance level"))):
        arr = np.full((len(models), len(ids)), np.nan)
        for i, m in enumerate(models):
            if m in scans:
                cols = [ids.index(int(s)) for s in scans[m]["sample"].values]
                arr[i, cols] = sample_event_fractions(scans[m])[key]
        out[f"scan_{key}"] = variable(("neuron_model", "scan_sample"), arr, f"{long_name} (single-sample scan)")
    return out, {"scan_sample": variable(("scan_sample",), ids, "training sample of the single-sample scan")}


def _hpo_variables(study_dir: Path, layout: StudyLayout, models: list[str]) -> dict:
    """Best objective and trials used per model, where the search results exist."""
    out = {}
    for key, get in (("hpo_best_objective", lambda h: float(np.nanmax(h.objective))),
                     ("hpo_trials", lambda h: float(h.sizes["trial"]))):
        paths = [layout.path(study_dir, "hpo", model=m) for m in models]
        values = [get(read_dataset(p)) if p.exists() else np.nan for p in paths]
        if np.isfinite(values).any():
            out[key] = variable(("neuron_model",), values, key.replace("_", " "))
    return out


def summary_dataset(study_dir: str | Path, layout: StudyLayout, claims: list[Claim] | None = None) -> xr.Dataset:
    """One Dataset: learning curves on (``neuron_model``, ``seed``, ``epoch``), landscape metrics per plane,
    HPO summaries per model, and the claims (``claims_dataset``; ``study_claims`` when not given) on ``claim``."""
    study_dir = Path(study_dir)
    runs = collect_runs(study_dir, layout)
    if not runs:
        raise FileNotFoundError(f"{study_dir} has no retrained run ({layout.run}/run.nc)")
    models = sorted(runs)
    seeds = sorted({s for per_model in runs.values() for s in per_model})
    epochs = sorted({int(e) for per_model in runs.values() for ds in per_model.values() for e in ds.epoch.values})
    first = next(iter(runs[models[0]].values()))
    dims = ("neuron_model", "seed", "epoch")
    data = {name: variable(dims, _on_grid(runs, models, seeds, epochs, lambda ds, n=name: ds[n].values),
                           first[name].attrs["long_name"], first[name].attrs.get("units", "1"))
            for name in CURVES if name in first}
    data["hidden_silent_fraction"] = variable(dims, _on_grid(runs, models, seeds, epochs,
                                                             lambda ds: ds.silent_fraction.isel(layer=0).values),
                                              "fraction of first-hidden-layer neurons silent on the test split")
    final = np.array([[float(real_accuracy(runs[m][s])[-1]) if s in runs[m] else np.nan for s in seeds]
                      for m in models])
    data["final_test_accuracy"] = variable(("neuron_model", "seed"), final,
                                           "test accuracy after the last epoch (real spikes only)")
    planes, plane_coord = _plane_variables(study_dir, layout, models, seeds)
    scans, scan_coord = _scan_variables(study_dir, layout, models)
    data.update(planes, **scans, **_hpo_variables(study_dir, layout, models))
    coords = {"neuron_model": variable(("neuron_model",), models, "neuron model"),
              "seed": variable(("seed",), seeds, "seed of the retrained winner"),
              "epoch": variable(("epoch",), epochs, "training epoch"), **plane_coord, **scan_coord}
    ds = xr.Dataset(data, coords=coords)
    claims = study_claims(study_dir, layout) if claims is None else claims
    ds = xr.merge([ds, claims_dataset(claims, layout.models)], combine_attrs="override")
    config = study_config(study_dir)
    ds.attrs.update(provenance_attrs(f"spikeode study summary: {layout.title}", config, None))
    ds.attrs.update(pair=pair_label(study_dir, layout), data_source=data_label(config), confidence_level=0.95)
    return ds


def study_config(study_dir: Path) -> dict:
    """The study's stored configuration (``study.json`` without its layout); empty when there is none."""
    path = Path(study_dir) / "study.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    stored.pop("layout", None)
    return stored


def data_label(config: dict) -> str:
    """The data source and, for the built-in synthetic set, its difficulty (``synthetic:<difficulty>``)."""
    data = str(config.get("data", "?"))
    kind, _, option = data.partition(":")
    return f"{kind} (difficulty: {option or 'standard'})" if kind == "synthetic" else data


def pair_label(study_dir: Path, layout: StudyLayout) -> str:
    """Which pair ran: the layout's words and each winner's neuron parameters."""
    params = []
    for m in layout.models:
        best = layout.path(study_dir, "best", model=m)
        if best.exists():
            params.append(f"{m.upper()} {json.dumps(json.loads(best.read_text()).get('neuron_params', {}))}")
    return layout.pair + (": " + "; ".join(params) if params else "")
