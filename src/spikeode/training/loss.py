"""The classification loss, written once: per-sample loss and correctness of a simulated trace.

Training (``make_loss_fn``), landscapes (one sample at a time), gradient statistics and ``spikeode bench``
all call :func:`sample_loss`. Both readouts end in a softmax cross-entropy with integer labels
(``optax.softmax_cross_entropy_with_integer_labels``):

- ``first_spike``: logits ``-t_first / temperature`` plus ``gamma (exp(t_label / T) - 1)``, which pulls
  the label's first spike earlier (Klos & Memmesheimer); beyond ``T`` (a silent label's pseudospike) the
  term continues linearly with its slope at ``T`` (:func:`gamma_term`); ``t_first`` as in
  :func:`spikeode.training.readout.first_spike_times` (pseudospikes for silent outputs, or ``T``).
- ``max_voltage``: logits = the exact maximum voltages of the non-spiking readout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int

from spikeode.engine.network import FeedForward, Trace
from spikeode.training.config import READOUTS
from spikeode.training.readout import accuracy, first_spike_times, max_voltage

__all__ = ["Objective", "SampleLoss", "sample_loss", "first_spike_loss", "gamma_term", "voltage_loss"]


@dataclass(frozen=True)
class Objective:
    """What a trace is scored by: the readout, the trial length and the loss's settings (``T``, temperature,
    gamma and the pseudospike switch may be arrays, traced in a compiled loss)."""

    T: float | Float[Array, ""]
    readout: str = "first_spike"
    temperature: float | Float[Array, ""] = 1.0
    gamma: float | Float[Array, ""] = 0.0
    pseudospikes: bool | Bool[Array, ""] = True

    def __post_init__(self):
        if self.readout not in READOUTS:
            raise ValueError(f"unknown readout {self.readout!r}: use one of {READOUTS}")

    @classmethod
    def of(cls, config) -> Objective:
        """The objective of a training configuration (any object with these fields, e.g. ``TrainConfig``)."""
        return cls(T=config.T, readout=config.readout, temperature=config.temperature, gamma=config.gamma,
                   pseudospikes=config.pseudospikes)


class SampleLoss(NamedTuple):
    """Per sample (the trace's batch axes): the loss and whether the prediction is right."""

    loss: Float[Array, "*batch"]
    correct: Float[Array, "*batch"]  # real output spikes only: a sample with a silent output layer is wrong
    correct_pseudo: Float[Array, "*batch"]  # pseudospikes of silent outputs count too


def first_spike_loss(
    t_first: Float[Array, "*batch outputs"],
    labels: Int[Array, "*batch"],
    T: float,
    *,
    temperature: float = 1.0,
    gamma: float = 0.0,
) -> Float[Array, "*batch"]:
    """Cross-entropy on ``-t/temperature`` plus ``gamma * gamma_term(t_label/T)`` (pulls the label earlier)."""
    t_label = jnp.take_along_axis(t_first, labels[..., None], axis=-1)[..., 0]
    ce = optax.softmax_cross_entropy_with_integer_labels(-t_first / temperature, labels)
    return ce + gamma * gamma_term(t_label / T)


def gamma_term(x: Float[Array, "*batch"]) -> Float[Array, "*batch"]:
    """``exp(x) - 1`` for ``x <= 1`` (``x = t_label / T``), continued linearly beyond (value and slope ``e``
    match at 1): a silent label's pseudospike can lie ~1e6 T late (strongly inhibited QIF), where
    ``exp`` overflows to an infinite loss and gradient."""
    inside = jnp.expm1(jnp.minimum(x, 1.0))
    return jnp.where(x <= 1.0, inside, math.e * x - 1.0)


def voltage_loss(vmax: Float[Array, "*batch outputs"], labels: Int[Array, "*batch"]) -> Float[Array, "*batch"]:
    """Cross-entropy on the maximum voltages."""
    return optax.softmax_cross_entropy_with_integer_labels(vmax, labels)


def sample_loss(
    objective: Objective,
    net: FeedForward,
    trace: Trace,
    labels: Int[Array, "*batch"],
    readout_weights: Float[Array, "classes neurons"] | None = None,
) -> SampleLoss:
    """Loss and correctness of every sample of ``trace`` (any leading batch axes, matching ``labels``)."""
    if objective.readout == "first_spike":
        t_first = first_spike_times(net, trace, objective.T, pseudospikes=objective.pseudospikes)
        loss = first_spike_loss(t_first, labels, objective.T, temperature=objective.temperature,
                                gamma=objective.gamma)
        return SampleLoss(loss, accuracy(t_first, labels, valid=trace.output.counts > 0),
                          accuracy(t_first, labels))
    if readout_weights is None:
        raise ValueError("the max_voltage readout needs readout_weights")
    vmax = jnp.vectorize(lambda times: max_voltage(times, readout_weights, objective.T),
                         signature="(n,s)->(c)")(trace.output.times)
    correct = accuracy(-vmax, labels)
    return SampleLoss(voltage_loss(vmax, labels), correct, correct)
