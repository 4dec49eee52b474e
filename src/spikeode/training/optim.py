"""The optimiser of a run: learning-rate schedule, gradient clipping, per-layer update scaling, trained leaves."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import optax

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
    """
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        lr = optax.cosine_decay_schedule(config.lr, total, alpha=0.01)
    elif config.schedule == "exponential":
        lr = optax.exponential_decay(config.lr, transition_steps=total, decay_rate=0.1)
    else:
        lr = config.lr
    parts = [optax.clip_by_global_norm(config.grad_clip)] if config.grad_clip is not None else []
    parts.append(getattr(optax, config.optimizer)(lr))
    if calibration:
        parts.append(_scale_layer_updates(tuple(c["scale"] for c in calibration)))
    return optax.chain(*parts)


def _scale_layer_updates(factors: Sequence[float]) -> optax.GradientTransformation:
    """Multiply the update of ``net.weights[l]`` by ``factors[l]`` (other leaves unchanged)."""

    def update(updates, state, params=None):
        scaled = tuple(u * f for u, f in zip(updates.net.weights, factors))
        return eqx.tree_at(lambda u: u.net.weights, updates, scaled), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def trainable_filter(model: SpikingClassifier, config: TrainConfig) -> SpikingClassifier:
    """A pytree of booleans like ``model``: which leaves train (weights always; neuron parameters if
    ``config.train_neuron``)."""
    spec = jax.tree_util.tree_map(eqx.is_inexact_array, model)
    if not config.train_neuron:
        spec = eqx.tree_at(lambda m: m.net.neurons, spec,
                           replace_fn=lambda ns: jax.tree_util.tree_map(lambda _: False, ns))
    return spec
