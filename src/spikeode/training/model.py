"""The trained model: a spiking network of the configured architecture and its optional voltage readout."""

from __future__ import annotations

import math

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from spikeode.engine.network import FeedForward
from spikeode.neurons import resolve_neuron_class
from spikeode.precision import jax_dtype
from spikeode.training.config import TrainConfig, per_layer

__all__ = ["SpikingClassifier", "build_model"]


class SpikingClassifier(eqx.Module):
    """A spiking network and, for the voltage readout, a non-spiking leaky readout layer on its last layer."""

    net: FeedForward
    readout_weights: Float[Array, "classes neurons"] | None


def build_model(config: TrainConfig, n_inputs: int, n_classes: int, *, key: PRNGKeyArray) -> SpikingClassifier:
    """Seeded model of the configured architecture, in ``config.dtype``.

    Layer ``l`` (fan-in ``n_l``) gets weights ``N(weight_mean_l, (weight_std_l / sqrt(n_l))^2)``; the voltage
    readout's weights are ``N(0, 1 / n_last)``. Per-layer values of the wrong length raise (:func:`per_layer`).
    """
    neuron = resolve_neuron_class(config.neuron)(**config.neuron_params)
    spiking_out = config.readout == "first_spike"
    sizes = (n_inputs, *config.hidden) + ((n_classes,) if spiking_out else ())
    means, stds, slots = (per_layer(config, name) for name in ("weight_mean", "weight_std", "n_slots"))
    stds = [s / math.sqrt(fan_in) for s, fan_in in zip(stds, sizes)]
    dtype = jax_dtype(config.dtype)  # float64 switches JAX's x64 mode on (spikeode.precision)
    k_net, k_out = jax.random.split(key)
    net = FeedForward(neuron, sizes, key=k_net, weight_mean=means, weight_std=stds, n_slots=slots, dtype=dtype)
    readout = None
    if not spiking_out:
        readout = jax.random.normal(k_out, (n_classes, sizes[-1]), dtype) / math.sqrt(sizes[-1])
    return SpikingClassifier(net, readout)
