"""Exact integration with the model's closed-form ``flow`` and ``time_to_threshold``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from spikeode.integrate._base import SELECTION, AbstractIntegrator, Advance, first_argmin, supra_threshold
from spikeode.neurons import AbstractNeuron, NotClosedForm

__all__ = ["ClosedForm"]


class ClosedForm(AbstractIntegrator):
    """Next spike = min over neurons of the closed-form time to threshold; then one exact flow."""

    def advance(self, neuron: AbstractNeuron, t0, t1, y) -> Advance:
        if not neuron.has_closed_form:
            raise NotClosedForm(f"{type(neuron).__name__} has no closed form; use integrator='diffrax'")
        horizon = t1 - t0
        g, y_safe = supra_threshold(neuron, y)
        # Which neuron fires next needs every neuron, the event time only the one that fires: rank
        # on stopped gradients, then differentiate that neuron's crossing time alone (reverse mode
        # would otherwise differentiate N crossing times per event).
        y_rank = jax.lax.stop_gradient(y_safe)
        if neuron.has_firing_order:
            keys = jax.vmap(neuron.firing_order)(y_rank)
        else:
            keys = jax.vmap(neuron.time_to_threshold, in_axes=(0, None))(y_rank, horizon)
        index = checkpoint_name(first_argmin(jnp.where(g >= 0, -jnp.inf, keys)), SELECTION)
        immediate = g[index] >= 0
        dt_first = jnp.where(immediate, 0.0, neuron.time_to_threshold(y_safe[index], horizon))
        fired = dt_first <= horizon
        dt = jnp.where(fired, dt_first, horizon)
        y_new = jax.vmap(neuron.flow, in_axes=(0, None))(y, dt)
        return Advance(t=t0 + dt, y=y_new, fired=fired, immediate=immediate, neuron=index, ok=jnp.asarray(True))

