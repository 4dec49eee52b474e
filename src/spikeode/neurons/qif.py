"""Quadratic integrate-and-fire neuron in theta (phase) form."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Scalar, ScalarLike

from ._base import AbstractNeuron, NotClosedForm

__all__ = ["QIF"]

_PI = jnp.pi


def _atanhrel(r):
    """``atanh(r)/r`` for ``0 <= r < 1``, equal to 1 at ``r = 0``."""
    small = r < 1e-6
    rs = jnp.where(small, 0.5, r)
    return jnp.where(small, 1.0 + r * r / 3, jnp.arctanh(rs) / rs)


class QIF(AbstractNeuron):
    r"""Quadratic integrate-and-fire neuron as a theta neuron, ``V = tan(theta/2)``.

    Delta synapses (``tau_syn=None``), state ``(theta,)``:

        tau dV/dt = V^2 + I0            <=>   tau dtheta/dt = (1 - cos theta) + (1 + cos theta) I0

    input spike of weight w: ``V -> V + w``, i.e.
    ``theta -> 2 atan2(sin(theta/2) + w cos(theta/2), cos(theta/2))`` (finite at ``theta = +-pi``).
    Exponential synapses, state ``(theta, I)``: ``I0 -> I0 + I`` above, ``tau_syn dI/dt = -I``,
    input ``I -> I + w`` (no closed form: diffrax path).

    ``V`` blows up in finite time: the spike is ``theta = pi`` (``V = +inf``), the reset
    ``theta -> theta - 2 pi`` (``V = -inf``). ``I0 < 0`` is the excitable regime (rest at
    ``theta = -2 atan(sqrt(-I0))``, the initial state), ``I0 > 0`` the oscillatory one (period
    ``tau pi / sqrt(I0)``, initial state ``theta = -pi``), unless ``theta0`` sets (and trains) it.
    spikegd's theta neuron ``tau dV/dt = V(V - 1) + I0'`` is this model with ``I0 = I0' - 1/4`` and
    ``V`` shifted by 1/2 (identical spike times).

    Closed form (delta synapses): ``(sin(theta/2), cos(theta/2))`` evolves linearly,
    ``x(t) = exp(A t) x0`` with ``A = [[0, I0], [-1, 0]] / tau``; the spike is the first zero of
    the second component.
    """

    tau: Float[Array, ""] | float = 1.0
    I0: Float[Array, ""] | float = 1.0
    tau_syn: Float[Array, ""] | float | None = None
    theta0: Float[Array, ""] | float | None = None

    def initial_state(self) -> Float[Array, " state"]:
        i0 = jnp.asarray(self.I0, dtype=jnp.result_type(float))
        if self.theta0 is None:
            excitable = i0 < 0
            rest = -2.0 * jnp.arctan(jnp.sqrt(jnp.where(excitable, -i0, 1.0)))
            theta0 = jnp.where(excitable, rest, -_PI)
        else:
            theta0 = jnp.asarray(self.theta0, dtype=i0.dtype)
        return jnp.stack([theta0]) if self.tau_syn is None else jnp.stack([theta0, jnp.zeros_like(theta0)])

    def vector_field(self, t, y, args):
        drive = self.I0 if self.tau_syn is None else self.I0 + y[1]
        c = jnp.cos(y[0])
        dtheta = ((1.0 - c) + (1.0 + c) * drive) / self.tau
        if self.tau_syn is None:
            return jnp.stack([dtheta])
        return jnp.stack([dtheta, -y[1] / self.tau_syn])

    def threshold(self, y) -> Scalar:
        return y[0] - _PI

    def reset(self, y):
        # theta - 2 pi, kept in [-pi, pi): at a spike theta equals pi up to rounding.
        return y.at[0].set(jnp.maximum(y[0] - 2.0 * _PI, -_PI))

    def receive(self, y, w: ScalarLike):
        if self.tau_syn is not None:
            return y.at[1].add(w)
        half = 0.5 * y[0]
        s, c = jnp.sin(half), jnp.cos(half)
        return y.at[0].set(2.0 * jnp.arctan2(s + w * c, c))

    # -- closed forms (delta synapses) -------------------------------------------------------
    @property
    def has_closed_form(self) -> bool:
        return self.tau_syn is None

    def _require_closed_form(self):
        if self.tau_syn is not None:
            raise NotClosedForm("QIF with exponential synapses has no closed-form flow; use the diffrax path")

    def flow(self, y, dt):
        self._require_closed_form()
        x1, x2 = jnp.sin(0.5 * y[0]), jnp.cos(0.5 * y[0])
        i0 = self.I0
        s = jnp.sqrt(jnp.where(i0 != 0, jnp.abs(i0), 1.0))
        phase = s * dt / self.tau
        # exp(A dt) up to a positive factor (theta only depends on the direction of x).
        osc = i0 > 0
        c = jnp.where(osc, jnp.cos(phase), 1.0)
        sin_or_tanh = jnp.where(osc, jnp.sin(phase), jnp.tanh(phase))
        k = jnp.where(i0 != 0, sin_or_tanh / s, dt / self.tau)
        n1 = c * x1 + k * i0 * x2
        n2 = c * x2 - k * x1
        return y.at[0].set(2.0 * jnp.arctan2(n1, n2))

    def time_to_threshold(self, y, horizon) -> Scalar:
        self._require_closed_form()
        x1, x2 = jnp.sin(0.5 * y[0]), jnp.cos(0.5 * y[0])
        i0 = self.I0
        osc = i0 > 0
        s = jnp.sqrt(jnp.where(i0 != 0, jnp.abs(i0), 1.0))
        s = jnp.where(i0 != 0, s, 0.0)
        t_osc = self.tau * jnp.arctan2(s * x2, x1) / jnp.where(osc, s, 1.0)
        # Excitable/critical: a spike iff V > sqrt(-I0), i.e. x1 > s x2.
        fires = x1 > s * x2
        x1_safe = jnp.where(fires, x1, 1.0)
        ratio = jnp.where(fires, x2 / x1_safe, 0.0)
        t_exc = self.tau * ratio * _atanhrel(jnp.where(fires, s * ratio, 0.0))
        t = jnp.where(osc, t_osc, jnp.where(fires, t_exc, jnp.inf))
        return jnp.where(t <= horizon, t, jnp.inf)
