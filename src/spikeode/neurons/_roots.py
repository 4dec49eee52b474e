"""Safeguarded, differentiable root finding for closed-form flows without a closed-form crossing time."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Scalar, ScalarLike

__all__ = ["bracketed_root", "exprel", "log1prel"]


def exprel(x):
    """``expm1(x)/x``, equal to 1 at ``x = 0``, with finite gradients everywhere."""
    small = jnp.abs(x) < 1e-6
    xs = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 + x / 2 + x * x / 6, jnp.expm1(xs) / xs)


def log1prel(x):
    """``log1p(x)/x``, equal to 1 at ``x = 0``, with finite gradients for ``x > -1``."""
    small = jnp.abs(x) < 1e-6
    xs = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 - x / 2 + x * x / 3, jnp.log1p(xs) / xs)


def bracketed_root(
    g: Callable[[Scalar], Scalar],
    dg: Callable[[Scalar], Scalar],
    a: ScalarLike,
    b: ScalarLike,
    *,
    iterations: int = 24,
) -> Scalar:
    """Root of ``g`` in ``[a, b]`` where ``g(a) < 0 <= g(b)`` and ``g`` is monotone on the bracket.

    Newton steps that stay inside the shrinking bracket, bisection otherwise, for a fixed number
    of iterations (jit- and vmap-friendly). The returned value carries the implicit-function
    derivative ``-(dg/dp)/g'`` with respect to whatever ``g`` closes over: the iteration runs on
    stopped gradients and one final Newton step from the (stopped) root restores the sensitivity.
    """
    a = jax.lax.stop_gradient(a)
    b = jax.lax.stop_gradient(b)
    g_ng = lambda t: jax.lax.stop_gradient(g(t))  # noqa: E731
    dg_ng = lambda t: jax.lax.stop_gradient(dg(t))  # noqa: E731

    def body(_, state):
        lo, hi, x = state
        gx = g_ng(x)
        lo = jnp.where(gx < 0, x, lo)
        hi = jnp.where(gx < 0, hi, x)
        d = dg_ng(x)
        newton = x - gx / jnp.where(d == 0, 1.0, d)
        # inclusive: at an exact root (gx == 0, so hi == x) Newton stays put instead of bisecting away
        ok = (d != 0) & (newton >= lo) & (newton <= hi)
        x = jnp.where(ok, newton, 0.5 * (lo + hi))
        return lo, hi, x

    _, _, root = jax.lax.fori_loop(0, iterations, body, (a, b, 0.5 * (a + b)))
    root = jax.lax.stop_gradient(root)
    slope = dg(root)
    slope = jnp.where(slope > 0, slope, 1.0)
    return root - g(root) / slope
