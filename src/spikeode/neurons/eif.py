"""Exponential integrate-and-fire neuron: no closed form, diffrax path only.

This file is also the template for a user's own model: fields are parameters, five short methods
declare the hybrid ODE, and nothing else in spikeode needs to change.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Scalar, ScalarLike

from spikeode.neurons._base import AbstractNeuron

__all__ = ["EIF"]


class EIF(AbstractNeuron):
    r"""Exponential integrate-and-fire neuron (Fourcaud-Trocmé et al. 2003), dimensionless.

        tau dV/dt = -V + delta_T exp((V - v_T)/delta_T) + I0,     input: V -> V + w

    ``V`` blows up in finite time past ``v_T``; the spike is the crossing of ``v_peak``, the reset
    ``V -> v_reset``.
    """

    tau: Float[Array, ""] | float = 1.0
    I0: Float[Array, ""] | float = 0.0
    v_T: Float[Array, ""] | float = 1.0
    delta_T: Float[Array, ""] | float = 0.2
    v_peak: Float[Array, ""] | float = 2.0
    v_reset: Float[Array, ""] | float = 0.0

    def initial_state(self) -> Float[Array, " state"]:
        return jnp.stack([jnp.asarray(self.v_reset, dtype=jnp.result_type(self.v_reset, float))])

    def vector_field(self, t, y, args):
        return (-y + self.delta_T * jnp.exp((y - self.v_T) / self.delta_T) + self.I0) / self.tau

    def threshold(self, y) -> Scalar:
        return y[0] - self.v_peak

    def reset(self, y):
        return y.at[0].set(self.v_reset)

    def receive(self, y, w: ScalarLike):
        return y.at[0].add(w)
