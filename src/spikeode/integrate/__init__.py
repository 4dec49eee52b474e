"""Integrators: how a layer's state moves between events (closed form or diffrax)."""

from spikeode.integrate._base import SELECTION, AbstractIntegrator, Advance
from spikeode.integrate.closed_form import ClosedForm
from spikeode.integrate.diffrax import Diffrax

__all__ = ["SELECTION", "AbstractIntegrator", "Advance", "ClosedForm", "Diffrax", "make_integrator"]


def make_integrator(name: str | AbstractIntegrator, neuron=None, **options) -> AbstractIntegrator:
    """``"closed_form"`` | ``"diffrax"`` | ``"auto"`` (closed form where the model has one)."""
    if isinstance(name, AbstractIntegrator):
        return name
    if name == "auto":
        name = "closed_form" if neuron is not None and neuron.has_closed_form else "diffrax"
    if name == "closed_form":
        if neuron is not None and not neuron.has_closed_form:
            raise ValueError(f"{type(neuron).__name__} has no closed form; use integrator='diffrax' or 'auto'")
        return ClosedForm()
    if name == "diffrax":
        return Diffrax(**options)
    raise ValueError(f"unknown integrator {name!r}: use 'closed_form', 'diffrax' or 'auto'")
