"""Readouts: first (pseudo)spike times, their accuracy, and the exact max-voltage readout (losses: ``loss.py``).

Conventions (explicit, because silent outputs and ties decide accuracies):
- ``first_spike_times(..., pseudospikes=True)``: an output that spiked in ``[0, T]`` reports its first
  spike time; a silent one reports its first pseudospike ``T + delay`` (Klos & Memmesheimer
  pseudodynamics, see ``AbstractPseudoNeuron.pseudo_spike``; for a model that declares none, the generic
  :func:`linear_continuation`), smooth in all parameters.
- ``pseudospikes=False``: a silent output reports ``T`` (continuous, zero gradient). A boolean array
  selects between the two inside a compiled program (both settings share it, e.g. gradient statistics).
- ``accuracy``: the prediction is the output with the earliest time; a sample counts as wrong when
  the earliest time is shared by several outputs (a tie) or, with ``valid=counts > 0`` (real spikes
  only), when no output spiked.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from spikeode.engine.network import FeedForward, Trace, _merge_spikes
from spikeode.neurons import LIF, AbstractNeuron

__all__ = [
    "linear_continuation",
    "first_spike_times",
    "pseudo_rates_and_delays",
    "accuracy",
    "max_voltage",
]


#: Shortest period of :func:`linear_continuation` (threshold units), for a reset that lands on the threshold.
MIN_RESET_DISTANCE = 1e-3


def linear_continuation(neuron: AbstractNeuron, y: Float[Array, " state"], drive) -> tuple[Array, Array]:
    """Generic pseudodynamics of a model that declares none (no ``pseudo_spike``).

    After ``T`` the state moves straight towards the threshold surface ``threshold(y) = 0``, along the
    threshold function's gradient, at the speed ``softplus(1 + drive)`` (units of ``threshold`` per unit
    time, faster with more pseudo input), and restarts from ``reset`` there. Returns ``(delay, period)`` as
    ``AbstractPseudoNeuron.pseudo_spike`` does: the distance to the surface (first order in ``y``; exact for a
    threshold linear in the state, such as ``V - v_th``) over the speed, ``delay -> 0`` as ``y`` reaches the
    threshold, smooth below it. It knows nothing of the model's own dynamics after ``T``: a model's
    ``pseudo_spike`` (its ODE under a supra-threshold drive) replaces it.
    """
    speed = jax.nn.softplus(1.0 + drive)

    def distance(z):
        g, normal = jax.value_and_grad(neuron.threshold)(z)
        norm = jnp.maximum(jnp.sqrt(jnp.sum(normal**2)), jnp.finfo(z.dtype).tiny ** 0.5)
        return -g / norm, normal / norm

    d, normal = distance(y)
    d = jnp.maximum(d, 0.0)
    d_reset, _ = distance(neuron.reset(y + d * normal))
    return d / speed, jnp.maximum(d_reset, MIN_RESET_DISTANCE) / speed


def pseudo_rates_and_delays(net: FeedForward, trace: Trace):
    """Layer by layer, the pseudo input ``x_l = W_l r_{l-1}`` (``r_0 = 0``: inputs have no pseudodynamics)
    and each neuron's pseudospike ``(delay, period)`` (``pseudo_spike``, else :func:`linear_continuation`);
    the pseudo rate is ``r_l = 1 - delay/period``.

    Returns the list of delays per layer (batch axes leading). Recurrent weights are not used here.
    """
    batch_shape = trace.layers[0].counts.shape[:-1]
    rate = jnp.zeros(batch_shape + (net.sizes[0],), trace.layers[0].state_T.dtype)
    delays = []
    for neuron, w, layer in zip(net.neurons, net.weights, trace.layers):
        drive = rate @ w.T
        spike = neuron.pseudo_spike if neuron.has_pseudodynamics else functools.partial(linear_continuation, neuron)
        pseudo = jnp.vectorize(spike, signature="(d),()->(),()")
        delay, period = pseudo(layer.state_T, drive)
        rate = 1.0 - delay / period
        delays.append(delay)
    return delays


def first_spike_times(
    net: FeedForward, trace: Trace, T: float, *, pseudospikes: bool | Bool[Array, ""] = True
) -> Float[Array, "*batch outputs"]:
    """First output spike time per output neuron (see the module docstring for silent outputs; a Python
    ``False`` skips the pseudodynamics, an array flag computes them and selects)."""
    out = trace.output
    spiked = out.counts > 0
    first = jnp.where(spiked, out.times[..., 0], 0.0)
    silent_time = jnp.full_like(first, T)
    if pseudospikes is not False:
        silent_time = jnp.where(pseudospikes, T + pseudo_rates_and_delays(net, trace)[-1], silent_time)
    return jnp.where(spiked, first, silent_time)


def accuracy(
    t_first: Float[Array, "*batch outputs"], labels: Int[Array, "*batch"], *, valid: Bool[Array, "*batch outputs"] | None = None
) -> Float[Array, "*batch"]:
    """1 where the earliest output is the label and unique; ``valid`` masks outputs that may count
    (e.g. ``counts > 0`` for real spikes only; a sample with no valid output is wrong)."""
    t = t_first if valid is None else jnp.where(valid, t_first, jnp.inf)
    t_min = jnp.min(t, axis=-1, keepdims=True)
    unique = jnp.sum(t == t_min, axis=-1) == 1
    pred = jnp.argmin(t, axis=-1)
    return ((pred == labels) & unique & jnp.isfinite(t_min[..., 0])).astype(t_first.dtype)


def max_voltage(
    hidden_times: Float[Array, "neurons slots"],
    weights: Float[Array, "outputs neurons"],
    T: float,
    *,
    tau_mem: float = 1.0,
    tau_syn: float = 0.5,
) -> Float[Array, " outputs"]:
    """Exact ``max_{t in [0, T]} V(t)`` of non-spiking leaky readout neurons with exponential synapses.

    ``tau_mem dV/dt = -V + I``, ``tau_syn dI/dt = -I``, input spike ``I -> I + w``. Between input
    spikes ``V`` has at most one extremum (``LIF.voltage_extremum``): the maximum over each interval
    is at its ends or there. One sample; vmap for a batch.
    """
    readout = LIF(tau_mem=tau_mem, tau_syn=tau_syn, I0=0.0, v_th=jnp.inf, v_reset=0.0)
    times, units = _merge_spikes(hidden_times)
    n_out = weights.shape[0]
    flow = jax.vmap(readout.flow, in_axes=(0, None))
    extremum = jax.vmap(readout.voltage_extremum)
    dtype = jnp.result_type(hidden_times.dtype, weights.dtype)

    def segment_max(y, length):
        t_ext, has = extremum(y)
        inside = has & (t_ext < length)
        at_ext = jax.vmap(readout.flow)(y, jnp.where(inside, t_ext, 0.0))[:, 0]
        end = flow(y, length)
        return end, jnp.maximum(end[:, 0], jnp.where(inside, at_ext, -jnp.inf))

    def step(carry, event):
        t, y, vmax = carry
        t_k, u = event
        t_next = jnp.minimum(t_k, T)
        y_end, seg_max = segment_max(y, t_next - t)
        y_next = y_end.at[:, 1].add(jnp.where(t_k < T, weights[:, u], 0.0))
        return (t_next, y_next, jnp.maximum(vmax, seg_max)), None

    init = (jnp.asarray(0.0, dtype), jnp.zeros((n_out, 2), dtype), jnp.zeros(n_out, dtype))
    (t, y, vmax), _ = jax.lax.scan(step, init, (times, units))
    _, last = segment_max(y, T - t)
    return jnp.maximum(vmax, last)
