"""The result file ``hpo.nc``: every finished trial of a study as a Dataset on dim ``trial``, and the winner.

Workers rewrite the file after every trial, atomically and under a lock file (``filelock``, portable), so
the last writer's file holds every trial. Over-budget trials (never run) are left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import optuna
import xarray as xr
from filelock import FileLock

from spikeode.io.netcdf import provenance_attrs, variable, write_dataset
from spikeode.study.hpo.budget import counts
from spikeode.study.hpo.objective import DIRECTION, OBJECTIVE
from spikeode.study.hpo.space import apply_params, json_config, space_json
from spikeode.training import TrainConfig


def _is_number(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _param_array(values: list) -> np.ndarray:
    """A hyperparameter's values over the trials: float (NaN: unset), bool as int (-1: unset), or text."""
    if all(_is_number(v) for v in values):
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    if all(v is None or isinstance(v, bool) for v in values):
        return np.asarray([-1 if v is None else int(v) for v in values], dtype=np.int64)
    return np.asarray(["" if v is None else str(v) for v in values], dtype=object)


def _qif_regime(i0: np.ndarray) -> np.ndarray:
    return np.asarray(["excitable" if v < 0 else "oscillatory" if v > 0 else "threshold" if v == 0 else ""
                       for v in i0], dtype=object)


def _trial_variables(trials: list[optuna.trial.FrozenTrial]) -> dict[str, xr.Variable]:
    """The outcome of every trial: objective, accuracies, epochs, state and timing."""
    def ua(name):
        return np.asarray([t.user_attrs.get(name, np.nan) for t in trials], dtype=np.float64)

    return {
        "objective": variable("trial", [np.nan if t.value is None else t.value for t in trials], OBJECTIVE),
        "test_accuracy": variable("trial", ua("test_accuracy"),
                                  "test accuracy of the final epoch (never used to choose)"),
        "best_validation_accuracy": variable("trial", ua("best_validation_accuracy"),
                                             "highest validation accuracy over the epochs"),
        "best_epoch": variable("trial", ua("best_epoch"), "epoch of the highest validation accuracy"),
        "epochs_run": variable("trial", ua("epochs_run"), "epochs trained (fewer when pruned)"),
        "state": variable("trial", np.asarray([t.state.name for t in trials], dtype=object), "trial state"),
        "duration": variable("trial", [t.duration.total_seconds() if t.duration else np.nan for t in trials],
                             "wall-clock duration of the trial", "s"),
        "datetime_start": variable("trial", np.asarray([t.datetime_start.isoformat() if t.datetime_start else ""
                                                        for t in trials], dtype=object), "start of the trial"),
    }


def study_dataset(study: optuna.Study, *, space: Mapping | None = None, base: TrainConfig | None = None,
                  extra_attrs: Mapping | None = None) -> xr.Dataset:
    """Every finished trial (complete, pruned, failed; not the unrun over-budget ones) as a Dataset, dim ``trial``.

    One variable per hyperparameter (``.`` in its name becomes ``_``), plus ``regime`` when QIF's ``I0`` is
    searched. ``space`` and ``base`` default to what the study recorded.
    """
    trials = sorted((t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and counts(t)),
                    key=lambda t: t.number)
    attrs = study.user_attrs
    space = space if space is not None else json.loads(attrs.get("search_space", "{}"))
    fixed = base.to_dict() if base is not None else json.loads(attrs.get("fixed_config", "{}"))
    data = _trial_variables(trials)
    for name in space:
        data[name.replace(".", "_")] = variable("trial", _param_array([t.params.get(name) for t in trials]),
                                                f"hyperparameter {name}", hyperparameter=name,
                                                spec=json.dumps(space[name]))
    if "neuron_params.I0" in space:
        data["regime"] = variable("trial", _qif_regime(data["neuron_params_I0"].values),
                                  "QIF regime (I0 < 0 excitable, I0 > 0 oscillatory)")
    ds = xr.Dataset(data, coords={"trial": ("trial", np.asarray([t.number for t in trials], dtype=np.int64),
                                            {"long_name": "trial number", "units": "1"})})
    neuron, source = fixed.get("neuron", "?"), fixed.get("data", "?")
    ds.attrs.update(provenance_attrs(f"spikeode hyperparameter search {study.study_name!r} ({neuron} on {source})",
                                     fixed, fixed.get("seed")))
    ds.attrs.update({
        "study_name": study.study_name,
        "neuron_model": neuron,
        "objective": OBJECTIVE,
        "direction": DIRECTION,
        "search_space_json": space_json(space),
        "hyperparameters_json": json.dumps({name.replace(".", "_"): name for name in space}),
    })
    ds.attrs.update(extra_attrs or {})
    return ds


def write_study(study: optuna.Study, out: str | Path, **kwargs) -> Path | None:
    """Rewrite ``out`` atomically from the storage (under a lock file, so the last writer has every trial).

    ``kwargs`` go to :func:`study_dataset`. Returns ``None`` (and writes nothing) while no trial is finished.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(out.parent / f".{out.name}.lock"):
        ds = study_dataset(study, **kwargs)
        if ds.sizes["trial"] == 0:
            return None
        return write_dataset(ds, out)


def best_config(storage: str | optuna.storages.BaseStorage, study_name: str) -> dict:
    """The configuration (``TrainConfig`` keys) of the study's best complete trial.

    Raises:
        ValueError: no study of that name in ``storage``, or it has no complete trial yet.
    """
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError as err:
        raise ValueError(f"no study named {study_name!r} in the storage") from err
    try:
        best = study.best_trial
    except ValueError as err:
        raise ValueError(f"study {study_name!r} has no complete trial yet") from err
    if "config" in best.user_attrs:
        return best.user_attrs["config"]
    fixed = TrainConfig.from_dict(json.loads(study.user_attrs["fixed_config"]))
    return json_config(apply_params(fixed, best.params))


def format_params(params: Mapping) -> str:
    """``name=value`` pairs on one line, floats to 4 significant digits."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
