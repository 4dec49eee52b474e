"""XLA CPU code-generation defaults for event loops, applied once at import (opt out: ``SPIKEODE_XLA_DEFAULTS=0``).

An event loop runs thousands of tiny steps; on CPU its cost is the code XLA emits per step.
XLA's newer "fusion emitters" (default in jaxlib 0.10) make that code slower and much larger to
compile for these programs. Measured on the ``shd`` benchmark (2-core CPU, float32, batch 32,
jaxlib 0.10.2): fwd+grad 107 -> 178 samples/s, compile 5.7 -> 3.9 s, peak RSS 749 -> 371 MiB (the
forward alone is unchanged, 1029 vs 1027 samples/s).

The flag only changes how XLA generates CPU code, never what it computes. It is added to
``XLA_FLAGS`` unless the user set that flag already, opted out, or JAX's backends are already
initialised (then XLA has read its flags and nothing changes); ``applied()`` tells which.
"""

from __future__ import annotations

import os

__all__ = ["CPU_FLAGS", "apply_defaults", "applied"]

#: Added to ``XLA_FLAGS``; only for jaxlib versions where it was measured (it exists there).
CPU_FLAGS = ("--xla_cpu_use_fusion_emitters=false",)
_MEASURED_FROM = (0, 10)
_state = {"applied": False, "reason": "not attempted"}


def _jaxlib_version() -> tuple[int, int]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (PackageNotFoundError, ValueError):
        return (0, 0)


def apply_defaults() -> bool:
    """Add ``CPU_FLAGS`` to ``XLA_FLAGS`` when it is still possible and wanted; returns whether it did."""
    if os.environ.get("SPIKEODE_XLA_DEFAULTS", "1") == "0":
        _state.update(applied=False, reason="SPIKEODE_XLA_DEFAULTS=0")
        return False
    if _jaxlib_version() < _MEASURED_FROM:
        _state.update(applied=False, reason=f"jaxlib older than {'.'.join(map(str, _MEASURED_FROM))}")
        return False
    try:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            _state.update(applied=False, reason="JAX backends were initialised before spikeode was imported")
            return False
    except (ImportError, AttributeError):
        pass
    current = os.environ.get("XLA_FLAGS", "")
    missing = [f for f in CPU_FLAGS if f.split("=")[0] not in current]
    if missing:
        os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()
    _state.update(applied=bool(missing), reason="set" if missing else "XLA_FLAGS already sets it")
    return bool(missing)


def applied() -> tuple[bool, str]:
    """``(applied, reason)`` of the import-time ``apply_defaults()`` call."""
    return _state["applied"], _state["reason"]
