"""spikeode: spiking neural networks as declarative ODEs, simulated exactly, with exact gradients."""

from importlib.metadata import PackageNotFoundError, version

from . import _xla

_xla.apply_defaults()

try:
    __version__ = version("spikeode")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
