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

Every computation runs through a few jitted programs that take the neuron, the input train and the horizon
as traced arguments: variants that differ only in parameter values (QIF's two regimes, LIF's two synapse
ratios) share one compiled program per integrator.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, Int

from spikeode.engine.layer import LayerTrace
from spikeode.engine.network import simulate_neuron
from spikeode.integrate import Diffrax
from spikeode.neurons import EIF, LIF, QIF, AbstractNeuron, as_trainable, resolve_neuron_class

__all__ = ["CheckRow", "format_rows", "gradient_error", "model_variants", "run_check"]

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
#: The diffrax integrator of every row (one static configuration: one compiled program per model structure).
DIFFRAX = Diffrax(rtol=1e-12, atol=1e-12, root_tol=1e-12, max_steps=4096)
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
    _, t_ref, grad_ref = ref
    rows = []
    # not weakly typed (as ``jnp.full(N, jnp.inf)`` would be): the train rows' programs, not new ones
    no_input = jnp.full(N_INPUTS, jnp.inf, jnp.result_type(float))
    for integ_name, integ in integrators.items():
        first_spike = _loss_fn(no_input, integ, T=2.0 * t_ref, first_spike=True)
        (t, _), (grads, _) = _value_and_grad(first_spike, (neuron, jnp.zeros(N_INPUTS)))
        tol = TOL["analytic_closed"] if integ_name == "closed_form" else TOL["analytic_diffrax"]
        rows.append(CheckRow(label, f"analytic spike time ({integ_name})", abs(float(t) - t_ref), tol,
                             f"t* = {t_ref:.6f}"))
        for field, g_ref in grad_ref.items():
            err = abs(float(getattr(grads, field)) - g_ref) / abs(g_ref)
            rows.append(CheckRow(label, f"analytic dt*/d{field} ({integ_name}, rel)", err, TOL["analytic_grad"]))
    return rows


# -- closed form vs vector field --------------------------------------------------------------------
@eqx.filter_jit
def _flow_probe(neuron: AbstractNeuron, states, horizon):
    """Per state: ``d/dt flow(y, t)|_0``, ``vector_field(y)``, ``flow(y, 0)``, ``time_to_threshold(y)`` and
    the threshold function where the flow lands at that time."""

    def probe(y):
        zero = jnp.zeros_like(horizon)
        slope = jax.jvp(lambda dt: neuron.flow(y, dt), (zero,), (jnp.ones_like(horizon),))[1]
        dt = neuron.time_to_threshold(y, horizon)
        landed = neuron.threshold(neuron.flow(y, jnp.where(jnp.isfinite(dt), dt, zero)))
        return slope, neuron.vector_field(zero, y, None), neuron.flow(y, zero), dt, landed

    return jax.vmap(probe)(states)


def _flow_rows(label: str, neuron: AbstractNeuron, states) -> list[CheckRow]:
    """``flow(y, 0) = y`` and ``d/dt flow(y, t)|_0 = vector_field(y)``; ``time_to_threshold`` lands on it."""
    slope, field, at_zero, dts, landed = _flow_probe(neuron, states, jnp.asarray(1e3, states.dtype))
    scale = float(jnp.max(jnp.abs(field))) + 1e-30
    err = float(jnp.max(jnp.abs(slope - field))) / scale
    rows = [CheckRow(label, "flow slope vs vector_field (rel)", err, TOL["flow_vs_field"],
                     "" if err <= TOL["flow_vs_field"] else "flow disagrees with vector_field")]
    rows.append(CheckRow(label, "flow(y, 0) - y", float(jnp.max(jnp.abs(at_zero - states))), TOL["flow_vs_field"]))
    hit = jnp.isfinite(dts)
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
        # the rows' own loss program (gradient unused): no forward-only program to compile
        (_, aux), _ = _value_and_grad(_loss_fn(times, integrator), (neuron, weights))
        n = int(aux.count)
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


class LossAux(NamedTuple):
    """What a check loss reports besides its value."""

    count: Int[Array, ""]  # spikes in [0, T]
    scale: Float[Array, ""]  # sum of the absolute values of the loss's terms (its rounding error: eps scale)
    trace: LayerTrace


def _loss(params, times, T, first_spike, integrator, gradient: str = "autodiff") -> tuple[Array, LossAux]:
    """The quantity whose gradients are checked: ``sum_k c_k sin(0.9 t_k) + sum sin(y(T))`` over the spike
    times ``t_k`` and the final state, or the first spike time where ``first_spike`` (the analytic rows).

    ``T`` and ``first_spike`` are arrays, so both uses run one compiled program."""
    neuron, weights = params
    tr = simulate_neuron(neuron, times, weights, T, n_slots=N_SLOTS, integrator=integrator, gradient=gradient)
    t = tr.times[0]
    finite = jnp.isfinite(t)
    c = jnp.cos(0.7 * jnp.arange(N_SLOTS) + 0.3)
    spike_terms = jnp.where(finite, c * jnp.sin(0.9 * jnp.where(finite, t, 0.0)), 0.0)
    state_terms = jnp.sin(tr.state_T)
    scale = jnp.sum(jnp.abs(spike_terms)) + jnp.sum(jnp.abs(state_terms))
    smooth = jnp.sum(spike_terms) + jnp.sum(state_terms)
    value = jnp.where(first_spike, jnp.where(finite[0], t[0], jnp.inf), smooth)
    return value, LossAux(tr.counts[0], scale, tr)


def _loss_fn(times, integrator, gradient: str = "autodiff", *, T: float = T_CHECK,
             first_spike: bool = False) -> Callable:
    """``params -> _loss(params, times, ...)`` as a pytree (``times``, ``T`` and ``first_spike`` its
    leaves), so the jitted callers trace them instead of compiling them in: one program for every train."""
    return jax.tree_util.Partial(_loss, times=times, T=jnp.asarray(T, times.dtype),
                                 first_spike=jnp.asarray(first_spike), integrator=integrator, gradient=gradient)


@eqx.filter_jit
def _value_and_grad(loss: Callable, params):
    """``((value, aux), gradient)`` of a loss returning ``(value, aux)``."""
    return eqx.filter_value_and_grad(loss, has_aux=True)(params)


@eqx.filter_jit
def _batched_loss(loss: Callable, static, diff_batch):
    """``loss`` at each parameter point of ``diff_batch`` (the arrays of ``params`` with a leading axis)."""
    return jax.vmap(lambda diff: loss(eqx.combine(diff, static)))(diff_batch)


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

    ``loss(params)`` returns ``(value, aux)`` with ``aux.count`` the spike count and ``aux.scale`` the sum
    of the absolute values of the loss's terms (the size of its rounding error is ``eps scale``)."""
    diff, static = eqx.partition(params, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(diff)
    n = flat.size
    eye = jnp.eye(n, dtype=flat.dtype)
    steps = h * jnp.maximum(jnp.abs(flat), 1.0)
    # One batch: +-step and +-step/2 along each parameter, then the unperturbed point.
    points = jnp.concatenate([flat + steps[:, None] * eye, flat - steps[:, None] * eye,
                              flat + 0.5 * steps[:, None] * eye, flat - 0.5 * steps[:, None] * eye, flat[None]])
    values, aux = _batched_loss(loss, static, jax.vmap(unravel)(points))
    counts, scales = aux.count, aux.scale
    lp, lm, lp2, lm2 = (values[k * n:(k + 1) * n] for k in range(4))
    cp, cm, cp2, cm2 = (counts[k * n:(k + 1) * n] for k in range(4))
    c0, scale = counts[-1], scales[-1]
    steps_h2 = 0.5 * steps
    fd_h, fd_h2 = (lp - lm) / (2 * steps), (lp2 - lm2) / (2 * steps_h2)
    valid_h, valid_h2 = (cp == c0) & (cm == c0), (cp2 == c0) & (cm2 == c0)
    # Richardson extrapolation of the two central differences: truncation error O(h^4).
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
    reference = "closed_form" if neuron.has_closed_form else DIFFRAX
    times, weights, n_spikes = _input_train(neuron, reference, seed)
    params = (neuron, weights)
    rows: list[CheckRow] = []
    if neuron.has_closed_form:
        rows += _flow_rows(label, neuron, _sample_states(neuron, times, weights))
    results = {}
    for name, integ in (("closed_form", "closed_form"), ("diffrax", DIFFRAX)):
        if name == "closed_form" and not neuron.has_closed_form:
            continue
        loss = _loss_fn(times, integ)
        (_, aux), grads = _value_and_grad(loss, params)
        tr = aux.trace
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
    integ = "closed_form" if ref_name == "closed_form" else DIFFRAX
    _, grads_adj = _value_and_grad(_loss_fn(times, integ, gradient="adjoint"), params)
    tol = TOL["adjoint_closed"] if ref_name == "closed_form" else TOL["adjoint_diffrax"]
    ga, gr = _grad_groups(grads_adj), _grad_groups(grads)
    for name in ga:
        rows.append(CheckRow(label, f"adjoint vs autodiff: d/d{name} ({ref_name}, rel)", _rel(ga[name], gr[name]), tol))
    rows += _fd_rows(label, grads_adj, fd, f"adjoint, {ref_name}")
    return rows


def run_check(name: str | type[AbstractNeuron], *, seed: int = 0,
              variants: Collection[str] | None = None) -> list[CheckRow]:
    """All rows for every variant of a model, or for those labelled in ``variants`` (float64 required)."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError("spikeode check needs float64: call "
                           "spikeode.precision.ensure_precision('float64') first")
    chosen = model_variants(name)
    if variants is not None:
        labels = [label for label, _ in chosen]
        unknown = sorted(set(variants) - set(labels))
        if unknown:
            raise ValueError(f"unknown variant(s) {unknown} of {name}: choose from {labels}")
        chosen = [(label, neuron) for label, neuron in chosen if label in variants]
    rows: list[CheckRow] = []
    for label, neuron in chosen:
        neuron = as_trainable(neuron, jnp.float64)
        neuron.check_parameters()
        integrators = {"closed_form": "closed_form"} if neuron.has_closed_form else {}
        rows += _analytic_rows(label, neuron, {**integrators, "diffrax": DIFFRAX})
        rows += _train_rows(label, neuron, seed)
    return rows


@eqx.filter_jit
def _sample_states(neuron: AbstractNeuron, times, weights):
    """States the neuron actually visits: its state at 16 times along the random input train."""
    ends = jnp.linspace(0.05, 0.95, 16, dtype=times.dtype) * T_CHECK
    run = lambda end: simulate_neuron(neuron, times, weights, end, n_slots=N_SLOTS, integrator="closed_form").state_T[0]
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
