"""The training loop: data of a configuration, the batch loss, evaluation and the epoch loop with resume.

A run lives in one directory (``spikeode.training.checkpoint``): ``run.nc`` (the history Dataset,
``spikeode.training.history``, rewritten atomically after every epoch) and the checkpoints.
``train(config, out)`` on a directory with a checkpoint of the same configuration resumes after the last
finished epoch; the batch order of epoch ``e`` is drawn from ``(seed, e)``, so a resumed run gives the same
history as an uninterrupted one.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import xarray as xr
from jaxtyping import Array, Bool, Int

from spikeode.data import SpikeDataset, iterate_batches, load_dataset, parse_data_source, split_validation
from spikeode.engine.network import simulate
from spikeode.integrate import Diffrax, make_integrator
from spikeode.io.netcdf import read_dataset, write_dataset
from spikeode.neurons import AbstractNeuron
from spikeode.precision import ensure_precision
from spikeode.spikes import Spikes
from spikeode.training.calibrate import HIDDEN_STATISTIC, LayerCalibration, calibrate
from spikeode.training.checkpoint import resume_checkpoint, save_checkpoint
from spikeode.training.config import TrainConfig, effective_config
from spikeode.training.history import epoch_line, epoch_row, history_dataset, read_rows
from spikeode.training.loss import Objective, sample_loss
from spikeode.training.model import SpikingClassifier, build_model
from spikeode.training.optim import make_optimizer, trainable_filter

__all__ = ["load_data", "resolve_gradient", "LossKey", "loss_hyperparameters", "batch_loss", "make_loss_fn",
           "training_step", "fitted_training_step", "default_memory_budget", "evaluate", "train", "CALIBRATION_SAMPLES"]

#: Samples in the calibration batch of ``init="calibrated"`` (a seeded subset of the training split).
CALIBRATION_SAMPLES = 64


def load_data(config: TrainConfig) -> tuple[SpikeDataset, SpikeDataset, SpikeDataset | None]:
    """(train, test, validation-or-None) of the configured source, in the configured dtype.

    Reads exactly the fields ``spikeode.training.config.DATA_FIELDS`` (the key of :func:`data_key`).
    """
    ensure_precision(config.dtype)  # the arrays made from this data keep its dtype
    common = dict(T=config.T, k_in=config.k_in, seed=config.seed, dtype=np.dtype(config.dtype))
    if parse_data_source(config.data).kind != "yinyang":
        common["pool"] = config.pool
    train_set = load_dataset(config.data, "train", n_samples=config.train_samples, **common)
    test_set = load_dataset(config.data, "test", n_samples=config.test_samples, **common)
    validation = None
    if config.validation_fraction > 0:
        train_set, validation = split_validation(train_set, config.validation_fraction, seed=config.seed)
    return train_set, test_set, validation


def resolve_gradient(config: TrainConfig | LossKey, neurons: Sequence[AbstractNeuron]) -> str:
    """``config.gradient``, with ``"auto"`` resolved: ``"adjoint"`` if any layer's integrator is diffrax."""
    if config.gradient != "auto":
        return config.gradient
    on_diffrax = any(isinstance(make_integrator(config.integrator, n), Diffrax) for n in neurons)
    return "adjoint" if on_diffrax else "autodiff"


class LossKey(NamedTuple):
    """What a compiled batch loss depends on besides its arguments (``T``, temperature, gamma and the
    pseudospike switch are arguments: :func:`loss_hyperparameters`)."""

    readout: str
    integrator: str
    gradient: str

    @classmethod
    def of(cls, config: TrainConfig) -> LossKey:
        return cls(config.readout, config.integrator, config.gradient)


def loss_hyperparameters(config: TrainConfig) -> dict[str, Array]:
    """The loss settings that enter the compiled loss as arrays: runs differing only in them share a program."""
    hyper = {name: jnp.asarray(getattr(config, name), config.dtype) for name in ("T", "temperature", "gamma")}
    return {**hyper, "pseudospikes": jnp.asarray(config.pseudospikes)}


@functools.cache
def batch_loss(key: LossKey) -> Callable:
    """``loss(model, spikes, labels, mask, hyper) -> (mean loss, metrics)`` over the unmasked samples (one
    function per ``key``, so that jitted callers reuse their compiled program; ``hyper``:
    :func:`loss_hyperparameters`).

    The mean loss is ``sum_i m_i L_i / max(sum_i m_i, 1)`` (``L_i``: :func:`spikeode.training.sample_loss`).
    Metrics are per-batch sums and counts: ``correct`` counts real output spikes only, ``correct_pseudo``
    also pseudospikes of silent outputs; ``silent`` counts samples with no real output spike.
    """

    def loss_fn(model: SpikingClassifier, spikes: Spikes, labels: Int[Array, " batch"], mask: Bool[Array, " batch"],
                hyper: dict[str, Array]):
        objective = Objective(T=hyper["T"], readout=key.readout, temperature=hyper["temperature"],
                              gamma=hyper["gamma"], pseudospikes=hyper["pseudospikes"])
        gradient = resolve_gradient(key, model.net.neurons)
        trace = simulate(model.net, spikes, hyper["T"], integrator=key.integrator, gradient=gradient)
        losses, acc, acc_pseudo = sample_loss(objective, model.net, trace, labels, model.readout_weights)
        m = mask.astype(losses.dtype)
        metrics = {
            "loss_sum": jnp.sum(losses * m),
            "correct": jnp.sum(acc * m),
            "correct_pseudo": jnp.sum(acc_pseudo * m),
            "silent": jnp.sum(jnp.all(trace.output.counts == 0, axis=-1) * m),
            "n": jnp.sum(m),
            "spike_counts": [jnp.sum(layer.counts * mask[:, None], axis=0) for layer in trace.layers],
            "problems": jnp.sum((trace.exhausted | trace.overflow | trace.failed) & mask),
        }
        return metrics["loss_sum"] / jnp.maximum(metrics["n"], 1.0), metrics

    return loss_fn


def make_loss_fn(config: TrainConfig) -> Callable:
    """``loss(model, spikes, labels, mask) -> (mean loss, metrics)``: :func:`batch_loss` with the
    configuration's loss settings."""
    return functools.partial(batch_loss(LossKey.of(config)), hyper=loss_hyperparameters(config))


@functools.cache
def _jitted_loss(key: LossKey) -> Callable:
    return eqx.filter_jit(batch_loss(key))


def _padded_batches(dataset: SpikeDataset, batch_size: int):
    """Evaluation batches of one fixed shape: the last batch is padded with sample 0 and masked."""
    n = len(dataset)
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        mask = idx < n
        idx = np.where(mask, idx, 0)
        yield dataset.spikes[jnp.asarray(idx)], jnp.asarray(dataset.labels[idx]), jnp.asarray(mask)


def _pad_batch(spikes: Spikes, labels, size: int):
    """A short training batch padded to ``size`` with its first sample, and the mask of the real ones."""
    n = labels.shape[0]
    idx = jnp.concatenate([jnp.arange(n), jnp.zeros(size - n, jnp.int32)])
    return spikes[idx], labels[idx], jnp.arange(size) < n


def _accumulate(totals: dict | None, metrics: dict) -> dict:
    metrics = jax.device_get(metrics)
    return metrics if totals is None else jax.tree_util.tree_map(lambda a, b: a + b, totals, metrics)


def _summarise(totals: dict, sizes: Sequence[int]) -> dict:
    """Means over samples of summed metrics; per layer, the silent fraction and spikes per neuron."""
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


def evaluate(model: SpikingClassifier, dataset: SpikeDataset, config: TrainConfig) -> dict:
    """Loss, accuracies, silent fraction and spikes per neuron of every layer over a whole split."""
    eval_fn, hyper = _jitted_loss(LossKey.of(config)), loss_hyperparameters(config)
    totals = None
    for spikes, labels, mask in _padded_batches(dataset, config.batch_size):
        _, metrics = eval_fn(model, spikes, labels, mask, hyper)
        totals = _accumulate(totals, metrics)
    return _summarise(totals, model.net.sizes[1:])


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


#: Compiled training steps by everything they depend on besides their arguments (see :func:`training_step`).
_STEPS: dict[tuple, Callable] = {}


def training_step(config: TrainConfig, steps_per_epoch: int, calibration: Sequence[dict] | None = None,
                  microbatch: int | None = None) -> tuple[optax.GradientTransformation, Callable]:
    """The run's optimiser (:func:`make_optimizer`) and its jitted step: ``step(model, opt_state, spikes, labels,
    mask, hyper, spec) -> (model, opt_state, metrics, gradient norm, finite)``; ``finite`` is false when the
    loss or the gradient is not finite, ``hyper`` is :func:`loss_hyperparameters`, ``spec`` (which leaves
    train, :func:`trainable_filter`) is static.

    The gradient is that of the batch's mean loss, ``sum_i m_i grad L_i / max(sum_i m_i, 1)``. With
    ``microbatch`` (a divisor of the batch size; default ``config.microbatch``, else the whole batch) the
    numerator is summed over ``batch_size / microbatch`` microbatches in a ``lax.scan`` inside the step: the
    same gradient up to float rounding, with the memory of one microbatch.

    One step per loss key, optimiser structure (name, schedule kind, clipping on or off, number of calibrated
    layers) and microbatch count: learning rate, clipping norm, the schedule's length, layer scales (in
    ``opt_state``), trial length, temperature, gamma and the pseudospike switch (``hyper``) and the neuron
    parameters (leaves of ``model``) are arguments, so a run that differs only in them (or in its number of
    epochs) reuses the compiled program.
    """
    optimizer = make_optimizer(config, steps_per_epoch, calibration)
    n_micro = config.batch_size // (microbatch or config.microbatch or config.batch_size)
    key = (LossKey.of(config), config.optimizer, config.schedule, config.grad_clip is None, len(calibration or ()),
           n_micro)
    if key not in _STEPS:
        loss_fn = batch_loss(key[0])

        @eqx.filter_jit
        def step(model, opt_state, spikes, labels, mask, hyper, spec):
            params, static = eqx.partition(model, spec)

            def loss_sum(p, batch):
                metrics = loss_fn(eqx.combine(p, static), *batch, hyper)[1]
                return metrics["loss_sum"], metrics

            sum_and_grad = jax.value_and_grad(loss_sum, has_aux=True)
            batch = (spikes, labels, mask)
            if n_micro == 1:
                (_, metrics), grads = sum_and_grad(params, batch)
            else:
                micro = jax.tree.map(lambda a: a.reshape(n_micro, a.shape[0] // n_micro, *a.shape[1:]), batch)
                shapes = jax.eval_shape(sum_and_grad, params, jax.tree.map(lambda a: a[0], micro))
                zero = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
                total, _ = jax.lax.scan(lambda acc, mb: (jax.tree.map(jnp.add, acc, sum_and_grad(params, mb)), None),
                                        zero, micro)
                (_, metrics), grads = total
            n = jnp.maximum(metrics["n"], 1.0)
            grads = jax.tree.map(lambda g: g / n, grads)
            gnorm = optax.tree.norm(grads)
            updates, new_opt_state = optimizer.update(grads, opt_state, params)
            new_model = eqx.combine(eqx.apply_updates(params, updates), static)
            finite = jnp.isfinite(metrics["loss_sum"]) & jnp.isfinite(gnorm)
            return new_model, new_opt_state, metrics, gnorm, finite

        _STEPS[key] = step
    return optimizer, _STEPS[key]


def default_memory_budget() -> float:
    """Half of the machine's physical memory, in GiB."""
    return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def _step_gib(step: Callable, args: tuple) -> float | None:
    """Memory of one compiled step in GiB (XLA's buffer assignment: arguments, outputs and temporaries);
    ``None`` where the backend does not report it. Compiling here fills the cache the first call uses."""
    stats = step.lower(*args).compile().compiled.memory_analysis()
    if stats is None:
        return None
    return (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
            - stats.alias_size_in_bytes) / 2**30


def fitted_training_step(config: TrainConfig, steps_per_epoch: int, calibration: Sequence[dict] | None,
                         args: tuple) -> tuple[optax.GradientTransformation, Callable, int, str]:
    """:func:`training_step` with the largest microbatch whose step fits ``config.memory_budget`` (default
    :func:`default_memory_budget`): the whole batch if it fits, else divisors of the batch size, chosen by
    the step's memory scaled to the microbatch and confirmed on the compiled step. ``config.microbatch``, if
    set, is used as it is. ``args``: an example ``(model, opt_state, spikes, labels, mask, hyper, spec)``
    of one batch. Returns ``(optimizer, step, microbatch, notice)`` (``notice`` ``""`` unless split).

    Raises:
        MemoryError: even a microbatch of one sample exceeds the budget.
    """
    if config.microbatch is not None:
        return (*training_step(config, steps_per_epoch, calibration), config.microbatch, "")
    budget = config.memory_budget or default_memory_budget()
    batch = config.batch_size
    optimizer, step = training_step(config, steps_per_epoch, calibration, batch)
    need = _step_gib(step, args)
    if need is None or need <= budget:
        return optimizer, step, batch, ""
    whole = need
    for micro in sorted((d for d in range(1, batch) if batch % d == 0), reverse=True):
        if whole * micro / batch > budget:
            continue
        optimizer, step = training_step(config, steps_per_epoch, calibration, micro)
        need = _step_gib(step, args)
        if need is None or need <= budget:
            return optimizer, step, micro, (
                f"a step over the batch of {batch} needs {whole:.3g} GiB > memory budget {budget:.3g} GiB: "
                f"gradients summed over microbatches of {micro} ({need:.3g} GiB)")
    raise MemoryError(f"one training step needs {whole:.3g} GiB for a batch of {batch}, and no microbatch fits the "
                      f"memory budget of {budget:.3g} GiB (--memory-budget)")


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

    ``config.dtype="float64"`` trains in float64 whether or not the caller enabled JAX's x64 mode.

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
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)

    if (run_dir / "checkpoint.json").exists():
        model, opt_state, meta = resume_checkpoint(run_dir, config)
        start_epoch, calibration = int(meta["epoch"]), meta.get("calibration")
        rows = [r for r in read_rows(read_dataset(run_dir / "run.nc")) if r["epoch"] <= start_epoch]
    else:
        model = build_model(config, train_set.n_channels, train_set.n_classes, key=jax.random.PRNGKey(config.seed))
        model, calibration = _initialise(model, train_set, config, progress)
        opt_state, start_epoch, rows = None, 0, []
    info = {"calibration": calibration, "notice": notice, "gradient_used": resolve_gradient(config, model.net.neurons)}
    meta = {"n_inputs": train_set.n_channels, "n_classes": train_set.n_classes, "steps_per_epoch": steps_per_epoch,
            "calibration": calibration}
    spec = trainable_filter(model, config)
    if opt_state is None:
        opt_state = make_optimizer(config, steps_per_epoch, calibration).init(eqx.filter(model, spec))
    hyper = loss_hyperparameters(config)
    example = next(_padded_batches(train_set, config.batch_size))
    optimizer, step, microbatch, split = fitted_training_step(config, steps_per_epoch, calibration,
                                                              (model, opt_state, *example, hyper, spec))
    if split:
        print(f"spikeode: {split}", file=sys.stderr)
    info["microbatch"] = microbatch

    def finish_epoch(epoch: int, model, opt_state, train_summary: dict, gnorms: list[float], t0: float) -> dict:
        """Evaluate, append the epoch's row, save the checkpoint and rewrite run.nc."""
        test = evaluate(model, test_set, config)
        val = None if validation is None else evaluate(model, validation, config)
        rows.append(epoch_row(epoch, train_summary, test, val, gnorms, time.perf_counter() - t0))
        save_checkpoint(run_dir, model, opt_state, epoch, config, meta)
        write_dataset(history_dataset(rows, config, info), run_dir / "run.nc")
        return rows[-1]

    if not rows:  # epoch 0: the initialisation, evaluated on the training split too
        t0 = time.perf_counter()
        finish_epoch(0, model, opt_state, evaluate(model, train_set, config), [], t0)

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
            new_model, new_opt, metrics, gnorm, finite = step(model, opt_state, spikes, labels, mask, hyper, spec)
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
        row = finish_epoch(epoch, model, opt_state, _summarise(totals, model.net.sizes[1:]), gnorms, t0)
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
