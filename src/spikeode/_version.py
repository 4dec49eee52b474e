"""The installed package's version (``spikeode.__version__``), readable by any module without the package root."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spikeode")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
