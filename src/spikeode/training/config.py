"""The training configuration: its fields (with the help the CLI shows), recipes and per-layer values.

A :class:`TrainConfig` defines a run completely and is stored as JSON in every result file. Each field
carries its help text (``metadata["help"]``) and, for a setting with named values, its ``choices``; the
``spikeode train`` flags are generated from them. This module imports no JAX (the CLI builds its parser
before JAX starts); the neuron and data modules are imported when a configuration is checked.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "TrainConfig",
    "OPTIMIZERS",
    "RECIPES",
    "PAIR_NEURON_PARAMS",
    "NEURON_RECIPES",
    "PER_LAYER",
    "DATA_FIELDS",
    "EXECUTION_FIELDS",
    "default_config",
    "per_layer",
    "spiking_layer_names",
    "effective_config",
    "accuracy_variable",
    "data_key",
    "read_config_file",
    "changed_keys",
]

#: Optimisers by name: each is ``optax.<name>(learning_rate)``.
OPTIMIZERS = ("adam", "adamw", "adabelief", "sgd", "rmsprop")

#: Per-layer settings: one value per spiking layer (hidden layers, then the output layer), or one for all.
PER_LAYER = ("weight_mean", "weight_std", "n_slots")
#: Classification readouts (``spikeode.training.loss``): first output spike, or the non-spiking max voltage.
READOUTS = ("first_spike", "max_voltage")


def _about(help: str, choices: tuple[str, ...] | None = None) -> dict:
    """A field's metadata: its help text and, for a setting with named values, the allowed ones."""
    return {"help": help, **({"choices": choices} if choices else {})}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored as JSON in every result file).

    Per-layer values (``weight_mean``, ``weight_std``, ``n_slots``) have one entry per spiking layer
    (hidden layers, then the output layer); a single value applies to every layer (:func:`per_layer`).
    ``weight_std`` is in units of ``1/sqrt(fan_in)``.

    ``init="calibrated"`` (the default) scales every layer's weights on a seeded batch of training
    data until its neurons spike (``spikeode.training.calibrate``: median ``calibration_rate`` spikes per hidden
    neuron per trial, a fraction ``calibration_output`` of (sample, output) pairs spiking); ``weight_std``
    then sets only the shape and ``weight_mean`` is not used; the weight updates of a layer scaled by
    ``s_l`` are scaled by ``s_l`` too, so ``lr`` keeps its size relative to the weights. ``init="recipe"``
    keeps the fixed ``weight_mean``/``weight_std``.

    ``gradient="auto"`` (the default) is the event adjoint where a layer's integrator resolves to
    diffrax and autodiff on the closed form. On the diffrax path the adjoint was measured faster than
    autodiff through the solver (11.5 vs 7.4 samples/s on the ``shd`` workload; about 6x for a 2-D
    adaptive LIF) with gradients equal to tolerance (``tests/test_adjoint.py``).

    ``objective`` names the accuracy that headlines a run (CLI, ``run.nc`` attribute ``objective``):
    ``"real"`` counts real output spikes only (``*_accuracy``), ``"pseudo"`` also silent outputs'
    pseudospikes (``*_accuracy_pseudo``). ``grad_clip`` 0 means no clipping and is stored as ``None``.
    """

    neuron: str = field(default="qif", metadata=_about("lif | qif | eif | package.module:Class"))
    neuron_params: dict = field(default_factory=dict, metadata=_about(
        'neuron parameters as JSON, e.g. \'{"tau": 1.0, "I0": -0.05}\''))
    data: str = field(default="synthetic", metadata=_about(
        "synthetic[:standard|easy|easier] (default) | yinyang | shd:DIR"))
    T: float = field(default=2.0, metadata=_about("trial duration (dimensionless)"))
    k_in: int | None = field(default=500, metadata=_about("cap on input spikes per sample (SHD-format data)"))
    pool: int = field(default=1, metadata=_about("channel pooling factor (SHD-format data)"))
    train_samples: int | None = field(default=None, metadata=_about("seeded training subset (smoke runs)"))
    test_samples: int | None = field(default=None, metadata=_about("seeded test subset"))
    validation_fraction: float = field(default=0.0, metadata=_about("share of train carved out for validation"))
    hidden: tuple[int, ...] = field(default=(64,), metadata=_about("hidden widths, e.g. 128 or 128,64"))
    epochs: int = field(default=10, metadata=_about("training epochs"))
    batch_size: int = field(default=32, metadata=_about("minibatch size"))
    optimizer: str = field(default="adam", metadata=_about("optax optimiser", OPTIMIZERS))
    lr: float = field(default=3e-3, metadata=_about("peak learning rate"))
    schedule: str = field(default="cosine", metadata=_about(
        "learning-rate schedule", ("constant", "cosine", "exponential")))
    grad_clip: float | None = field(default=1.0, metadata=_about("global-norm gradient clipping (0: off)"))
    weight_mean: tuple[float, ...] = field(default=(0.0,), metadata=_about(
        "init=recipe: weight mean per spiking layer (hidden layers, then output), e.g. 0.03,0.05"))
    weight_std: tuple[float, ...] = field(default=(1.0,), metadata=_about(
        "weight spread per spiking layer in units of 1/sqrt(fan_in), e.g. 1.0 or 1.0,1.0"))
    n_slots: tuple[int, ...] = field(default=(8,), metadata=_about(
        "spike slots per neuron per spiking layer, e.g. 8,6"))
    temperature: float = field(default=0.2, metadata=_about("softmax temperature of the first-spike loss"))
    gamma: float = field(default=0.0, metadata=_about("weight of the gamma (exp(t_label/T) - 1) term"))
    pseudospikes: bool = field(default=True, metadata=_about(
        "pseudospikes of silent outputs, which give them a gradient"))
    readout: str = field(default="first_spike", metadata=_about(
        "classification readout", READOUTS))
    train_neuron: bool = field(default=False, metadata=_about("also train the neuron parameters"))
    integrator: str = field(default="auto", metadata=_about(
        "auto (closed form where the model has one) | closed_form | diffrax", ("auto", "closed_form", "diffrax")))
    gradient: str = field(default="auto", metadata=_about(
        "auto (default: the event adjoint on the diffrax path, autodiff on the closed form) | autodiff | "
        "adjoint (same values; the adjoint's memory is independent of solver steps)", ("auto", "autodiff", "adjoint")))
    init: str = field(default="calibrated", metadata=_about(
        "calibrated (default: weights scaled on training data until neurons spike) | recipe", ("calibrated", "recipe")))
    calibration_rate: float = field(default=2.0, metadata=_about(
        "calibrated init: median spikes per hidden neuron per trial"))
    calibration_output: float = field(default=0.75, metadata=_about(
        "calibrated init: fraction of (sample, output) pairs with a spike"))
    objective: str = field(default="real", metadata=_about(
        "real (default: accuracy counts real output spikes only) | pseudo", ("real", "pseudo")))
    dtype: str = field(default="float32", metadata=_about("floating-point precision", ("float32", "float64")))
    microbatch: int | None = field(default=None, metadata=_about(
        "samples per microbatch: the step sums the gradient over batch_size/microbatch of them (the batch's "
        "gradient up to float rounding; memory scales with the microbatch); default: the whole batch, or "
        "what --memory-budget fits"))
    memory_budget: float | None = field(default=None, metadata=_about(
        "GiB one training step may use: a step over it is split into microbatches (default: half the RAM)"))
    seed: int = field(default=0, metadata=_about("seed of initialisation, batch order and data subsets"))

    def __post_init__(self):
        from spikeode.data import parse_data_source
        from spikeode.neurons import resolve_neuron_class

        for name in ("hidden", *PER_LAYER):
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(value) if isinstance(value, (list, tuple)) else (value,))
        if self.grad_clip is not None and not self.grad_clip >= 0:
            raise ValueError(f"grad_clip must be >= 0 (0: off), got {self.grad_clip}")
        if self.grad_clip == 0:
            object.__setattr__(self, "grad_clip", None)
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"unknown {f.name} {getattr(self, f.name)!r}: use one of {', '.join(choices)}")
        if not (self.calibration_rate > 0 and 0 < self.calibration_output <= 1):
            raise ValueError("calibration_rate must be > 0 and calibration_output in (0, 1], got "
                             f"{self.calibration_rate}, {self.calibration_output}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.microbatch is not None and not (1 <= self.microbatch <= self.batch_size
                                                and self.batch_size % self.microbatch == 0):
            raise ValueError(f"microbatch must divide batch_size ({self.batch_size}), got {self.microbatch}")
        if self.memory_budget is not None and not self.memory_budget > 0:
            raise ValueError(f"memory_budget must be > 0 GiB, got {self.memory_budget}")
        if not self.T > 0 or not self.lr > 0 or not self.temperature > 0:
            raise ValueError("T, lr and temperature must be positive")
        parse_data_source(self.data)
        resolve_neuron_class(self.neuron)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> TrainConfig:
        """The configuration of a mapping of field names (e.g. read from JSON); unknown keys raise."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys: {unknown}")
        return cls(**values)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


#: Per data source and neuron model, the recipe ``spikeode train`` uses when no flag overrides it.
RECIPES: dict[str, dict] = {
    # gamma 0.8 (not 0.3): the gamma term is what anchors the output spikes inside [0, T] (the cross-entropy
    # only sees time differences); at 0.3 LIF and QIF outputs fell silent after a few epochs, at 1.5 they
    # kept spiking but accuracy fell as the term outweighed the cross-entropy (issue 18).
    "yinyang": dict(T=2.0, k_in=None, hidden=(120,), epochs=30, batch_size=32, lr=5e-3, schedule="cosine",
                    temperature=0.1, gamma=0.8, n_slots=(4, 4), weight_mean=(1.5, 0.15), weight_std=(1.0, 1.0)),
    "synthetic": dict(T=2.0, k_in=500, hidden=(64,), epochs=8, batch_size=32, lr=3e-3, schedule="cosine",
                      temperature=0.1, gamma=0.3, n_slots=(8, 6), weight_mean=(0.03, 0.05), weight_std=(1.0, 1.0),
                      train_samples=1000, test_samples=400),
    "shd": dict(T=2.0, k_in=1000, hidden=(128,), epochs=50, batch_size=64, lr=2e-3, schedule="cosine",
                temperature=0.1, gamma=0.3, n_slots=(8, 6), weight_mean=(0.03, 0.05), weight_std=(1.0, 1.0)),
}
#: LIF and QIF share the exponential synapse at each one's closed-form ratio (LIF ``tau_mem = 2 tau_syn``;
#: QIF ``tau_syn = tau/2`` at ``I0 = -1/4``, the threshold-to-rest distance 1 of LIF's ``v_th``), and
#: everything else of the data source's recipe (loss, slots, weights for ``init="recipe"``): only the neuron
#: parameters differ. The delta-synapse pair is ``studies/lif_vs_qif.py --synapse delta``.
PAIR_NEURON_PARAMS: dict[str, dict] = {
    "qif": {"tau": 1.0, "I0": -0.25, "tau_syn": 0.5},
    "lif": {"tau_mem": 1.0, "tau_syn": 0.5},
}
NEURON_RECIPES: dict[tuple[str, str], dict] = {
    (kind, neuron): dict(neuron_params=params) for kind in RECIPES for neuron, params in PAIR_NEURON_PARAMS.items()
}


def default_config(data: str = "synthetic", neuron: str = "qif", **overrides) -> TrainConfig:
    """The recipe for a data source and neuron model, with ``overrides`` applied on top."""
    from spikeode.data import parse_data_source

    kind = parse_data_source(data).kind
    values = {"data": data, "neuron": neuron, **RECIPES[kind], **NEURON_RECIPES.get((kind, neuron.lower()), {})}
    values.update(overrides)
    return TrainConfig.from_dict(values)


def spiking_layer_names(config: TrainConfig) -> list[str]:
    """``hidden1, ..., hiddenN`` and, with the first-spike readout, ``output`` (the voltage readout does not spike)."""
    names = [f"hidden{i + 1}" for i in range(len(config.hidden))]
    return names + (["output"] if config.readout == "first_spike" else [])


def per_layer(config: TrainConfig, name: str) -> list:
    """The per-layer setting ``name`` with one value per spiking layer.

    A single value applies to all ``n`` spiking layers; otherwise exactly ``n`` are needed. With the
    voltage readout (not a spiking layer) an ``(n + 1)``-th value, the output layer's entry of a recipe, is
    accepted and unused. Any other count raises: a value is never dropped silently.
    """
    values = list(getattr(config, name))
    n = len(spiking_layer_names(config))
    spare_output = config.readout != "first_spike"
    if len(values) == 1:
        return values * n
    if len(values) == n or (spare_output and len(values) == n + 1):
        return values[:n]
    expected = f"{n} or {n + 1} (with the unused output entry)" if spare_output else f"{n}"
    raise ValueError(f"{name} has {len(values)} entries for {n} spiking layers: give one value for all "
                     f"layers or one per layer ({expected}; hidden layers, then the output layer)")


def effective_config(config: TrainConfig) -> tuple[TrainConfig, str]:
    """The configuration a run really uses, and a notice of what a user should know (``""`` if nothing).

    A neuron model that declares no pseudodynamics (``pseudo_spike``) gets the generic one,
    :func:`spikeode.training.readout.linear_continuation`, for its silent neurons' pseudospikes.
    """
    from spikeode.neurons import resolve_neuron_class

    neuron = resolve_neuron_class(config.neuron)(**config.neuron_params)
    if config.readout == "first_spike" and config.pseudospikes and not neuron.has_pseudodynamics:
        return config, (
            f"{type(neuron).__name__} declares no pseudodynamics (pseudo_spike): its silent neurons get pseudospikes "
            "of the generic linear continuation towards threshold (spikeode.training.readout.linear_continuation; "
            "declare pseudo_spike for the model's own, or --no-pseudospikes)")
    return config, ""


def accuracy_variable(config: TrainConfig, split: str) -> str:
    """The run.nc accuracy of ``split`` (train, test, validation) that ``config.objective`` names: real
    output spikes only (``<split>_accuracy``), or also pseudospikes (``<split>_accuracy_pseudo``)."""
    return f"{split}_accuracy" + ("" if config.objective == "real" else "_pseudo")


#: Fields of how a run executes, not of what it computes: a resumed run may change them.
EXECUTION_FIELDS = ("microbatch", "memory_budget")

#: The fields that define a run's data (``spikeode.training.load_data`` reads exactly these).
DATA_FIELDS = ("data", "T", "k_in", "pool", "train_samples", "test_samples", "validation_fraction", "seed", "dtype")


def data_key(config: TrainConfig) -> tuple:
    """A hashable key of the data ``config`` loads: equal keys, equal ``(train, test, validation)``."""
    return tuple(getattr(config, name) for name in DATA_FIELDS)


def read_config_file(path: str | Path, what: str = "config file") -> dict:
    """The table in a JSON or TOML file (``.toml`` suffix: TOML; anything else: JSON).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file does not parse or does not hold a table (``what`` names it in the message).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            values = tomllib.loads(text)
        else:
            values = json.loads(text)
    except ValueError as err:  # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise ValueError(f"cannot parse {what} {path}: {err}") from err
    if not isinstance(values, dict):
        raise ValueError(  # noqa: TRY004 (a user's file: the CLI reports ValueError)
            f"{what} {path} must hold a table (a JSON object), not {type(values).__name__}")
    return values


def changed_keys(a: Mapping, b: Mapping) -> list[str]:
    """The sorted keys whose values differ between two mappings (a key missing from one differs)."""
    missing = object()
    return sorted(k for k in set(a) | set(b) if a.get(k, missing) != b.get(k, missing))
