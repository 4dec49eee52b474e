"""Current-based leaky integrate-and-fire neuron with delta or exponential synapses."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Scalar, ScalarLike

from spikeode.neurons._base import AbstractOrderedNeuron, AbstractPseudoNeuron
from spikeode.neurons._roots import bracketed_root, exprel, log1prel

__all__ = ["LIF"]


class LIF(AbstractOrderedNeuron, AbstractPseudoNeuron):
    r"""Leaky integrate-and-fire neuron (dimensionless voltage, threshold ``v_th``).

    Delta synapses (``tau_syn=None``), state ``(V,)``:

        tau_mem dV/dt = -V + I0,            input spike of weight w: V -> V + w

    Exponential synapses, state ``(V, I)``:

        tau_mem dV/dt = -V + I0 + I,        tau_syn dI/dt = -I,     input: I -> I + w

    Spike when ``V`` crosses ``v_th`` upwards; reset ``V -> v_reset`` (``I`` unchanged).

    Closed forms: ``V(t) = I0 + (V0 - I0) e^{-t/tau_mem} + I0_syn phi(t)`` with
    ``phi(t) = tau_syn/(tau_syn - tau_mem) (e^{-t/tau_syn} - e^{-t/tau_mem})`` (written stably, so
    ``tau_syn = tau_mem`` is fine). With delta synapses the threshold time is
    ``tau_mem ln((I0 - V0)/(I0 - v_th))``. With exponential synapses and ``tau_mem = 2 tau_syn``
    ``V`` is a quadratic in ``exp(-t/tau_mem)`` (closed-form crossing); for any other ratio ``V`` has at
    most one extremum, found analytically, and the crossing is bracketed on a monotone piece and solved
    by safeguarded Newton. Both carry implicit-function gradients in every parameter.
    A delta input can push ``V`` over threshold: the engine emits that spike at the input time.
    """

    tau_mem: Float[Array, ""] | float = 1.0
    tau_syn: Float[Array, ""] | float | None = None
    I0: Float[Array, ""] | float = 0.0
    v_th: Float[Array, ""] | float = 1.0
    v_reset: Float[Array, ""] | float = 0.0

    def initial_state(self) -> Float[Array, " state"]:
        v0 = jnp.asarray(self.v_reset, dtype=jnp.result_type(self.v_reset, float))
        return jnp.stack([v0]) if self.tau_syn is None else jnp.stack([v0, jnp.zeros_like(v0)])

    def vector_field(self, t, y, args):
        if self.tau_syn is None:
            return (-y + self.I0) / self.tau_mem
        v, i = y[0], y[1]
        return jnp.stack([(-v + self.I0 + i) / self.tau_mem, -i / self.tau_syn])

    def threshold(self, y) -> Scalar:
        return y[0] - self.v_th

    def reset(self, y):
        return y.at[0].set(self.v_reset)

    def receive(self, y, w: ScalarLike):
        return y.at[0 if self.tau_syn is None else 1].add(w)

    def pseudo_spike(self, y, drive):
        """After ``T``: constant drive ``I_p = v_th + softplus(I0 + I_syn(T) + drive - v_th) > v_th``.

        ``delay = tau_mem ln((I_p - V)/(I_p - v_th))``, ``period = tau_mem ln((I_p - v_reset)/(I_p - v_th))``.
        """
        syn = 0.0 if self.tau_syn is None else y[1]
        z = self.I0 + syn + drive - self.v_th
        # Strongly inhibited (z << 0): in float32 the gradient of log1p(c/gap) carries c/gap^2, which
        # overflows once gap = softplus(z) < ~1e-19 (z < ~-44: gradient -inf) and softplus(z) itself
        # underflows to 0 for z < ~-104 (delay inf, gradient NaN). There log(softplus(z)) = z to float
        # precision (relative error e^z/2), so log1p(c/gap) = log(c + e^z) - z. Each branch is evaluated
        # on a clamped z so that the branch jnp.where discards keeps finite gradients.
        deep = z < -20.0
        z_deep = jnp.minimum(z, -20.0)
        gap = jax.nn.softplus(jnp.maximum(z, -20.0))

        def log1p_over_gap(c):
            return jnp.where(deep, jnp.log(c + jnp.exp(z_deep)) - z_deep, jnp.log1p(c / gap))

        delay = self.tau_mem * log1p_over_gap(self.v_th - y[0])
        period = self.tau_mem * log1p_over_gap(self.v_th - self.v_reset)
        return delay, period

    # -- closed forms ------------------------------------------------------------------------
    def voltage_extremum(self, y) -> tuple[Scalar, Array]:
        """Time ``t_e > 0`` of the single extremum of the free ``V(t)`` and whether it exists.

        ``t_e = -tau_mem u log1p(x)/x``, ``x = (1 - rho) u``, ``u = (I - a)/((1 - rho) a - I)``,
        ``a = V - I0``, ``rho = tau_mem/tau_syn`` (from ``dV/dt = 0``; finite at ``rho = 1``).
        """
        v0, i0 = y[0], y[1]
        a = v0 - self.I0
        rho = self.tau_mem / self.tau_syn
        den = (1.0 - rho) * a - i0
        u = (i0 - a) / jnp.where(den == 0, 1.0, den)
        x = (1.0 - rho) * u
        t_ext = -self.tau_mem * u * log1prel(jnp.where(x > -1.0, x, 0.0))
        return t_ext, (den != 0) & (x > -1.0) & (t_ext > 0)

    def _voltage(self, y, t):
        v = self.I0 + (y[0] - self.I0) * jnp.exp(-t / self.tau_mem)
        if self.tau_syn is None:
            return v
        delta = 1.0 / self.tau_mem - 1.0 / self.tau_syn
        phi = (t / self.tau_mem) * jnp.exp(-t / self.tau_mem) * exprel(t * delta)
        return v + y[1] * phi

    def flow(self, y, dt):
        v = self._voltage(y, dt)
        if self.tau_syn is None:
            return jnp.stack([v])
        return jnp.stack([v, y[1] * jnp.exp(-dt / self.tau_syn)])

    def time_to_threshold(self, y, horizon) -> Scalar:
        if self.tau_syn is None:
            return self._delta_time_to_threshold(y, horizon)
        return self._exp_time_to_threshold(y, horizon)

    def closed_form_applies(self) -> bool:
        return True  # any tau_mem/tau_syn ratio (closed-form crossing at 2, bracketed Newton otherwise)

    def firing_order_applies(self) -> bool:
        return self.tau_syn is None  # exponential synapses: V and I both decide who fires first

    def firing_order(self, y) -> Scalar:
        """Delta synapses: ``-V`` if the drive reaches threshold (the larger ``V``, the sooner), else ``+inf``."""
        return jnp.where(self.I0 > self.v_th, -y[0], jnp.inf)

    def _delta_time_to_threshold(self, y, horizon):
        reaches = self.I0 > self.v_th
        num = jnp.where(reaches, self.I0 - y[0], 2.0)
        den = jnp.where(reaches, self.I0 - self.v_th, 1.0)
        dt = self.tau_mem * jnp.log(num / den)
        return jnp.where(reaches & (dt <= horizon), dt, jnp.inf)

    def _exp_time_to_threshold(self, y, horizon):
        # tau_mem = 2 tau_syn (exactly; a runtime check on shared, unbatched parameters, so only one
        # branch runs): V is a quadratic in x = exp(-t/tau_mem) -- the ratio of Klos & Memmesheimer.
        quadratic = self.tau_mem == 2.0 * self.tau_syn
        return jax.lax.cond(quadratic, lambda m, y, h: m._quadratic_crossing(y, h),
                            lambda m, y, h: m._bracketed_crossing(y, h), self, y, horizon)

    def _quadratic_crossing(self, y, horizon):
        """Largest root ``x`` in ``[exp(-horizon/tau_mem), 1)`` of ``V(x) - v_th = a2 x^2 + a1 x + a0``."""
        i = y[1]
        a2, a1, a0 = -i, y[0] - self.I0 + i, self.I0 - self.v_th
        disc = a1 * a1 - 4.0 * a2 * a0
        real = disc >= 0
        sq = jnp.sqrt(jnp.where(real, disc, 0.0))
        q = -0.5 * (a1 + jnp.where(a1 >= 0, sq, -sq))
        q_safe = jnp.where(q == 0, 1.0, q)
        roots = jnp.stack([q / jnp.where(a2 == 0, 1.0, a2), a0 / q_safe])
        ok = real & jnp.stack([a2 != 0, q != 0])
        x_min = jnp.exp(-horizon / self.tau_mem)
        valid = ok & (roots >= x_min) & (roots < 1.0)
        x = jnp.max(jnp.where(valid, roots, -1.0))
        crosses = jnp.any(valid)
        t0 = jax.lax.stop_gradient(-self.tau_mem * jnp.log(jnp.where(crosses, x, 0.5)))
        # One Newton step on the general V(t): exact first derivatives in every parameter (IFT).
        slope = self.vector_field(t0, self.flow(y, t0), None)[0]
        step = (self._voltage(y, t0) - self.v_th) / jnp.where(slope > 0, slope, 1.0)
        # Near a tangent crossing (slope ~ 0) the step can throw t anywhere, even before the current
        # time (seen in float32 training: t -18, then NaN states). The root is then t0 itself, with
        # the gradient of a tangency (singular) replaced by zero.
        sane = jnp.abs(jax.lax.stop_gradient(step)) <= 1e-3 * self.tau_mem
        t = t0 - jnp.where(sane, step, 0.0)
        return jnp.where(crosses & (t <= horizon), jnp.maximum(t, 0.0), jnp.inf)

    def _bracketed_crossing(self, y, horizon):
        t_ext, has_ext = self.voltage_extremum(y)
        t_mid = jnp.where(has_ext, jnp.minimum(t_ext, horizon), horizon)
        g = lambda t: self._voltage(y, t) - self.v_th  # noqa: E731
        dg = lambda t: self.vector_field(t, self.flow(y, t), None)[0]  # noqa: E731
        # V is monotone on [0, t_mid] and on [t_mid, horizon]: bracket the first upward crossing.
        g_mid, g_end = g(t_mid), g(horizon)
        first_piece = g_mid >= 0
        crosses = first_piece | (g_end >= 0)
        lo = jnp.where(first_piece, 0.0, t_mid)
        hi = jnp.where(first_piece, t_mid, horizon)
        root = bracketed_root(g, dg, lo, hi)
        return jnp.where(crosses, root, jnp.inf)
