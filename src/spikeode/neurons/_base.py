"""The neuron-model contract: a spiking neuron declared as a hybrid ODE.

Between events the state ``y`` of one neuron follows ``dy/dt = vector_field(t, y, args)``. The
neuron spikes when ``threshold(y)`` crosses zero upwards; its state then jumps to ``reset(y)``.
A presynaptic spike of weight ``w`` makes the state jump to ``receive(y, w)``.

A model that also knows its flow in closed form overrides ``flow`` and ``time_to_threshold``; the
engine then uses the exact closed-form path, and the diffrax path stays available (the two must
agree; the generic test ``tests/test_neurons.py`` checks every shipped model).

Models are ``equinox.Module``s: every array or float field is a trainable parameter that
``jax.grad`` reaches; configuration that is not (e.g. whether the synapse is a delta pulse) is a
static field.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Scalar, ScalarLike

__all__ = ["AbstractNeuron", "NotClosedForm", "as_trainable"]


class NotClosedForm(NotImplementedError):
    """Raised by ``flow``/``time_to_threshold`` of a model that has no closed form."""


class AbstractNeuron(eqx.Module):
    """A single spiking neuron as a hybrid dynamical system (the state of one neuron).

    Subclasses implement ``initial_state``, ``vector_field``, ``threshold``, ``reset`` and
    ``receive``; optionally ``flow`` and ``time_to_threshold`` (then ``has_closed_form`` is true).
    All methods act on one neuron; the engine vmaps them over a layer.
    """

    @abc.abstractmethod
    def initial_state(self) -> Float[Array, " state"]:
        """State at ``t = 0`` (e.g. the resting state)."""

    @abc.abstractmethod
    def vector_field(self, t: ScalarLike, y: Float[Array, " state"], args) -> Float[Array, " state"]:
        """Right-hand side of the ODE between events."""

    @abc.abstractmethod
    def threshold(self, y: Float[Array, " state"]) -> Scalar:
        """Real-valued spike condition: a spike is an upward zero crossing."""

    @abc.abstractmethod
    def reset(self, y: Float[Array, " state"]) -> Float[Array, " state"]:
        """State right after the neuron's own spike (``y`` is the state at threshold)."""

    @abc.abstractmethod
    def receive(self, y: Float[Array, " state"], w: ScalarLike) -> Float[Array, " state"]:
        """State right after a presynaptic spike of weight ``w`` arrives."""

    # -- optional closed forms -------------------------------------------------------------
    def flow(self, y: Float[Array, " state"], dt: ScalarLike) -> Float[Array, " state"]:
        """Exact state after free evolution (no events) for a time ``dt >= 0``."""
        raise NotClosedForm(f"{type(self).__name__} has no closed-form flow")

    def time_to_threshold(self, y: Float[Array, " state"], horizon: ScalarLike) -> Scalar:
        """Time until the first upward threshold crossing of the free flow, if it is ``<= horizon``.

        Returns ``+inf`` when there is no crossing within ``horizon`` (``horizon`` is finite).
        The caller only asks with ``threshold(y) < 0``. Must be differentiable in ``y`` and in the
        model's parameters (implicit function theorem where a root is found numerically).
        """
        raise NotClosedForm(f"{type(self).__name__} has no closed-form time to threshold")

    def firing_order(self, y: Float[Array, " state"]) -> Scalar:
        """Optional speed-up of the closed-form path: a cheap key that orders neurons sharing these
        parameters as ``time_to_threshold`` does (smaller fires sooner, ``+inf`` never).

        The engine then computes the crossing time of only the first neuron per event instead of
        every neuron's. Only for models whose free flow preserves that order, e.g. any 1-D
        autonomous neuron (the larger ``V``, the sooner); ``tests/test_neurons.py`` checks it.
        """
        raise NotImplementedError(f"{type(self).__name__} declares no firing_order")

    @property
    def has_firing_order(self) -> bool:
        return type(self).firing_order is not AbstractNeuron.firing_order

    def pseudo_spike(self, y: Float[Array, " state"], drive: ScalarLike) -> tuple[Scalar, Scalar]:
        """Pseudodynamics after the trial end (Klos & Memmesheimer): the continuation from state ``y``
        at ``T`` with extra pseudo input ``drive`` under a supra-threshold drive.

        Returns ``(delay, period)``: the time after ``T`` of the next (pseudo)spike and the period of
        the continued oscillation; both smooth in ``y``, ``drive`` and the parameters, and
        ``delay -> 0`` as ``y`` approaches the threshold, so a real spike drifting to ``T`` turns
        continuously into a pseudospike. Optional: models without it train with pseudospikes off.
        """
        raise NotImplementedError(f"{type(self).__name__} declares no pseudodynamics (pseudo_spike)")

    @property
    def has_pseudodynamics(self) -> bool:
        return type(self).pseudo_spike is not AbstractNeuron.pseudo_spike

    @property
    def has_closed_form(self) -> bool:
        """Whether ``flow`` and ``time_to_threshold`` are available (the fast exact path)."""
        cls = type(self)
        return cls.flow is not AbstractNeuron.flow and cls.time_to_threshold is not AbstractNeuron.time_to_threshold

    @property
    def state_size(self) -> int:
        return int(jnp.shape(self.initial_state())[0])

    def check_parameters(self) -> None:
        """Raise ``ValueError`` for parameters outside the model's domain (host-side check).

        The default checks every numeric field whose name starts with ``tau`` is positive.
        """
        for name, value in vars(self).items():
            if name.startswith("tau") and eqx.is_array_like(value):
                arr = jnp.asarray(value)
                if not bool(jnp.all(arr > 0)):
                    raise ValueError(f"{type(self).__name__}.{name} must be > 0, got {value!r}")


def as_trainable(model, dtype=None):
    """Turn every Python ``float`` field of a model (or any PyTree) into a 0-d array of ``dtype``.

    ``jax.grad``/``eqx.filter_grad`` differentiate arrays only; models may declare parameters as
    plain floats and become trainable here. ``dtype`` defaults to JAX's default float.
    """
    import jax

    dtype = jnp.result_type(float) if dtype is None else dtype

    def convert(leaf):
        if isinstance(leaf, float) and not isinstance(leaf, bool):
            return jnp.asarray(leaf, dtype)
        if eqx.is_inexact_array(leaf):
            return leaf.astype(dtype)
        return leaf

    return jax.tree_util.tree_map(convert, model)
