"""Neuron models declared outside spikeode, as a user would (used by tests via ``module:Class``)."""

import jax.numpy as jnp

from spikeode.neurons import LIF, AbstractNeuron


class QuadraticV(AbstractNeuron):
    """QIF in voltage form with a finite peak: tau dV/dt = V^2 + I0, spike at V = v_peak, reset to v_reset."""

    tau: float = 1.0
    I0: float = -0.05
    v_peak: float = 20.0
    v_reset: float = -20.0

    def initial_state(self):
        return jnp.array([-0.5])

    def vector_field(self, t, y, args):
        return (y**2 + self.I0) / self.tau

    def threshold(self, y):
        return y[0] - self.v_peak

    def reset(self, y):
        return y.at[0].set(self.v_reset)

    def receive(self, y, w):
        return y.at[0].add(w)


class BrokenFlowLIF(LIF):
    """A LIF whose closed-form flow uses twice the membrane time constant: disagrees with its vector field."""

    def flow(self, y, dt):
        return super().flow(y, 0.5 * dt)


class NeverFires(AbstractNeuron):
    """A threshold that can never cross zero."""

    tau: float = 1.0

    def initial_state(self):
        return jnp.array([0.0])

    def vector_field(self, t, y, args):
        return -y / self.tau

    def threshold(self, y):
        return -1.0 - y[0] ** 2

    def reset(self, y):
        return y

    def receive(self, y, w):
        return y.at[0].add(w)


class WrongOrderLIF(LIF):
    """A delta-synapse LIF whose ``firing_order`` is reversed (the lowest ``V`` would fire first)."""

    def firing_order(self, y):
        return jnp.where(self.I0 > self.v_th, y[0], jnp.inf)
