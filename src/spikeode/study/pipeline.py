"""Running a study's units of work in this process or as tasks on a Dask cluster, and sharing an HPO budget.

A *unit* is one retrained run, one landscape, one gradient-statistics pass: a module-level function (so a
Dask worker can import it) that writes its files and returns a one-line result. :func:`run_units` runs units
here, in order, with their progress bars, or submits them to a Dask scheduler; either way it prints one
line per finished unit. Workers need spikeode installed and the study directory on a filesystem they share.

:func:`wait_for_budget` lets several study processes share one search (``spikeode.study.hpo``): a process
whose worker found the budget used waits until the trials of the others have finished.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Unit", "gradstats_unit", "landscape_unit", "run_units", "train_unit", "wait_for_budget"]


@dataclass(frozen=True)
class Unit:
    """``fn(*args, progress=...)``, labelled for the one line printed when it has finished."""

    label: str
    fn: Callable[..., str]
    args: tuple = field(default_factory=tuple)


def run_units(units: Sequence[Unit], *, dask_scheduler: str | None = None,
              echo: Callable[[str], None] = print) -> None:
    """Run ``units`` here in order (progress bars on), or as tasks of the Dask scheduler at ``dask_scheduler``
    (bars off; results as they come); echo ``label: result (seconds)`` per finished unit.

    Raises:
        Exception: the first unit that fails, as raised by it.
    """
    if not units:
        return
    if dask_scheduler is None:
        for unit in units:
            t0 = time.perf_counter()
            result = unit.fn(*unit.args, progress=True)
            echo(f"  {unit.label}: {result} ({time.perf_counter() - t0:.0f} s)")
        return
    from distributed import Client, as_completed

    t0 = time.perf_counter()
    with Client(dask_scheduler) as client:
        futures = {client.submit(unit.fn, *unit.args, progress=False, pure=False): unit for unit in units}
        for future in as_completed(futures):
            echo(f"  {futures[future].label}: {future.result()} (after {time.perf_counter() - t0:.0f} s)")


def train_unit(config, out: str, *, progress: bool) -> str:
    """Train (or resume) ``config`` (a ``TrainConfig``) in run directory ``out``; its final test accuracy."""
    from spikeode.training import train

    ds = train(config, out, progress=progress)
    return f"final test accuracy {float(ds.test_accuracy[-1]):.4f} (real spikes)"


def landscape_unit(lc, out: str, *, progress: bool) -> str:
    """Compute (or resume) the landscape ``lc`` (a ``LandscapeConfig``) into ``out``; its jump fraction."""
    from spikeode.precision import ensure_precision
    from spikeode.study.landscape import compute_landscape

    # x64 is process-wide: switch it on for a float64 run before its arrays exist (a no-op for float32)
    ensure_precision(json.loads((Path(lc.run) / "checkpoint.json").read_text())["config"].get("dtype", "float32"))
    ds = compute_landscape(lc, out, progress=progress)
    return f"jump_fraction {float(ds.jump_fraction):.3f}"


def gradstats_unit(runs: Sequence[str], out: str, options: dict, *, progress: bool) -> str:
    """Gradient statistics of ``runs`` (``spikeode.study.gradstats.run_gradstats`` with ``options``) into ``out``."""
    from spikeode.io.netcdf import write_dataset
    from spikeode.study.gradstats import run_gradstats

    ds = run_gradstats(list(runs), progress=progress, **options)
    write_dataset(ds, out)
    return f"{ds.sizes['neuron_model']} model(s) x {ds.sizes['seed']} seed(s) x {ds.sizes['epoch']} epoch(s)"


def wait_for_budget(storage: str | Path, study_name: str, n_trials: int, *, grace_period: float = 240,
                    poll: float = 5.0, echo: Callable[[str], None] = print) -> bool:
    """Wait until study ``study_name`` holds ``n_trials`` counted trials and none runs; whether it waited.

    Running trials of dead workers are failed meanwhile (``fail_stale_trials``), so a dead worker delays
    the wait by at most ``grace_period`` seconds.

    Raises:
        RuntimeError: the budget is not used and no trial runs (no worker is searching).
    """
    import optuna
    from optuna.trial import TrialState

    from spikeode.study import hpo

    store = hpo.open_storage(storage, grace_period=int(grace_period))
    study = optuna.load_study(study_name=study_name, storage=store)
    waited = False
    while True:
        hpo.fail_stale_trials(study, store, grace_period, use_heartbeat=not hpo.is_rdb_url(str(storage)))
        active = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        used = hpo.trials_used(study)
        if not active:
            if used < n_trials:
                raise RuntimeError(f"study {study_name!r}: {used} of {n_trials} budgeted trials used and none "
                                   "running; run the search to use the rest")
            return waited
        if not waited:
            echo(f"  study {study_name!r}: waiting for {len(active)} trial(s) of other workers")
        waited = True
        time.sleep(poll)
