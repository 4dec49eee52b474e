"""spikeode: spiking neural networks as declarative ODEs, simulated exactly, with exact gradients.

The names a user needs, importable from the package itself::

    import spikeode

    spikeode.use_fast_cpu_defaults()          # optional, first: faster CPU code for event loops
    config = spikeode.default_config("synthetic", "qif", epochs=2)
    history = spikeode.train(config, "runs/qif")

Importing the package changes no global state (no JAX flag, no environment variable) and loads JAX only
when a name that needs it is first used.
"""

from __future__ import annotations

import importlib
import sys
import types
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from ._xla import use_fast_cpu_defaults

try:
    __version__ = version("spikeode")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

#: public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    **dict.fromkeys(("AbstractNeuron", "LIF", "QIF", "EIF", "resolve_neuron_class"), ".neurons"),
    **dict.fromkeys(("Spikes", "spikes_from_lists"), ".spikes"),
    **dict.fromkeys(("FeedForward", "Trace", "simulate", "simulate_neuron"), ".network"),
    **dict.fromkeys(("SpikeDataset", "load_dataset", "iterate_batches", "split_validation"), ".data"),
    **dict.fromkeys(("TrainConfig", "default_config", "train", "load_model"), ".train"),
    **dict.fromkeys(("run_search",), ".hpo"),
    **dict.fromkeys(("LandscapeConfig", "compute_landscape"), ".landscape"),
    **dict.fromkeys(("run_gradstats",), ".gradstats"),
}

__all__ = ["__version__", "use_fast_cpu_defaults", *_LAZY]

if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from .data import SpikeDataset, iterate_batches, load_dataset, split_validation
    from .gradstats import run_gradstats
    from .hpo import run_search
    from .landscape import LandscapeConfig, compute_landscape
    from .network import FeedForward, Trace, simulate, simulate_neuron
    from .neurons import EIF, LIF, QIF, AbstractNeuron, resolve_neuron_class
    from .spikes import Spikes, spikes_from_lists
    from .train import TrainConfig, default_config, load_model, train


class _Package(types.ModuleType):
    """The package module; a public function keeps its name when a submodule of that name is imported.

    ``train`` is both a function and the module ``spikeode/train.py``; importing the module binds it on the
    package, which would hide the function. Reach the module with ``from spikeode.train import ...`` or
    ``importlib.import_module("spikeode.train")``.
    """

    def __setattr__(self, name: str, value) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    """Import the module of a public name on first access (PEP 562) and cache the name here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spikeode' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
