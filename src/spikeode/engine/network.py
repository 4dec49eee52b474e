"""Feed-forward spiking networks (optionally with recurrent weights within a layer) and their Trace."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from spikeode.engine.adjoint import simulate_layer_adjoint
from spikeode.engine.layer import (
    LayerTrace,
    check_initial_state,
    default_budget,
    is_concrete,
    simulate_layer,
    validate_layer_inputs,
)
from spikeode.integrate import AbstractIntegrator, make_integrator
from spikeode.neurons import AbstractNeuron, as_trainable
from spikeode.spikes import Spikes, validate_spikes

__all__ = ["FeedForward", "Trace", "simulate", "simulate_neuron", "check_trace", "check_network"]


class FeedForward(eqx.Module):
    """Layers of spiking neurons; layer ``l`` receives the spikes of layer ``l - 1`` (layer 0: the input).

    Attributes:
        neurons: one neuron model per layer (its fields are that layer's trainable neuron parameters).
        weights: ``weights[l][n, u]`` from unit ``u`` of the previous layer to neuron ``n``.
        recurrent: per layer ``None`` or ``(n, n)`` weights ``[post, pre]`` among the layer's own neurons.
        n_slots: spike times recorded per neuron, per layer (static).
    """

    neurons: tuple[AbstractNeuron, ...]
    weights: tuple[Float[Array, "out in"], ...]
    recurrent: tuple[Float[Array, "out out"] | None, ...]
    n_slots: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        neuron: AbstractNeuron | Sequence[AbstractNeuron],
        sizes: Sequence[int],
        *,
        key: PRNGKeyArray,
        weight_mean: float | Sequence[float] = 0.0,
        weight_std: float | Sequence[float] | None = None,
        n_slots: int | Sequence[int] = 8,
        recurrent: bool | Sequence[bool] = False,
        recurrent_std: float = 0.0,
        dtype=None,
    ):
        """Seeded Gaussian initialisation, per layer ``N(weight_mean[l], weight_std[l]**2)``.

        ``sizes = (n_inputs, n_hidden..., n_outputs)``; ``weight_std`` defaults to ``1/sqrt(n_in)``
        per layer. Scalars apply to every layer.
        """
        n_layers = len(sizes) - 1
        if n_layers < 1:
            raise ValueError(f"sizes needs at least (n_inputs, n_outputs), got {tuple(sizes)}")
        if any(int(s) < 1 for s in sizes):
            raise ValueError(f"every layer size must be >= 1, got {tuple(sizes)}")
        per_layer = lambda v, name: _per_layer(v, n_layers, name)  # noqa: E731
        neurons = per_layer(neuron, "neuron")
        means = per_layer(weight_mean, "weight_mean")
        stds = per_layer(weight_std, "weight_std")
        slots = per_layer(n_slots, "n_slots")
        recs = per_layer(recurrent, "recurrent")
        dtype = jnp.result_type(float) if dtype is None else dtype
        keys = jax.random.split(key, 2 * n_layers)
        weights, rec_weights = [], []
        for l in range(n_layers):
            n_in, n_out = int(sizes[l]), int(sizes[l + 1])
            std = 1.0 / np.sqrt(n_in) if stds[l] is None else stds[l]
            weights.append(means[l] + std * jax.random.normal(keys[2 * l], (n_out, n_in), dtype))
            if recs[l]:
                w = recurrent_std * jax.random.normal(keys[2 * l + 1], (n_out, n_out), dtype)
                rec_weights.append(w * (1 - jnp.eye(n_out, dtype=dtype)))
            else:
                rec_weights.append(None)
        self.neurons = tuple(as_trainable(n, dtype) for n in neurons)
        self.weights = tuple(weights)
        self.recurrent = tuple(rec_weights)
        self.n_slots = tuple(int(s) for s in slots)

    @property
    def sizes(self) -> tuple[int, ...]:
        return (int(self.weights[0].shape[1]),) + tuple(int(w.shape[0]) for w in self.weights)


def _per_layer(value, n_layers: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n_layers:
            raise ValueError(f"{name} has {len(value)} entries for {n_layers} layers")
        return list(value)
    return [value] * n_layers


class Trace(eqx.Module):
    """Everything a network did in a trial: one ``LayerTrace`` per layer (batch axes leading)."""

    layers: tuple[LayerTrace, ...]

    @property
    def output(self) -> LayerTrace:
        return self.layers[-1]

    @property
    def exhausted(self) -> Bool[Array, "*batch"]:
        return _any_layer(self, "exhausted")

    @property
    def overflow(self) -> Bool[Array, "*batch"]:
        return _any_layer(self, "overflow")

    @property
    def failed(self) -> Bool[Array, "*batch"]:
        return _any_layer(self, "failed")

    @property
    def events_used(self) -> Int[Array, "*batch layers"]:
        return jnp.stack([layer.events_used for layer in self.layers], axis=-1)


def _any_layer(trace: Trace, name: str):
    return jnp.any(jnp.stack([getattr(layer, name) for layer in trace.layers], axis=-1), axis=-1)


def _merge_spikes(times: Float[Array, "neurons slots"]):
    """A layer's spikes as the next layer's input events: flattened, sorted, unit = neuron index."""
    n, s = times.shape
    flat = times.reshape(n * s)
    units = jnp.repeat(jnp.arange(n, dtype=jnp.int32), s)
    order = jnp.argsort(flat)
    return flat[order], units[order]


GRADIENTS = ("autodiff", "adjoint")


def _simulate_one(net: FeedForward, times, units, T, integrators, budgets, gradient: str = "autodiff") -> Trace:
    layer_fn = simulate_layer_adjoint if gradient == "adjoint" else simulate_layer
    traces = []
    for l, (neuron, w, rec) in enumerate(zip(net.neurons, net.weights, net.recurrent)):
        tr = layer_fn(
            neuron,
            w,
            times,
            units,
            T,
            n_slots=net.n_slots[l],
            integrator=integrators[l],
            budget=budgets[l],
            recurrent_weights=rec,
        )
        traces.append(tr)
        times, units = _merge_spikes(tr.times)
    return Trace(tuple(traces))


def simulate(
    net: FeedForward,
    spikes: Spikes,
    T: float,
    *,
    integrator: str | AbstractIntegrator | Sequence[str | AbstractIntegrator] = "auto",
    budget: int | Sequence[int | None] | None = None,
    strict: bool = False,
    gradient: str = "autodiff",
) -> Trace:
    """Run the network on a batch (or a single sample) of input spikes.

    Args:
        net: the network.
        spikes: input events; batch axes (if any) lead, ``spikes.n_units`` must equal the input size.
        T: trial end (same for every sample).
        integrator: ``"closed_form"``, ``"diffrax"``, ``"auto"`` (per model), an instance, or one per layer.
        budget: scan length per layer (default: enough for every input and every spike slot).
        strict: raise ``RuntimeError`` (naming the sample, layer and the budget needed) if an event
            budget ran out, spike slots overflowed or a solve failed. Needs concrete inputs (not
            under ``jit``); inside ``jit`` read the flags of the returned ``Trace``.
        gradient: how reverse mode differentiates the event loop: ``"autodiff"`` (through the scan)
            or ``"adjoint"`` (the event adjoint of ``spikeode.engine.adjoint``; equal values, feed-forward only).
    """
    if gradient not in GRADIENTS:
        raise ValueError(f"unknown gradient {gradient!r}: use one of {GRADIENTS}")
    if gradient == "adjoint" and any(r is not None for r in net.recurrent):
        raise NotImplementedError("gradient='adjoint' does not support recurrent layers yet; use 'autodiff'")
    if spikes.n_units != net.sizes[0]:
        raise ValueError(f"spikes have {spikes.n_units} channels but the network expects {net.sizes[0]}")
    if is_concrete(net, spikes):
        check_network(net)
        validate_spikes(spikes)
    n_layers = len(net.weights)
    integrators = tuple(
        make_integrator(i, n) for i, n in zip(_per_layer(integrator, n_layers, "integrator"), net.neurons)
    )
    budgets = _resolve_budgets(net, spikes.max_events, budget)
    trace = _simulate_batch(net, spikes.times, spikes.units, T, integrators, budgets, gradient, len(spikes.batch_shape))
    if strict:
        check_trace(trace, net=net, spikes=spikes, T=T, integrators=integrators, budgets=budgets)
    return trace


@eqx.filter_jit
def _simulate_batch(net, times, units, T, integrators, budgets, gradient, n_batch_axes):
    """:func:`_simulate_one` vmapped over the batch axes, as one compiled program: a caller outside ``jit``
    (or differentiating outside it) compiles the event loop once, not op by op; inside ``jit`` it is inlined."""
    run = lambda t, u: _simulate_one(net, t, u, T, integrators, budgets, gradient)  # noqa: E731
    for _ in range(n_batch_axes):
        run = jax.vmap(run)
    return run(times, units)


def _resolve_budgets(net: FeedForward, n_input_events: int, budget) -> tuple[int, ...]:
    n_layers = len(net.weights)
    given = _per_layer(budget, n_layers, "budget")
    out, n_in = [], n_input_events
    for l in range(n_layers):
        n_out = net.sizes[l + 1]
        out.append(default_budget(n_in, n_out, net.n_slots[l]) if given[l] is None else int(given[l]))
        n_in = n_out * net.n_slots[l]
    return tuple(out)


def check_network(net: FeedForward) -> None:
    """Host-side validation: finite weights, valid neuron parameters, initial states below threshold.
    Raises ``ValueError``."""
    for l, (w, rec, neuron) in enumerate(zip(net.weights, net.recurrent, net.neurons)):
        for name, arr in (("weights", w), ("recurrent", rec)):
            if arr is None:
                continue
            bad = ~np.isfinite(np.asarray(arr))
            if bad.any():
                idx = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(f"layer {l} {name}{list(idx)} is {float(np.asarray(arr)[idx])} (not finite)")
        neuron.check_parameters()
        check_initial_state(neuron)


def check_trace(trace: Trace, *, net=None, spikes=None, T=None, integrators=None, budgets=None) -> None:
    """Raise ``RuntimeError`` if any sample exhausted its budget, overflowed its slots or failed a solve.

    With the simulation's inputs given, the message states the budget the failing sample needs.
    """
    for l, layer in enumerate(trace.layers):
        for flag, what in ((layer.failed, "a solve failed (e.g. diffrax max_steps); loosen tolerances or raise max_steps"),
                           (layer.overflow, "a neuron spiked more often than its spike slots (raise n_slots)"),
                           (layer.exhausted, "the event budget ran out before T")):
            bad = np.atleast_1d(np.asarray(flag))
            if bad.any():
                sample = int(np.flatnonzero(bad.ravel())[0])
                msg = f"layer {l}, sample {sample}: {what}"
                if flag is layer.exhausted and net is not None:
                    needed = _budget_needed(net, spikes, T, integrators, budgets, sample, l)
                    msg += f"; budget {budgets[l]} events, this sample needs {needed}"
                raise RuntimeError(msg)


def _budget_needed(net, spikes, T, integrators, budgets, sample: int, layer: int) -> int:
    """Rerun one sample with doubling budgets of ``layer`` until it finishes; return the events it used."""
    flat_t = spikes.times.reshape(-1, spikes.max_events)[sample]
    flat_u = spikes.units.reshape(-1, spikes.max_events)[sample]
    b = list(budgets)
    for _ in range(20):
        b[layer] *= 2
        tr = _simulate_one(net, flat_t, flat_u, T, integrators, tuple(b))
        if not bool(tr.layers[layer].exhausted):
            return int(tr.layers[layer].events_used)
    return -1


def simulate_neuron(
    neuron: AbstractNeuron,
    in_times: Float[Array, " events"],
    in_weights: Float[Array, " events"],
    T: float,
    *,
    n_slots: int = 32,
    integrator: AbstractIntegrator | str = "auto",
    gradient: str = "autodiff",
) -> LayerTrace:
    """One neuron receiving spikes ``in_times[k]`` with weights ``in_weights[k]`` (each its own channel).

    Returns a ``LayerTrace`` with a neuron axis of length 1. Inputs must be ascending and
    non-negative (``+inf`` padding allowed); ``gradient="adjoint"`` uses the event adjoint.
    """
    in_times = jnp.asarray(in_times)
    n = in_times.shape[0]
    if gradient not in ("autodiff", "adjoint"):
        raise ValueError(f"unknown gradient {gradient!r}: use 'autodiff' or 'adjoint'")
    layer_fn = simulate_layer_adjoint if gradient == "adjoint" else simulate_layer
    weights, units = jnp.asarray(in_weights)[None, :], jnp.arange(n, dtype=jnp.int32)
    validate_layer_inputs(neuron, weights, in_times, units)  # on the host, before tracing
    return _simulate_neuron(layer_fn, neuron, weights, in_times, units, T, n_slots, integrator)


@eqx.filter_jit
def _simulate_neuron(layer_fn, neuron, weights, times, units, T, n_slots, integrator) -> LayerTrace:
    """``layer_fn`` as one compiled program (see :func:`_simulate_batch`)."""
    return layer_fn(neuron, weights, times, units, T, n_slots=n_slots, integrator=integrator)
