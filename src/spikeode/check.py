"""Exactness report of a neuron model: ``spikeode check --neuron NAME``.

For each variant of the model (e.g. delta and exponential synapses) it measures, in float64:
- analytic spike times and their gradients where known (QIF/LIF with constant drive);
- the closed forms against the vector field (``flow`` starts at ``y`` with slope ``vector_field``;
  ``time_to_threshold`` lands on the threshold);
- closed form against diffrax on a random input train (spike times, state at ``T``, gradients);
- every gradient (weights and each model parameter) against central finite differences;
- the event adjoint (``gradient="adjoint"``) against autodiff and the same finite differences.
Each row has a tolerance; the command exits non-zero if any row is beyond it.

A gradient ``g`` agrees with its finite difference ``d`` if, entry by entry,
``|g - d| <= rtol max(|g|, |d|) + atol`` with ``atol`` the finite-difference noise floor
``FD_NOISE eps S/step + |d_h - d_h/2|/3`` (rounding of the loss, whose terms sum to ``S`` in absolute
value, over the step, plus Richardson's error estimate from the two steps). The row's error is
``max |g - d| / (max(|g|, |d|) + atol/rtol)``: it is ``<= rtol`` exactly when every entry agrees, so an
exactly zero gradient against finite-difference noise passes and a small wrong one does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from spikeode.integrate import Diffrax
from spikeode.engine.network import simulate_neuron
from spikeode.neurons import EIF, LIF, QIF, AbstractNeuron, as_trainable, resolve_neuron_class

__all__ = ["CheckRow", "gradient_error", "model_variants", "run_check", "format_rows"]

T_CHECK = 10.0
N_INPUTS = 60
N_SLOTS = 32
TOL = {
    "analytic_closed": 1e-12,
    "analytic_diffrax": 1e-9,
    "analytic_grad": 1e-6,
    "flow_vs_field": 1e-7,
    "landing": 1e-9,
    "closed_vs_diffrax_times": 1e-8,
    "closed_vs_diffrax_grad": 1e-6,
    "fd": 1e-5,
    "adjoint_closed": 1e-8,
    "adjoint_diffrax": 1e-6,
}
FD_NOISE = 10.0  # the noise floor of a Richardson central difference, in units of eps * (loss scale) / step
FD_RULE = ("gradient vs finite differences: |g - fd| <= rtol max(|g|, |fd|) + atol entrywise, "
           f"atol = {FD_NOISE:g} eps S/step + |fd_h - fd_h/2|/3 (S: sum of |loss terms|); "
           "error = max |g - fd| / (max(|g|, |fd|) + atol/rtol), passes iff <= rtol")


@dataclass(frozen=True)
class CheckRow:
    """One measured error against its tolerance."""

    variant: str
    quantity: str
    error: float
    tolerance: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.error) and self.error <= self.tolerance)


def model_variants(name: str | type[AbstractNeuron]) -> list[tuple[str, AbstractNeuron]]:
    """The configurations ``check`` exercises: both synapse types and regimes for built-ins, the defaults otherwise."""
    cls = resolve_neuron_class(name) if isinstance(name, str) else name
    if cls is LIF:
        return [
            ("lif delta", LIF(tau_mem=1.0, I0=1.2)),
            ("lif exp tau_mem=2tau_syn", LIF(tau_mem=1.0, tau_syn=0.5, I0=1.1)),
            ("lif exp other ratio", LIF(tau_mem=1.0, tau_syn=0.4, I0=1.1)),
        ]
    if cls is QIF:
        return [
            ("qif delta oscillatory", QIF(tau=1.0, I0=0.3)),
            ("qif delta excitable", QIF(tau=1.0, I0=-0.1)),
            ("qif exp matched beta=1", QIF(tau=1.0, I0=-0.25, tau_syn="matched")),
            ("qif exp matched beta=0.6", QIF(tau=1.0, I0=-0.09, tau_syn="matched")),
            ("qif exp excitable", QIF(tau=1.0, I0=-0.1, tau_syn=0.5)),
        ]
    if cls is EIF:
        return [("eif delta", EIF(I0=0.7))]
    return [(cls.__name__, cls())]


# -- analytic references --------------------------------------------------------------------------
def _analytic(neuron: AbstractNeuron):
    """First spike time with no input and its gradient w.r.t. (drive, time constant), if known."""
    if isinstance(neuron, QIF) and float(neuron.I0) > 0:
        i, tau = float(neuron.I0), float(neuron.tau)
        return "tau", tau * np.pi / np.sqrt(i), {"I0": -tau * np.pi / (2 * i**1.5), "tau": np.pi / np.sqrt(i)}
    if isinstance(neuron, LIF) and float(neuron.I0) > float(neuron.v_th) and float(neuron.v_reset) == 0.0:
        i, tau, th = float(neuron.I0), float(neuron.tau_mem), float(neuron.v_th)
        t = tau * np.log(i / (i - th))
        return "tau_mem", t, {"I0": tau * (1 / i - 1 / (i - th)), "tau_mem": np.log(i / (i - th))}
    return None


def _analytic_rows(label: str, neuron: AbstractNeuron, integrators: dict) -> list[CheckRow]:
    ref = _analytic(neuron)
    if ref is None:
        return []
    tau_name, t_ref, grad_ref = ref
    rows = []
    no_input = jnp.array([jnp.inf])
    for integ_name, integ in integrators.items():
        def first_spike(model):
            return simulate_neuron(model, no_input, jnp.zeros(1), 2.0 * t_ref, n_slots=2, integrator=integ).times[0, 0]

        t, grads = jax.value_and_grad(first_spike)(neuron)
        tol = TOL["analytic_closed"] if integ_name == "closed_form" else TOL["analytic_diffrax"]
        rows.append(CheckRow(label, f"analytic spike time ({integ_name})", abs(float(t) - t_ref), tol,
                             f"t* = {t_ref:.6f}"))
        for field, g_ref in grad_ref.items():
            err = abs(float(getattr(grads, field)) - g_ref) / abs(g_ref)
            rows.append(CheckRow(label, f"analytic dt*/d{field} ({integ_name}, rel)", err, TOL["analytic_grad"]))
    return rows


# -- closed form vs vector field --------------------------------------------------------------------
def _flow_rows(label: str, neuron: AbstractNeuron, states) -> list[CheckRow]:
    """``flow(y, 0) = y`` and ``d/dt flow(y, t)|_0 = vector_field(y)``; ``time_to_threshold`` lands on it."""
    slope = jax.vmap(lambda y: jax.jvp(lambda dt: neuron.flow(y, dt), (0.0,), (1.0,))[1])(states)
    field = jax.vmap(lambda y: neuron.vector_field(0.0, y, None))(states)
    scale = float(jnp.max(jnp.abs(field))) + 1e-30
    err = float(jnp.max(jnp.abs(slope - field))) / scale
    rows = [CheckRow(label, "flow slope vs vector_field (rel)", err, TOL["flow_vs_field"],
                     "" if err <= TOL["flow_vs_field"] else "flow disagrees with vector_field")]
    at_zero = float(jnp.max(jnp.abs(jax.vmap(lambda y: neuron.flow(y, 0.0))(states) - states)))
    rows.append(CheckRow(label, "flow(y, 0) - y", at_zero, TOL["flow_vs_field"]))
    dts = jax.vmap(lambda y: neuron.time_to_threshold(y, 1e3))(states)
    hit = jnp.isfinite(dts)
    landed = jax.vmap(lambda y, dt: neuron.threshold(neuron.flow(y, jnp.where(jnp.isfinite(dt), dt, 0.0))))(states, dts)
    err = float(jnp.max(jnp.where(hit, jnp.abs(landed), 0.0))) if bool(jnp.any(hit)) else 0.0
    rows.append(CheckRow(label, "threshold(flow(y, time_to_threshold(y)))", err, TOL["landing"],
                         f"{int(hit.sum())}/{len(dts)} states reach threshold"))
    if neuron.has_firing_order:
        rows.append(_firing_order_row(label, neuron, states, dts))
    return rows


def _firing_order_row(label: str, neuron: AbstractNeuron, states, dts) -> CheckRow:
    """``firing_order`` must sort states as ``time_to_threshold`` does: the fraction of pairs it misorders."""
    keys = np.asarray(jax.vmap(neuron.firing_order)(states))
    t = np.asarray(dts)
    earlier = t[:, None] < t[None, :]
    misordered = earlier & ~(keys[:, None] < keys[None, :])
    frac = float(misordered.sum()) / max(int(earlier.sum()), 1)
    return CheckRow(label, "firing_order ranks like time_to_threshold (misordered pairs)", frac, 0.0,
                    "" if frac == 0 else "firing_order disagrees with time_to_threshold")


# -- random input trains ----------------------------------------------------------------------------
def _input_train(neuron: AbstractNeuron, integrator, seed: int):
    """Random times and weights scaled until the neuron fires a handful of spikes in [0, T]."""
    rng = np.random.default_rng(seed)
    times = jnp.asarray(np.sort(rng.uniform(0.0, T_CHECK, N_INPUTS)))
    z = rng.standard_normal(N_INPUTS)
    fallback = None
    for scale in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6):
        weights = jnp.asarray(scale * (1.0 + z))
        n = int(simulate_neuron(neuron, times, weights, T_CHECK, n_slots=N_SLOTS, integrator=integrator).counts[0])
        if 3 <= n <= N_SLOTS // 2:
            return times, weights, n
        if n >= 1 and fallback is None:
            fallback = (times, weights, n)
    if fallback is None:
        raise ValueError(
            f"{type(neuron).__name__}: the threshold function never crossed zero: no spike in [0, {T_CHECK}] "
            f"for {N_INPUTS} random inputs at any weight scale up to 1.6 (is threshold() a real-valued "
            "function that crosses zero upwards at a spike?)"
        )
    return fallback


def _loss_fn(times, integrator, gradient: str = "autodiff") -> Callable:
    """A smooth scalar of all spike times and the final state: the quantity whose gradients are checked."""

    def loss(params):
        neuron, weights = params
        tr = simulate_neuron(neuron, times, weights, T_CHECK, n_slots=N_SLOTS, integrator=integrator,
                             gradient=gradient)
        t = tr.times[0]
        finite = jnp.isfinite(t)
        c = jnp.cos(0.7 * jnp.arange(N_SLOTS) + 0.3)
        spike_terms = jnp.where(finite, c * jnp.sin(0.9 * jnp.where(finite, t, 0.0)), 0.0)
        state_terms = jnp.sin(tr.state_T)
        scale = jnp.sum(jnp.abs(spike_terms)) + jnp.sum(jnp.abs(state_terms))
        return jnp.sum(spike_terms) + jnp.sum(state_terms), (tr.counts[0], scale)

    return loss


def _grad_groups(grads) -> dict[str, np.ndarray]:
    neuron_g, weight_g = grads
    out = {"weights": np.asarray(weight_g)}
    for field, value in vars(neuron_g).items():
        if eqx.is_inexact_array(value):
            out[field] = np.atleast_1d(np.asarray(value))
    return out


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def gradient_error(g: np.ndarray, ref: np.ndarray, atol: np.ndarray | float, rtol: float) -> float:
    """``max |g - ref| / (max(|g|, |ref|) + atol/rtol)``: ``<= rtol`` iff ``|g - ref| <= rtol max(|g|, |ref|) + atol``
    for every entry (0 where both sides and ``atol`` are 0)."""
    g, ref = np.asarray(g, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    diff = np.abs(g - ref)
    bound = np.maximum(np.abs(g), np.abs(ref)) + np.asarray(atol) / rtol
    ratio = np.divide(diff, bound, out=np.where(diff == 0, 0.0, np.inf), where=bound > 0)
    return float(np.max(ratio, initial=0.0))


@dataclass(frozen=True)
class FiniteDifferences:
    """Richardson central differences per gradient group (NaN where the spike count changes within the
    step) and their noise floor ``atol`` (see the module docstring)."""

    values: dict[str, np.ndarray]
    atol: dict[str, np.ndarray]


def _finite_differences(loss, params, h: float) -> FiniteDifferences:
    """Central differences (Richardson-extrapolated) of every parameter, grouped like ``_grad_groups``.

    ``loss(params)`` returns ``(value, (spike_count, scale))``, ``scale`` the sum of the absolute
    values of the loss's terms (the size of its rounding error is ``eps scale``)."""
    diff, static = eqx.partition(params, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(diff)

    def at(vec):
        return loss(eqx.combine(unravel(vec), static))

    eye = jnp.eye(flat.size, dtype=flat.dtype)
    f_eval = jax.jit(jax.vmap(at))
    _, (c0, scale) = at(flat)

    def central(step_scale):
        steps = step_scale * h * jnp.maximum(jnp.abs(flat), 1.0)
        (lp, (cp, _)), (lm, (cm, _)) = f_eval(flat + steps[:, None] * eye), f_eval(flat - steps[:, None] * eye)
        return (lp - lm) / (2 * steps), (cp == c0) & (cm == c0), steps

    # Richardson extrapolation of two central differences: truncation error O(h^4).
    (fd_h, valid_h, _), (fd_h2, valid_h2, steps_h2) = central(1.0), central(0.5)
    fd = np.asarray((4 * fd_h2 - fd_h) / 3)
    valid = np.asarray(valid_h & valid_h2)
    eps = float(jnp.finfo(flat.dtype).eps)
    atol = FD_NOISE * eps * float(scale) / np.asarray(steps_h2) + np.abs(np.asarray(fd_h - fd_h2)) / 3

    def groups(vec):
        return _grad_groups(eqx.combine(unravel(jnp.asarray(vec)), static))

    return FiniteDifferences(groups(np.where(valid, fd, np.nan)), groups(atol))


def _fd_rows(label: str, grads, fd: FiniteDifferences, which: str) -> list[CheckRow]:
    """Every gradient group against the finite differences (entries without a spike (dis)appearance)."""
    rows = []
    for name, g in _grad_groups(grads).items():
        ref, atol = fd.values[name], fd.atol[name]
        ok = np.isfinite(ref)
        if not ok.any():
            rows.append(CheckRow(label, f"d/d{name} vs finite differences ({which})", np.nan, TOL["fd"],
                                 "no entry without a spike (dis)appearance within the step"))
            continue
        err = gradient_error(g[ok], ref[ok], atol[ok], TOL["fd"])
        rows.append(CheckRow(label, f"d/d{name} vs finite differences ({which}, rel+atol)", err, TOL["fd"],
                             f"{int(ok.sum())}/{ok.size} entries, atol <= {float(np.max(atol[ok])):.0e}"))
    return rows


def _train_rows(label: str, neuron: AbstractNeuron, seed: int) -> list[CheckRow]:
    diffrax = Diffrax(rtol=1e-12, atol=1e-12, root_tol=1e-12, max_steps=4096)
    reference = "closed_form" if neuron.has_closed_form else diffrax
    times, weights, n_spikes = _input_train(neuron, reference, seed)
    params = (neuron, weights)
    rows: list[CheckRow] = []
    if neuron.has_closed_form:
        rows += _flow_rows(label, neuron, _sample_states(neuron, times, weights))
    results = {}
    for name, integ in (("closed_form", "closed_form"), ("diffrax", diffrax)):
        if name == "closed_form" and not neuron.has_closed_form:
            continue
        loss = _loss_fn(times, integ)
        _, grads = eqx.filter_jit(eqx.filter_value_and_grad(loss, has_aux=True))(params)
        tr = eqx.filter_jit(lambda p: simulate_neuron(p[0], times, p[1], T_CHECK, n_slots=N_SLOTS, integrator=integ))(params)
        results[name] = (loss, tr, grads)
        if bool(tr.failed) or bool(tr.overflow) or bool(tr.exhausted):
            rows.append(CheckRow(label, f"simulation flags ({name})", np.inf, 0.0,
                                 f"failed={bool(tr.failed)} overflow={bool(tr.overflow)} exhausted={bool(tr.exhausted)}"))
    note = f"{N_INPUTS} inputs, {n_spikes} output spikes"
    if "closed_form" in results:
        (_, a, ga), (_, b, gb) = results["closed_form"], results["diffrax"]
        same_count = int(a.counts[0]) == int(b.counts[0])
        ta, tb = np.asarray(a.times[0]), np.asarray(b.times[0])
        fin = np.isfinite(ta) & np.isfinite(tb)
        err = float(np.max(np.abs(ta[fin] - tb[fin]), initial=0.0)) if same_count else np.inf
        rows.append(CheckRow(label, "closed form vs diffrax: spike times", err, TOL["closed_vs_diffrax_times"],
                             note if same_count else f"spike counts differ: {int(a.counts[0])} vs {int(b.counts[0])}"))
        err_state = float(np.max(np.abs(np.asarray(a.state_T) - np.asarray(b.state_T))))
        rows.append(CheckRow(label, "closed form vs diffrax: state at T", err_state, TOL["closed_vs_diffrax_times"]))
        gda, gdb = _grad_groups(ga), _grad_groups(gb)
        for name in gda:
            rows.append(CheckRow(label, f"closed form vs diffrax: d/d{name} (rel)", _rel(gdb[name], gda[name]),
                                 TOL["closed_vs_diffrax_grad"]))
    ref_name = "closed_form" if "closed_form" in results else "diffrax"
    loss, _, grads = results[ref_name]
    fd = _finite_differences(loss, params, 1e-5 if ref_name == "closed_form" else 1e-4)
    rows += _fd_rows(label, grads, fd, ref_name)
    # The event adjoint (gradient="adjoint") on the same forward: against autodiff and the same differences.
    integ = "closed_form" if ref_name == "closed_form" else diffrax
    adjoint_loss = _loss_fn(times, integ, gradient="adjoint")
    _, grads_adj = eqx.filter_jit(eqx.filter_value_and_grad(adjoint_loss, has_aux=True))(params)
    tol = TOL["adjoint_closed"] if ref_name == "closed_form" else TOL["adjoint_diffrax"]
    ga, gr = _grad_groups(grads_adj), _grad_groups(grads)
    for name in ga:
        rows.append(CheckRow(label, f"adjoint vs autodiff: d/d{name} ({ref_name}, rel)", _rel(ga[name], gr[name]), tol))
    rows += _fd_rows(label, grads_adj, fd, f"adjoint, {ref_name}")
    return rows


def run_check(name: str | type[AbstractNeuron], *, seed: int = 0) -> list[CheckRow]:
    """All rows for every variant of a model (float64 required)."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError("spikeode check needs float64: call jax.config.update('jax_enable_x64', True) first")
    rows: list[CheckRow] = []
    for label, neuron in model_variants(name):
        neuron = as_trainable(neuron, jnp.float64)
        neuron.check_parameters()
        integrators = {"diffrax": Diffrax(rtol=1e-10, atol=1e-10, root_tol=1e-12)}
        if neuron.has_closed_form:
            integrators = {"closed_form": "closed_form", **integrators}
        rows += _analytic_rows(label, neuron, integrators)
        rows += _train_rows(label, neuron, seed)
    return rows


def _sample_states(neuron: AbstractNeuron, times, weights):
    """States the neuron actually visits: its state at 16 times along the random input train."""
    ends = jnp.linspace(0.05, 0.95, 16) * T_CHECK
    run = lambda end: simulate_neuron(neuron, times, weights, end, n_slots=N_SLOTS, integrator="closed_form").state_T[0]  # noqa: E731
    return jax.vmap(run)(ends)


def format_rows(rows: list[CheckRow]) -> str:
    """The report as a fixed-width table, headed by the rule of the finite-difference rows."""
    head = f"{'variant':<24} {'quantity':<66} {'error':>10} {'tol':>8}  {'ok':<4} note"
    lines = [FD_RULE, head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.variant:<24} {r.quantity:<66} {r.error:>10.2e} {r.tolerance:>8.0e}  "
                     f"{'ok' if r.passed else 'FAIL':<4} {r.note}")
    n_fail = sum(not r.passed for r in rows)
    lines.append(f"{len(rows) - n_fail} passed, {n_fail} failed")
    return "\n".join(lines)
