"""Gradient statistics of runs: which runs and epochs, and the driver over their checkpoints.

Runs come as directories or globs (``expand_runs``), epochs as a selection among the stored ones
(``select_epochs``); ``run_gradstats`` computes every selected checkpoint (``checkpoint_gradstats``) on
minibatches drawn once per run's data, and combines them (``combine_gradstats``).
"""

from __future__ import annotations

import glob as _glob
from collections.abc import Iterable, Sequence
from pathlib import Path

import xarray as xr

from spikeode.study.gradstats.checkpoint import checkpoint_gradstats, draw_minibatches
from spikeode.study.gradstats.dataset import checkpoint_dataset, combine_gradstats
from spikeode.study.gradstats.definitions import DEFAULT_PROBES, DEFAULT_STEP_SCALES

__all__ = ["expand_runs", "run_gradstats", "select_epochs"]


def select_epochs(available: Sequence[int], spec: str | None = None, every: int | None = None) -> list[int]:
    """Epochs to analyse among ``available``: ``spec`` is a comma list of integers and/or ``first``,
    ``middle`` (``max // 2`` rounded to the nearest available), ``last``, ``all``; ``every K`` takes
    ``0, K, 2K, ...`` and the last. Default: the last."""
    avail = sorted(int(e) for e in available)
    if not avail:
        raise FileNotFoundError("the run has no stored epochs")
    chosen: list[int] = []
    if every:
        chosen += [e for e in avail if e % every == 0] + [avail[-1]]
    for item in (spec.split(",") if spec else ([] if every else ["last"])):
        item = item.strip().lower()
        if item == "all":
            chosen += avail
        elif item == "first":
            chosen.append(avail[0])
        elif item == "last":
            chosen.append(avail[-1])
        elif item == "middle":
            chosen.append(min(avail, key=lambda e: (abs(e - avail[-1] // 2), e)))
        elif item:
            if int(item) not in avail:
                raise FileNotFoundError(f"epoch {item} is not stored (available: {avail})")
            chosen.append(int(item))
    return sorted(set(chosen))


def _stored_epochs(run_dir: Path) -> list[int]:
    """The epochs with a stored checkpoint: the snapshots ``epochs/epoch_NNNN.eqx`` and the last one."""
    from spikeode.training import load_checkpoint

    _, _, last, _ = load_checkpoint(run_dir)
    epochs = {int(p.stem.split("_")[1]) for p in (run_dir / "epochs").glob("epoch_*.eqx")}
    return sorted(epochs | {last})


def expand_runs(items: Iterable[str | Path]) -> list[Path]:
    """Run directories from paths and globs (a ``checkpoint.json`` path stands for its directory)."""
    out: list[Path] = []
    for item in items:
        matches = sorted(_glob.glob(str(item))) or [str(item)]
        for m in matches:
            p = Path(m)
            p = p.parent if p.name in ("checkpoint.json", "checkpoint.eqx") else p
            if not (p / "checkpoint.json").exists():
                raise FileNotFoundError(f"{p} is not a run directory (no checkpoint.json)")
            if p not in out:
                out.append(p)
    return out



def run_gradstats(run_dirs: Sequence[str | Path], *, n_batches: int = 16, seed: int = 0, epochs: str | None = None,
                  every: int | None = None, step_scales: Sequence[float] = DEFAULT_STEP_SCALES,
                  step_kind: str = "auto", chunk: int = 4, probes: int = DEFAULT_PROBES,
                  progress: bool = True) -> xr.Dataset:
    """Statistics of the selected epochs of every run, combined (``combine_gradstats``) with provenance attrs."""
    from spikeode.precision import ensure_precision
    from spikeode.training import data_key, load_data, load_model

    parts, configs = [], {}
    data_cache: dict = {}
    for run_dir in expand_runs(run_dirs):
        epochs_here = select_epochs(_stored_epochs(run_dir), epochs, every)
        model, config = load_model(run_dir)
        ensure_precision(config.dtype)
        key = data_key(config)
        if key not in data_cache:
            data_cache[key] = load_data(config)[0]
        train_set = data_cache[key]
        batches = draw_minibatches(train_set, config.batch_size, n_batches, seed)
        configs[str(run_dir)] = config.to_dict()
        for epoch in epochs_here:
            model, _ = load_model(run_dir, epoch)
            result = checkpoint_gradstats(model, config, batches, step_scales=step_scales, step_kind=step_kind,
                                          chunk=chunk, probes=probes)
            if progress:
                v = result["values"]
                print(f"gradstats {run_dir} epoch {epoch}: snr(all) {v['snr'][-1]:.3g} cosine(all) "
                      f"{v['cosine'][-1]:.3g} ascent@1 {v['ascent_fraction'][result['step_scales'].index(1.0)]:.2f} "
                      f"({result['timing']['total_s']:.1f} s)", flush=True)
            parts.append(checkpoint_dataset(result, run_dir, config, epoch, n_batches, batches[2].shape[1]))
    options = {"n_batches": n_batches, "seed": seed, "epochs": epochs, "every": every,
               "step_scales": list(map(float, step_scales)), "step_kind": step_kind, "runs": configs}
    return combine_gradstats(parts, options=options, seed=seed)
