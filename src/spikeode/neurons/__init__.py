"""Neuron models declared as hybrid ODEs (see ``AbstractNeuron``)."""

from __future__ import annotations

import importlib

from spikeode.neurons._base import (
    AbstractClosedFormNeuron,
    AbstractNeuron,
    AbstractOrderedNeuron,
    AbstractPseudoNeuron,
    NotClosedForm,
    as_trainable,
)
from spikeode.neurons.eif import EIF
from spikeode.neurons.lif import LIF
from spikeode.neurons.qif import QIF

__all__ = ["AbstractNeuron", "AbstractClosedFormNeuron", "AbstractOrderedNeuron", "AbstractPseudoNeuron",
           "NotClosedForm", "as_trainable", "LIF", "QIF", "EIF", "BUILTIN_NEURONS", "resolve_neuron_class"]

BUILTIN_NEURONS: dict[str, type[AbstractNeuron]] = {"lif": LIF, "qif": QIF, "eif": EIF}


def resolve_neuron_class(name: str) -> type[AbstractNeuron]:
    """``lif`` | ``qif`` | ``eif`` | ``package.module:Class`` (a user's ``AbstractNeuron`` subclass)."""
    if name.lower() in BUILTIN_NEURONS:
        return BUILTIN_NEURONS[name.lower()]
    if ":" not in name:
        raise ValueError(f"unknown neuron {name!r}: use one of {sorted(BUILTIN_NEURONS)} or 'package.module:Class'")
    module_name, _, class_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {module_name!r} for neuron {name!r}: {err}") from err
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"module {module_name!r} has no attribute {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, AbstractNeuron)):
        raise ValueError(f"{name!r} is not a subclass of spikeode.neurons.AbstractNeuron")
    return cls
