"""The event loop's machinery (internal to the engine): one scan step per event, the chunked scan, the trace.

``simulate_layer`` (``layer.py``) and the event adjoint (``adjoint.py``) build on it; users call those.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Scalar

from spikeode.integrate import SELECTION, AbstractIntegrator
from spikeode.neurons import AbstractNeuron


class LayerTrace(eqx.Module):
    """What one layer did in one trial (add leading batch axes under vmap).

    Attributes:
        times: spike times per neuron, ascending, ``+inf`` in unused slots.
        counts: number of spikes per neuron in ``[0, T]`` (may exceed the slots: see ``overflow``).
        state_T: state of every neuron at ``T``.
        events_used: scan steps that did work (inputs + spikes + the final advance to ``T``).
        exhausted: the event budget ran out before ``T`` was reached.
        overflow: some neuron spiked more often than it has slots (later spikes not recorded).
        failed: the integrator reported a failure (e.g. a diffrax solve hit ``max_steps``).
    """

    times: Float[Array, "neurons slots"]
    counts: Int[Array, " neurons"]
    state_T: Float[Array, "neurons state"]
    events_used: Int[Array, ""]
    exhausted: Bool[Array, ""]
    overflow: Bool[Array, ""]
    failed: Bool[Array, ""]


#: Event kinds of ``EventRecord.kind``: a no-op step (after ``T`` or past the budget), an input
#: arrival, a spike, a spike induced by a jump (at the jump's time), the final advance to ``T``.
NONE, RECEIVE, SPIKE, INDUCED, END = 0, 1, 2, 3, 4


class EventRecord(NamedTuple):
    """Per scan step (leading axis: the budget): what happened. The adjoint keeps these.

    Attributes:
        t: time after the step (the event's time; unchanged by a no-op step).
        kind: ``NONE``, ``RECEIVE``, ``SPIKE``, ``INDUCED`` or ``END``.
        index: the spiking neuron (spikes) or the input event (receives).
        slot: the spike's slot in ``LayerTrace.times`` (``n_slots``: not recorded).
        y_minus: the layer state just before the event (only if asked for, else ``None``).
    """

    t: Float[Array, " budget"]
    kind: Int[Array, " budget"]
    index: Int[Array, " budget"]
    slot: Int[Array, " budget"]
    y_minus: Float[Array, "budget neurons state"] | None = None


def event_loop(
    neuron: AbstractNeuron,
    integ: AbstractIntegrator,
    weights: Float[Array, "neurons inputs"],
    in_times: Float[Array, " events"],
    in_units: Int[Array, " events"],
    T: float | Scalar,
    *,
    n_slots: int,
    budget: int,
    recurrent_weights: Float[Array, "neurons neurons"] | None = None,
    record_states: bool = False,
    checkpoint: bool = False,
) -> tuple[LayerTrace, EventRecord]:
    """The event loop behind ``simulate_layer`` and the adjoint's forward pass (no validation).

    ``record_states`` adds the pre-event states to the records; ``checkpoint`` arranges the scan
    for reverse mode (chunks of ~``sqrt(budget)`` steps, each recomputed in the backward pass).
    """
    step, init = make_event_step(neuron, integ, weights, in_times, in_units, T, n_slots=n_slots,
                                 recurrent_weights=recurrent_weights, record_states=record_states)
    carry, rec, _ = chunked_scan(step, init, budget, checkpoint=checkpoint)
    return layer_trace(carry, rec, n_slots), rec


def make_event_step(
    neuron: AbstractNeuron,
    integ: AbstractIntegrator,
    weights: Float[Array, "neurons inputs"],
    in_times: Float[Array, " events"],
    in_units: Int[Array, " events"],
    T: float | Scalar,
    *,
    n_slots: int,
    recurrent_weights: Float[Array, "neurons neurons"] | None = None,
    record_states: bool = False,
):
    """``(step, init)``: one step ``step(carry, active) -> (carry, EventRecord)`` of the event loop and
    its initial carry ``(t, y, k, counts, done, ok, used)``; ``active=False`` makes a padding no-op."""
    n_neurons = weights.shape[0]
    n_events = in_times.shape[0]
    dtype = jnp.result_type(in_times.dtype, weights.dtype)
    T = jnp.asarray(T, dtype)
    in_times = in_times.astype(dtype)
    y0 = jnp.broadcast_to(neuron.initial_state().astype(dtype), (n_neurons, neuron.state_size))
    receive_all = jax.vmap(neuron.receive)
    arange = jnp.arange(n_neurons)
    weights_by_unit = weights.T  # one contiguous row per input channel: a cheap gather per event

    def jump_weights(spike, i, k_safe):
        """Weights of the event's jump onto every neuron: the input column, or the spike's recurrent one."""
        w = weights_by_unit[in_units[k_safe]]
        if recurrent_weights is None:
            return w
        w_rec = jnp.where(arange == i, 0.0, recurrent_weights[:, i])
        return jnp.where(spike, w_rec, w)

    def step(carry, active):
        t, y, k, counts, done, ok, used = carry
        idle = done | ~active  # after T, or a padding step past the budget
        k_safe = jnp.minimum(k, n_events - 1)
        t_in = jnp.where(k < n_events, in_times[k_safe], jnp.inf)
        input_due = t_in < T
        adv = integ.advance(neuron, t, jnp.minimum(t_in, T), y)
        spike = adv.fired & ~idle
        arrive = ~adv.fired & input_due & ~idle
        finish = ~adv.fired & ~input_due & ~idle

        i = adv.neuron
        # One jump for every event kind: input arrivals (and, with recurrence, own spikes) kick
        # all neurons; then the spiking neuron resets. A no-op step keeps the old state.
        kicks = arrive if recurrent_weights is None else arrive | spike
        y_next = jnp.where(kicks, receive_all(adv.y, jump_weights(spike, i, k_safe)), adv.y)
        y_next = y_next.at[i].set(jnp.where(spike, neuron.reset(adv.y[i]), y_next[i]))
        y_next = jnp.where(idle, y, y_next)
        t_next = jnp.where(idle, t, adv.t)
        carry = (
            t_next,
            y_next,
            k + arrive.astype(k.dtype),
            counts.at[i].add(spike.astype(counts.dtype)),
            done | finish,
            ok & (adv.ok | idle),
            used + (~idle).astype(used.dtype),
        )
        kind = jnp.where(spike, jnp.where(adv.immediate, INDUCED, SPIKE),
                         jnp.where(arrive, RECEIVE, jnp.where(finish, END, NONE))).astype(jnp.int8)
        record = EventRecord(
            t=t_next,
            kind=kind,
            index=jnp.where(arrive, k_safe, i).astype(jnp.int32),
            # Where this spike goes: slot counts[i] of neuron i (out of range, i.e. dropped, if not a spike).
            slot=jnp.where(spike, counts[i], n_slots).astype(jnp.int32),
            y_minus=jnp.where(idle, y, adv.y) if record_states else None,
        )
        return carry, record

    init = (
        jnp.asarray(0.0, dtype),
        y0,
        jnp.asarray(0, jnp.int32),
        jnp.zeros(n_neurons, jnp.int32),
        jnp.asarray(False),
        jnp.asarray(True),
        jnp.asarray(0, jnp.int32),
    )
    return step, init


def layer_trace(carry, rec: EventRecord, n_slots: int) -> LayerTrace:
    """The ``LayerTrace`` from the loop's final carry and its per-step records."""
    t, y, k, counts, done, ok, used = carry
    # Spike times from the event list: one scatter after the loop keeps the scan carry small.
    who = jnp.where(rec.kind >= SPIKE, rec.index, 0)
    times = jnp.full((counts.shape[0], n_slots), jnp.inf, y.dtype).at[who, rec.slot].set(rec.t, mode="drop")
    return LayerTrace(
        times=times,
        counts=counts,
        state_T=y,
        events_used=used,
        exhausted=~done,
        overflow=jnp.any(counts > n_slots),
        failed=~ok,
    )


#: Reverse mode keeps each event's selection (the neuron that fires next) instead of re-ranking every
#: neuron in the checkpoint replays. fwd+grad, batch 32, float32, samples per CPU-second (interleaved in
#: one process, 2 shared cores): yy-qif-exp 86 -> 121, yy-lif 219 -> 387, shd-qif-exp 17.5 -> 26.1,
#: shd-lif 41.5 -> 77.5.
_KEEP_SELECTION = jax.checkpoint_policies.save_only_these_names(SELECTION)


def chunk_layout(length: int) -> Bool[Array, "chunks chunk"]:
    """``active[c, j]``: ~``sqrt(length)`` steps per chunk, false on the padding steps past ``length``."""
    chunk = max(1, math.isqrt(length))
    n_chunks = -(-length // chunk)
    return (jnp.arange(n_chunks * chunk) < length).reshape(n_chunks, chunk)


def chunked_scan(step, init, length: int, *, checkpoint: bool = False):
    """``lax.scan`` of ``length`` steps as ~``sqrt(length)`` chunks; returns ``(carry, records, starts)``,
    ``starts`` being the carry at the start of every chunk (padding steps past ``length`` are inactive).

    ``checkpoint``: reverse mode keeps the carry at chunk boundaries only; a chunk's steps are
    recomputed (and each step once more inside its own backward). Measured on the ``shd`` workload
    (batch 32): saved state 79 -> 3 MB. Each step's selection (``integrate.SELECTION``, one integer)
    is kept too, so the replays skip ranking the neurons. The adjoint keeps ``starts`` itself and
    replays chunks.
    """
    active = chunk_layout(length)
    inner = jax.checkpoint(step, prevent_cse=False, policy=_KEEP_SELECTION) if checkpoint else step

    def run_chunk(carry, active_chunk):
        end, recs = jax.lax.scan(inner, carry, active_chunk)
        return end, (carry, recs)

    if checkpoint:
        run_chunk = jax.checkpoint(run_chunk, prevent_cse=False, policy=_KEEP_SELECTION)
    carry, (starts, recs) = jax.lax.scan(run_chunk, init, active)
    recs = jax.tree_util.tree_map(lambda r: r.reshape(-1, *r.shape[2:])[:length], recs)
    return carry, recs, starts
