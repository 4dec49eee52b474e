"""Gradient-statistics Datasets: one per checkpoint, and their combination on run dims.

``combine_gradstats`` puts per-checkpoint Datasets on dims ``(neuron_model, seed, epoch, layer[,
step_scale])``; combinations with no checkpoint are NaN (never dropped).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from spikeode.io.netcdf import provenance_attrs, variable
from spikeode.study.gradstats.definitions import DEFINITIONS, VARIABLES

__all__ = ["checkpoint_dataset", "combine_gradstats"]


def checkpoint_dataset(result: dict, run_dir, config, epoch: int, n_batches: int, batch_size: int) -> xr.Dataset:
    """The Dataset of one checkpoint's ``checkpoint_gradstats`` result, with the run's identity as attrs."""
    layers, scales = result["layers"], result["step_scales"]
    data = {}
    for name, (dims, long_name, units, description) in VARIABLES.items():
        data[name] = variable(dims, np.asarray(result["values"][name], np.float64), long_name, units,
                              description=description)
    ds = xr.Dataset(data, coords={
        "layer": ("layer", layers, {"long_name": "spiking layer",
                                    "description": "weights into the layer; 'all' = every trainable weight"}),
        "step_scale": ("step_scale", np.asarray(scales, np.float64),
                       {"long_name": "step scale s", "units": "1",
                        "description": f"step delta = -lr s c g (step_kind {result['step_kind']})"}),
        "pseudospikes": ("pseudospikes", np.array([0, 1]),
                         {"long_name": "pseudospikes in the loss (1) or silent outputs at T (0)", "units": "1"}),
    })
    ds.attrs.update({"neuron_model": config.neuron, "seed_run": int(config.seed), "epoch": int(epoch),
                     "run_dir": str(run_dir), "n_batches": int(n_batches), "batch_size": int(batch_size),
                     "step_kind": result["step_kind"], "probes": int(result["probes"]),
                     "seconds": float(result["timing"]["total_s"])})
    return ds


def combine_gradstats(parts: Sequence[xr.Dataset], *, options: dict | None = None, seed: int | None = None) -> xr.Dataset:
    """Per-checkpoint Datasets (attrs ``neuron_model``, ``seed_run``, ``epoch``) on dims
    ``(neuron_model, seed, epoch, ...)``; combinations without a checkpoint are NaN (never dropped)."""
    if not parts:
        raise ValueError("no checkpoints to combine")
    models = sorted({p.attrs["neuron_model"] for p in parts})
    seeds = sorted({int(p.attrs["seed_run"]) for p in parts})
    epochs = sorted({int(p.attrs["epoch"]) for p in parts})
    layers: list[str] = []
    for p in parts:
        for name in p["layer"].values.tolist():
            if name not in layers:
                layers.append(name)
    if "all" in layers:
        layers.remove("all")
        layers.append("all")
    scales = sorted({float(s) for p in parts for s in p["step_scale"].values})
    template = parts[0]
    data = {}
    for name, da in template.data_vars.items():
        dims = ("neuron_model", "seed", "epoch") + da.dims
        shape = [len(models), len(seeds), len(epochs)] + [
            {"layer": len(layers), "step_scale": len(scales)}.get(d, template.sizes[d]) for d in da.dims]
        data[name] = (dims, np.full(shape, np.nan), dict(da.attrs))
    seconds = np.full((len(models), len(seeds), len(epochs)), np.nan)
    seen = set()
    for p in parts:
        key = (models.index(p.attrs["neuron_model"]), seeds.index(int(p.attrs["seed_run"])), epochs.index(int(p.attrs["epoch"])))
        if key in seen:
            raise ValueError(f"two checkpoints for neuron_model={p.attrs['neuron_model']}, seed={p.attrs['seed_run']}, "
                             f"epoch={p.attrs['epoch']}")
        seen.add(key)
        seconds[key] = float(p.attrs.get("seconds", np.nan))
        p = p.reindex(layer=layers, step_scale=scales)
        for name in data:
            data[name][1][key] = p[name].transpose(*template[name].dims).values
    ds = xr.Dataset(
        {k: xr.Variable(*v) for k, v in data.items()},
        coords={
            "neuron_model": ("neuron_model", models, {"long_name": "neuron model"}),
            "seed": ("seed", np.asarray(seeds), {"long_name": "training seed", "units": "1"}),
            "epoch": ("epoch", np.asarray(epochs), {"long_name": "epoch", "units": "1",
                                                    "description": "checkpoint after this many epochs (0 = initialisation)"}),
            "layer": ("layer", layers, dict(template["layer"].attrs)),
            "step_scale": ("step_scale", np.asarray(scales), dict(template["step_scale"].attrs)),
            "pseudospikes": ("pseudospikes", template["pseudospikes"].values, dict(template["pseudospikes"].attrs)),
        },
    )
    ds["seconds"] = variable(("neuron_model", "seed", "epoch"), seconds, "wall time of the checkpoint's statistics", "s",
                             description="all gradient evaluations of the checkpoint, compile time included")
    options = dict(options or {})
    options.setdefault("n_batches", int(template.attrs.get("n_batches", -1)))
    ds.attrs.update(provenance_attrs("spikeode gradient statistics across runs", options, seed))
    ds.attrs["definitions"] = DEFINITIONS.strip()
    return ds
