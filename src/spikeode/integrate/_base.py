"""How a layer's state moves from one event to the next: one interface, two exact integrators."""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Scalar

from spikeode.neurons import AbstractNeuron

__all__ = ["SELECTION", "AbstractIntegrator", "Advance", "first_argmin", "supra_threshold"]

#: ``checkpoint_name`` of an event's discrete choice (the index of the neuron that fires next): reverse
#: mode saves it (``jax.checkpoint_policies.save_only_these_names``) rather than re-ranking every neuron
#: in the checkpoint replays.
SELECTION = "spikeode_event_selection"


class Advance(eqx.Module):
    """Result of advancing a layer from ``t0`` towards ``t1``.

    Attributes:
        t: time reached: the first threshold crossing if ``fired``, else ``t1``.
        y: layer state at ``t`` (before any reset).
        fired: whether a neuron crossed its threshold at ``t <= t1``.
        immediate: the crossing is at ``t0``: a jump lifted the neuron over threshold (``fired``).
        neuron: index of the neuron that crossed (meaningful only if ``fired``).
        ok: ``False`` if the integrator failed (e.g. the step budget of a solve ran out).
    """

    t: Scalar
    y: Float[Array, "neurons state"]
    fired: Bool[Array, ""]
    immediate: Bool[Array, ""]
    neuron: Int[Array, ""]
    ok: Bool[Array, ""]


class AbstractIntegrator(eqx.Module):
    """Advances all neurons of a layer (state ``(neurons, state)``) with no input in ``(t0, t1]``."""

    @abc.abstractmethod
    def advance(self, neuron: AbstractNeuron, t0: Scalar, t1: Scalar, y: Float[Array, "neurons state"]) -> Advance:
        """Free evolution from ``t0`` until the earliest threshold crossing or ``t1``.

        A neuron already at or above threshold at ``t0`` (after an input jump) fires at ``t0``.
        """


def supra_threshold(neuron: AbstractNeuron, y: Float[Array, "neurons state"]):
    """Threshold values, and a state safe to evaluate closed forms on (rest where ``g >= 0``)."""
    g = jax.vmap(neuron.threshold)(y)
    y_safe = jnp.where((g >= 0)[:, None], neuron.initial_state()[None, :], y)
    return g, y_safe


def first_argmin(x):
    """``argmin`` as two plain reductions (a min, then the smallest index attaining it): XLA's CPU
    ``argmin`` (a variadic reduce) is not vectorised and was the costliest op per event."""
    n = x.shape[0]
    hits = jnp.where(x == jnp.min(x), jnp.arange(n), n)
    return jnp.minimum(jnp.min(hits), n - 1)
