"""The optimiser of a run: learning-rate schedule, gradient clipping, per-layer update scaling, trained leaves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array

from spikeode.training.config import TrainConfig
from spikeode.training.model import SpikingClassifier

__all__ = ["make_optimizer", "trainable_filter"]


def make_optimizer(config: TrainConfig, steps_per_epoch: int, calibration: Sequence[dict] | None = None
                   ) -> optax.GradientTransformation:
    """``clip_by_global_norm(grad_clip)`` (if set), then ``optax.<optimizer>`` on the configured schedule.

    Over ``S = epochs * steps_per_epoch`` steps the learning rate is constant, cosine-decayed to
    ``0.01 lr``, or exponentially decayed to ``0.1 lr``. After a calibrated initialisation, which multiplied
    layer ``l``'s weights by ``s_l`` (``calibration[l]["scale"]``), the updates of those weights are
    multiplied by ``s_l`` too: a step keeps the size relative to the weights that ``lr`` has with the
    configured ``weight_std``.

    ``lr``, ``grad_clip``, the schedule's length ``S`` and the ``s_l`` are arrays in the optimiser state
    (``optax.inject_hyperparams``, :func:`_scale_by_decay`), not constants of the compiled step: runs that
    differ only in them (a search's trials and the retraining of the winner, with more epochs) share one
    compiled program. The
    schedule's shape (peak 1) multiplies the optimiser's update, which every optax optimiser scales by its
    learning rate last, so this is the optimiser on the scheduled learning rate.
    """
    parts = []
    if config.grad_clip is not None:
        parts.append(optax.inject_hyperparams(optax.clip_by_global_norm)(max_norm=config.grad_clip))
    parts.append(optax.inject_hyperparams(getattr(optax, config.optimizer))(learning_rate=config.lr))
    if config.schedule != "constant":
        parts.append(_scale_by_decay(config.schedule, config.epochs * steps_per_epoch))
    if calibration:
        parts.append(_scale_layer_updates(tuple(c["scale"] for c in calibration)))
    return optax.chain(*parts)


class DecayState(NamedTuple):
    """State of :func:`_scale_by_decay`: the step count and the schedule's length (arrays, not compiled
    in)."""

    count: Array
    total: Array


def _cosine(count: Array, total: Array) -> Array:
    """``optax.cosine_decay_schedule(1, total, alpha=0.01)`` at ``count``."""
    return 0.99 * (0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(count, total) / total))) + 0.01


def _exponential(count: Array, total: Array) -> Array:
    """``optax.exponential_decay(1, total, decay_rate=0.1)`` at ``count``."""
    return 0.1 ** (count / total)


#: The decaying schedules' shapes (peak 1) at step ``count`` of ``total``.
_DECAYS = {"cosine": _cosine, "exponential": _exponential}


def _scale_by_decay(kind: str, total: int) -> optax.GradientTransformation:
    """Multiply the update by the schedule's shape (:data:`_DECAYS`) at the step count, over ``total`` steps:
    ``optax.scale_by_schedule`` of optax's schedule, with ``total`` in the state rather than a constant."""
    if kind not in _DECAYS:
        raise ValueError(f"unknown schedule {kind!r}: use one of {sorted(_DECAYS)} (or constant, no decay)")
    shape = _DECAYS[kind]

    def init(params):
        return DecayState(jnp.zeros([], jnp.int32), jnp.asarray(max(int(total), 1), jnp.int32))

    def update(updates, state, params=None):
        factor = shape(state.count, state.total)
        updates = jax.tree.map(lambda u: jnp.asarray(factor, u.dtype) * u, updates)
        return updates, DecayState(optax.safe_int32_increment(state.count), state.total)

    return optax.GradientTransformation(init, update)


class LayerScales(NamedTuple):
    """State of :func:`_scale_layer_updates`: one factor per layer (arrays, so not compiled in)."""

    factors: tuple[Array, ...]


def _scale_layer_updates(factors: Sequence[float]) -> optax.GradientTransformation:
    """Multiply the update of ``net.weights[l]`` by ``factors[l]`` (other leaves unchanged)."""

    def init(params):
        return LayerScales(tuple(jnp.asarray(f, w.dtype) for f, w in zip(factors, params.net.weights)))

    def update(updates, state, params=None):
        scaled = tuple(u * f for u, f in zip(updates.net.weights, state.factors))
        return eqx.tree_at(lambda u: u.net.weights, updates, scaled), state

    return optax.GradientTransformation(init, update)


def trainable_filter(model: SpikingClassifier, config: TrainConfig) -> SpikingClassifier:
    """A pytree of booleans like ``model``: which leaves train (weights always; neuron parameters if
    ``config.train_neuron``)."""
    spec = jax.tree_util.tree_map(eqx.is_inexact_array, model)
    if not config.train_neuron:
        spec = eqx.tree_at(lambda m: m.net.neurons, spec,
                           replace_fn=lambda ns: jax.tree_util.tree_map(lambda _: False, ns))
    return spec
