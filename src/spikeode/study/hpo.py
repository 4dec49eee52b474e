"""Hyperparameter search per neuron model with Optuna: search spaces, objective, storage, results.

Search spaces are a declarative table (``SEARCH_SPACES``): one entry per hyperparameter, named after the
``TrainConfig`` key it sets, each with exactly one of

    {"float": [low, high]}   {"log": [low, high]}   {"int": [low, high]}   {"choices": [a, b, ...]}

(``float``/``int`` take an optional ``"step"``). Names:

- any scalar ``TrainConfig`` key (``lr``, ``optimizer``, ``T``, ``k_in``, ``batch_size``, ``temperature``,
  ``gamma``, ``pseudospikes``, ``schedule``, ``grad_clip``, ``seed``, ...);
- ``neuron_params.<field>``: a field of the neuron class (``tau_mem``, ``tau_syn``, ``v_th`` for LIF;
  ``tau``, ``I0`` for QIF; any field of a user's ``package.module:Class``);
- ``hidden.width`` and ``hidden.depth`` (``hidden = (width,) * depth``);
- ``weight_mean.hidden``, ``weight_mean.output``, ``weight_std.hidden``, ``weight_std.output``,
  ``n_slots.hidden``, ``n_slots.output``: the per-layer value of every hidden layer / of the output layer.

A user's space (JSON or TOML file of the same form) replaces the built-in one. The objective is the
validation accuracy of the **final** epoch (a split carved from train, ``validation_fraction``, seeded; the
test split is never used to choose): it is what ``spikeode train --config`` on the winner's configuration
reproduces and what the kept checkpoint holds. The final test accuracy is stored as a user attribute.

The first trial of a new study is the base configuration itself (the recipe, ``baseline``), so a search
never ends below its starting point. The budget (``n_trials``, ``--trials``) is the study's total, whatever the trials' fates: complete, pruned
and failed trials all count, so two models searched with the same budget get the same number of trials,
and a rerun of a finished study starts none (``BUDGET_RULE`` has the details, ``hpo.nc`` records it).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import socket
import threading
import time
import logging
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import optuna
import xarray as xr
from filelock import FileLock
from optuna.trial import FrozenTrial, TrialState

from spikeode.neurons import resolve_neuron_class
from spikeode.io.netcdf import provenance_attrs, read_dataset, variable, write_dataset
from spikeode.training.loop import TrainConfig, accuracy_variable, load_data, train

_log = logging.getLogger(__name__)

__all__ = [
    "BUDGET_RULE",
    "SEARCH_SPACES",
    "TrialSeededSampler",
    "apply_params",
    "best_config",
    "default_space",
    "fail_stale_trials",
    "open_storage",
    "open_study",
    "read_space",
    "run_search",
    "study_dataset",
    "suggest",
    "trials_used",
    "validate_space",
]

# ---------------------------------------------------------------------------------------------------
# Search spaces: the one table. "common" applies to every model; a model's own entries are added (and
# win). Ranges are for SHD-format data (synthetic, SHD); pass --space for other sources.
SEARCH_SPACES: dict[str, dict[str, dict]] = {
    "common": {
        "lr": {"log": [3e-4, 3e-2]},
        "optimizer": {"choices": ["adam", "adamw", "adabelief"]},
        "T": {"choices": [1.0, 2.0, 4.0]},
        "hidden.width": {"int": [16, 128], "step": 16},
        "hidden.depth": {"int": [1, 2]},
        "weight_std.hidden": {"float": [0.25, 2.0]},
        "weight_std.output": {"float": [0.25, 2.0]},
        "temperature": {"log": [0.05, 1.0]},
        "gamma": {"float": [0.0, 1.0]},
        "k_in": {"choices": [200, 350, 500]},
        "batch_size": {"choices": [16, 32, 64]},
        "pseudospikes": {"choices": [True, False]},
    },
    "lif": {
        "neuron_params.tau_mem": {"log": [0.25, 4.0]},
        "neuron_params.tau_syn": {"log": [0.125, 2.0]},
        "neuron_params.v_th": {"float": [0.5, 2.0]},
        "weight_mean.hidden": {"float": [0.0, 0.4]},
        "weight_mean.output": {"float": [0.0, 0.4]},
    },
    "qif": {
        "neuron_params.tau": {"log": [0.25, 4.0]},
        # one range over both regimes: I0 < 0 excitable, I0 > 0 oscillatory (hpo.nc records the regime)
        "neuron_params.I0": {"float": [-0.25, 0.25]},
        "weight_mean.hidden": {"float": [0.0, 0.1]},
        "weight_mean.output": {"float": [0.0, 0.1]},
    },
    "eif": {
        "weight_mean.hidden": {"float": [0.0, 0.4]},
        "weight_mean.output": {"float": [0.0, 0.4]},
    },
}

KINDS = ("float", "log", "int", "choices")
PER_LAYER = ("weight_mean", "weight_std", "n_slots")
#: TrainConfig keys that stay fixed for every trial (they define the data and the comparison).
FIXED_KEYS = ("neuron", "neuron_params", "data", "hidden", "weight_mean", "weight_std", "n_slots",
              "train_samples", "test_samples", "validation_fraction", "dtype")

DIRECTION = "maximize"
OBJECTIVE = ("validation accuracy of the final epoch (validation split carved from train; real spikes only unless "
             "the run's objective is pseudo)")


#: With ``init="calibrated"`` the weights are rescaled until the layer spikes, so these have no effect: the
#: calibration targets are searched instead.
_RECIPE_INIT_ONLY = ("weight_mean.", "weight_std.")
_CALIBRATION_SPACE = {"calibration_rate": {"log": [1.0, 4.0]}, "calibration_output": {"float": [0.5, 1.0]}}


def default_space(neuron: str, init: str = "calibrated") -> dict[str, dict]:
    """The built-in space of a model: ``common`` plus the model's own entries (a copy).

    With a calibrated initialisation (the default) the weight scales are not searched (calibration
    overrides them) and the calibration targets are; with ``init="recipe"`` it is the other way round.
    """
    key = neuron.lower()
    space = {**SEARCH_SPACES["common"], **SEARCH_SPACES.get(key, {})}
    if init == "calibrated":
        space = {name: spec for name, spec in space.items() if not name.startswith(_RECIPE_INIT_ONLY)}
        space.update(_CALIBRATION_SPACE)
    return copy.deepcopy(space)


def objective_variable(config: TrainConfig) -> str:
    """The run.nc variable a trial is judged by: real-spike validation accuracy, unless the run's
    ``objective`` is ``"pseudo"`` (first spikes and pseudospikes)."""
    return accuracy_variable(config, "validation")


def read_space(path: str | Path) -> dict[str, dict]:
    """A search space from a JSON or TOML file (``.toml`` suffix: TOML; anything else: JSON)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"search-space file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            space = tomllib.loads(text)
        else:
            space = json.loads(text)
    except Exception as err:  # any parse error becomes one clear message
        raise ValueError(f"cannot parse search-space file {path}: {err}") from err
    if not isinstance(space, dict):
        raise ValueError(f"search-space file {path} must hold a table of hyperparameters")  # noqa: TRY004 (CLI)
    return space


def _known_names(neuron: str) -> set[str]:
    cls = resolve_neuron_class(neuron)
    scalar = {f.name for f in dataclasses.fields(TrainConfig)} - set(FIXED_KEYS)
    neuron_fields = {f"neuron_params.{f.name}" for f in dataclasses.fields(cls)}
    structured = {"hidden.width", "hidden.depth"} | {f"{k}.{part}" for k in PER_LAYER for part in ("hidden", "output")}
    return scalar | neuron_fields | structured


def _spec_kind(name: str, spec) -> str:
    if not isinstance(spec, Mapping):
        raise ValueError(  # noqa: TRY004 - the CLI reports ValueErrors as input errors
            f"hyperparameter {name!r}: expected a table like {{\"float\": [low, high]}}, got {spec!r}")
    kinds = [k for k in KINDS if k in spec]
    extra = sorted(set(spec) - set(KINDS) - {"step"})
    if len(kinds) != 1 or extra:
        raise ValueError(f"hyperparameter {name!r}: give exactly one of {list(KINDS)} (optionally 'step'), got "
                         f"{sorted(spec)}")
    return kinds[0]


def _bounds(name: str, spec: Mapping, kind: str) -> tuple:
    rng = spec[kind]
    if not (isinstance(rng, (list, tuple)) and len(rng) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rng)):
        raise ValueError(f"hyperparameter {name!r}: {kind} needs [low, high] (two numbers), got {rng!r}")
    low, high = rng
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"hyperparameter {name!r}: bounds must be finite, got {rng!r}")
    if low > high:
        raise ValueError(f"hyperparameter {name!r}: inverted range [{low}, {high}] (low > high)")
    if low == high:
        raise ValueError(f"hyperparameter {name!r}: empty range [{low}, {high}] (low == high); "
                         f"set a fixed value with a training flag instead")
    if kind == "log" and low <= 0:
        raise ValueError(f"hyperparameter {name!r}: a log range needs low > 0, got [{low}, {high}]")
    if kind == "int" and not all(float(v).is_integer() for v in rng):
        raise ValueError(f"hyperparameter {name!r}: int range needs integer bounds, got {rng!r}")
    step = spec.get("step")
    if step is not None:
        if kind == "log":
            raise ValueError(f"hyperparameter {name!r}: 'step' does not combine with a log range")
        if not (isinstance(step, (int, float)) and step > 0 and step <= high - low):
            raise ValueError(f"hyperparameter {name!r}: step must be > 0 and fit into the range, got {step!r}")
    if kind == "int":
        return int(low), int(high)
    return float(low), float(high)


def validate_space(space: Mapping, base: TrainConfig) -> dict[str, dict]:
    """Check every entry (name, kind, range) and that its extreme values make a valid configuration.

    Raises:
        ValueError: unknown name (the known ones are listed), bad kind, empty/inverted/non-positive-log
            range, empty choices, or a value ``TrainConfig`` or the neuron class rejects.
    """
    if not isinstance(space, Mapping) or not space:
        raise ValueError("the search space is empty: give at least one hyperparameter")
    known = _known_names(base.neuron)
    unknown = sorted(set(space) - known)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown} for neuron {base.neuron!r}; known names: "
                         f"{sorted(known)}")
    clean: dict[str, dict] = {}
    for name, spec in space.items():
        kind = _spec_kind(name, spec)
        if kind == "choices":
            choices = spec["choices"]
            if not isinstance(choices, (list, tuple)) or len(choices) == 0:
                raise ValueError(f"hyperparameter {name!r}: choices must be a non-empty list, got {choices!r}")
            if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
                raise ValueError(f"hyperparameter {name!r}: choices must be numbers, strings, booleans or null")
            if len(set(map(json.dumps, choices))) != len(choices):
                raise ValueError(f"hyperparameter {name!r}: repeated choices {choices!r}")
            clean[name] = {"choices": list(choices)}
            probes = list(choices)
        else:
            low, high = _bounds(name, spec, kind)
            clean[name] = {kind: [low, high], **({"step": spec["step"]} if "step" in spec else {})}
            probes = [low, high]
        for value in probes:
            try:
                config = apply_params(base, {name: value})
                resolve_neuron_class(config.neuron)(**config.neuron_params)
            except (ValueError, TypeError) as err:
                raise ValueError(f"hyperparameter {name!r}: value {value!r} gives an invalid configuration: "
                                 f"{err}") from err
    return clean


def _per_layer(base: tuple, n_hidden_old: int, n_hidden: int, has_output: bool) -> list:
    """Per-layer values for ``n_hidden`` hidden layers (+ output) from the base tuple's layout."""
    base = list(base)
    n_old = n_hidden_old + (1 if has_output else 0)
    if len(base) == 1:
        base = base * max(n_old, 1)
    hidden_vals = base[:n_hidden_old] or base[:1]
    out = [hidden_vals[min(i, len(hidden_vals) - 1)] for i in range(n_hidden)]
    if has_output:
        out.append(base[n_old - 1] if len(base) >= n_old else base[-1])
    return out


def apply_params(base: TrainConfig, params: Mapping) -> TrainConfig:
    """The configuration of one trial: ``base`` with the hyperparameters ``params`` set."""
    values = base.to_dict()
    neuron_params = dict(values["neuron_params"])
    has_output = base.readout == "first_spike"
    width = params.get("hidden.width")
    depth = int(params.get("hidden.depth", len(base.hidden)))
    if depth < 1:
        raise ValueError(f"hidden.depth must be >= 1, got {depth}")
    hidden = [int(width) if width is not None else base.hidden[min(i, len(base.hidden) - 1)] for i in range(depth)]
    layers = {k: _per_layer(getattr(base, k), len(base.hidden), depth, has_output) for k in PER_LAYER}
    for name, value in params.items():
        head, _, part = name.partition(".")
        if head == "neuron_params":
            neuron_params[part] = value
        elif head == "hidden":
            continue
        elif head in PER_LAYER:
            if part == "hidden":
                layers[head][:depth] = [value] * depth
            elif has_output:  # "output"; without a spiking output layer there is none to set
                layers[head][-1] = value
        else:
            values[name] = value
    values.update(neuron_params=neuron_params, hidden=tuple(hidden), **{k: tuple(v) for k, v in layers.items()})
    if values.get("grad_clip") == 0:
        values["grad_clip"] = None
    return TrainConfig.from_dict(values)


def base_params(base: TrainConfig, space: Mapping) -> dict:
    """The hyperparameters of ``base`` itself, for the names of ``space`` whose value lies in its range:
    the inverse of :func:`apply_params` (per-layer names read the first hidden / the output layer)."""
    def value(name: str):
        head, _, part = name.partition(".")
        if head == "neuron_params":
            return base.neuron_params.get(part)
        if head == "hidden":
            return base.hidden[0] if part == "width" else len(base.hidden)
        if head in PER_LAYER:
            return getattr(base, head)[0 if part == "hidden" else -1]
        return getattr(base, name)

    def in_range(v, spec: Mapping) -> bool:
        if "choices" in spec:
            return v in spec["choices"]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        (kind, (low, high)), = ((k, spec[k]) for k in ("float", "log", "int") if k in spec)
        step = spec.get("step")
        on_step = step is None or abs((v - low) / step - round((v - low) / step)) < 1e-9
        return low <= v <= high and on_step and (kind != "int" or float(v).is_integer())

    return {name: value(name) for name, spec in space.items() if in_range(value(name), spec)}


def suggest(trial: optuna.Trial, space: Mapping) -> dict:
    """One value per hyperparameter from Optuna's ``trial``."""
    params = {}
    for name, spec in space.items():
        if "choices" in spec:
            params[name] = trial.suggest_categorical(name, spec["choices"])
        elif "int" in spec:
            low, high = spec["int"]
            params[name] = trial.suggest_int(name, low, high, step=int(spec.get("step", 1)))
        else:
            kind = "log" if "log" in spec else "float"
            low, high = spec[kind]
            params[name] = trial.suggest_float(name, low, high, log=kind == "log", step=spec.get("step"))
    return params


def space_json(space: Mapping) -> str:
    return json.dumps(space, sort_keys=True)


def distributions(space: Mapping) -> dict:
    """Optuna distributions of a space (e.g. to rebuild a study from ``hpo.nc`` for importances)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name, spec in space.items():
        if "choices" in spec:
            out[name] = CategoricalDistribution(spec["choices"])
        elif "int" in spec:
            out[name] = IntDistribution(*spec["int"], step=int(spec.get("step", 1)))
        else:
            kind = "log" if "log" in spec else "float"
            out[name] = FloatDistribution(*spec[kind], log=kind == "log", step=spec.get("step"))
    return out


# ---------------------------------------------------------------------------------------------------
# Storage and study
def is_rdb_url(storage: str) -> bool:
    return "://" in str(storage)


def redact(storage: str) -> str:
    """A storage spec without its password (for messages and result files)."""
    if not is_rdb_url(storage):
        return str(storage)
    try:
        from sqlalchemy.engine import make_url

        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<unparsable URL>"


def open_storage(storage: str | Path, *, heartbeat_interval: int = 60, grace_period: int = 240):
    """A journal file (any path) or an RDB (``sqlite:///``, ``postgresql://``... URL) storage.

    RDB storages get Optuna's heartbeat (``heartbeat_interval``/``grace_period``); journal files have none,
    see :func:`fail_stale_trials`.

    Raises:
        RuntimeError: the database cannot be reached or opened (checked here, before any trial).
    """
    spec = str(storage)
    if is_rdb_url(spec):
        engine_kwargs: dict = {"pool_pre_ping": True}
        if spec.startswith(("postgresql", "postgres")):
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
            spec = _postgres_driver(spec)
        from sqlalchemy.exc import IntegrityError, ProgrammingError

        try:
            for attempt in range(3):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
                        return optuna.storages.RDBStorage(spec, engine_kwargs=engine_kwargs,
                                                          heartbeat_interval=heartbeat_interval,
                                                          grace_period=grace_period)
                except (IntegrityError, ProgrammingError):
                    # workers creating the tables of a fresh database at the same time: one wins, retry
                    if attempt == 2:
                        raise
                    time.sleep(0.5 + attempt)
        except Exception as err:  # driver and connection errors of every kind
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise RuntimeError(f"cannot open storage {redact(spec)}: {type(err).__name__}: {msg}") from err
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(spec)
    if path.is_dir():
        raise RuntimeError(f"storage {path} is a directory; give a journal file path (e.g. study.log) or a DB URL")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as err:
        raise RuntimeError(f"cannot open journal storage {path}: {err}") from err


def _postgres_driver(url: str) -> str:
    """``postgresql://`` with the installed driver: SQLAlchemy 2.1 defaults to psycopg 3; psycopg2 also works."""
    scheme, _, rest = url.partition("://")
    if "+" in scheme:
        return url
    import importlib.util

    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    return url


#: TPE options of every search (``TrialSeededSampler.settings`` records them with the rest).
TPE_OPTIONS = {"multivariate": True, "constant_liar": True}


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A TPE sampler made afresh for every trial with seed ``seed * 1000003 + trial number``.

    Reproducible (a trial's proposal depends only on the seed, its number and the finished history) and
    safe with many workers: concurrent workers do not draw the same random start-up proposals, as they
    would with one identically seeded sampler per process. The first ``n_startup_trials`` trials are
    random; TPE proposes the rest. :meth:`settings` is what ``hpo.nc`` records, and what the TPE sampler
    of every trial is built from.
    """

    def __init__(self, seed: int = 0, n_startup_trials: int = 10):
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, got {n_startup_trials}")
        self.seed, self.n_startup_trials = int(seed), int(n_startup_trials)
        self._current: tuple[int, optuna.samplers.BaseSampler] | None = None

    def settings(self) -> dict:
        return {"sampler": "TPESampler", **TPE_OPTIONS, "n_startup_trials": self.n_startup_trials,
                "seed": self.seed, "seeding": "per trial: seed * 1000003 + trial number"}

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        if self._current is None or self._current[0] != trial.number:
            self._current = (trial.number, tpe_sampler(self.seed * 1_000_003 + trial.number, self.n_startup_trials))
        return self._current[1]

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self._for(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:  # per-trial seeds: nothing to reseed
        pass


def tpe_sampler(seed: int, n_startup_trials: int = 10) -> optuna.samplers.TPESampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials, **TPE_OPTIONS)


def make_pruner(name: str = "median", startup_trials: int = 3) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=0, interval_steps=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}: use median or none")


def open_study(storage, study_name: str, space: Mapping, base: TrainConfig, *,
               sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create the study, or load it and check it was made with the same space and fixed settings.

    Raises:
        ValueError: the study exists with another search space or other fixed settings.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_name, direction=DIRECTION, load_if_exists=True,
                                sampler=sampler or TrialSeededSampler(), pruner=pruner or make_pruner())
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ValueError(f"study {study_name!r} exists and does not maximise; choose another --study-name")
    mine = {"search_space": space_json(space), "fixed_config": json.dumps(_fixed(base), sort_keys=True)}
    attrs = study.user_attrs
    for key, value in mine.items():
        if key not in attrs:
            study.set_user_attr(key, value)
    attrs = study.user_attrs  # re-read: a concurrent creator may have written first
    if attrs["search_space"] != mine["search_space"]:
        theirs = json.loads(attrs["search_space"])
        diff = sorted(k for k in set(theirs) | set(space) if theirs.get(k) != space.get(k))
        raise ValueError(f"study {study_name!r} exists with another search space (differing: {diff}); use its space "
                         f"or another --study-name")
    if attrs["fixed_config"] != mine["fixed_config"]:
        theirs = json.loads(attrs["fixed_config"])
        ours = json.loads(mine["fixed_config"])
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ValueError(f"study {study_name!r} exists with other fixed training settings (differing: {diff}); "
                         f"pass the same flags or another --study-name")
    return study


def _fixed(base: TrainConfig) -> dict:
    return json.loads(json.dumps(base.to_dict()))


# ---------------------------------------------------------------------------------------------------
# Stale trials (journal storage has no heartbeat)
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_start(pid: int) -> str:
    """Start time of a process (``/proc/PID/stat`` field 22), ``""`` if unknown; guards against pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return ""


def _pid_alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now_start = _proc_start(pid)
    return not (start and now_start and now_start != start)


def worker_identity() -> dict:
    pid = os.getpid()
    return {"worker_host": socket.gethostname(), "worker_boot_id": _boot_id(), "worker_pid": pid,
            "worker_proc_start": _proc_start(pid)}


def fail_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage, grace_period: float, *,
                      use_heartbeat: bool = True) -> list[int]:
    """Mark RUNNING trials of dead workers as FAIL (through ``storage``, the study's); returns their numbers.

    A RUNNING trial is stale if (a) it was started on this machine (same host name and boot id) by a
    process that no longer exists (pid gone, or reused: other start time), or (b) ``use_heartbeat`` and its
    last heartbeat (user attr ``heartbeat``, written every ``heartbeat_interval`` by its worker; else its
    start time) is older than ``grace_period`` seconds -- a worker on another machine that died.
    """
    me = worker_identity()
    study_id = storage.get_study_id_from_name(study.study_name)
    now = time.time()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = t.user_attrs
        reason = None
        same_machine = (attrs.get("worker_host") == me["worker_host"]
                        and attrs.get("worker_boot_id", "") == me["worker_boot_id"])
        if same_machine and "worker_pid" in attrs and not _pid_alive(int(attrs["worker_pid"]),
                                                                     attrs.get("worker_proc_start", "")):
            reason = f"worker pid {attrs['worker_pid']} on {attrs['worker_host']} is gone"
        elif use_heartbeat:
            last = attrs.get("heartbeat")
            if last is None and t.datetime_start is not None:
                last = t.datetime_start.timestamp()
            if last is not None and now - float(last) > grace_period:
                reason = f"no heartbeat for {now - float(last):.0f} s (> {grace_period:.0f} s)"
        if reason is None:
            continue
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(trial_id, "failed_because", reason)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            failed.append(t.number)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, KeyError):
            pass  # another worker finished or failed it first
    return failed


class _Heartbeat:
    """Writes user attr ``heartbeat`` (unix time) of a running trial every ``interval`` seconds until stopped.

    A failed write (a database or file-system hiccup) is logged and retried at the next beat, so one error
    does not let another worker fail a live trial (it waits ``grace_period``, several beats). The thread
    ends when stopped or when the trial is finished (e.g. failed by another worker).
    """

    def __init__(self, trial: optuna.Trial, interval: float):
        self._trial, self._interval = trial, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="spikeode-hpo-heartbeat")

    def _beat(self) -> bool:
        """Write one heartbeat; ``False`` when the trial is finished and beating is over."""
        try:
            self._trial.set_user_attr("heartbeat", time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        except Exception as err:  # noqa: BLE001 - any storage error: keep the live trial beating
            _log.warning("trial %d: heartbeat not written (%s: %s); retrying in %g s", self._trial.number,
                         type(err).__name__, err, self._interval)
        return True

    def _run(self):
        while not self._stop.wait(self._interval) and self._beat():
            pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------------
# Objective
class DataCache:
    """Loaded data per data-defining settings; one load per process for every trial that shares them."""

    KEYS = ("data", "T", "k_in", "pool", "train_samples", "test_samples", "validation_fraction", "seed", "dtype")

    def __init__(self, size: int = 4):
        self._items: OrderedDict = OrderedDict()
        self.size = size
        self.loads = 0

    def get(self, config: TrainConfig):
        key = tuple(getattr(config, k) for k in self.KEYS)
        if key not in self._items:
            self._items[key] = load_data(config)
            self.loads += 1
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        self._items.move_to_end(key)
        return self._items[key]


def _summary(history: xr.Dataset, objective: str = "validation_accuracy") -> dict:
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


def make_objective(base: TrainConfig, space: Mapping, runs_dir: Path, *, data_cache: DataCache | None = None,
                   heartbeat_interval: float | None = 60.0, progress: bool = False):
    """``objective(trial) -> final validation accuracy``; each trial trains in ``runs_dir/trial_<number>``."""
    cache = data_cache or DataCache()
    identity = worker_identity()

    def objective(trial: optuna.Trial) -> float:
        for key, value in {**identity, "heartbeat": time.time()}.items():
            trial.set_user_attr(key, value)
        params = suggest(trial, space)
        config = apply_params(base, params)
        trial.set_user_attr("config", json.loads(json.dumps(config.to_dict())))
        run_dir = Path(runs_dir) / f"trial_{trial.number}"
        if run_dir.exists():  # left by a dead worker of this study (trial numbers are never reused)
            import shutil

            shutil.rmtree(run_dir)

        def on_epoch(epoch: int, row: dict) -> None:
            trial.report(float(row[objective_variable(config)]), epoch)
            if epoch < config.epochs and trial.should_prune():  # never prune a finished run
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        beat = _Heartbeat(trial, heartbeat_interval) if heartbeat_interval else contextlib.nullcontext()
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
                for key, value in _summary(read_dataset(run_dir / "run.nc"), objective_variable(config)).items():
                    trial.set_user_attr(key, value)
            raise optuna.TrialPruned(str(err)) from err
        summary = _summary(history, objective_variable(config))
        for key, value in summary.items():
            trial.set_user_attr(key, value)
        return summary["validation_accuracy"]

    return objective


# ---------------------------------------------------------------------------------------------------
# Results
def _is_number(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def study_dataset(study: optuna.Study, *, space: Mapping | None = None, base: TrainConfig | None = None,
                  extra_attrs: Mapping | None = None) -> xr.Dataset:
    """Every finished trial (complete, pruned, failed; not the unrun over-budget ones) as a Dataset, dim ``trial``."""
    trials = sorted((t for t in study.get_trials(deepcopy=False)
                     if t.state.is_finished() and not t.user_attrs.get(OVER_BUDGET, False)), key=lambda t: t.number)
    attrs = study.user_attrs
    space = space if space is not None else json.loads(attrs.get("search_space", "{}"))
    fixed = base.to_dict() if base is not None else json.loads(attrs.get("fixed_config", "{}"))

    def ua(name):
        return np.asarray([t.user_attrs.get(name, np.nan) for t in trials], dtype=np.float64)

    data = {
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
    for name in space:
        values = [t.params.get(name) for t in trials]
        var = name.replace(".", "_")
        if all(_is_number(v) for v in values):
            arr = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
        elif all(v is None or isinstance(v, bool) for v in values):
            arr = np.asarray([-1 if v is None else int(v) for v in values], dtype=np.int64)
        else:
            arr = np.asarray(["" if v is None else str(v) for v in values], dtype=object)
        data[var] = variable("trial", arr, f"hyperparameter {name}", hyperparameter=name,
                             spec=json.dumps(space[name]))
    if "neuron_params.I0" in space:
        i0 = data["neuron_params_I0"].values
        data["regime"] = variable("trial", np.asarray(["excitable" if v < 0 else "oscillatory" if v > 0 else
                                                       "threshold" if v == 0 else "" for v in i0], dtype=object),
                                  "QIF regime (I0 < 0 excitable, I0 > 0 oscillatory)")
    ds = xr.Dataset(data, coords={"trial": ("trial", np.asarray([t.number for t in trials], dtype=np.int64),
                                            {"long_name": "trial number", "units": "1"})})
    seed = fixed.get("seed")
    neuron, source = fixed.get("neuron", "?"), fixed.get("data", "?")
    ds.attrs.update(provenance_attrs(f"spikeode hyperparameter search {study.study_name!r} ({neuron} on {source})",
                                     fixed, seed))
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
    """Rewrite ``out`` atomically from the storage (under a lock file, so the last writer has every trial)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(out.parent / f".{out.name}.lock"):
        ds = study_dataset(study, **kwargs)
        if ds.sizes["trial"] == 0:
            return None
        return write_dataset(ds, out)


def best_config(storage, study_name: str) -> dict:
    """The configuration (``TrainConfig`` keys) of the study's best complete trial."""
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
    return json.loads(json.dumps(apply_params(fixed, best.params).to_dict()))


def format_params(params: Mapping) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


# ---------------------------------------------------------------------------------------------------
# The budget
OVER_BUDGET = "over_budget"
BUDGET_RULE = ("the study's trials, in every state (complete, pruned, failed; running ones of live workers too), "
               "count toward --trials; a running trial of a dead worker is failed and counts; a trial a worker "
               "starts after the budget is used up (a race between workers) is failed unrun, marked "
               "'over_budget', and neither counts nor appears in hpo.nc; a rerun of a finished study starts none")


class _OverBudget(Exception):
    """The trial lost the race for the last budget slot to another worker; it fails without running."""


def trials_used(study: optuna.Study) -> int:
    """The trials that count toward the budget (``BUDGET_RULE``): all but those refused as over budget."""
    return sum(not t.user_attrs.get(OVER_BUDGET, False) for t in study.get_trials(deepcopy=False))


def _claim_budget_slot(study: optuna.Study, trial: optuna.Trial, budget: int) -> None:
    """Raise ``_OverBudget`` if ``budget`` counted trials precede ``trial``.

    Trial numbers are assigned atomically by the storage, so of two workers that both saw one free slot,
    the one with the higher number sees the other's trial here and gives its slot up.
    """
    before = sum(t.number < trial.number and not t.user_attrs.get(OVER_BUDGET, False)
                 for t in study.get_trials(deepcopy=False))
    if before >= budget:
        trial.set_user_attr(OVER_BUDGET, True)
        raise _OverBudget(f"the budget of {budget} trials was used up by other workers; trial {trial.number} "
                          f"not run")


def run_search(base: TrainConfig, space: Mapping, *, storage: str | Path, study_name: str, n_trials: int,
               out: str | Path, runs_dir: str | Path | None = None, seed: int = 0, sampler_startup_trials: int = 10,
               pruner: str = "median", pruner_startup_trials: int = 3, heartbeat_interval: int = 60,
               grace_period: int = 240, progress: bool = False, baseline: bool = True,
               echo: Callable[[str], None] = print) -> optuna.Study:
    """Validate, open the study, fail stale trials, then run trials until the study holds ``n_trials``.

    With ``baseline`` the first trial of a new study is ``base`` itself (its values of the searched names,
    :func:`base_params`), then the sampler takes over.

    ``n_trials`` is the study's whole budget, shared by every worker (see ``BUDGET_RULE``): a rerun of a
    finished study starts no trial. Everything that can be wrong with the input (space, storage, study)
    raises before the first trial.
    """
    if not base.validation_fraction > 0:
        raise ValueError("hyperparameter search needs a validation split: set validation_fraction > 0 "
                         "(--validation-fraction); the test split is never used to choose")
    if n_trials < 0:
        raise ValueError(f"--trials must be >= 0, got {n_trials}")
    space = validate_space(space, base)
    out = Path(out)
    runs_dir = Path(runs_dir) if runs_dir is not None else out.parent / f"{out.stem}_runs"
    rdb = is_rdb_url(str(storage))
    store = open_storage(storage, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    sampler = TrialSeededSampler(seed, sampler_startup_trials)
    study = open_study(store, study_name, space, base, sampler=sampler,
                       pruner=make_pruner(pruner, pruner_startup_trials))
    _claim_runs_dir(runs_dir, study_name, str(storage))
    extra = {"sampler_json": json.dumps(sampler.settings()),
             "pruner_json": json.dumps({"pruner": pruner, "n_startup_trials": pruner_startup_trials,
                                        "n_warmup_steps": 0, "reported": "validation accuracy per epoch"}),
             "storage": redact(str(storage)),
             "trial_budget": n_trials,
             "baseline_first": int(baseline),
             "budget_rule": BUDGET_RULE,
             "stale_trial_rule": f"RUNNING trial failed when its worker pid is gone (same host and boot) or, "
                                 f"{'via Optuna RDB heartbeat' if rdb else 'via heartbeat user attr'}, silent "
                                 f"for more than {grace_period} s"}
    for number in fail_stale_trials(study, store, grace_period, use_heartbeat=not rdb):
        echo(f"trial {number}: marked FAIL (its worker is gone)")
    objective = make_objective(base, space, runs_dir, heartbeat_interval=None if rdb else heartbeat_interval,
                               progress=progress)

    def within_budget(trial: optuna.Trial) -> float:
        _claim_budget_slot(study, trial, n_trials)
        return objective(trial)

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        write_study(study, out, space=space, base=base, extra_attrs=extra)
        echo(_trial_line(study, trial))

    def stale_check_and_budget(study: optuna.Study, trial: FrozenTrial) -> None:
        fail_stale_trials(study, store, grace_period, use_heartbeat=not rdb)
        if trials_used(study) >= n_trials:
            study.stop()

    used = trials_used(study)
    if baseline and not study.trials and n_trials > 0:
        # The recipe itself is trial 0 (the same for every model searched with the same base): a search
        # never ends below its starting point, whatever the budget. Names outside their range are sampled.
        study.enqueue_trial(base_params(base, space), user_attrs={"baseline": 1}, skip_if_exists=True)
    if used < n_trials:
        study.optimize(within_budget, callbacks=[after_trial, stale_check_and_budget], catch=(_OverBudget,),
                       gc_after_trial=True)
    else:
        echo(f"study {study_name!r}: {used} of {n_trials} budgeted trials used, none started")
    write_study(study, out, space=space, base=base, extra_attrs=extra)
    return study


def _trial_line(study: optuna.Study, trial: FrozenTrial) -> str:
    """One line per finished trial: state, value, best so far, test accuracy, duration, parameters."""
    if trial.user_attrs.get(OVER_BUDGET):
        return f"trial {trial.number} not run: the budget was used up by other workers"
    try:
        best = study.best_trial
        best_text = f"{best.value:.4f} (trial {best.number})"
    except ValueError:
        best_text = "none yet"
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    test = trial.user_attrs.get("test_accuracy")
    test_text = "-" if test is None else f"{test:.4f}"
    return (f"trial {trial.number} {trial.state.name.lower()}: value {value} | best {best_text} | test {test_text} "
            f"| {trial.duration.total_seconds() if trial.duration else float('nan'):.1f} s | "
            f"{format_params(trial.params)}")


def _claim_runs_dir(runs_dir: Path, study_name: str, storage: str) -> None:
    """``runs_dir/study.json`` names the study whose trial directories it holds; another study is refused."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    marker = runs_dir / "study.json"
    mine = {"study_name": study_name, "storage": redact(storage)}
    if marker.exists():
        theirs = json.loads(marker.read_text())
        if theirs.get("study_name") != study_name:
            raise ValueError(f"runs directory {runs_dir} holds trials of study {theirs.get('study_name')!r}; "
                             f"pass another --runs-dir")
        return
    tmp = runs_dir / f".study.json.{os.getpid()}"
    tmp.write_text(json.dumps(mine))
    os.replace(tmp, marker)
