"""Search spaces: the declarative table, its validation, and the map between hyperparameters and configurations.

A space maps a hyperparameter name to exactly one of

    {"float": [low, high]}   {"log": [low, high]}   {"int": [low, high]}   {"choices": [a, b, ...]}

(``float``/``int`` take an optional ``"step"``). Names:

- any scalar ``TrainConfig`` key (``lr``, ``optimizer``, ``T``, ``k_in``, ``batch_size``, ``temperature``,
  ``gamma``, ``pseudospikes``, ``schedule``, ``grad_clip``, ``seed``, ...);
- ``neuron_params.<field>``: a field of the neuron class (``tau_mem``, ``tau_syn``, ``v_th`` for LIF;
  ``tau``, ``I0`` for QIF; any field of a user's ``package.module:Class``);
- ``hidden.width`` and ``hidden.depth`` (``hidden = (width,) * depth``);
- ``weight_mean.hidden``, ``weight_mean.output``, ``weight_std.hidden``, ``weight_std.output``,
  ``n_slots.hidden``, ``n_slots.output``: the per-layer value of every hidden layer / of the output layer.

A user's space (JSON or TOML file of the same form) replaces the built-in one.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path

import optuna

from spikeode.data import parse_data_source
from spikeode.data.yinyang import T_LATE as YINYANG_T_LATE
from spikeode.neurons import resolve_neuron_class
from spikeode.training import PER_LAYER, TrainConfig, per_layer, read_config_file

# "common" applies to every model; a model's own entries are added (and win). Ranges are for SHD-format
# data (synthetic, SHD); pass --space for other sources.
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
#: TrainConfig keys that stay fixed for every trial (they define the data and the comparison).
FIXED_KEYS = ("neuron", "neuron_params", "data", "hidden", "weight_mean", "weight_std", "n_slots",
              "train_samples", "test_samples", "validation_fraction", "dtype")

#: With ``init="calibrated"`` the weights are rescaled until the layer spikes, so these have no effect: the
#: calibration targets are searched instead.
_RECIPE_INIT_ONLY = ("weight_mean.", "weight_std.")
_CALIBRATION_SPACE = {"calibration_rate": {"log": [1.0, 4.0]}, "calibration_output": {"float": [0.5, 1.0]}}


def default_space(neuron: str, init: str = "calibrated", data: str = "synthetic") -> dict[str, dict]:
    """The built-in space of a model on a data source: ``common`` plus the model's own entries (a copy).

    With a calibrated initialisation (the default) the weight scales are not searched (calibration
    overrides them) and the calibration targets are; with ``init="recipe"`` it is the other way round.
    On Yin-Yang ``k_in`` (a cap for SHD-format data) is not searched, and ``T`` only above the latest input
    time (``spikeode.data.yinyang.T_LATE``).
    """
    key = neuron.lower()
    space = {**SEARCH_SPACES["common"], **SEARCH_SPACES.get(key, {})}
    if init == "calibrated":
        space = {name: spec for name, spec in space.items() if not name.startswith(_RECIPE_INIT_ONLY)}
        space.update(_CALIBRATION_SPACE)
    if parse_data_source(data).kind == "yinyang":
        space.pop("k_in")
        space["T"] = {"choices": [T for T in space["T"]["choices"] if T > YINYANG_T_LATE]}
    return copy.deepcopy(space)


def read_space(path: str | Path) -> dict[str, dict]:
    """A search space from a JSON or TOML file (``.toml`` suffix: TOML; anything else: JSON).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file does not parse or does not hold a table.
    """
    return read_config_file(path, "search-space file")


def space_json(space: Mapping) -> str:
    """The canonical text of a space (sorted keys): what a study records and compares."""
    return json.dumps(space, sort_keys=True)


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


def _choices(name: str, spec: Mapping) -> list:
    choices = spec["choices"]
    if not isinstance(choices, (list, tuple)) or len(choices) == 0:
        raise ValueError(f"hyperparameter {name!r}: choices must be a non-empty list, got {choices!r}")
    if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
        raise ValueError(f"hyperparameter {name!r}: choices must be numbers, strings, booleans or null")
    if len(set(map(json.dumps, choices))) != len(choices):
        raise ValueError(f"hyperparameter {name!r}: repeated choices {choices!r}")
    return list(choices)


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
            probes = _choices(name, spec)
            clean[name] = {"choices": probes}
        else:
            probes = list(_bounds(name, spec, kind))
            clean[name] = {kind: probes, **({"step": spec["step"]} if "step" in spec else {})}
        for value in probes:
            try:
                config = apply_params(base, {name: value})
                resolve_neuron_class(config.neuron)(**config.neuron_params)
            except (ValueError, TypeError) as err:
                raise ValueError(f"hyperparameter {name!r}: value {value!r} gives an invalid configuration: "
                                 f"{err}") from err
    return clean


def _per_layer(base: TrainConfig, name: str, n_hidden: int) -> list:
    """``name`` re-laid for ``n_hidden`` hidden layers (+ the spiking output layer): hidden layer ``i`` takes
    the base's value at depth ``i`` (its deepest beyond), the output keeps its own. The base's values are
    validated first (``spikeode.training.per_layer``): a wrong count raises, nothing is dropped."""
    values = per_layer(base, name)
    has_output = base.readout == "first_spike"
    hidden = values[:-1] if has_output else values
    return [hidden[min(i, len(hidden) - 1)] for i in range(n_hidden)] + ([values[-1]] if has_output else [])


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
    layers = {k: _per_layer(base, k, depth) for k in PER_LAYER}
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
    return TrainConfig.from_dict(values)  # grad_clip 0 -> None there


def json_config(config: TrainConfig) -> dict:
    """``config`` as JSON values (tuples become lists): what a trial records and ``best_config`` returns."""
    return json.loads(json.dumps(config.to_dict()))


def _in_range(value, spec: Mapping) -> bool:
    """Whether ``value`` is one the spec can propose (a choice; within ``[low, high]`` and on its step)."""
    if "choices" in spec:
        return value in spec["choices"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    (kind, (low, high)), = ((k, spec[k]) for k in ("float", "log", "int") if k in spec)
    step = spec.get("step")
    on_step = step is None or abs((value - low) / step - round((value - low) / step)) < 1e-9
    return low <= value <= high and on_step and (kind != "int" or float(value).is_integer())


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

    return {name: value(name) for name, spec in space.items() if _in_range(value(name), spec)}


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


def distributions(space: Mapping) -> dict[str, optuna.distributions.BaseDistribution]:
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
