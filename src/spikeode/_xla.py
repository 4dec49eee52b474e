"""XLA CPU code-generation defaults for event loops: an explicit call, made by the CLI and the study scripts.

An event loop runs thousands of tiny steps; on CPU its cost is the code XLA emits per step.
XLA's newer "fusion emitters" (default in jaxlib 0.10) make that code slower and much larger to
compile for these programs. Measured on the ``shd`` benchmark (2-core CPU, float32, batch 32,
jaxlib 0.10.2): fwd+grad 107 -> 178 samples/s, compile 5.7 -> 3.9 s, peak RSS 749 -> 371 MiB (the
forward alone is unchanged, 1029 vs 1027 samples/s).

The flag only changes how XLA generates CPU code, never what it computes. ``import spikeode`` does not
set it; :func:`use_fast_cpu_defaults` does, and must run before the first JAX computation (XLA reads
``XLA_FLAGS`` once, when its CPU backend starts; a later call changes nothing and cannot tell).
"""

from __future__ import annotations

import os
import sys

__all__ = ["CPU_FLAGS", "use_fast_cpu_defaults"]

#: Added to ``XLA_FLAGS``; only for jaxlib versions where it was measured (it exists there).
CPU_FLAGS = ("--xla_cpu_use_fusion_emitters=false",)
_MEASURED_FROM = (0, 10)
#: Set to ``0`` to make :func:`use_fast_cpu_defaults` do nothing (e.g. to measure without the flag).
OPT_OUT = "SPIKEODE_XLA_DEFAULTS"


def _jaxlib_version() -> tuple[int, int]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (PackageNotFoundError, ValueError):
        return (0, 0)


def use_fast_cpu_defaults() -> bool:
    """Add ``CPU_FLAGS`` to ``XLA_FLAGS`` (faster, smaller CPU code for event loops); returns whether it did.

    Call it first thing in a script, before any JAX computation::

        import spikeode
        spikeode.use_fast_cpu_defaults()

    Nothing is added when ``SPIKEODE_XLA_DEFAULTS=0``, when jaxlib predates the measurement, or when
    ``XLA_FLAGS`` names the flag already (the user's value wins). A warning is issued when JAX is already
    imported: the flag then takes effect only if no JAX computation has run yet.
    """
    if os.environ.get(OPT_OUT, "1") == "0" or _jaxlib_version() < _MEASURED_FROM:
        return False
    current = os.environ.get("XLA_FLAGS", "")
    missing = [f for f in CPU_FLAGS if f.split("=")[0] not in current]
    if not missing:
        return False
    if "jax" in sys.modules:
        import warnings

        warnings.warn("spikeode.use_fast_cpu_defaults() called after JAX was imported: XLA_FLAGS takes effect "
                      "only if no JAX computation has run yet; call it before importing JAX", stacklevel=2)
    os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()
    return True
