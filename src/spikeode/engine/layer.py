"""The event loop of one layer: exact spike times of ``N`` neurons driven by input spikes.

Each step of a ``lax.scan`` over a fixed event budget handles one event, the earlier of the next
input spike and the earliest threshold crossing in the layer: all neurons advance to it (closed
form or one diffrax solve), then the spiking neuron resets (and, with recurrent weights, its spike
reaches the others at once) or the input jump is applied. A jump that lifts a neuron over threshold
makes it spike at the input time. When no event is left before ``T`` the layer advances to ``T``
and the remaining steps are no-ops. Running out of the budget or of spike slots is reported.
"""

from __future__ import annotations

import jax
import numpy as np
from jaxtyping import Array, Float, Int, Scalar

from spikeode.engine._event_loop import LayerTrace, event_loop
from spikeode.integrate import AbstractIntegrator, make_integrator
from spikeode.neurons import AbstractNeuron
from spikeode.spikes import check_padded_events

__all__ = ["LayerTrace", "simulate_layer", "default_budget", "is_concrete", "validate_layer_inputs",
           "check_initial_state"]


def default_budget(n_inputs: int, n_neurons: int, n_slots: int) -> int:
    """Events needed when every input arrives and every neuron fills its slots, plus the final advance."""
    return n_inputs + n_neurons * n_slots + 1


def is_concrete(*arrays) -> bool:
    return not any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves(arrays))


def validate_layer_inputs(neuron: AbstractNeuron, weights, in_times, in_units) -> None:
    """Host-side checks with messages that name the offending value (skipped while tracing)."""
    if not is_concrete(neuron, weights, in_times, in_units):
        return
    neuron.check_parameters()
    w = np.asarray(weights)
    if not np.isfinite(w).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(w))[0])
        raise ValueError(f"weight {list(idx)} is {float(w[idx])} (weights must be finite)")
    check_padded_events(in_times, in_units, w.shape[1], "input")
    check_initial_state(neuron)


def check_initial_state(neuron: AbstractNeuron) -> None:
    """The initial state must lie below threshold (host-side; raises ``ValueError``)."""
    g0 = float(neuron.threshold(neuron.initial_state()))
    if not g0 < 0:
        raise ValueError(f"{type(neuron).__name__}: threshold(initial_state()) = {g0!r} must be < 0 (the neuron would fire at t = 0)")


def simulate_layer(
    neuron: AbstractNeuron,
    weights: Float[Array, "neurons inputs"],
    in_times: Float[Array, " events"],
    in_units: Int[Array, " events"],
    T: float | Scalar,
    *,
    n_slots: int,
    integrator: AbstractIntegrator | str = "auto",
    budget: int | None = None,
    recurrent_weights: Float[Array, "neurons neurons"] | None = None,
) -> LayerTrace:
    """Simulate one layer for one sample (``vmap`` for a batch).

    Args:
        neuron: the model of every neuron of the layer (its fields are shared parameters).
        weights: ``weights[n, u]`` is the jump weight from input channel ``u`` to neuron ``n``.
        in_times: input spike times, ascending, ``+inf``-padded; inputs at ``t >= T`` are ignored.
        in_units: input channel of each event.
        T: trial end.
        n_slots: spike times recorded per neuron.
        integrator: ``"closed_form"``, ``"diffrax"``, ``"auto"`` or an integrator instance.
        budget: scan length; default ``default_budget(events, neurons, n_slots)``.
        recurrent_weights: optional ``(neurons, neurons)`` weights ``[post, pre]`` of the layer's own
            spikes (zero delay; the diagonal is ignored).

    Reverse mode stores the loop state only every ~``sqrt(budget)`` events and recomputes the
    rest (``O(sqrt(budget))`` memory instead of ``O(budget)``, one extra forward pass).
    """
    integ = make_integrator(integrator, neuron)
    validate_layer_inputs(neuron, weights, in_times, in_units)
    budget = default_budget(in_times.shape[0], weights.shape[0], n_slots) if budget is None else int(budget)
    trace, _ = event_loop(neuron, integ, weights, in_times, in_units, T, n_slots=n_slots, budget=budget,
                          recurrent_weights=recurrent_weights, checkpoint=True)
    return trace
