"""Directions in weight space: seeded filter-normalised Gaussian, loss descent, or towards another checkpoint.

Direction ``k`` (0: alpha, 1: beta) of layer ``l`` is ``default_rng([seed, k, l]).standard_normal(W_l.shape)``
with each row (one neuron's incoming weights, ``[out, in]`` layout) rescaled to ``||W*_l[n, :]||`` (Li et
al. 2018 filter normalisation, per neuron). ``gradient`` replaces alpha by ``-g`` filter-normalised the same
way (``g`` the gradient of the mean loss over the landscape's batch at ``W*``): every neuron's row moves by
the norm of its own weights, as on a random plane. A global rescale (``-g ||W*|| / ||g||``, used until
2026-12-01) moved a layer of small weights by the whole network's norm: on the reference studies' QIF
winners (hidden weights ~1-4, output weights ~0.04) the first grid step left the spiking regime, loss ~1e9 on
72 of 81 points of every gradient plane. ``checkpoint:DIR`` replaces alpha by ``W_DIR - W*``.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from spikeode.study.landscape.config import LandscapeConfig

__all__ = ["filter_normalise", "make_directions", "random_direction"]

Direction = tuple[np.ndarray, ...]  # float64 arrays, one per layer's weights


def filter_normalise(direction: Float[np.ndarray, "out in"], weights: Float[np.ndarray, "out in"]
                     ) -> Float[np.ndarray, "out in"]:
    """Rescale each row (one neuron's incoming weights, ``[out, in]`` layout) to the norm of that row of
    ``weights`` (Li et al. 2018 filter normalisation, per neuron). A zero row stays zero."""
    d = np.asarray(direction, np.float64)
    w = np.asarray(weights, np.float64)
    dn = np.linalg.norm(d, axis=1, keepdims=True)
    wn = np.linalg.norm(w, axis=1, keepdims=True)
    return np.where(dn > 0, d * wn / np.where(dn > 0, dn, 1.0), 0.0)


def random_direction(weights, seed: int, k: int) -> Direction:
    """Filter-normalised Gaussian direction ``k`` for a tuple of layer weights (float64, exact from the seed)."""
    out = []
    for l, w in enumerate(weights):
        g = np.random.default_rng([int(seed), int(k), l]).standard_normal(np.shape(w))
        out.append(filter_normalise(g, w))
    return tuple(out)


def make_directions(lc: LandscapeConfig, model, run_config, times, units, labels) -> list[Direction]:
    """The ``lc.n_dirs`` directions (alpha first) as float64 arrays per layer."""
    weights = tuple(np.asarray(w) for w in model.net.weights)
    dirs = [random_direction(weights, lc.seed, k) for k in range(lc.n_dirs)]
    if lc.direction == "gradient":
        g = _gradient_at(model, run_config, times, units, labels)
        dirs[0] = tuple(filter_normalise(-np.asarray(x, np.float64), w) for x, w in zip(g, weights))
    elif lc.direction.startswith("checkpoint:"):
        from spikeode.training import load_checkpoint

        other, _, _, _ = load_checkpoint(lc.direction.split(":", 1)[1])
        if [w.shape for w in other.net.weights] != [w.shape for w in weights]:
            raise ValueError(f"{lc.direction}: the other checkpoint's weight shapes differ")
        dirs[0] = tuple(np.asarray(o, np.float64) - np.asarray(w, np.float64) for o, w in zip(other.net.weights, weights))
    return dirs


def _gradient_at(model, run_config, times, units, labels) -> list[np.ndarray]:
    """Gradient of the mean loss over the batch with respect to ``net.weights`` at the checkpoint."""
    import jax
    import jax.numpy as jnp

    from spikeode.study.landscape.program import sample_objective

    obj = sample_objective(run_config)

    def mean_loss(w):
        losses, _ = jax.vmap(obj, in_axes=(None, None, 0, 0, 0))(w, model, times, units, labels)
        return jnp.mean(losses)

    return [np.asarray(x) for x in jax.jit(jax.grad(mean_loss))(tuple(model.net.weights))]
