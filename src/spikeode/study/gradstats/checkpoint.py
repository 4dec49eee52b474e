"""The statistics of one checkpoint: seeded minibatches, gradients at theta and after steps along ``-g``.

``B`` full minibatches of the training split are drawn (``draw_minibatches``); the program
(``spikeode.study.gradstats.program``) gives every minibatch's loss and gradient at theta, on the first
``probes`` minibatches also with pseudospikes switched, after each step ``delta_i(s)`` (losses; gradients at
``s = 1``) and at ``theta - delta_i(1)`` (loss); the NumPy statistics
(``spikeode.study.gradstats.statistics``) turn them into the values of ``VARIABLES``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence

import numpy as np

from spikeode.study.gradstats.definitions import DEFAULT_PROBES, DEFAULT_STEP_SCALES
from spikeode.study.gradstats.program import group, param_groups, program_for
from spikeode.study.gradstats.statistics import (
    gradient_statistics,
    predictiveness_statistics,
    with_all,
    zero_fractions,
)

__all__ = ["checkpoint_gradstats", "draw_minibatches"]


def draw_minibatches(train_set, batch_size: int, n_batches: int, seed: int):
    """``n_batches`` seeded full minibatches of the split, stacked: ``(times[B,b,E], units[B,b,E], labels[B,b])``."""
    from spikeode.data import iterate_batches

    b = min(batch_size, len(train_set))
    times, units, labels = [], [], []
    k = 0
    while len(labels) < n_batches:
        for spikes, y in iterate_batches(train_set, b, seed=1_000_003 * seed + k, drop_last=True):
            times.append(np.asarray(spikes.times))
            units.append(np.asarray(spikes.units))
            labels.append(np.asarray(y))
            if len(labels) == n_batches:
                break
        k += 1
    return np.stack(times), np.stack(units), np.stack(labels)


def checkpoint_gradstats(model, config, batches, *, step_scales: Sequence[float] = DEFAULT_STEP_SCALES,
                         step_kind: str = "auto", chunk: int = 4, probes: int = DEFAULT_PROBES) -> dict:
    """Every statistic of one checkpoint on ``batches = (times, units, labels)`` (``draw_minibatches``).

    ``probes``: how many of the ``B`` minibatches (the first ones) carry the step-based statistics and
    the zero fractions of the other pseudospike setting (see "Cost" in ``spikeode.study.gradstats``).
    Returns ``{"values": {name: array}, "layers": [...], "step_scales": [...], "timing": {...}}``.
    """
    import jax.numpy as jnp

    from spikeode.training.loop import loss_hyperparameters

    step_scales = [float(s) for s in step_scales]
    if 1.0 not in step_scales:
        step_scales.append(1.0)
    if step_kind == "auto":
        step_kind = "sgd" if config.optimizer == "sgd" else "adam"
    if step_kind not in ("sgd", "adam"):
        raise ValueError(f"step_kind must be auto, sgd or adam, got {step_kind!r}")
    get, layer_of, names = param_groups(model, config)
    n_layers = len(names)
    times, units, labels = (jnp.asarray(x) for x in batches)
    B = labels.shape[0]
    if B < 2:
        raise ValueError("need at least 2 minibatches")
    n_probe = min(max(int(probes), 1), B)
    # Every call runs groups of n_probe minibatches (the last one padded), so one gradient program (both
    # pseudospike settings: hyper's switch) and one forward program serve every call; the largest divisor of
    # n_probe up to chunk: lax.map then runs whole chunks.
    chunk = max(d for d in range(1, min(chunk, n_probe) + 1) if n_probe % d == 0)
    base = [np.asarray(x) for x in get(model)]
    hyper = loss_hyperparameters(config)
    t0 = time.perf_counter()

    def call(leaves, n, *, with_grad=True, pseudospikes=bool(config.pseudospikes)):
        """The loss (and gradient) of the first ``n`` minibatches, minibatch ``i`` at parameters ``leaves[i]``."""
        prog = program_for(config, chunk, with_grad)
        h = {**hyper, "pseudospikes": jnp.asarray(pseudospikes)}
        parts = []
        for start in range(0, n, n_probe):
            idx = np.minimum(np.arange(start, start + n_probe), n - 1)  # the last group repeats minibatch n-1
            parts.append(prog([jnp.asarray(np.asarray(w)[idx]) for w in leaves], model, times[idx], units[idx],
                              labels[idx], h))
        loss, problems = (np.concatenate([np.asarray(p[k]) for p in parts])[:n] for k in (0, 1))
        g = None if not with_grad else [np.concatenate([np.asarray(p[2][k]) for p in parts])[:n]
                                        for k in range(len(leaves))]
        return loss.astype(np.float64), problems, g

    at_theta = lambda n: [np.broadcast_to(w, (n, *w.shape)) for w in base]
    loss0, problems0, g0 = call(at_theta(B), B)
    t_first = time.perf_counter() - t0
    g0_layers = group(g0, layer_of, n_layers, 1)
    values = gradient_statistics(g0_layers, names)

    # The loss with pseudospikes switched, for the zero-gradient fractions (on the probes).
    _, _, g_other = call(at_theta(n_probe), n_probe, pseudospikes=not config.pseudospikes)
    g_own = [x[:n_probe] for x in g0]
    zero = {}
    for setting, g in ((bool(config.pseudospikes), g_own), (not config.pseudospikes, g_other)):
        probe_stats = [zero_fractions(x) for x in with_all(group(g, layer_of, n_layers, 1))]
        zero[setting] = {k: np.array([r[k] for r in probe_stats]) for k in probe_stats[0]}
    for name in ("zero_grad_fraction", "zero_grad_fraction_all"):
        values[name] = np.stack([zero[False][name], zero[True][name]])  # pseudospikes = 0, 1

    # Steps along -g on the probes: losses at every scale (forward passes), gradients after the s = 1 step.
    gflat = np.concatenate([x[:n_probe].reshape(n_probe, -1) for x in g0], 1).astype(np.float64)
    gnorm = np.linalg.norm(gflat, axis=1)
    P = gflat.shape[1]
    if step_kind == "sgd":
        c = np.ones(n_probe)
    else:
        c = np.where(gnorm > 0, math.sqrt(P) / np.where(gnorm > 0, gnorm, 1.0), 0.0)
    shifted = lambda d, sign: [(w[None] + sign * dd).astype(w.dtype) for w, dd in zip(base, d)]
    deltas, loss_s, grads_s = [], [], []
    for s in step_scales:
        d = [(-config.lr * s * c.reshape(-1, *[1] * (x.ndim - 1)) * x[:n_probe].astype(np.float64)) for x in g0]
        loss, _, g = call(shifted(d, 1.0), n_probe, with_grad=s == 1.0)
        deltas.append(d)
        loss_s.append(loss)
        grads_s.append(g if g is not None else [np.full(x[:n_probe].shape, np.nan) for x in g0])
    d1 = deltas[step_scales.index(1.0)]
    loss_back, _, _ = call(shifted(d1, -1.0), n_probe, with_grad=False)
    stack = lambda per_s: [np.stack([x[k] for x in per_s]) for k in range(len(base))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nan-means over the scales without gradients
        pred = predictiveness_statistics(
            loss0[:n_probe], [x[:n_probe] for x in g0_layers], step_scales,
            group(stack(deltas), layer_of, n_layers, 2), np.stack(loss_s),
            group(stack(grads_s), layer_of, n_layers, 2), loss_back)
    values.update(pred)
    values["loss"] = np.float64(loss0.mean())
    values["problems"] = np.float64(problems0.sum())
    total = time.perf_counter() - t0
    evaluations = {"gradients": B + 2 * n_probe, "losses": len(step_scales) * n_probe}
    return {"values": values, "layers": names + ["all"], "step_scales": step_scales, "step_kind": step_kind,
            "probes": n_probe, "timing": {"first_call_s": t_first, "total_s": total, **evaluations}}
