"""Quadratic integrate-and-fire neuron in theta (phase) form."""

from __future__ import annotations

import jax
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


def _atan2(y, x):
    """``atan2`` through one ``arctan`` of a ratio in ``[0, 1]`` (XLA's CPU ``atan2`` is not vectorised;
    this is ~4x faster there) -- same values and derivatives, ``atan2(0, 0) = 0``."""
    ax, ay = jnp.abs(x), jnp.abs(y)
    swap = ay > ax
    num, den = jnp.where(swap, ax, ay), jnp.where(swap, ay, ax)
    a = jnp.arctan(num / jnp.where(den == 0, 1.0, den))
    a = jnp.where(swap, 0.5 * _PI - a, a)
    a = jnp.where(x < 0, _PI - a, a)
    return jnp.where(y < 0, -a, a)


def _phase_vector(theta):
    return jnp.stack([jnp.sin(0.5 * theta), jnp.cos(0.5 * theta)])


class QIF(AbstractNeuron):
    r"""Quadratic integrate-and-fire neuron as a theta neuron, ``V = tan(theta/2)``.

    Dynamics (delta synapses, ``tau_syn=None``):

        tau dV/dt = V^2 + I0            <=>   tau dtheta/dt = (1 - cos theta) + (1 + cos theta) I0

    input spike of weight w: ``V -> V + w``. Exponential synapses: ``I0 -> I0 + I`` above with
    ``tau_syn dI/dt = -I`` and input ``I -> I + w`` (no closed form: diffrax path).

    ``V`` blows up in finite time: the spike is ``theta = pi`` (``V = +inf``), the reset
    ``theta = -pi`` (``V = -inf``). ``I0 < 0`` is the excitable regime (rest at
    ``theta = -2 atan(sqrt(-I0))``, the initial state), ``I0 > 0`` the oscillatory one (period
    ``tau pi / sqrt(I0)``, initial state ``theta = -pi``), unless ``theta0`` sets (and trains) it.
    spikegd's theta neuron ``tau dV/dt = V(V - 1) + I0'`` is this model with ``I0 = I0' - 1/4`` and
    ``V`` shifted by 1/2 (identical spike times).

    State: the phase as the point ``x = (sin(theta/2), cos(theta/2))`` on the circle (up to a
    positive factor; ``theta = 2 atan2(x1, x2)``, see ``theta()``), then ``I`` for exponential
    synapses. In these coordinates the QIF is *linear*: ``dx/dt = A x``, ``A = [[0, I0], [-1, 0]]/tau``
    (``V = x1/x2``), the input is ``x1 -> x1 + w x2``, the reset is ``x -> (-1, 0)``, and all of it
    is finite at ``theta = +-pi``. The closed-form flow is ``exp(A t) x`` and the spike is the first
    zero of ``x2`` with ``x1 > 0``. Transcendental functions are needed only for the spike time.
    """

    tau: Float[Array, ""] | float = 1.0
    I0: Float[Array, ""] | float = 1.0
    tau_syn: Float[Array, ""] | float | None = None
    theta0: Float[Array, ""] | float | None = None

    @staticmethod
    def theta(y: Float[Array, " state"]) -> Scalar:
        """The phase ``theta`` in ``(-2 pi, 2 pi]`` of a state (``(-pi, pi]`` before a spike)."""
        return 2.0 * jnp.arctan2(y[0], y[1])

    def initial_state(self) -> Float[Array, " state"]:
        i0 = jnp.asarray(self.I0, dtype=jnp.result_type(self.I0, float))
        if self.theta0 is None:
            excitable = i0 < 0
            s = jnp.sqrt(jnp.where(excitable, -i0, 0.0) + jnp.where(excitable, 0.0, 1.0))
            rest = jnp.stack([-s, jnp.ones_like(s)]) / jnp.sqrt(1.0 + s * s)
            x = jnp.where(excitable, rest, jnp.stack([-jnp.ones_like(i0), jnp.zeros_like(i0)]))
        else:
            x = _phase_vector(jnp.asarray(self.theta0, dtype=i0.dtype))
        return x if self.tau_syn is None else jnp.concatenate([x, jnp.zeros_like(i0)[None]])

    def _drive(self, y):
        return self.I0 if self.tau_syn is None else self.I0 + y[2]

    def vector_field(self, t, y, args):
        x1, x2 = y[0], y[1]
        dx = jnp.stack([self._drive(y) * x2, -x1]) / self.tau
        if self.tau_syn is None:
            return dx
        return jnp.concatenate([dx, (-y[2] / self.tau_syn)[None]])

    def threshold(self, y) -> Scalar:
        """``min(x1, 0) - x2``: negative on ``theta in (-pi, pi)``, crossing zero upwards at ``theta = pi``
        (``x2`` changes sign while ``x1 > 0``) -- the sign of ``theta - pi`` without an ``atan2``."""
        return jnp.minimum(y[0], 0.0) - y[1]

    def reset(self, y):
        return y.at[0].set(-1.0).at[1].set(0.0)

    def receive(self, y, w: ScalarLike):
        if self.tau_syn is not None:
            return y.at[2].add(w)
        x1, x2 = y[0] + w * y[1], y[1]
        inv_norm = jax.lax.rsqrt(x1 * x1 + x2 * x2)  # scalar products, no broadcast (cheap reverse mode)
        return jnp.stack([x1 * inv_norm, x2 * inv_norm])

    def pseudo_spike(self, y, drive):
        """After ``T``: constant drive ``I_p = softplus(I0 + I_syn(T) + drive) > 0`` (oscillatory).

        ``delay = tau atan2(sqrt(I_p) x2, x1) / sqrt(I_p)``, ``period = tau pi / sqrt(I_p)``.
        """
        syn = 0.0 if self.tau_syn is None else y[2]
        s = jnp.sqrt(jax.nn.softplus(self.I0 + syn + drive))
        delay = self.tau * _atan2(s * y[1], y[0]) / s
        return delay, self.tau * _PI / s

    # -- closed forms (delta synapses) -------------------------------------------------------
    @property
    def has_closed_form(self) -> bool:
        return self.tau_syn is None

    def _require_closed_form(self):
        if self.tau_syn is not None:
            raise NotClosedForm("QIF with exponential synapses has no closed-form flow; use the diffrax path")

    def flow(self, y, dt):
        """``exp(A dt) x``: ``cos/sin`` (``I0 > 0``), ``cosh/sinh`` (``I0 < 0``) or ``1 + A dt`` (``I0 = 0``)."""
        self._require_closed_form()
        i0 = self.I0
        s = jnp.sqrt(jnp.where(i0 != 0, jnp.abs(i0), 1.0))
        phase = s * dt / self.tau
        osc = i0 > 0
        c = jnp.where(osc, jnp.cos(phase), jnp.cosh(phase))
        sn = jnp.where(osc, jnp.sin(phase), jnp.sinh(phase))
        k = jnp.where(i0 != 0, sn / s, dt / self.tau)  # sin(s t/tau)/s -> t/tau as I0 -> 0
        c = jnp.where(i0 != 0, c, 1.0)
        return jnp.stack([c * y[0] + k * i0 * y[1], c * y[1] - k * y[0]])

    def time_to_threshold(self, y, horizon) -> Scalar:
        self._require_closed_form()
        # Both regimes are cheap: a select is faster than a lax.cond (a CPU dispatch per event).
        t = jnp.where(self.I0 > 0, self._oscillatory_time(y), self._excitable_time(y))
        return jnp.where(t <= horizon, t, jnp.inf)

    @property
    def has_firing_order(self) -> bool:
        return self.tau_syn is None

    def firing_order(self, y) -> Scalar:
        """``-V = -x1/x2`` where the neuron will fire (all ``x2 >= 0`` phases if ``I0 > 0``, ``V > sqrt(-I0)``
        if not), else ``+inf``: the 1-D flow keeps the order of ``V``, the largest fires first."""
        self._require_closed_form()
        x1, x2 = y[0], y[1]
        s = jnp.sqrt(jnp.maximum(-self.I0, 0.0))
        fires = (self.I0 > 0) | (x1 > s * x2)
        return jnp.where(fires, -x1 / x2, jnp.inf)

    def _oscillatory_time(self, y):
        """``x2`` first vanishes at ``sqrt(I0) t/tau = atan2(sqrt(I0) x2, x1)`` (in ``[0, pi]`` for ``x2 >= 0``)."""
        s = jnp.sqrt(jnp.where(self.I0 > 0, self.I0, 1.0))
        return self.tau * _atan2(s * y[1], y[0]) / s

    def _excitable_time(self, y):
        """``I0 <= 0``: a spike iff ``V > sqrt(-I0)``, i.e. ``x1 > s x2``; then ``tanh(s t/tau) = s x2/x1``."""
        x1, x2 = y[0], y[1]
        s = jnp.sqrt(jnp.where(self.I0 < 0, -self.I0, 0.0) + jnp.where(self.I0 < 0, 0.0, 1.0))
        s = jnp.where(self.I0 < 0, s, 0.0)
        fires = x1 > s * x2
        ratio = jnp.where(fires, x2 / jnp.where(fires, x1, 1.0), 0.0)
        # Keep atanh's argument a few ulps below 1 (V just above sqrt(-I0): a spike only after an
        # astronomically long time, discarded by the horizon) so its derivative stays finite.
        r = jnp.minimum(jnp.where(fires, s * ratio, 0.0), 1.0 - 4 * jnp.finfo(y.dtype).eps)
        t = self.tau * ratio * _atanhrel(r)
        return jnp.where(fires, t, jnp.inf)
