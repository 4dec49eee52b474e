"""Training with exact gradients: configuration, model, optax loop, evaluation, checkpoints, history.

A run lives in one directory: ``run.nc`` (the history Dataset, rewritten atomically after every
epoch), ``checkpoint.eqx`` (model and optimiser state after the last finished epoch),
``checkpoint.json`` (its epoch and the configuration) and ``epochs/epoch_NNNN.eqx`` (the model after
every epoch, 0 = initialisation, after the calibrated initialisation; ``load_model(run_dir, epoch)``).
Accuracies count real output spikes (``test_accuracy``); ``test_accuracy_pseudo`` also counts the
pseudospikes of silent outputs. ``train(config, out)`` on a directory with a
checkpoint of the same configuration resumes after the last finished epoch; the batch order of epoch
``e`` is drawn from ``(seed, e)``, so a resumed run gives the same history as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from jaxtyping import Array, Float, Int, PRNGKeyArray

from spikeode.data import SpikeDataset, iterate_batches, load_dataset, parse_data_source, split_validation
from spikeode.training.calibrate import HIDDEN_STATISTIC, OUTPUT_STATISTIC, LayerCalibration, calibrate
from spikeode.integrate import Diffrax, make_integrator
from spikeode.engine.network import FeedForward, simulate
from spikeode.neurons import AbstractNeuron, resolve_neuron_class
from spikeode.training.loss import Objective, sample_loss
from spikeode.precision import ensure_precision, jax_dtype
from spikeode.io.netcdf import provenance_attrs, read_dataset, variable, write_dataset
from spikeode.spikes import Spikes

__all__ = [
    "TrainConfig",
    "default_config",
    "SpikingClassifier",
    "build_model",
    "load_data",
    "make_loss_fn",
    "evaluate",
    "train",
    "accuracy_variable",
    "effective_config",
    "resolve_gradient",
    "epoch_line",
    "load_checkpoint",
    "load_model",
    "epoch_model_path",
]

OPTIMIZERS: dict[str, Callable] = {
    "adam": optax.adam,
    "adamw": optax.adamw,
    "adabelief": optax.adabelief,
    "sgd": optax.sgd,
    "rmsprop": optax.rmsprop,
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored as JSON in every result file).

    Per-layer lists (``weight_mean``, ``weight_std``, ``n_slots``) have one entry per spiking layer
    (hidden layers, then the output layer); a single value applies to every layer. ``weight_std`` is
    in units of ``1/sqrt(fan_in)``.

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
    pseudospikes (``*_accuracy_pseudo``).
    """

    neuron: str = "qif"
    neuron_params: dict = field(default_factory=dict)
    data: str = "synthetic"
    T: float = 2.0
    k_in: int | None = 500
    pool: int = 1
    train_samples: int | None = None
    test_samples: int | None = None
    validation_fraction: float = 0.0
    hidden: tuple[int, ...] = (64,)
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 3e-3
    schedule: str = "cosine"
    grad_clip: float | None = 1.0
    weight_mean: tuple[float, ...] = (0.0,)
    weight_std: tuple[float, ...] = (1.0,)
    n_slots: tuple[int, ...] = (8,)
    temperature: float = 0.2
    gamma: float = 0.0
    pseudospikes: bool = True
    readout: str = "first_spike"
    train_neuron: bool = False
    integrator: str = "auto"
    gradient: str = "auto"
    init: str = "calibrated"
    calibration_rate: float = 2.0
    calibration_output: float = 0.75
    objective: str = "real"
    dtype: str = "float32"
    seed: int = 0

    def __post_init__(self):
        for name in ("hidden", "weight_mean", "weight_std", "n_slots"):
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(value) if isinstance(value, (list, tuple)) else (value,))
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}: use one of {sorted(OPTIMIZERS)}")
        if self.schedule not in ("constant", "cosine", "exponential"):
            raise ValueError(f"unknown schedule {self.schedule!r}: use constant, cosine or exponential")
        if self.readout not in ("first_spike", "max_voltage"):
            raise ValueError(f"unknown readout {self.readout!r}: use first_spike or max_voltage")
        if self.gradient not in ("auto", "autodiff", "adjoint"):
            raise ValueError(f"gradient must be auto, autodiff or adjoint, got {self.gradient!r}")
        if self.init not in ("calibrated", "recipe"):
            raise ValueError(f"init must be calibrated or recipe, got {self.init!r}")
        if not (self.calibration_rate > 0 and 0 < self.calibration_output <= 1):
            raise ValueError("calibration_rate must be > 0 and calibration_output in (0, 1], got "
                             f"{self.calibration_rate}, {self.calibration_output}")
        if self.objective not in ("real", "pseudo"):
            raise ValueError(f"objective must be real or pseudo, got {self.objective!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.T > 0 or not self.lr > 0 or not self.temperature > 0:
            raise ValueError("T, lr and temperature must be positive")
        parse_data_source(self.data)
        resolve_neuron_class(self.neuron)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys: {unknown}")
        return cls(**values)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


#: Per data source and neuron model, the recipe ``spikeode train`` uses when no flag overrides it.
RECIPES: dict[str, dict] = {
    "yinyang": dict(T=2.0, k_in=None, hidden=(120,), epochs=30, batch_size=32, lr=5e-3, schedule="cosine",
                    temperature=0.1, gamma=0.3, n_slots=(4, 4), weight_mean=(1.5, 0.15), weight_std=(1.0, 1.0)),
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
    kind = parse_data_source(data).kind
    values = {"data": data, "neuron": neuron, **RECIPES[kind], **NEURON_RECIPES.get((kind, neuron.lower()), {})}
    values.update(overrides)
    return TrainConfig.from_dict(values)


class SpikingClassifier(eqx.Module):
    """A spiking network and, for the voltage readout, a non-spiking leaky readout layer on its last layer."""

    net: FeedForward
    readout_weights: Float[Array, "classes neurons"] | None


def _dtype(config: TrainConfig):
    return jax_dtype(config.dtype)  # float64 switches JAX's x64 mode on (spikeode.precision)


def build_model(config: TrainConfig, n_inputs: int, n_classes: int, *, key: PRNGKeyArray) -> SpikingClassifier:
    """Seeded model of the configured architecture (``weight_std`` scaled by ``1/sqrt(fan_in)``)."""
    neuron: AbstractNeuron = resolve_neuron_class(config.neuron)(**config.neuron_params)
    spiking_out = config.readout == "first_spike"
    sizes = (n_inputs, *config.hidden) + ((n_classes,) if spiking_out else ())
    n_layers = len(sizes) - 1
    # recipes give an output entry that the voltage readout (not a spiking layer) does not use
    means, stds, slots = (_expand(getattr(config, name), n_layers, name, spare_output=not spiking_out)
                          for name in ("weight_mean", "weight_std", "n_slots"))
    stds = [s / math.sqrt(fan_in) for s, fan_in in zip(stds, sizes)]
    k_net, k_out = jax.random.split(key)
    net = FeedForward(neuron, sizes, key=k_net, weight_mean=means, weight_std=stds, n_slots=slots,
                      dtype=_dtype(config))
    readout = None
    if not spiking_out:
        readout = jax.random.normal(k_out, (n_classes, sizes[-1]), _dtype(config)) / math.sqrt(sizes[-1])
    return SpikingClassifier(net, readout)


def _expand(values: Sequence, n: int, name: str, *, spare_output: bool = False) -> list:
    """One value per spiking layer: a single value applies to all ``n``; otherwise exactly ``n`` are needed.

    ``spare_output``: the readout is not a spiking layer, so an ``(n + 1)``-th value (the output layer's, in
    the hidden-then-output layout of ``TrainConfig``) is accepted and unused. Any other count raises.
    """
    values = list(values)
    if len(values) == 1:
        return values * n
    if len(values) == n or (spare_output and len(values) == n + 1):
        return values[:n]
    expected = f"{n} or {n + 1} (with the unused output entry)" if spare_output else f"{n}"
    raise ValueError(f"{name} has {len(values)} entries for {n} spiking layers: give one value for all "
                     f"layers or one per layer ({expected}; hidden layers, then the output layer)")


def load_data(config: TrainConfig) -> tuple[SpikeDataset, SpikeDataset, SpikeDataset | None]:
    """(train, test, validation-or-None) of the configured source, in the configured dtype."""
    dtype = np.dtype(config.dtype)
    ensure_precision(config.dtype)  # the arrays made from this data keep its dtype
    common = dict(T=config.T, k_in=config.k_in, seed=config.seed, dtype=dtype)
    if parse_data_source(config.data).kind != "yinyang":
        common["pool"] = config.pool
    train_set = load_dataset(config.data, "train", n_samples=config.train_samples, **common)
    test_set = load_dataset(config.data, "test", n_samples=config.test_samples, **common)
    validation = None
    if config.validation_fraction > 0:
        train_set, validation = split_validation(train_set, config.validation_fraction, seed=config.seed)
    return train_set, test_set, validation


def resolve_gradient(config: TrainConfig, neurons: Sequence[AbstractNeuron]) -> str:
    """``config.gradient``, with ``"auto"`` resolved: ``"adjoint"`` if any layer's integrator is diffrax."""
    if config.gradient != "auto":
        return config.gradient
    on_diffrax = any(isinstance(make_integrator(config.integrator, n), Diffrax) for n in neurons)
    return "adjoint" if on_diffrax else "autodiff"


def make_loss_fn(config: TrainConfig):
    """``loss(model, spikes, labels) -> (mean loss, metrics)``; metrics are per-batch sums/counts.

    ``correct`` counts real output spikes only, ``correct_pseudo`` also pseudospikes of silent outputs;
    ``silent`` counts samples with no real output spike.
    """

    objective = Objective.of(config)

    def loss_fn(model: SpikingClassifier, spikes: Spikes, labels: Int[Array, " batch"], mask):
        gradient = resolve_gradient(config, model.net.neurons)
        trace = simulate(model.net, spikes, config.T, integrator=config.integrator, gradient=gradient)
        losses, acc, acc_pseudo = sample_loss(objective, model.net, trace, labels, model.readout_weights)
        m = mask.astype(losses.dtype)
        n = jnp.maximum(jnp.sum(m), 1.0)
        metrics = {
            "loss_sum": jnp.sum(losses * m),
            "correct": jnp.sum(acc * m),
            "correct_pseudo": jnp.sum(acc_pseudo * m),
            "silent": jnp.sum(jnp.all(trace.output.counts == 0, axis=-1) * m),
            "n": jnp.sum(m),
            "spike_counts": [jnp.sum(layer.counts * mask[:, None], axis=0) for layer in trace.layers],
            "problems": jnp.sum((trace.exhausted | trace.overflow | trace.failed) & mask),
        }
        return jnp.sum(losses * m) / n, metrics

    return loss_fn


def _padded_batches(dataset: SpikeDataset, batch_size: int):
    """Evaluation batches of one fixed shape: the last batch is padded with sample 0 and masked."""
    n = len(dataset)
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        mask = idx < n
        idx = np.where(mask, idx, 0)
        yield dataset.spikes[jnp.asarray(idx)], jnp.asarray(dataset.labels[idx]), jnp.asarray(mask)


def _summarise(totals: dict, sizes: Sequence[int]) -> dict:
    n = max(float(totals["n"]), 1.0)
    return {
        "loss": float(totals["loss_sum"]) / n,
        "accuracy": float(totals["correct"]) / n,
        "accuracy_pseudo": float(totals["correct_pseudo"]) / n,
        "output_silent_sample_fraction": float(totals["silent"]) / n,
        "silent_fraction": [float(np.mean(np.asarray(c) == 0)) for c in totals["spike_counts"]],
        "spikes_per_neuron": [float(np.sum(c)) / n / size for c, size in zip(totals["spike_counts"], sizes)],
        "problems": int(totals["problems"]),
    }


def _accumulate(totals: dict | None, metrics: dict) -> dict:
    metrics = jax.device_get(metrics)
    if totals is None:
        return metrics
    return jax.tree_util.tree_map(lambda a, b: a + b, totals, metrics)


def evaluate(model: SpikingClassifier, dataset: SpikeDataset, config: TrainConfig, *, eval_fn=None) -> dict:
    """Loss, accuracies, silent fraction and spikes per neuron of every layer over a whole split."""
    eval_fn = eval_fn or eqx.filter_jit(make_loss_fn(config))
    totals = None
    for spikes, labels, mask in _padded_batches(dataset, config.batch_size):
        _, metrics = eval_fn(model, spikes, labels, mask)
        totals = _accumulate(totals, metrics)
    return _summarise(totals, model.net.sizes[1:])


def _optimizer(config: TrainConfig, steps_per_epoch: int, calibration: list[dict] | None = None
               ) -> optax.GradientTransformation:
    """The configured optimiser and schedule. After a calibrated initialisation, which multiplied layer ``l``'s
    weights by ``s_l``, the updates of those weights are multiplied by ``s_l`` too: a step keeps the size
    relative to the weights that ``lr`` has with the configured ``weight_std``."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        lr = optax.cosine_decay_schedule(config.lr, total, alpha=0.01)
    elif config.schedule == "exponential":
        lr = optax.exponential_decay(config.lr, transition_steps=total, decay_rate=0.1)
    else:
        lr = config.lr
    parts = [optax.clip_by_global_norm(config.grad_clip)] if config.grad_clip else []
    parts.append(OPTIMIZERS[config.optimizer](lr))
    if calibration:
        parts.append(_scale_layer_updates(tuple(c["scale"] for c in calibration)))
    return optax.chain(*parts)


def _scale_layer_updates(factors: Sequence[float]) -> optax.GradientTransformation:
    """Multiply the update of ``net.weights[l]`` by ``factors[l]`` (other leaves unchanged)."""

    def update(updates, state, params=None):
        scaled = tuple(u * f for u, f in zip(updates.net.weights, factors))
        return eqx.tree_at(lambda u: u.net.weights, updates, scaled), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _trainable_filter(model: SpikingClassifier, config: TrainConfig):
    """Which leaves are trained: weights always, neuron parameters if ``train_neuron``."""
    spec = jax.tree_util.tree_map(eqx.is_inexact_array, model)
    if not config.train_neuron:
        spec = eqx.tree_at(lambda m: m.net.neurons, spec, replace_fn=lambda ns: jax.tree_util.tree_map(lambda _: False, ns))
    return spec


def _config_diff(a: dict, b: dict) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def load_checkpoint(run_dir: str | Path, config: TrainConfig | None = None):
    """``(model, opt_state, epoch, config)`` of the last finished epoch of a run directory."""
    run_dir = Path(run_dir)
    meta_path = run_dir / "checkpoint.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"no checkpoint in {run_dir} (expected checkpoint.json and checkpoint.eqx)")
    meta = json.loads(meta_path.read_text())
    stored = TrainConfig.from_dict(_tuples(meta["config"]))
    if config is not None and stored != config:
        raise ValueError(f"{run_dir} holds a run with another configuration; differing keys: "
                         f"{_config_diff(stored.to_dict(), config.to_dict())}")
    like = build_model(stored, meta["n_inputs"], meta["n_classes"], key=jax.random.PRNGKey(0))
    spec = _trainable_filter(like, stored)
    opt = _optimizer(stored, meta["steps_per_epoch"], meta.get("calibration"))
    opt_like = opt.init(eqx.filter(like, spec))
    model, opt_state = eqx.tree_deserialise_leaves(run_dir / "checkpoint.eqx", (like, opt_like))
    return model, opt_state, int(meta["epoch"]), stored


def _tuples(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def epoch_model_path(run_dir: str | Path, epoch: int) -> Path:
    """Where the model after ``epoch`` is kept (every epoch, model only; for gradient statistics)."""
    return Path(run_dir) / "epochs" / f"epoch_{epoch:04d}.eqx"


def load_model(run_dir: str | Path, epoch: int | None = None) -> tuple[SpikingClassifier, TrainConfig]:
    """The model of a run after ``epoch`` (default: the last finished epoch) and the run's config."""
    model, _, last, config = load_checkpoint(run_dir)
    if epoch is None or epoch == last:
        return model, config
    path = epoch_model_path(run_dir, epoch)
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no model for epoch {epoch} (expected {path})")
    return eqx.tree_deserialise_leaves(path, model), config


def _save_checkpoint(run_dir: Path, model, opt_state, epoch: int, config: TrainConfig, extra: dict) -> None:
    snapshot = epoch_model_path(run_dir, epoch)
    snapshot.parent.mkdir(exist_ok=True)
    eqx.tree_serialise_leaves(snapshot.with_suffix(".tmp"), model)
    os.replace(snapshot.with_suffix(".tmp"), snapshot)
    tmp = run_dir / ".checkpoint.eqx.tmp"
    eqx.tree_serialise_leaves(tmp, (model, opt_state))
    os.replace(tmp, run_dir / "checkpoint.eqx")
    meta = {"epoch": epoch, "config": config.to_dict(), **extra}
    tmp_meta = run_dir / ".checkpoint.json.tmp"
    tmp_meta.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_meta, run_dir / "checkpoint.json")


HISTORY_VARIABLES = {
    # name: (dims, long_name, units)
    "train_loss": (("epoch",), "training loss (mean over the epoch's minibatches)", "1"),
    "train_accuracy": (("epoch",), "training accuracy (real output spikes only)", "1"),
    "train_accuracy_pseudo": (("epoch",), "training accuracy (real spikes and pseudospikes of silent outputs)", "1"),
    "test_loss": (("epoch",), "test loss", "1"),
    "test_accuracy": (("epoch",), "test accuracy (real output spikes only)", "1"),
    "test_accuracy_pseudo": (("epoch",), "test accuracy (real spikes and pseudospikes of silent outputs)", "1"),
    "output_silent_sample_fraction": (("epoch",), "fraction of test samples with no real output spike", "1"),
    "validation_loss": (("epoch",), "validation loss", "1"),
    "validation_accuracy": (("epoch",), "validation accuracy (real output spikes only)", "1"),
    "validation_accuracy_pseudo": (("epoch",), "validation accuracy (real spikes and pseudospikes of silent outputs)",
                                   "1"),
    "silent_fraction": (("epoch", "layer"), "fraction of neurons silent on the whole test split", "1"),
    "spikes_per_neuron": (("epoch", "layer"), "mean spikes per neuron per test sample", "1"),
    "grad_norm": (("epoch",), "mean global gradient norm over the epoch's steps", "1"),
    "budget_overflows": (("epoch",), "samples with an exhausted event budget, slot overflow or failed solve", "1"),
    "wall_time": (("epoch",), "wall-clock time of the epoch (training and evaluation)", "s"),
}


#: Outputs count as mostly silent when more test samples than this have no real output spike.
SILENT_WARNING_FRACTION = 0.5

CALIBRATION_VARIABLES = {
    # LayerCalibration field: (run.nc name, long_name)
    "scale": ("calibration_scale", "factor applied to the layer's weight shape by calibrated initialisation"),
    "weight_mean": ("calibration_weight_mean", "mean of the layer's weights after calibration"),
    "weight_std": ("calibration_weight_std", "standard deviation of the layer's weights after calibration"),
    "target": ("calibration_target", "activity calibrated initialisation aimed at"),
    "activity": ("calibration_activity", "activity reached on the calibration batch"),
}
CALIBRATION_STATISTICS = f"hidden layers: {HIDDEN_STATISTIC}; output layer: {OUTPUT_STATISTIC}"


def _history_dataset(rows: list[dict], config: TrainConfig, layer_names: list[str], info: dict) -> xr.Dataset:
    epochs = [r["epoch"] for r in rows]
    data = {}
    for name, (dims, long_name, units) in HISTORY_VARIABLES.items():
        values = [r.get(name, np.nan if len(dims) == 1 else [np.nan] * len(layer_names)) for r in rows]
        data[name] = variable(dims, np.asarray(values, dtype=np.float64), long_name, units)
    calibration = info.get("calibration")
    if calibration:
        for key, (name, long_name) in CALIBRATION_VARIABLES.items():
            data[name] = variable(("layer",), np.asarray([c[key] for c in calibration], np.float64), long_name, "1")
        for name in ("calibration_target", "calibration_activity"):
            data[name].attrs["comment"] = CALIBRATION_STATISTICS
    ds = xr.Dataset(data, coords={"epoch": ("epoch", np.asarray(epochs), {"long_name": "epoch", "units": "1"}),
                                  "layer": ("layer", layer_names, {"long_name": "spiking layer"})})
    ds.attrs.update(provenance_attrs(f"spikeode training run ({config.neuron} on {config.data})",
                                     config.to_dict(), config.seed))
    silent = rows[-1]["output_silent_sample_fraction"]
    ds.attrs.update({
        "neuron_model": config.neuron,
        "objective": accuracy_variable(config, "test"),
        "init": config.init,
        "gradient_used": info["gradient_used"],
        "outputs_mostly_silent": int(silent > SILENT_WARNING_FRACTION),
        **({"calibration_samples": calibration[0]["samples"]} if calibration else {}),
        **({"notice": info["notice"]} if info.get("notice") else {}),
    })
    return ds


def _rows_from_dataset(ds: xr.Dataset) -> list[dict]:
    rows = []
    for i, epoch in enumerate(ds["epoch"].values):
        row = {"epoch": int(epoch)}
        for name, (dims, _, _) in HISTORY_VARIABLES.items():
            value = ds[name].values[i]
            row[name] = value.tolist() if len(dims) > 1 else float(value)
        rows.append(row)
    return rows


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    progress: bool = True,
    data=None,
    stop_after: int | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> xr.Dataset:
    """Train (or resume) a run in directory ``out``; returns the history Dataset (also ``out/run.nc``).

    Args:
        config: the run's configuration.
        out: run directory (created).
        progress: show a progress bar (epoch and batch, loss, accuracy).
        data: optional ``(train, test, validation)`` already loaded (e.g. shared across HPO trials).
        stop_after: stop after this epoch (tests of kill/resume); the run stays resumable.
        on_epoch: called as ``on_epoch(epoch, row)`` after each epoch is saved (``row``: that epoch's
            history entry); it may raise (e.g. ``optuna.TrialPruned``) to stop the run.

    Raises:
        FloatingPointError: a non-finite loss or gradient; the last good checkpoint is kept.
        ValueError: ``out`` holds a run of a different configuration.
    """
    from tqdm.auto import tqdm

    ensure_precision(config.dtype)  # before any array: float64 whatever the caller enabled
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    config, notice = effective_config(config)
    if notice:
        print(f"spikeode: {notice}", file=sys.stderr)
    train_set, test_set, validation = data if data is not None else load_data(config)
    n_classes = train_set.n_classes
    loss_fn = make_loss_fn(config)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    layer_names = [f"hidden{i + 1}" for i in range(len(config.hidden))] + (
        ["output"] if config.readout == "first_spike" else [])

    if (run_dir / "checkpoint.json").exists():
        model, opt_state, start_epoch, _ = load_checkpoint(run_dir, config)
        rows = [r for r in _rows_from_dataset(read_dataset(run_dir / "run.nc")) if r["epoch"] <= start_epoch]
        calibration = json.loads((run_dir / "checkpoint.json").read_text()).get("calibration")
    else:
        model = build_model(config, train_set.n_channels, n_classes, key=jax.random.PRNGKey(config.seed))
        model, calibration = _initialise(model, train_set, config, progress)
        opt_state, start_epoch, rows = None, 0, []
    info = {"calibration": calibration, "notice": notice,
            "gradient_used": resolve_gradient(config, model.net.neurons)}
    spec = _trainable_filter(model, config)
    optimizer = _optimizer(config, steps_per_epoch, calibration)
    if opt_state is None:
        opt_state = optimizer.init(eqx.filter(model, spec))

    eval_fn = eqx.filter_jit(loss_fn)

    @eqx.filter_jit
    def step(model, opt_state, spikes, labels, mask):
        params, static = eqx.partition(model, spec)

        def objective(p):
            return loss_fn(eqx.combine(p, static), spikes, labels, mask)

        (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(params)
        gnorm = optax.tree.norm(grads)
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        new_model = eqx.combine(eqx.apply_updates(params, updates), static)
        finite = jnp.isfinite(loss) & jnp.isfinite(gnorm)
        return new_model, new_opt_state, metrics, gnorm, finite

    meta = {"n_inputs": train_set.n_channels, "n_classes": n_classes, "steps_per_epoch": steps_per_epoch,
            "calibration": calibration}
    if not rows:
        t0 = time.perf_counter()
        rows.append(_epoch_row(0, None, evaluate(model, test_set, config, eval_fn=eval_fn),
                               _maybe(validation, model, config, eval_fn), [], time.perf_counter() - t0,
                               train_eval=evaluate(model, train_set, config, eval_fn=eval_fn)))
        _save_checkpoint(run_dir, model, opt_state, 0, config, meta)
        write_dataset(_history_dataset(rows, config, layer_names, info), run_dir / "run.nc")

    last = config.epochs if stop_after is None else min(config.epochs, stop_after)
    bar = tqdm(total=config.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, disable=not progress,
               desc=f"{config.neuron} train", unit="batch", dynamic_ncols=True)
    for epoch in range(start_epoch + 1, last + 1):
        t0 = time.perf_counter()
        totals, gnorms = None, []
        for spikes, labels in iterate_batches(train_set, config.batch_size, seed=config.seed * 100_003 + epoch):
            mask = jnp.ones(labels.shape, bool)
            if labels.shape[0] < config.batch_size:  # pad to one compiled shape; padded samples are masked
                spikes, labels, mask = _pad_batch(spikes, labels, config.batch_size)
            new_model, new_opt, metrics, gnorm, finite = step(model, opt_state, spikes, labels, mask)
            if not bool(finite):
                bar.close()
                raise FloatingPointError(
                    f"non-finite loss or gradient in epoch {epoch}; the checkpoint of epoch {epoch - 1} in "
                    f"{run_dir} is kept (lower the learning rate or enable gradient clipping)")
            model, opt_state = new_model, new_opt
            totals = _accumulate(totals, metrics)
            gnorms.append(float(gnorm))
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{float(totals['loss_sum']) / float(totals['n']):.3f}",
                            acc=f"{float(totals['correct']) / float(totals['n']):.3f}")  # real spikes
        train_summary = _summarise(totals, model.net.sizes[1:])
        row = _epoch_row(epoch, train_summary, evaluate(model, test_set, config, eval_fn=eval_fn),
                         _maybe(validation, model, config, eval_fn), gnorms, time.perf_counter() - t0)
        rows.append(row)
        _save_checkpoint(run_dir, model, opt_state, epoch, config, meta)
        write_dataset(_history_dataset(rows, config, layer_names, info), run_dir / "run.nc")
        if progress:
            bar.write(epoch_line(row))
        if on_epoch is not None:
            on_epoch(epoch, row)
    bar.close()
    ds = read_dataset(run_dir / "run.nc")
    if ds.attrs["outputs_mostly_silent"]:
        warnings.warn(f"{run_dir}: {float(ds.output_silent_sample_fraction[-1]):.0%} of the test samples end with no "
                      "real output spike: the network does not classify with its spikes (test_accuracy counts "
                      "real spikes only; test_accuracy_pseudo also pseudospikes)", stacklevel=2)
    return ds


def accuracy_variable(config: TrainConfig, split: str) -> str:
    """The run.nc accuracy of ``split`` (train, test, validation) that ``config.objective`` names: real
    output spikes only (``<split>_accuracy``), or also pseudospikes (``<split>_accuracy_pseudo``)."""
    return f"{split}_accuracy" + ("" if config.objective == "real" else "_pseudo")


def epoch_line(row: dict) -> str:
    """One epoch's summary: the headline accuracy counts real spikes, pseudospikes beside it."""
    return (f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.3f} | "
            f"test acc {row['test_accuracy']:.3f} (with pseudospikes {row['test_accuracy_pseudo']:.3f}) | "
            f"outputs silent on {row['output_silent_sample_fraction']:.0%} of samples | "
            f"silent neurons {np.round(row['silent_fraction'], 2).tolist()} | {row['wall_time']:.1f} s")


def effective_config(config: TrainConfig) -> tuple[TrainConfig, str]:
    """The configuration a run really uses, and a notice of what changed (``""`` if nothing).

    A neuron model that declares no pseudodynamics (``pseudo_spike``) trains with pseudospikes off:
    silent outputs then report ``T`` and get no gradient.
    """
    neuron = resolve_neuron_class(config.neuron)(**config.neuron_params)
    if config.readout == "first_spike" and config.pseudospikes and not neuron.has_pseudodynamics:
        return config.replace(pseudospikes=False), (
            f"{type(neuron).__name__} declares no pseudodynamics (pseudo_spike): training with pseudospikes off "
            "(silent outputs get no gradient; declare pseudo_spike to add them)")
    return config, ""


#: Samples in the calibration batch of ``init="calibrated"`` (a seeded subset of the training split).
CALIBRATION_SAMPLES = 64


def _initialise(model: SpikingClassifier, train_set: SpikeDataset, config: TrainConfig, progress: bool):
    """``(model, calibration records or None)``: the model after ``config.init``."""
    if config.init == "recipe":
        return model, None
    n = len(train_set)
    idx = np.sort(np.random.default_rng(config.seed).permutation(n)[:min(CALIBRATION_SAMPLES, n)])
    net, found = calibrate(model.net, train_set.spikes[jnp.asarray(idx)], config.T,
                           hidden_rate=config.calibration_rate, output_active=config.calibration_output,
                           spiking_output=config.readout == "first_spike", integrator=config.integrator)
    missed = [f"layer {l}: {c.activity:.3g} < {c.target:.3g}" for l, c in enumerate(found) if not c.reached]
    if missed:
        warnings.warn(f"calibrated initialisation missed its target ({'; '.join(missed)}); the largest scale "
                      "searched is kept", stacklevel=3)
    if progress:
        print("calibrated init: " + "; ".join(_describe(l, c) for l, c in enumerate(found)), file=sys.stderr)
    return eqx.tree_at(lambda m: m.net, model, net), [{**c._asdict(), "samples": len(idx)} for c in found]


def _describe(l: int, c: LayerCalibration) -> str:
    what = "spikes/neuron (median)" if c.statistic == HIDDEN_STATISTIC else "of outputs spiking"
    return f"layer {l} weights {c.weight_mean:.3g} +- {c.weight_std:.3g} -> {c.activity:.3g} {what} (target {c.target:.3g})"


def _maybe(dataset, model, config, eval_fn):
    return None if dataset is None else evaluate(model, dataset, config, eval_fn=eval_fn)


def _pad_batch(spikes: Spikes, labels, size: int):
    n = labels.shape[0]
    idx = jnp.concatenate([jnp.arange(n), jnp.zeros(size - n, jnp.int32)])
    mask = jnp.arange(size) < n
    return spikes[idx], labels[idx], mask


def _epoch_row(epoch, train_summary, test_summary, val_summary, gnorms, wall, train_eval=None) -> dict:
    tr = train_summary or train_eval
    row = {
        "epoch": epoch,
        "train_loss": tr["loss"],
        "train_accuracy": tr["accuracy"],
        "train_accuracy_pseudo": tr["accuracy_pseudo"],
        "test_loss": test_summary["loss"],
        "test_accuracy": test_summary["accuracy"],
        "test_accuracy_pseudo": test_summary["accuracy_pseudo"],
        "output_silent_sample_fraction": test_summary["output_silent_sample_fraction"],
        "silent_fraction": test_summary["silent_fraction"],
        "spikes_per_neuron": test_summary["spikes_per_neuron"],
        "grad_norm": float(np.mean(gnorms)) if gnorms else np.nan,
        "budget_overflows": tr["problems"] + test_summary["problems"],
        "wall_time": wall,
    }
    if val_summary is not None:
        row["validation_loss"] = val_summary["loss"]
        row["validation_accuracy"] = val_summary["accuracy"]
        row["validation_accuracy_pseudo"] = val_summary["accuracy_pseudo"]
    return row
