"""The objective of a trial: train its configuration, report each epoch to the pruner, return the final score.

The score is the validation accuracy of the **final** epoch (a split carved from train,
``validation_fraction``, seeded; the test split is never used to choose): it is what ``spikeode train
--config`` on the winner's configuration reproduces and what the kept checkpoint holds. The final test
accuracy is stored as a user attribute.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import optuna
import xarray as xr

from spikeode.io.netcdf import read_dataset
from spikeode.study.hpo.liveness import Heartbeat, worker_identity
from spikeode.study.hpo.space import apply_params, json_config, suggest
from spikeode.training import TrainConfig, accuracy_variable, data_key, load_data, train

DIRECTION = "maximize"
OBJECTIVE = ("validation accuracy of the final epoch (validation split carved from train; real spikes only unless "
             "the run's objective is pseudo)")


def objective_variable(config: TrainConfig) -> str:
    """The run.nc variable a trial is judged by: real-spike validation accuracy, unless the run's
    ``objective`` is ``"pseudo"`` (first spikes and pseudospikes)."""
    return accuracy_variable(config, "validation")


class DataCache:
    """Loaded data by ``data_key``: one load per process for every trial that shares the data settings."""

    def __init__(self, size: int = 4):
        self._items: OrderedDict = OrderedDict()
        self.size = size
        self.loads = 0

    def get(self, config: TrainConfig):
        """The data of ``config``, loaded on first use; the least recently used of more than ``size`` is dropped."""
        key = data_key(config)
        if key not in self._items:
            self._items[key] = load_data(config)
            self.loads += 1
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        self._items.move_to_end(key)
        return self._items[key]


def summary(history: xr.Dataset, objective: str = "validation_accuracy") -> dict:
    """A run's result as trial user attributes: epochs run, final and best validation score, final test accuracy."""
    trained = history.sel(epoch=history.epoch > 0)
    if trained.sizes["epoch"] == 0:
        return {"epochs_run": 0}
    val = np.asarray(trained[objective].values, dtype=float)
    return {
        "epochs_run": int(trained.epoch.values[-1]),
        "validation_accuracy": float(val[-1]),
        "best_validation_accuracy": float(np.nanmax(val)),
        "best_epoch": int(trained.epoch.values[int(np.nanargmax(val))]),
        **{name: float(trained[name].values[-1]) for name in trained.data_vars if name.startswith("test_accuracy")},
    }


def _set_user_attrs(trial: optuna.Trial, attrs: Mapping) -> None:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def make_objective(base: TrainConfig, space: Mapping, runs_dir: Path, *, data_cache: DataCache | None = None,
                   heartbeat_interval: float | None = 60.0,
                   progress: bool = False) -> Callable[[optuna.Trial], float]:
    """``objective(trial) -> final validation accuracy``; each trial trains in ``runs_dir/trial_<number>``.

    A diverged run (``FloatingPointError``) is pruned with its error recorded. With ``heartbeat_interval``
    the trial beats while it trains (journal storages, see ``liveness``).
    """
    cache = data_cache or DataCache()
    identity = worker_identity()

    def objective(trial: optuna.Trial) -> float:
        _set_user_attrs(trial, {**identity, "heartbeat": time.time()})
        config = apply_params(base, suggest(trial, space))
        trial.set_user_attr("config", json_config(config))
        run_dir = Path(runs_dir) / f"trial_{trial.number}"
        if run_dir.exists():  # left by a dead worker of this study (trial numbers are never reused)
            shutil.rmtree(run_dir)
        score = objective_variable(config)

        def on_epoch(epoch: int, row: dict) -> None:
            trial.report(float(row[score]), epoch)
            if epoch < config.epochs and trial.should_prune():  # never prune a finished run
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        beat = Heartbeat(trial, heartbeat_interval) if heartbeat_interval else contextlib.nullcontext()
        try:
            with beat, open(os.devnull, "w") as devnull:
                # train's per-epoch lines only with progress: one line per trial otherwise
                quiet = contextlib.nullcontext() if progress else contextlib.redirect_stdout(devnull)
                with quiet:
                    history = train(config, run_dir, progress=progress, data=cache.get(config), on_epoch=on_epoch)
        except (optuna.TrialPruned, FloatingPointError) as err:
            if isinstance(err, FloatingPointError):
                trial.set_user_attr("error", str(err))
            if (run_dir / "run.nc").exists():
                _set_user_attrs(trial, summary(read_dataset(run_dir / "run.nc"), score))
            raise optuna.TrialPruned(str(err)) from err
        result = summary(history, score)
        _set_user_attrs(trial, result)
        return result["validation_accuracy"]

    return objective
