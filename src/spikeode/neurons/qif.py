"""Quadratic integrate-and-fire neuron in theta (phase) form."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Scalar, ScalarLike

from spikeode.neurons._base import AbstractOrderedNeuron, AbstractPseudoNeuron, NotClosedForm

__all__ = ["QIF"]

_PI = jnp.pi


def _atanh(r):
    """``atanh(r)`` for ``0 <= r < 1`` as ``log1p(2r/(1 - r))/2`` (XLA's CPU ``atanh`` is ~4x slower)."""
    return 0.5 * jnp.log1p(2.0 * r / (1.0 - r))


def _atanhrel(r):
    """``atanh(r)/r`` for ``0 <= r < 1``, equal to 1 at ``r = 0``."""
    small = r < 1e-6
    rs = jnp.where(small, 0.5, r)
    return jnp.where(small, 1.0 + r * r / 3, _atanh(rs) / rs)


def _is_double(x) -> bool:
    return jnp.finfo(jnp.result_type(x, float)).bits >= 64


#: Taylor coefficients of ``atan(u)/u`` in ``u^2``; ``|u| <= tan(pi/16)`` needs 12 (float64) or 6 (float32).
_ATAN = tuple((-1) ** n / (2 * n + 1) for n in range(12))


def _atan_unit(u):
    """``atan(u)`` for ``0 <= u <= 1``: two half-angle steps ``u -> u/(1 + sqrt(1 + u^2))`` to
    ``u <= tan(pi/16)``, then the Taylor series (a few ulps; XLA's CPU ``arctan`` is ~3x slower)."""
    for _ in range(2):
        u = u / (1.0 + jnp.sqrt(1.0 + u * u))
    return 4.0 * u * _horner(u * u, _ATAN if _is_double(u) else _ATAN[:6])


def _atan2(y, x):
    """``atan2`` through one ``atan`` of a ratio in ``[0, 1]`` (XLA's CPU ``atan2`` is not vectorised;
    this is ~4x faster there) -- same values and derivatives, ``atan2(0, 0) = 0``."""
    ax, ay = jnp.abs(x), jnp.abs(y)
    swap = ay > ax
    num, den = jnp.where(swap, ax, ay), jnp.where(swap, ay, ax)
    a = _atan_unit(num / jnp.where(den == 0, 1.0, den))
    a = jnp.where(swap, 0.5 * _PI - a, a)
    a = jnp.where(x < 0, _PI - a, a)
    return jnp.where(y < 0, -a, a)


#: ``pi/2`` in three parts (Cody-Waite: ``n * part`` exact for the quadrant counts that occur).
_PIO2 = {True: (1.57079632673412561417e+00, 6.07710050630396597660e-11, 2.02226624871116645580e-21),
         False: (1.5703125, 4.837512969970703125e-4, 7.54978995489188216e-8)}
#: Taylor coefficients of ``sin(a)/a`` and ``cos(a)`` in ``a^2`` for ``|a| <= pi/4``.
_SIN = tuple((-1) ** n / math.factorial(2 * n + 1) for n in range(9))
_COS = tuple((-1) ** n / math.factorial(2 * n) for n in range(10))


def _cos_sin(r):
    """``(cos(r), sin(r))`` for ``r >= 0``: ``r = n pi/2 + a`` (Cody-Waite), Taylor series on
    ``|a| <= pi/4``, the quadrant ``n mod 4`` (XLA's CPU ``sin`` and ``cos`` are ~6x slower together)."""
    double = _is_double(r)
    p1, p2, p3 = _PIO2[double]
    n = jnp.round(r * (2.0 / _PI))
    a = ((r - n * p1) - n * p2) - n * p3
    a2 = a * a
    sa = a * _horner(a2, _SIN if double else _SIN[:6])
    ca = _horner(a2, _COS if double else _COS[:6])
    m = n - 4.0 * jnp.floor(0.25 * n)  # n mod 4, exact for any float n
    odd = (m == 1) | (m == 3)
    c, sn = jnp.where(odd, sa, ca), jnp.where(odd, ca, sa)
    return jnp.where((m == 1) | (m == 2), -c, c), jnp.where(m >= 2, -sn, sn)


def _phase_vector(theta):
    return jnp.stack([jnp.sin(0.5 * theta), jnp.cos(0.5 * theta)])


def _horner(x, coeffs):
    """``sum_k coeffs[k] x^k`` by Horner's rule on Python-float coefficients (one fused kernel;
    ``jnp.polyval`` scans an array of coefficients)."""
    y = coeffs[-1]
    for c in coeffs[-2::-1]:
        y = y * x + c
    return y


def _series_cut(q):
    """``eps^(1/6)``: below it in ``|q|`` the Taylor series of an even function of ``sqrt(q)`` (truncation
    and the cancellation of the direct form's derivative both ~1e-13 relative in float64) replaces it."""
    return jnp.finfo(jnp.result_type(q, float)).eps ** (1 / 6)


_COSH = (1.0, 1 / 2, 1 / 24, 1 / 720, 1 / 40320, 1 / 3628800)
_SINHC = (1.0, 1 / 6, 1 / 120, 1 / 5040, 1 / 362880, 1 / 39916800)
_ATANHC = (1.0, 1 / 3, 1 / 5, 1 / 7, 1 / 9, 1 / 11)
_D_SINHC = tuple(n * a for n, a in enumerate(_SINHC))[1:]  # the series of d/dq sinh(sqrt(q))/sqrt(q)


@jax.custom_jvp
def _cosh_sinhc_sqrt(q):
    """``(cosh(sqrt(q)), sinh(sqrt(q))/sqrt(q))`` for real ``q`` (``(cos(r), sin(r)/r)``, ``r = sqrt(-q)``,
    for ``q < 0``; ``(1, 1)`` at ``q = 0``), smooth through ``q = 0``.

    ``|q| < eps^(1/6)``: the Taylor series in ``q``. Else one ``sqrt``, and one ``expm1`` (``q > 0``:
    ``cosh = (e + 1/e)/2``, ``sinh = expm1(r) (1 + 1/e)/2``, ``e = exp(r)``, no cancellation) or ``cos``
    and ``sin`` (``q < 0``). Every branch runs on a safe argument (the series on a clamped one: its powers
    overflow float32 once ``|q| > 5e7``). Derivatives: the custom JVP below.
    """
    cut = _series_cut(q)
    small = jnp.abs(q) < cut
    q_small = jnp.where(small, q, 0.0)
    pos = q > 0
    r = jnp.sqrt(jnp.where(small, cut, jnp.abs(q)))
    r_pos = jnp.where(pos, r, 1.0)
    r_neg = jnp.where(pos, 1.0, r)
    em1 = jnp.expm1(r_pos)
    inv_e = 1.0 / (1.0 + em1)
    cos, sin = _cos_sin(r_neg)
    c = jnp.where(pos, 0.5 * (1.0 + em1 + inv_e), cos)
    k = jnp.where(pos, 0.5 * em1 * (1.0 + inv_e), sin) / jnp.where(pos, r_pos, r_neg)
    return jnp.where(small, _horner(q_small, _COSH), c), jnp.where(small, _horner(q_small, _SINHC), k)


@_cosh_sinhc_sqrt.defjvp
def _cosh_sinhc_sqrt_jvp(primals, tangents):
    """``dc/dq = k/2``, ``dk/dq = (c - k)/(2q)`` (its series' derivative for ``|q| < eps^(1/6)``), from the
    values: reverse mode then differentiates no transcendental function (the same cancellation in
    ``c - k`` as in the derivative of the direct form)."""
    (q,), (dq,) = primals, tangents
    c, k = _cosh_sinhc_sqrt(q)
    small = jnp.abs(q) < _series_cut(q)
    dk = jnp.where(small, _horner(jnp.where(small, q, 0.0), _D_SINHC), (c - k) / (2.0 * jnp.where(small, 1.0, q)))
    return (c, k), (0.5 * k * dq, dk * dq)


def _blowup_time(j, z1, z2):
    """Time ``s*`` until ``y = z1/z2`` (``z2 >= 0``) of ``dy/ds = y^2 + j`` reaches ``+inf``, and whether
    it ever does (``s* = 0`` where not: finite, so that products with it keep finite gradients).

    One function through ``j = 0``, with one transcendental function per regime:

    - ``z1 > 0``, ``|q| < eps^(1/6)`` (``q = -j rho^2``, ``rho = z2/z1``): ``s* = rho atanh(sqrt(q))/sqrt(q)``
      as its Taylor series in ``q``;
    - ``j > 0`` otherwise (any ``z1``): ``s* = atan2(sqrt(j) z2, z1)/sqrt(j)``;
    - ``j < 0``, ``z1 > 0``: ``s* = rho atanh(sqrt(q))/sqrt(q)``, finite iff ``q < 1`` (``y`` above the
      unstable point);
    - ``j <= 0``, ``z1 <= 0``: never.
    """
    up = z1 > 0
    # rho capped at max^(1/4) so that rho^2 and q stay finite (z1 -> 0+): for j <= 0 such states never
    # fire (s* >= rho > 1/beta); for j > 0 they take the atan2 branch.
    rho_max = jnp.finfo(jnp.result_type(z1, float)).max ** 0.25
    rho = jnp.where(up, jnp.minimum(z2 / jnp.where(up, z1, 1.0), rho_max), 0.0)
    q = -j * rho * rho
    cut = _series_cut(q)
    small = up & (jnp.abs(q) < cut)
    hyper = up & (q >= cut) & (q < 1)
    osc = (j > 0) & ~small
    s_small = rho * _horner(jnp.where(small, q, 0.0), _ATANHC)
    # atanh's argument a few ulps below 1 (y just above the unstable point: an astronomically late spike).
    r = jnp.sqrt(jnp.where(hyper, jnp.minimum(q, 1.0 - 8 * jnp.finfo(q.dtype).eps), cut))
    s_hyper = rho * _atanh(r) / r
    w = jnp.sqrt(jnp.where(j > 0, j, 1.0))
    s_osc = _atan2(w * z2, z1) / w
    s = jnp.where(small, s_small, jnp.where(hyper, s_hyper, jnp.where(osc, s_osc, 0.0)))
    return s, small | hyper | osc


class _Matched:
    """``QIF.tau_syn`` in matched mode: equal to ``"matched"``, and an empty pytree (not a leaf), so a
    model holding it passes through ``jax.jit``, ``tree_map`` and serialisation like ``None`` does."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'matched'"

    def __eq__(self, other) -> bool:
        return isinstance(other, _Matched) or (isinstance(other, str) and other == "matched")

    def __hash__(self) -> int:
        return hash("matched")


MATCHED = _Matched()
jax.tree_util.register_pytree_node(_Matched, lambda m: ((), None), lambda aux, children: MATCHED)


def _is_matched_ratio(tau, I0, tau_syn) -> bool:
    """Whether ``tau_syn`` is ``"matched"`` or a number equal to ``tau/(4 sqrt(-I0))`` (relative 1e-12;
    checked on concrete values only)."""
    if isinstance(tau_syn, (str, _Matched)):
        return tau_syn == MATCHED
    values = (tau, I0, tau_syn)
    if tau_syn is None or any(isinstance(v, jax.core.Tracer) for v in values):
        return False
    tau, I0, tau_syn = (np.asarray(v, dtype=np.float64) for v in values)
    if tau.size != 1 or I0.size != 1 or tau_syn.size != 1 or not float(I0) < 0:
        return False
    ratio = float(tau) / (4.0 * np.sqrt(-float(I0)))
    return abs(float(tau_syn) - ratio) <= 1e-12 * abs(ratio)


class QIF(AbstractOrderedNeuron, AbstractPseudoNeuron):
    r"""Quadratic integrate-and-fire neuron as a theta neuron, ``V = tan(theta/2)``.

    Dynamics (delta synapses, ``tau_syn=None``):

        tau dV/dt = V^2 + I0            <=>   tau dtheta/dt = (1 - cos theta) + (1 + cos theta) I0

    input spike of weight w: ``V -> V + w``. Exponential synapses: ``I0 -> I0 + I`` above with
    ``tau_syn dI/dt = -I`` and input ``I -> I + w``.

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

    Exponential synapses have a closed form at one ratio, ``tau_syn = tau/(2 beta)`` with
    ``I0 = -beta^2/4`` (``beta > 0``; spikegd's ``tau_m = 2 tau_s`` pairing at ``beta = 1``). With
    ``W = V + beta/2``, ``tau dW/dt = W^2 - beta W + I(0) e^2``, ``e = exp(-beta t/tau)``; ``W = e y``
    and ``s = (1 - e)/beta`` give ``dy/ds = y^2 + I(0)``: the constant-drive QIF in the time ``s``,
    which stays below ``1/beta``. So the flow is linear in ``x``: shear ``z = (x1 + beta x2/2, x2)``,
    rotate ``z`` by ``exp(s [[0, I(0)], [-1, 0]])``, scale by ``diag(e^(1/2), e^(-1/2))``, shear back;
    ``I -> I e^2``. The spike is the blow-up time ``s*`` of ``y``: ``t* = -(tau/beta) ln(1 - beta s*)``
    if ``beta s* < 1``, else none ever.

    Which path ``tau_syn`` selects:

    - ``None``: delta synapses, closed form.
    - ``"matched"``: exponential synapses with ``tau_syn = tau/(4 sqrt(-I0))`` (see
      ``synaptic_time_constant``), closed form. ``tau_syn`` is no parameter of its own: it follows
      ``tau`` and ``I0``, so the ratio holds while they are trained. Needs ``I0 < 0``:
      ``check_parameters`` raises otherwise, and if training moves ``I0`` to ``>= 0`` the flow, the
      spike time and the vector field are NaN (the engine and training then report non-finite values).
    - a number equal to ``tau/(4 sqrt(-I0))`` (relative ``1e-12``, checked at construction on
      concrete values) becomes ``"matched"``; any other number is a free exponential synapse on the
      diffrax path (no closed form).
    """

    tau: Float[Array, ""] | float = 1.0
    I0: Float[Array, ""] | float = 1.0
    tau_syn: Float[Array, ""] | float | _Matched | None = None
    theta0: Float[Array, ""] | float | None = None

    def __init__(self, tau=1.0, I0=1.0, tau_syn=None, theta0=None):
        if isinstance(tau_syn, str) and tau_syn != "matched":
            raise ValueError(f"QIF tau_syn must be None, a number or 'matched', got {tau_syn!r}")
        self.tau, self.I0, self.theta0 = tau, I0, theta0
        self.tau_syn = MATCHED if _is_matched_ratio(tau, I0, tau_syn) else tau_syn

    @property
    def matched(self) -> bool:
        """Exponential synapses at the closed-form ratio ``tau_syn = tau/(4 sqrt(-I0))``."""
        return isinstance(self.tau_syn, _Matched)

    @property
    def synaptic_time_constant(self) -> Float[Array, ""] | float | None:
        """The ``tau_syn`` in effect (``None`` for delta synapses; NaN if matched and ``I0 >= 0``)."""
        return self.tau / (2.0 * self._beta()) if self.matched else self.tau_syn

    def _beta(self):
        """``beta = 2 sqrt(-I0)`` of the matched ratio; NaN for ``I0 >= 0`` (no closed form there)."""
        i0 = jnp.asarray(self.I0, dtype=jnp.result_type(self.I0, float))
        return 2.0 * jnp.sqrt(jnp.where(i0 < 0, -i0, jnp.nan))

    def check_parameters(self) -> None:
        super().check_parameters()
        if self.matched and not bool(jnp.all(jnp.asarray(self.I0) < 0)):
            raise ValueError("QIF with tau_syn='matched' needs I0 < 0 (tau_syn = tau/(4 sqrt(-I0))), "
                             f"got I0 = {self.I0!r}")

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
        return jnp.concatenate([dx, (-y[2] / self.synaptic_time_constant)[None]])

    def threshold(self, y) -> Scalar:
        """``min(x1, 0) - x2``: negative on ``theta in (-pi, pi)``, crossing zero upwards at ``theta = pi``
        (``x2`` changes sign while ``x1 > 0``) -- the sign of ``theta - pi`` without an ``atan2``."""
        return jnp.minimum(y[0], 0.0) - y[1]

    def reset(self, y):
        return y.at[0].set(-1.0).at[1].set(0.0)

    def receive(self, y, w: ScalarLike):
        """Delta: ``V -> V + w`` (``x1 -> x1 + w x2``); exponential: ``I -> I + w``. Either way the phase
        vector is renormalised: the dynamics are linear and homogeneous in ``x``, so only its direction
        matters, and the norm, which the flow multiplies by up to ``cosh(sqrt(-I) s)`` per interval under
        strong inhibition, would otherwise overflow float32 over many events."""
        x1, x2 = (y[0], y[1]) if self.tau_syn is not None else (y[0] + w * y[1], y[1])
        inv_norm = jax.lax.rsqrt(x1 * x1 + x2 * x2)  # scalar products, no broadcast (cheap reverse mode)
        x = jnp.stack([x1 * inv_norm, x2 * inv_norm])
        return x if self.tau_syn is None else jnp.concatenate([x, (y[2] + w)[None]])

    def pseudo_spike(self, y, drive):
        """After ``T``: constant drive ``I_p = softplus(max(I0 + I_syn(T) + drive, -40)) > 0`` (oscillatory).

        ``delay = tau atan2(sqrt(I_p) x2, x1) / sqrt(I_p)``, ``period = tau pi / sqrt(I_p)``. The drive is
        clamped at -40 (delays up to ``~pi tau e^20``): below it ``sqrt(I_p)`` underflows float32 and the
        pseudo rate ``1 - delay/period`` would be ``inf/inf``; such a neuron's pseudo rate is 0 either way.
        """
        syn = 0.0 if self.tau_syn is None else y[2]
        s = jnp.sqrt(jax.nn.softplus(jnp.maximum(self.I0 + syn + drive, -40.0)))
        delay = self.tau * _atan2(s * y[1], y[0]) / s
        return delay, self.tau * _PI / s

    # -- closed forms (delta synapses; exponential synapses at the matched ratio) --------------
    def closed_form_applies(self) -> bool:
        return self.tau_syn is None or self.matched

    def _require_closed_form(self):
        if not self.has_closed_form:
            raise NotClosedForm("QIF with exponential synapses has a closed-form flow only at tau_syn = "
                                "tau/(4 sqrt(-I0)) (tau_syn='matched'); use the diffrax path")

    def flow(self, y, dt):
        self._require_closed_form()
        return self._delta_flow(y, dt) if self.tau_syn is None else self._matched_flow(y, dt)

    def time_to_threshold(self, y, horizon) -> Scalar:
        self._require_closed_form()
        if self.tau_syn is None:
            return self._delta_time_to_threshold(y, horizon)
        return self._matched_time_to_threshold(y, horizon)

    def _matched_flow(self, y, dt):
        """``x -> shear^-1 diag(e^(1/2), e^(-1/2)) exp(s B) shear x``, ``B = [[0, I], [-1, 0]]``,
        ``s = (1 - e)/beta``; ``I -> I e^2`` (exact representative: ``det = 1`` like the linear ODE's)."""
        beta = self._beta()
        u = beta * dt / self.tau
        half = jnp.exp(-0.5 * u)  # e^(1/2)
        s = -jnp.expm1(-u) / beta
        j = y[2]
        z1, z2 = y[0] + 0.5 * beta * y[1], y[1]
        q = -j * s * s
        c, k = _cosh_sinhc_sqrt(q)
        k = s * k
        x2 = (c * z2 - k * z1) / half
        x1 = half * (c * z1 + j * k * z2) - 0.5 * beta * x2
        return jnp.stack([x1, x2, j * half**4])

    def _matched_blowup(self, y):
        """The blow-up time ``s*`` of ``y = W/e`` at constant drive ``I``, and whether ``t*`` is finite (``beta s* < 1``)."""
        beta = self._beta()
        s, blows_up = _blowup_time(y[2], y[0] + 0.5 * beta * y[1], y[1])
        return s, blows_up & (beta * s < 1)

    def _matched_time_to_threshold(self, y, horizon):
        """``t* = -(tau/beta) ln(1 - beta s*)`` from the blow-up time ``s*`` of ``y = W/e``."""
        beta = self._beta()
        s, fires = self._matched_blowup(y)
        t = -self.tau * jnp.log1p(-jnp.where(fires, beta * s, 0.0)) / beta
        # I0 >= 0 (beta NaN): NaN, never a silent "no spike".
        return jnp.where(jnp.isnan(beta), jnp.nan, jnp.where(fires & (t <= horizon), t, jnp.inf))

    def _delta_flow(self, y, dt):
        """``exp(A dt) x``: ``cos/sin`` (``I0 > 0``), ``cosh/sinh`` (``I0 < 0``) or ``1 + A dt`` (``I0 = 0``)."""
        i0 = self.I0
        s = jnp.sqrt(jnp.where(i0 != 0, jnp.abs(i0), 1.0))
        phase = s * dt / self.tau
        osc = i0 > 0
        c = jnp.where(osc, jnp.cos(phase), jnp.cosh(phase))
        sn = jnp.where(osc, jnp.sin(phase), jnp.sinh(phase))
        k = jnp.where(i0 != 0, sn / s, dt / self.tau)  # sin(s t/tau)/s -> t/tau as I0 -> 0
        c = jnp.where(i0 != 0, c, 1.0)
        return jnp.stack([c * y[0] + k * i0 * y[1], c * y[1] - k * y[0]])

    def _delta_time_to_threshold(self, y, horizon) -> Scalar:
        # Both regimes are cheap: a select is faster than a lax.cond (a CPU dispatch per event).
        t = jnp.where(self.I0 > 0, self._oscillatory_time(y), self._excitable_time(y))
        return jnp.where(t <= horizon, t, jnp.inf)

    def firing_order_applies(self) -> bool:
        return self.tau_syn is None or self.matched

    def firing_order(self, y) -> Scalar:
        """Delta synapses: ``-V = -x1/x2`` where the neuron will fire (all ``x2 >= 0`` phases if ``I0 > 0``,
        ``V > sqrt(-I0)`` if not), else ``+inf``: the 1-D flow keeps the order of ``V``, the largest fires first.

        Matched exponential synapses: the blow-up time ``s*`` (``+inf`` where it never fires), which
        ``t* = -(tau/beta) ln(1 - beta s*)`` increases with; the same ``s*`` as ``time_to_threshold``'s, so
        the two order states alike, without the logarithm and the horizon per neuron."""
        if self.tau_syn is not None:
            self._require_closed_form()
            s, fires = self._matched_blowup(y)
            return jnp.where(fires, s, jnp.inf)
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
