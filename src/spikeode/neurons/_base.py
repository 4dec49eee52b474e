"""The neuron-model contract: a spiking neuron declared as a hybrid ODE.

Between events the state ``y`` of one neuron follows ``dy/dt = vector_field(t, y, args)``. The
neuron spikes when ``threshold(y)`` crosses zero upwards; its state then jumps to ``reset(y)``.
A presynaptic spike of weight ``w`` makes the state jump to ``receive(y, w)``.

Optional capabilities follow equinox's abstract/final pattern: a model declares one by also deriving
from its abstract class and implementing its abstract methods -- ``AbstractClosedFormNeuron`` (``flow``,
``time_to_threshold``: the exact closed-form path; the diffrax path stays available and the two must
agree, ``tests/test_neurons.py`` checks every shipped model), ``AbstractOrderedNeuron`` (``firing_order``)
and ``AbstractPseudoNeuron`` (``pseudo_spike``). Concrete models are final: never subclassed.

Models are ``equinox.Module``s: every array or float field is a trainable parameter that
``jax.grad`` reaches; configuration that is not (e.g. whether the synapse is a delta pulse) is a
static field.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Scalar, ScalarLike

__all__ = ["AbstractNeuron", "AbstractClosedFormNeuron", "AbstractOrderedNeuron", "AbstractPseudoNeuron", "NotClosedForm",
           "as_trainable"]


class NotClosedForm(NotImplementedError):
    """Raised by ``flow``/``time_to_threshold`` of a model that has no closed form."""


class AbstractNeuron(eqx.Module):
    """A single spiking neuron as a hybrid dynamical system (the state of one neuron).

    Subclasses implement ``initial_state``, ``vector_field``, ``threshold``, ``reset`` and
    ``receive``; the optional capabilities are the abstract classes below.
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

    # -- optional capabilities: declared by also deriving from the abstract classes below ---------
    @property
    def has_closed_form(self) -> bool:
        """Whether ``flow`` and ``time_to_threshold`` are exact for these parameters (the fast path)."""
        return isinstance(self, AbstractClosedFormNeuron) and bool(self.closed_form_applies())

    @property
    def has_firing_order(self) -> bool:
        """Whether ``firing_order`` orders this model's crossing times (closed-form path speed-up)."""
        return isinstance(self, AbstractOrderedNeuron) and self.has_closed_form and bool(self.firing_order_applies())

    @property
    def has_pseudodynamics(self) -> bool:
        """Whether ``pseudo_spike`` continues silent neurons past the trial end (pseudospikes)."""
        return isinstance(self, AbstractPseudoNeuron)

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


class AbstractClosedFormNeuron(AbstractNeuron):
    """A neuron that also knows its free flow in closed form: the engine then takes the exact closed-form
    path (``integrate.ClosedForm``); the diffrax path stays available and must agree."""

    @abc.abstractmethod
    def closed_form_applies(self) -> bool:
        """Whether ``flow`` and ``time_to_threshold`` are exact for these parameters (host-side, static, e.g.
        a ratio of time constants); the diffrax path is used where they are not. ``True`` if always."""

    @abc.abstractmethod
    def flow(self, y: Float[Array, " state"], dt: ScalarLike) -> Float[Array, " state"]:
        """Exact state after free evolution (no events) for a time ``dt >= 0``."""

    @abc.abstractmethod
    def time_to_threshold(self, y: Float[Array, " state"], horizon: ScalarLike) -> Scalar:
        """Time until the first upward threshold crossing of the free flow, if it is ``<= horizon``.

        Returns ``+inf`` when there is no crossing within ``horizon`` (``horizon`` is finite).
        The caller only asks with ``threshold(y) < 0``. Must be differentiable in ``y`` and in the
        model's parameters (implicit function theorem where a root is found numerically).
        """


class AbstractOrderedNeuron(AbstractClosedFormNeuron):
    """A closed-form neuron with a cheap key that orders neurons sharing its parameters as
    ``time_to_threshold`` does: the engine then solves the crossing time of only the first neuron per event.

    Only for models whose free flow preserves that order, e.g. any 1-D autonomous neuron (the larger
    ``V``, the sooner); ``tests/test_neurons.py`` checks it.
    """

    @abc.abstractmethod
    def firing_order_applies(self) -> bool:
        """Whether ``firing_order`` is valid for these parameters (host-side, static). ``True`` if always."""

    @abc.abstractmethod
    def firing_order(self, y: Float[Array, " state"]) -> Scalar:
        """Smaller fires sooner, ``+inf`` never."""


class AbstractPseudoNeuron(AbstractNeuron):
    """A neuron with pseudodynamics (Klos & Memmesheimer): silent neurons get pseudospikes after the trial."""

    @abc.abstractmethod
    def pseudo_spike(self, y: Float[Array, " state"], drive: ScalarLike) -> tuple[Scalar, Scalar]:
        """The continuation from state ``y`` at ``T`` with extra pseudo input ``drive`` under a
        supra-threshold drive.

        Returns ``(delay, period)``: the time after ``T`` of the next (pseudo)spike and the period of
        the continued oscillation; both smooth in ``y``, ``drive`` and the parameters, and
        ``delay -> 0`` as ``y`` approaches the threshold, so a real spike drifting to ``T`` turns
        continuously into a pseudospike.
        """


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
