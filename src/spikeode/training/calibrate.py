"""Data-calibrated initialisation: scale each layer's weights so that its neurons really spike.

Layer by layer (in the style of LSUV, Mishkin & Matas 2016), on a calibration batch of the training
data, the weights of layer ``l`` become ``W_l = s_l B_l`` with the seeded shape

    B_l = Z_l + balance * std(Z_l) * Q_l / E_l,       Z_l = W_l - mean(W_l)   (the configured spread)

where ``E_l`` is the mean number of input events per sample and ``Q_l`` the mean of
``sqrt(sum_u c_u^2)`` (``c_u``: events of input channel ``u`` in a sample). The drive a neuron
receives in a trial, ``sum_k W[n, u_k]``, then has a mean over neurons ``balance`` times its spread
over neurons, on sparse data (tens of events) and on SHD-size data (thousands) alike: with a mean of
0 (random-sign weights) a QIF or LIF may never reach threshold, and with a mean that dwarfs the
spread every neuron does the same. Only the scale ``s_l`` is searched: the layer's activity ``a(s)``
rises with it, and bisection on ``log s`` finds ``s_l = inf {s : a(s) >= target}``:

* hidden layers: ``a`` = the median over neurons of the mean number of spikes per trial
  (target ``hidden_rate``, default 2);
* the output layer: ``a`` = the fraction of (sample, output) pairs with at least one spike in
  ``[0, T]`` (target ``output_active``, default 0.75): the outputs fire within ``T``.

The bracket is ``s_0 e^{+-span}``, ``s_0 = 1 / (E_l mean(B_l))`` (mean drive 1), searched in a fixed
number of steps (deterministic). A sample whose event budget ran out counts as too active. Forward
simulation only, at the weights' dtype, one compiled program per layer (``s`` is a traced argument);
layer ``l + 1`` sees the spikes of the calibrated layer ``l``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from spikeode.engine.layer import simulate_layer
from spikeode.engine.network import FeedForward, _merge_spikes, _per_layer
from spikeode.integrate import make_integrator
from spikeode.spikes import Spikes

__all__ = ["LayerCalibration", "calibrate", "layer_activity", "weight_shape", "HIDDEN_STATISTIC",
           "OUTPUT_STATISTIC"]

HIDDEN_STATISTIC = "median over neurons of spikes per neuron per trial"
OUTPUT_STATISTIC = "fraction of (sample, neuron) pairs with a spike in [0, T]"


class LayerCalibration(NamedTuple):
    """What calibration found for one layer.

    Attributes:
        scale: the factor ``s`` applied to the layer's weight shape ``B``.
        weight_mean: mean of the layer's weights after calibration.
        weight_std: standard deviation of the layer's weights after calibration.
        activity: the activity reached (see ``statistic``).
        target: the activity aimed at.
        statistic: ``HIDDEN_STATISTIC`` or ``OUTPUT_STATISTIC``.
        reached: whether ``activity >= target`` within the bracket.
    """

    scale: float
    weight_mean: float
    weight_std: float
    activity: float
    target: float
    statistic: str
    reached: bool


def layer_activity(counts: Int[np.ndarray, "batch neurons"], exhausted: np.ndarray, statistic: str) -> float:
    """The calibration statistic of one layer's spike counts (``+inf`` if any sample ran out of budget)."""
    if np.any(exhausted):
        return float("inf")
    counts = np.asarray(counts)
    if statistic == HIDDEN_STATISTIC:
        return float(np.median(counts.mean(axis=0)))
    if statistic == OUTPUT_STATISTIC:
        return float(np.mean(counts > 0))
    raise ValueError(f"unknown calibration statistic {statistic!r}")


def weight_shape(
    w: Float[Array, "out in"],
    times: Float[Array, "batch events"],
    units: Int[Array, "batch events"],
    T: float,
    balance: float,
) -> tuple[Float[Array, "out in"], float]:
    """``(B, E mean(B))``: the shape ``B`` of the module docstring and the mean drive it gives per sample."""
    real = np.asarray(times) < T
    n_in = w.shape[1]
    per_channel = np.stack([np.bincount(np.asarray(u)[r], minlength=n_in) for u, r in zip(units, real)])
    events = max(float(per_channel.sum(axis=1).mean()), 1.0)
    root_sq = max(float(np.sqrt((per_channel.astype(np.float64) ** 2).sum(axis=1)).mean()), 1.0)
    z = w - jnp.mean(w)
    spread = float(jnp.std(z))
    if spread == 0.0:  # no random part: a constant shape
        return jnp.ones_like(w), events
    return z + balance * spread * root_sq / events, balance * spread * root_sq


@eqx.filter_jit
def _run_layer(neuron, shape, scale, times, units, T, n_slots: int, integrator):
    """Counts, exhaustion and spike times of one layer with weights ``scale * shape`` on a batch."""
    w = scale.astype(shape.dtype) * shape

    def one(t, u):
        return simulate_layer(neuron, w, t, u, T, n_slots=n_slots, integrator=integrator)

    trace = jax.vmap(one)(times, units)
    return trace.counts, trace.exhausted, trace.times


def calibrate(
    net: FeedForward,
    spikes: Spikes,
    T: float,
    *,
    hidden_rate: float = 2.0,
    output_active: float = 0.75,
    spiking_output: bool = True,
    balance: float = 2.0,
    integrator: str | Sequence[str] = "auto",
    steps: int = 16,
    span: float = 9.0,
) -> tuple[FeedForward, list[LayerCalibration]]:
    """Calibrate the weight scale of every layer of ``net`` on the batch ``spikes`` (see the module docstring).

    Args:
        net: the network (its weights' random parts give each layer's shape).
        spikes: a calibration batch (one leading batch axis) of training inputs.
        T: trial end.
        hidden_rate: target median spikes per neuron per trial of a hidden layer.
        output_active: target fraction of (sample, output) pairs with a spike.
        spiking_output: whether the last layer is the output layer (``False``: every layer is hidden,
            e.g. under a non-spiking voltage readout).
        balance: mean over spread of the drive across neurons.
        integrator: as for ``simulate``.
        steps: bisection steps per layer (one forward pass of the layer each).
        span: half-width of the bracket in ``log s``.

    Returns:
        The calibrated network and one ``LayerCalibration`` per layer.
    """
    if len(spikes.batch_shape) != 1:
        raise ValueError(f"calibration needs a batch of samples with one batch axis, got {spikes.batch_shape}")
    if not (hidden_rate > 0 and 0 < output_active <= 1 and balance >= 0):
        raise ValueError("calibration needs hidden_rate > 0, 0 < output_active <= 1 and balance >= 0, got "
                         f"{hidden_rate}, {output_active}, {balance}")
    n_layers = len(net.weights)
    integrators = _per_layer(integrator, n_layers, "integrator")
    times, units = spikes.times, spikes.units
    weights, results = list(net.weights), []
    horizon = jnp.asarray(T, weights[0].dtype)  # an array: traced, so every trial length shares the program
    for l, (neuron, w) in enumerate(zip(net.neurons, net.weights)):
        is_output = spiking_output and l == n_layers - 1
        statistic, target = (OUTPUT_STATISTIC, output_active) if is_output else (HIDDEN_STATISTIC, hidden_rate)
        shape, drive = weight_shape(w, times, units, T, balance)
        integ = make_integrator(integrators[l], neuron)

        def run(log_s, shape=shape, neuron=neuron, integ=integ, times=times, units=units, slots=net.n_slots[l]):
            return _run_layer(neuron, shape, jnp.asarray(np.exp(log_s)), times, units, horizon, slots, integ)

        log_s, activity, out = _bisect(run, statistic, target, steps, -np.log(drive), span)
        weights[l] = jnp.asarray(np.exp(log_s), shape.dtype) * shape
        mean, std = float(jnp.mean(weights[l])), float(jnp.std(weights[l]))
        results.append(LayerCalibration(float(np.exp(log_s)), mean, std, activity, float(target), statistic,
                                        bool(activity >= target)))
        times, units = jax.vmap(_merge_spikes)(out[2])
    return eqx.tree_at(lambda n: n.weights, net, tuple(weights)), results


def _bisect(run, statistic: str, target: float, steps: int, center: float, span: float):
    """Smallest ``x`` in ``center +- span`` (to ``2 span / 2^steps``) with activity ``>= target``; returns
    ``(x, activity at x, the layer's outputs at x)``; the upper end if no ``x`` reaches the target."""
    lo, hi = center - span, center + span
    at_hi = None
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        out = run(mid)
        activity = layer_activity(out[0], out[1], statistic)
        if activity >= target:
            hi, at_hi = mid, (activity, out)
        else:
            lo = mid
    if at_hi is None:
        out = run(hi)
        at_hi = (layer_activity(out[0], out[1], statistic), out)
    return hi, at_hi[0], at_hi[1]
