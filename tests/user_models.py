"""Neuron models declared outside spikeode, as a user would (used by tests via ``module:Class``)."""

import equinox as eqx
import jax
import jax.numpy as jnp

from spikeode.neurons import (
    LIF,
    QIF,
    AbstractClosedFormNeuron,
    AbstractNeuron,
    AbstractOrderedNeuron,
    AbstractPseudoNeuron,
)


def _delegated(name: str):
    def method(self, *args):
        return getattr(self.inner, name)(*args)

    method.__name__ = name
    return method


_METHODS = ("initial_state", "vector_field", "threshold", "reset", "receive", "closed_form_applies", "flow",
            "time_to_threshold", "pseudo_spike")


class LIFVariant(AbstractOrderedNeuron, AbstractPseudoNeuron):
    """Base of test models that change one method of the shipped LIF (final: wrapped here, never subclassed)."""

    inner: LIF

    def __init__(self, **params):
        self.inner = LIF(**params)

    locals().update({name: _delegated(name) for name in (*_METHODS, "firing_order", "firing_order_applies")})


class QIFWithoutOrder(AbstractClosedFormNeuron, AbstractPseudoNeuron):
    """The shipped QIF without its ``firing_order`` capability (the engine solves every neuron's crossing)."""

    inner: QIF

    def __init__(self, **params):
        self.inner = QIF(**params)

    locals().update({name: _delegated(name) for name in _METHODS})


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


class BrokenFlowLIF(LIFVariant):
    """A LIF whose closed-form flow uses twice the membrane time constant: disagrees with its vector field."""

    def flow(self, y, dt):
        return self.inner.flow(y, 0.5 * dt)


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


class WrongOrderLIF(LIFVariant):
    """A delta-synapse LIF whose ``firing_order`` is reversed (the lowest ``V`` would fire first)."""

    def firing_order(self, y):
        return jnp.where(self.inner.I0 > self.inner.v_th, y[0], jnp.inf)


class AdaptiveLIF(AbstractClosedFormNeuron):
    """Adaptive LIF without bias, delta synapses: ``tau_m dV/dt = -V - a``, ``tau_a da/dt = -a``,
    input ``V -> V + w``, spike at ``V = v_th``, reset ``V -> 0``, ``a -> a + b``.

    With ``a >= 0`` (``b >= 0``) ``V`` only relaxes towards ``-a <= 0 < v_th`` between inputs, so it spikes
    only at input times (an input lifts it over ``v_th``): the spike times, and after a spike the
    state, do not depend on the weights: those gradients are exactly zero."""

    tau_m: float = 1.0
    tau_a: float = 2.0
    b: float = 0.3
    v_th: float = 1.0

    def initial_state(self):
        return jnp.zeros(2)

    def vector_field(self, t, y, args):
        return jnp.stack([(-y[0] - y[1]) / self.tau_m, -y[1] / self.tau_a])

    def threshold(self, y):
        return y[0] - self.v_th

    def reset(self, y):
        return jnp.stack([jnp.zeros_like(y[0]), y[1] + self.b])

    def receive(self, y, w):
        return y.at[0].add(w)

    def closed_form_applies(self):
        return True

    def flow(self, y, dt):
        """``a e^{-dt/tau_a}`` and ``V e^{-dt/tau_m} - a (e^{-dt/tau_a} - e^{-dt/tau_m}) tau_a/(tau_a - tau_m)``."""
        decay_m, decay_a = jnp.exp(-dt / self.tau_m), jnp.exp(-dt / self.tau_a)
        return jnp.stack([y[0] * decay_m - y[1] * (decay_a - decay_m) * self.tau_a / (self.tau_a - self.tau_m),
                          y[1] * decay_a])

    def time_to_threshold(self, y, horizon):
        return jnp.full((), jnp.inf, y.dtype)  # no crossing between inputs (see the class docstring)


class SkewedGradientLIF(AbstractClosedFormNeuron):
    """Delta-synapse LIF ``tau dV/dt = -V + I0`` (threshold 1, reset 0) whose closed-form crossing time has the
    right value but ``gradient_factor`` times its true derivative (1: correct)."""

    tau: float = 1.0
    I0: float = 1.5
    gradient_factor: float = eqx.field(static=True, default=1.5)

    def initial_state(self):
        return jnp.zeros(1)

    def vector_field(self, t, y, args):
        return (-y + self.I0) / self.tau

    def threshold(self, y):
        return y[0] - 1.0

    def reset(self, y):
        return jnp.zeros_like(y)

    def receive(self, y, w):
        return y.at[0].add(w)

    def closed_form_applies(self):
        return True

    def flow(self, y, dt):
        return self.I0 + (y - self.I0) * jnp.exp(-dt / self.tau)

    def time_to_threshold(self, y, horizon):
        t = self.tau * jnp.log((self.I0 - y[0]) / (self.I0 - 1.0))
        t = t + (self.gradient_factor - 1.0) * (t - jax.lax.stop_gradient(t))
        return jnp.where(t <= horizon, t, jnp.inf)


class UserDeltaLIF(AbstractClosedFormNeuron):
    """A user's delta-synapse LIF with closed forms and no pseudodynamics (no ``pseudo_spike``)."""

    tau: float = 1.0
    I0: float = 0.0
    v_th: float = 1.0

    def initial_state(self):
        return jnp.zeros(1)

    def vector_field(self, t, y, args):
        return (self.I0 - y) / self.tau

    def threshold(self, y):
        return y[0] - self.v_th

    def reset(self, y):
        return jnp.zeros_like(y)

    def receive(self, y, w):
        return y + w

    def closed_form_applies(self):
        return True

    def flow(self, y, dt):
        return self.I0 + (y - self.I0) * jnp.exp(-dt / self.tau)

    def time_to_threshold(self, y, horizon):
        return jnp.full((), jnp.inf, y.dtype)  # I0 < v_th: no crossing between inputs
