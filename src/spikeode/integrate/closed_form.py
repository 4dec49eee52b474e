"""Exact integration with the model's closed-form ``flow`` and ``time_to_threshold``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..neurons import AbstractNeuron, NotClosedForm
from ._base import AbstractIntegrator, Advance, supra_threshold

__all__ = ["ClosedForm"]


class ClosedForm(AbstractIntegrator):
    """Next spike = min over neurons of the closed-form time to threshold; then one exact flow."""

    def advance(self, neuron: AbstractNeuron, t0, t1, y) -> Advance:
        if not neuron.has_closed_form:
            raise NotClosedForm(f"{type(neuron).__name__} has no closed form; use integrator='diffrax'")
        horizon = t1 - t0
        g, y_safe = supra_threshold(neuron, y)
        dts = jax.vmap(neuron.time_to_threshold, in_axes=(0, None))(y_safe, horizon)
        dts = jnp.where(g >= 0, 0.0, dts)
        index = jnp.argmin(dts)
        dt_min = dts[index]
        fired = dt_min <= horizon
        dt = jnp.where(fired, dt_min, horizon)
        y_new = jax.vmap(neuron.flow, in_axes=(0, None))(y, dt)
        return Advance(t=t0 + dt, y=y_new, fired=fired, neuron=index, ok=jnp.asarray(True))
