"""Floating-point precision: the one place that switches JAX to 64-bit when a computation asks for float64.

JAX computes in float32 unless its x64 mode is on, and then silently truncates ``float64`` requests
(arrays, dtypes) to float32. Every entry point that accepts ``dtype="float64"`` calls
:func:`ensure_precision` first, so float64 means float64 whether or not the caller enabled x64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["DTYPES", "ensure_precision", "jax_dtype"]

DTYPES = ("float32", "float64")


def ensure_precision(dtype: str) -> None:
    """Make ``dtype`` computable: ``"float64"`` switches on JAX's x64 mode (process-wide, idempotent).

    Raises:
        ValueError: ``dtype`` is not one of ``DTYPES``.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)


def jax_dtype(dtype: str) -> type:
    """``jnp.float32`` or ``jnp.float64`` for a dtype name, after :func:`ensure_precision`."""
    ensure_precision(dtype)
    return getattr(jnp, dtype)
