"""spikeode: spiking neural networks as declarative ODEs, simulated exactly, with exact gradients.

The names a user needs, importable from the package itself::

    import spikeode

    spikeode.use_fast_cpu_defaults()          # optional, first: faster CPU code for event loops
    spikeode.enable_compilation_cache()       # optional: compiled programs kept in ~/.cache/spikeode/jax
    config = spikeode.default_config("synthetic", "qif", epochs=2)
    history = spikeode.train(config, "runs/qif")

Importing the package changes no global state (no JAX flag, no environment variable) and loads JAX only
when a name that needs it is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spikeode._lazy import lazy_names
from spikeode._version import __version__
from spikeode._xla import CompileTime, compile_time, enable_compilation_cache, use_fast_cpu_defaults

#: public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    **dict.fromkeys(("AbstractNeuron", "AbstractClosedFormNeuron", "AbstractOrderedNeuron", "AbstractPseudoNeuron",
                     "LIF", "QIF", "EIF", "resolve_neuron_class"), ".neurons"),
    **dict.fromkeys(("Spikes", "spikes_from_lists"), ".spikes"),
    **dict.fromkeys(("FeedForward", "Trace", "simulate", "simulate_neuron"), ".engine.network"),
    **dict.fromkeys(("SpikeDataset", "load_dataset", "iterate_batches", "split_validation"), ".data"),
    **dict.fromkeys(("TrainConfig", "default_config", "train", "load_model"), ".training"),
    **dict.fromkeys(("run_search",), ".study.hpo"),
    **dict.fromkeys(("LandscapeConfig", "compute_landscape"), ".study.landscape"),
    **dict.fromkeys(("run_gradstats",), ".study.gradstats"),
}

__all__ = ["__version__", "CompileTime", "compile_time", "enable_compilation_cache", "use_fast_cpu_defaults",
           *_LAZY]

if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from spikeode.data import SpikeDataset, iterate_batches, load_dataset, split_validation
    from spikeode.engine.network import FeedForward, Trace, simulate, simulate_neuron
    from spikeode.neurons import (
        EIF,
        LIF,
        QIF,
        AbstractClosedFormNeuron,
        AbstractNeuron,
        AbstractOrderedNeuron,
        AbstractPseudoNeuron,
        resolve_neuron_class,
    )
    from spikeode.spikes import Spikes, spikes_from_lists
    from spikeode.study.gradstats import run_gradstats
    from spikeode.study.hpo import run_search
    from spikeode.study.landscape import LandscapeConfig, compute_landscape
    from spikeode.training import TrainConfig, default_config, load_model, train


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
