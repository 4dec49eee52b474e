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

    ``lr``, ``grad_clip`` and the ``s_l`` are arrays in the optimiser state (``optax.inject_hyperparams``),
    not constants of the compiled step: runs that differ only in them share one compiled program. The
    schedule's shape (peak 1) multiplies the optimiser's update, which every optax optimiser scales by its
    learning rate last, so this is the optimiser on the scheduled learning rate.
    """
    parts = []
    if config.grad_clip is not None:
        parts.append(optax.inject_hyperparams(optax.clip_by_global_norm)(max_norm=config.grad_clip))
    parts.append(optax.inject_hyperparams(getattr(optax, config.optimizer))(learning_rate=config.lr))
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        parts.append(optax.scale_by_schedule(optax.cosine_decay_schedule(1.0, total, alpha=0.01)))
    elif config.schedule == "exponential":
        parts.append(optax.scale_by_schedule(optax.exponential_decay(1.0, transition_steps=total, decay_rate=0.1)))
    if calibration:
        parts.append(_scale_layer_updates(tuple(c["scale"] for c in calibration)))
    return optax.chain(*parts)


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
