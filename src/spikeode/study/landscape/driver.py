"""The landscape driver: load the checkpoint and batch, run the chunks in process or on Dask, write and resume.

The grid's alpha rows are split into chunks of ``rows_per_chunk``; each chunk is one work unit
(``evaluate_chunk``). After each chunk the whole file is rewritten atomically, so an interrupted run
resumes from the finished rows; a file of another configuration is refused. Event location (sample
kind) runs in process once every row is done and is written once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from spikeode.io.netcdf import provenance_attrs, read_dataset, write_dataset
from spikeode.study.landscape.config import LandscapeConfig
from spikeode.study.landscape.dataset import GridState
from spikeode.study.landscape.directions import make_directions
from spikeode.study.landscape.evaluate import evaluate_chunk, locate_scan_events

__all__ = ["compute_landscape"]


def _prepare(lc: LandscapeConfig) -> tuple[dict, dict, list[str]]:
    """Load the checkpoint and data; the chunks' common payload, the config for ``config_json``, layer names."""
    import jax
    import jax.numpy as jnp

    from spikeode.training import load_checkpoint, load_data, spiking_layer_names

    model, _, epoch, run_config = load_checkpoint(lc.run)
    data_config = run_config.replace(train_samples=lc.train_samples, test_samples=1, validation_fraction=0.0)
    train_set, _, _ = load_data(data_config)
    idx = np.asarray(lc.samples) if lc.kind == "sample" else np.arange(len(train_set))
    times = np.asarray(train_set.spikes.times)[idx]
    units = np.asarray(train_set.spikes.units)[idx]
    labels = np.asarray(train_set.labels)[idx]
    model = jax.tree_util.tree_map(lambda x: np.asarray(x) if isinstance(x, jnp.ndarray) else x, model)
    dirs = make_directions(lc, model, run_config, jnp.asarray(times), jnp.asarray(units), jnp.asarray(labels))
    alpha = np.linspace(-lc.span, lc.span, lc.points)
    beta = alpha.copy() if lc.kind == "2d" else np.zeros(1)
    net = model.net
    common = {
        "run_config": run_config.to_dict(), "kind": lc.kind, "n_dirs": lc.n_dirs, "model": model,
        "base": tuple(np.asarray(w) for w in net.weights), "dirs": dirs, "times": times, "units": units,
        "labels": labels, "alpha": alpha, "beta": beta, "point_batch": lc.point_batch,
        "x64": bool(jax.config.jax_enable_x64), "max_neurons": max(net.sizes[1:]), "max_slots": max(net.n_slots),
    }
    layer_names = spiking_layer_names(run_config)
    full_config = {"landscape": lc.to_dict(), "run_dir": str(Path(lc.run).resolve()), "checkpoint_epoch": epoch,
                   "run_config": run_config.to_dict(), "n_samples": len(labels)}
    return common, full_config, layer_names


def _attrs(lc: LandscapeConfig, full_config: dict) -> dict:
    attrs = provenance_attrs(f"spikeode {lc.kind} landscape of {full_config['run_dir']}", full_config, lc.seed)
    attrs.update(kind=lc.kind, neuron_model=full_config["run_config"]["neuron"], points=lc.points, span=lc.span,
                 direction=lc.direction, jump_factor=lc.jump_factor, jump_eps=lc.jump_eps)
    return attrs


def _run_chunks(common: dict, todo: list[tuple[int, int]], done: Callable[[int, int, dict], None], bar,
                dask_scheduler: str | None) -> None:
    """Evaluate the chunks ``todo`` in process or on a Dask cluster; ``done(r0, r1, result)`` after each."""
    if dask_scheduler is None:
        for r0, r1 in todo:
            done(r0, r1, evaluate_chunk(common, r0, r1, progress=bar.update))
        return
    from distributed import Client, as_completed

    nb = len(common["beta"])
    with Client(dask_scheduler) as client:
        shared = client.scatter(common, broadcast=True)
        futures = {client.submit(evaluate_chunk, shared, r0, r1, pure=False): (r0, r1) for r0, r1 in todo}
        for fut in as_completed(futures):
            r0, r1 = futures[fut]
            result = fut.result()
            bar.update((r1 - r0) * nb)
            done(r0, r1, result)


def compute_landscape(
    lc: LandscapeConfig,
    out: str | Path,
    *,
    progress: bool = True,
    dask_scheduler: str | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> xr.Dataset:
    """Compute (or resume) a landscape into ``out`` (netCDF, rewritten atomically after every chunk).

    Args:
        lc: what to compute.
        out: the netCDF file; if it exists with the same configuration, finished rows are kept.
        progress: tqdm bar over points.
        dask_scheduler: address of a Dask distributed scheduler; chunks then run as tasks there
            (workers need spikeode installed and access to the run directory only through the payload).
        on_chunk: called as ``on_chunk(r0, r1)`` after a chunk's rows are written (may raise to stop).

    Raises:
        ValueError: ``out`` holds a landscape of another configuration.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    common, full_config, layer_names = _prepare(lc)
    S = len(common["labels"]) if lc.kind == "sample" else 1
    state = GridState(lc, common["alpha"], common["beta"], S, len(layer_names), common["max_neurons"],
                      common["max_slots"])
    attrs = _attrs(lc, full_config)
    if out.exists():
        old = read_dataset(out)
        if json.loads(old.attrs.get("config_json", "{}")) != json.loads(attrs["config_json"]):
            raise ValueError(f"{out} holds a landscape of another configuration; choose another --out or remove it")
        state.load(old)
    sample_ids = list(lc.samples) if lc.kind == "sample" else []

    def write():
        write_dataset(state.dataset(attrs, layer_names, common["dirs"], sample_ids), out)

    def done(r0: int, r1: int, result: dict) -> None:
        state.merge(r0, r1, result)
        write()
        if on_chunk is not None:
            on_chunk(r0, r1)

    na, nb, R = lc.points, len(common["beta"]), lc.rows_per_chunk
    chunks = [(r0, min(r0 + R, na)) for r0 in range(0, na, R)]
    todo = [c for c in chunks if not state.row_finished[c[0]:c[1]].all()]
    bar = tqdm(total=na * nb, initial=(na - sum(r1 - r0 for r0, r1 in todo)) * nb, disable=not progress,
               desc=f"landscape {lc.kind}", unit="point", dynamic_ncols=True)
    if not out.exists():
        write()
    try:
        _run_chunks(common, todo, done, bar, dask_scheduler)
    finally:
        bar.close()
    if lc.kind == "sample" and state.events is None:
        grid = np.moveaxis(state.points["spike_times"][:, 0], 1, 0)  # (sample, alpha, layer, neuron, slot)
        problems = np.moveaxis(state.points["problems"][:, 0], 1, 0) > 0
        state.events = locate_scan_events(lc, common, grid, problems, sample_ids)
        write()
    return read_dataset(out)
