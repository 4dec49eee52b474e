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
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from spikeode._xla import use_fast_cpu_defaults

try:
    __version__ = version("spikeode")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

#: public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    **dict.fromkeys(("AbstractNeuron", "LIF", "QIF", "EIF", "resolve_neuron_class"), ".neurons"),
    **dict.fromkeys(("Spikes", "spikes_from_lists"), ".spikes"),
    **dict.fromkeys(("FeedForward", "Trace", "simulate", "simulate_neuron"), ".engine.network"),
    **dict.fromkeys(("SpikeDataset", "load_dataset", "iterate_batches", "split_validation"), ".data"),
    **dict.fromkeys(("TrainConfig", "default_config", "train", "load_model"), ".training.loop"),
    **dict.fromkeys(("run_search",), ".study.hpo"),
    **dict.fromkeys(("LandscapeConfig", "compute_landscape"), ".study.landscape"),
    **dict.fromkeys(("run_gradstats",), ".study.gradstats"),
}

__all__ = ["__version__", "use_fast_cpu_defaults", *_LAZY]

if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from spikeode.data import SpikeDataset, iterate_batches, load_dataset, split_validation
    from spikeode.study.gradstats import run_gradstats
    from spikeode.study.hpo import run_search
    from spikeode.study.landscape import LandscapeConfig, compute_landscape
    from spikeode.engine.network import FeedForward, Trace, simulate, simulate_neuron
    from spikeode.neurons import EIF, LIF, QIF, AbstractNeuron, resolve_neuron_class
    from spikeode.spikes import Spikes, spikes_from_lists
    from spikeode.training.loop import TrainConfig, default_config, load_model, train


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
