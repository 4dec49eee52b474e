"""Exact event adjoint (EventProp-style) of a feed-forward layer, for every declared neuron model.

``simulate_layer_adjoint`` has the signature and the result of ``layer.simulate_layer``; only its
reverse mode differs. It is a ``jax.custom_vjp`` whose forward runs the event loop in chunks of
~``sqrt(events)`` steps and keeps only the loop state at the start of each chunk --
``O(sqrt(events) x neurons x state)``, independent of solver steps. The backward pass takes the
chunks in reverse, re-runs each one's forward to get back its events (time, kind: input arrival,
own spike, jump-induced spike, trial end; neuron or input index; the layer state just before and
after), and sweeps those events in reverse:

* between events the adjoint ``lam`` (cotangent of the state) and the parameter cotangent ``mu``
  are carried back over the segment: as the VJP of the model's closed-form ``flow(y, dt)`` (exact),
  or, on the diffrax path, as the VJP of the segment re-solved from the stored post-event state
  (the discrete adjoint of its Runge-Kutta steps, which solves ``lam' = -(df/dy)^T lam``,
  ``mu' = -(df/dp)^T lam`` to the solver's tolerance; ``_segment_vjp_diffrax``);
* at each event the jump rules of the notes (``/work/shared/ADJOINT_NOTES.md`` sec. 2) are applied
  through ``jax.vjp`` of the model's ``receive``, ``reset`` and ``threshold``:

  - receive (input ``k`` at ``tau_k``): ``lam^- = J^T lam^+``, ``dL/dw += lam^+ . dj/dw``,
    ``dL/dtau_k = Lam + lam^- . f(y^-)``  (``Lam``: the time cotangent carried from later events);
  - own spike of neuron ``i`` (``g(y_i^-) = 0``): ``lam^- = R^T lam^+``, then with
    ``Lam_tot = ct_s + Lam + lam^- . f(y^-)`` and ``gdot = grad g . f``:
    ``lam_i^- -= (Lam_tot/gdot) grad_y g``, ``dL/dp -= (Lam_tot/gdot) dg/dp``;
  - jump-induced spike (an input lifted ``g >= 0``: the spike is at the input time): reset only,
    its time cotangent is handed on to that input's ``dL/dtau`` (composite map ``r o j``);
  - trial end: ``lam = dL/dy(T)``.

Written this way (reverse-mode AD of the event graph with the spike times given by the implicit
function theorem) the rules need nothing model-specific, and ``lam . f`` conservation makes them
identical to the continuous-adjoint form of the notes. The cotangents returned are those of every
inexact array field of the neuron model, of the weights and of the input spike times, so stacked
layers chain through ``network._merge_spikes`` by ordinary JAX autodiff.

Assumptions: autonomous models (``vector_field`` ignores ``t``; true of every shipped model and of
the ``flow(y, dt)`` contract); feed-forward layers (``recurrent_weights`` raises
``NotImplementedError``).
"""

from __future__ import annotations

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from spikeode.engine._event_loop import (
    INDUCED,
    NONE,
    RECEIVE,
    SPIKE,
    EventRecord,
    LayerTrace,
    chunk_layout,
    chunked_scan,
    event_loop,
    layer_trace,
    make_event_step,
)
from spikeode.engine.layer import default_budget, validate_layer_inputs
from spikeode.integrate import AbstractIntegrator, ClosedForm, Diffrax, make_integrator
from spikeode.neurons import AbstractNeuron

__all__ = ["record_events", "simulate_layer_adjoint"]

# ---------------------------------------------------------------------------------------------
# forward: the layer's event loop, recording every event with its pre-event state
# ---------------------------------------------------------------------------------------------
def _forward(neuron, integ, weights, in_times, in_units, T, n_slots, budget):
    """The event loop in ~sqrt(budget) chunks; returns ``(trace, chunk_starts)``, the carry at the
    start of every chunk: all the backward pass needs to re-run a chunk and get its events back."""
    step, init = make_event_step(neuron, integ, weights, in_times, in_units, T, n_slots=n_slots)
    carry, recs, starts = chunked_scan(step, init, budget)
    return layer_trace(carry, recs, n_slots), starts


# ---------------------------------------------------------------------------------------------
# backward: segment adjoints
# ---------------------------------------------------------------------------------------------
def _segment_vjp_closed_form(static, params, y_start, dt, lam_end):
    """Exact: the VJP of the closed-form ``flow(y, dt)`` w.r.t. the start state and the parameters."""

    def flow_all(p, y):
        return jax.vmap(eqx.combine(p, static).flow, in_axes=(0, None))(y, dt)

    _, vjp = jax.vjp(flow_all, params, y_start)
    ct_p, lam_start = vjp(lam_end)
    return lam_start, ct_p


def _segment_vjp_diffrax(integ: Diffrax, static, params, y_start, dt, lam_end):
    """The VJP of one segment, re-solved from the stored post-event state on ``s in [0, 1]``
    (``dy/ds = dt f``: empty segments need no special case) by reverse mode through its Runge-Kutta
    steps -- the discrete adjoint of the segment, exact to the solver's tolerance.

    Measured against the continuous form (dense forward re-solve, then ``lam' = -(df/dy)^T lam`` and
    ``mu' = -(df/dp)^T lam`` solved backwards) on the ``shd`` workload: 12.1 vs 1.1 samples/s; the
    dense output of a ``max_steps`` buffer per segment dominated. The first step tries the whole
    segment (most are one step long); a step that blows up (e.g. EIF) is rejected by the controller.
    """
    rtol, atol = integ.tolerances(y_start.dtype)[:2]

    def segment(p, y0):
        field = lambda s, y, args: dt * jax.vmap(lambda yy: eqx.combine(p, static).vector_field(0.0, yy, None))(y)  # noqa: E731
        sol = dfx.diffeqsolve(
            dfx.ODETerm(field), integ.solver_for(y0.dtype), t0=0.0, t1=1.0, dt0=1.0, y0=y0,
            stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol), saveat=dfx.SaveAt(t1=True),
            max_steps=integ.max_steps, throw=False, adjoint=integ.adjoint(),
        )
        return sol.ys[-1]

    _, vjp = jax.vjp(segment, params, y_start)
    ct_p, lam_start = vjp(lam_end)
    return lam_start, ct_p


def _tree_where(cond, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(cond, x, y), a, b)


def _tree_add(a, b):
    return jax.tree_util.tree_map(jnp.add, a, b)


def _backward(static, integ, n_slots, params, weights, in_times, in_units, T, starts, budget, ct_times, ct_state_T):
    neuron = eqx.combine(params, static)
    n_neurons, n_inputs = weights.shape
    n_events = in_times.shape[0]
    dtype = starts[1].dtype
    weights_by_unit = weights.T
    closed = isinstance(integ, ClosedForm)
    step, _ = make_event_step(neuron, integ, weights, in_times, in_units, T, n_slots=n_slots, record_states=True)
    active = chunk_layout(budget)

    def initial_layer_state(p):
        return jnp.broadcast_to(eqx.combine(p, static).initial_state().astype(dtype), (n_neurons, neuron.state_size))

    def receive_all(p, y, w):
        return jax.vmap(eqx.combine(p, static).receive)(y, w)

    def replay(start, active_chunk):
        """A chunk's events again, each with the time and state right after the previous event."""

        def step_with_previous(carry, act):
            new, rec = step(carry, act)
            return new, (rec, carry[0], carry[1])

        return jax.lax.scan(step_with_previous, start, active_chunk)[1]

    zero_p = jax.tree_util.tree_map(jnp.zeros_like, params)

    def body(carry, event):
        lam, t_carry, ct_p, ct_wu, ct_tau = carry
        rec, t_prev, y_prev = event
        t_e, kind, idx, slot, ym = rec.t, rec.kind, rec.index, rec.slot, rec.y_minus

        is_receive = kind == RECEIVE
        is_spike = kind == SPIKE
        is_induced = kind == INDUCED
        spiking = is_spike | is_induced
        active = kind != NONE

        i = jnp.minimum(idx, n_neurons - 1)
        k = jnp.minimum(idx, n_events - 1)
        u = in_units[k]
        # Time cotangent of this event: from later events, plus the output's for a recorded spike.
        slot_ok = spiking & (slot < n_slots)
        ct_s = jnp.where(slot_ok, ct_times[i, jnp.minimum(slot, n_slots - 1)], 0.0)
        Lam = t_carry + ct_s

        # Receive jump: lam^- = J^T lam^+, dL/dw, dL/dp.
        _, vjp_recv = jax.vjp(receive_all, params, ym, weights_by_unit[u])
        ctp_recv, lam_recv, ctw_recv = vjp_recv(lam)
        # Reset of neuron i: lam_i^- = R^T lam_i^+, dL/dp.
        _, vjp_reset = jax.vjp(lambda p, y: eqx.combine(p, static).reset(y), params, ym[i])
        ctp_reset, lam_i = vjp_reset(lam[i])
        lam_minus = jnp.where(is_receive, lam_recv, jnp.where(spiking, lam.at[i].set(lam_i), lam))

        # Explicit time dependence of y^- (autonomous flow: d y^-/dt_e = f(y^-)).
        F = jax.vmap(lambda y: neuron.vector_field(t_e, y, None))(ym)
        lam_f = jnp.sum(lam_minus * F)

        # Own spike: the spike time moves with the state, t_e = t_prev + dt*(y_prev, p) (IFT).
        _, vjp_g = jax.vjp(lambda p, y: eqx.combine(p, static).threshold(y), params, ym[i])
        ctp_g, grad_g = vjp_g(jnp.ones((), dtype))
        gdot = jnp.dot(grad_g, F[i])
        coef = (Lam + lam_f) / jnp.where(is_spike & (gdot != 0), gdot, 1.0)
        lam_minus = jnp.where(is_spike, lam_minus.at[i].add(-coef * grad_g), lam_minus)

        ct_p_event = _tree_where(is_receive, ctp_recv, zero_p)
        ct_p_event = _tree_add(ct_p_event, _tree_where(spiking, ctp_reset, zero_p))
        ct_p_event = _tree_add(ct_p_event, _tree_where(is_spike, jax.tree_util.tree_map(lambda c: -coef * c, ctp_g), zero_p))
        ct_wu = ct_wu.at[u].add(jnp.where(is_receive, ctw_recv, 0.0))
        ct_tau = ct_tau.at[k].add(jnp.where(is_receive, Lam + lam_f, 0.0))
        # Cotangent handed to the previous event's time: the segment's -lam^-.f (receive, end);
        # own and jump-induced spikes pass Lam on unchanged (t_e - t_prev is fixed by the state).
        t_carry_new = jnp.where(spiking, Lam, jnp.where(active, -lam_f, t_carry))

        # Segment (t_prev, t_e): carry lam^- back to the post-state of the previous event.
        dt = jnp.where(active, t_e - t_prev, 0.0)
        if closed:
            lam_start, ct_p_seg = _segment_vjp_closed_form(static, params, y_prev, dt, lam_minus)
        else:
            lam_start, ct_p_seg = _segment_vjp_diffrax(integ, static, params, y_prev, dt, lam_minus)
        lam_new = jnp.where(active, lam_start, lam)
        ct_p = _tree_add(ct_p, _tree_where(active, _tree_add(ct_p_event, ct_p_seg), zero_p))
        return (lam_new, t_carry_new, ct_p, ct_wu, ct_tau), None

    init = (
        ct_state_T.astype(dtype),
        jnp.zeros((), dtype),
        zero_p,
        jnp.zeros((n_inputs, n_neurons), dtype),
        jnp.zeros((n_events,), dtype),
    )

    def chunk_body(carry, chunk):
        start, active_chunk = chunk
        return jax.lax.scan(body, carry, replay(start, active_chunk), reverse=True)[0], None

    (lam0, _, ct_p, ct_wu, ct_tau), _ = jax.lax.scan(chunk_body, init, (starts, active), reverse=True)
    _, vjp_init = jax.vjp(initial_layer_state, params)
    ct_p = _tree_add(ct_p, vjp_init(lam0)[0])
    return ct_p, ct_wu.T, ct_tau


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
def _zero_cotangent(x):
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return None


def _layer_core(static, integ, n_slots: int, budget: int):
    """The ``custom_vjp`` for one layer configuration (static parts closed over)."""

    def outputs(trace: LayerTrace):
        return trace.times, trace.state_T, (trace.counts, trace.events_used, trace.exhausted, trace.overflow, trace.failed)

    @jax.custom_vjp
    def core(params, weights, in_times, in_units, T):
        trace, _ = _forward(eqx.combine(params, static), integ, weights, in_times, in_units, T, n_slots, budget)
        return outputs(trace)

    def fwd(params, weights, in_times, in_units, T):
        trace, starts = _forward(eqx.combine(params, static), integ, weights, in_times, in_units, T, n_slots, budget)
        return outputs(trace), (params, weights, in_times, in_units, T, starts)

    def bwd(res, cts):
        params, weights, in_times, in_units, T, starts = res
        ct_times, ct_y_T, _ = cts
        ct_p, ct_w, ct_tau = _backward(static, integ, n_slots, params, weights, in_times, in_units, T, starts, budget,
                                       jnp.asarray(ct_times), jnp.asarray(ct_y_T))
        return ct_p, ct_w.astype(weights.dtype), ct_tau.astype(in_times.dtype), None, _zero_cotangent(T)

    core.defvjp(fwd, bwd)
    return core


def record_events(neuron, weights, in_times, in_units, T, *, n_slots, integrator="auto", budget=None) -> EventRecord:
    """The per-event records the adjoint keeps (for inspection and tests)."""
    integ = make_integrator(integrator, neuron)
    budget = default_budget(in_times.shape[0], weights.shape[0], n_slots) if budget is None else int(budget)
    dtype = jnp.result_type(in_times.dtype, weights.dtype)
    return event_loop(neuron, integ, weights, in_times.astype(dtype), in_units, jnp.asarray(T, dtype), n_slots=n_slots,
                      budget=budget, record_states=True)[1]


def simulate_layer_adjoint(
    neuron: AbstractNeuron,
    weights: Float[Array, "neurons inputs"],
    in_times: Float[Array, " events"],
    in_units: Int[Array, " events"],
    T,
    *,
    n_slots: int,
    integrator: AbstractIntegrator | str = "auto",
    budget: int | None = None,
    recurrent_weights=None,
) -> LayerTrace:
    """``layer.simulate_layer`` with an exact event adjoint as its reverse mode.

    Same arguments, same ``LayerTrace`` (bitwise the same forward values). Reverse mode gives the
    cotangents of every inexact array field of ``neuron``, of ``weights`` and of ``in_times``
    (not of ``in_units``, nor of ``T``), keeping only ``O(sqrt(budget) x neurons x state)`` between
    the forward and the backward pass (one extra forward pass). Feed-forward only: ``recurrent_weights`` raises
    ``NotImplementedError``.
    """
    if recurrent_weights is not None:
        raise NotImplementedError("simulate_layer_adjoint: recurrent weights are not supported yet (use the autodiff path)")
    integ = make_integrator(integrator, neuron)
    if not isinstance(integ, (ClosedForm, Diffrax)):
        raise NotImplementedError(f"simulate_layer_adjoint supports ClosedForm and Diffrax integrators, got {type(integ).__name__}")
    validate_layer_inputs(neuron, weights, in_times, in_units)
    n_neurons = weights.shape[0]
    n_events = in_times.shape[0]
    budget = default_budget(n_events, n_neurons, n_slots) if budget is None else int(budget)
    dtype = jnp.result_type(in_times.dtype, weights.dtype)
    params, static = eqx.partition(neuron, eqx.is_inexact_array)
    core = _layer_core(static, integ, int(n_slots), budget)
    times, y_T, (counts, used, exhausted, overflow, failed) = core(
        params, weights, in_times.astype(dtype), in_units, jnp.asarray(T, dtype))
    return LayerTrace(times=times, counts=counts, state_T=y_T, events_used=used, exhausted=exhausted,
                      overflow=overflow, failed=failed)


