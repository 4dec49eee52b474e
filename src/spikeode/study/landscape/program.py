"""The compiled landscape programs: the loss, its gradient and the spike times at ``W* + sum_k o_k d_k``.

One jitted program per run configuration and variant (cached in ``spikeode.study.caches``) evaluates
``P`` grid points at once (``vmap`` over the parameter offsets ``o[P, D]``); the grid's shape, the batch
and the directions are arguments, so every chunk and every rerun with the same configuration reuses it:

- the grid program (``per_sample`` False): ``value_and_grad`` of the mean loss over the batch;
- the per-sample grid program (``per_sample`` True): the same for each sample on its own (``vmap``);
- the forward program (``per_sample`` None): spike times of point ``p`` on its own sample, no gradient
  (event location, ``spikeode.study.scan_events``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from spikeode.study import caches

__all__ = ["program_for", "sample_objective"]


def _simulator(config) -> Callable:
    """``run(weights, model, times, units) -> (model with those weights, Trace)`` for one sample."""
    import equinox as eqx

    from spikeode.engine.network import simulate
    from spikeode.spikes import Spikes

    def run(w, model, times, units):
        model = eqx.tree_at(lambda m: m.net.weights, model, tuple(w))
        return model, simulate(model.net, Spikes(times, units, model.net.sizes[0]), config.T,
                               integrator=config.integrator)

    return run


def _problem(trace):
    """1 where a sample's event budget ran out, its slots overflowed or a solve failed."""
    import jax.numpy as jnp

    return (trace.exhausted | trace.overflow | trace.failed).astype(jnp.int32)


def _weights_at(offset, base, dirs):
    """``W* + sum_k offset[k] dirs[k]`` per layer, in the weights' dtype."""
    return tuple((b + sum(offset[k] * dirs[k][l] for k in range(len(dirs)))).astype(b.dtype)
                 for l, b in enumerate(base))


def sample_objective(config) -> Callable:
    """``obj(weights, model, times, units, label) -> (loss, (accuracy, layer spike times, counts, problem))``
    for one sample: the training loss (``spikeode.training.loss``); the accuracy counts pseudospikes."""
    from spikeode.training import Objective, sample_loss

    run = _simulator(config)
    objective = Objective.of(config)

    def obj(w, model, times, units, label):
        model, trace = run(w, model, times, units)
        loss, _, acc = sample_loss(objective, model.net, trace, label, model.readout_weights)
        return loss, (acc, tuple(la.times for la in trace.layers), tuple(la.counts for la in trace.layers),
                      _problem(trace))

    return obj


def _make_forward(config) -> Callable:
    """One jitted ``forward(offsets[P, 1], base, dirs, model, times[P], units[P]) -> (layer times, problem)``:
    the spike times of point ``p`` on its own sample, no gradient (event location, ``scan_events``)."""
    import equinox as eqx
    import jax

    run = _simulator(config)

    def point(offset, base, dirs, model, times, units):
        _, trace = run(_weights_at(offset, base, dirs), model, times, units)
        return tuple(la.times for la in trace.layers), _problem(trace)

    @eqx.filter_jit
    def forward(offsets, base, dirs, model, times, units):
        return jax.vmap(point, in_axes=(0, None, None, None, 0, 0))(offsets, base, dirs, model, times, units)

    return forward


def _per_sample_point(obj, w, model, times, units, labels):
    """Loss, aux and gradient of every sample on its own (leading axis: sample)."""
    import jax
    import jax.numpy as jnp

    def one(t, u, y):
        (loss, aux), g = jax.value_and_grad(obj, has_aux=True)(w, model, t, u, y)
        return loss, aux, g

    loss, (acc, ltimes, counts, problem), g = jax.vmap(one)(times, units, labels)
    n_spikes = jnp.stack([c.sum(-1) for c in counts], -1).astype(loss.dtype)
    silent = jnp.stack([jnp.mean(c == 0, -1) for c in counts], -1)
    return loss, acc, ltimes, problem, g, n_spikes, silent


def _batch_point(obj, w, model, times, units, labels):
    """Mean loss over the batch, its gradient and batch summaries (leading axis of length 1)."""
    import jax
    import jax.numpy as jnp

    def mean_obj(w):
        losses, aux = jax.vmap(obj, in_axes=(None, None, 0, 0, 0))(w, model, times, units, labels)
        return jnp.mean(losses), aux

    (loss, (acc, ltimes, counts, problem)), g = jax.value_and_grad(mean_obj, has_aux=True)(w)
    loss, acc, problem = loss[None], jnp.mean(acc)[None], jnp.sum(problem)[None]
    g = tuple(x[None] for x in g)
    n_spikes = jnp.stack([jnp.mean(c.sum(-1)) for c in counts], -1)[None].astype(loss.dtype)
    silent = jnp.stack([jnp.mean(jnp.all(c == 0, axis=0)) for c in counts], -1)[None]
    return loss, acc, ltimes, problem, g, n_spikes, silent


def _make_program(config, per_sample: bool) -> Callable:
    """One jitted ``program(offsets[P, D], base, dirs, model, times, units, labels) -> dict`` (leading P)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    obj = sample_objective(config)
    evaluate = _per_sample_point if per_sample else _batch_point

    def point(offset, base, dirs, model, times, units, labels):
        w = _weights_at(offset, base, dirs)
        loss, acc, ltimes, problem, g, n_spikes, silent = evaluate(obj, w, model, times, units, labels)
        s = loss.shape[0]
        flat = jnp.concatenate([x.reshape(s, -1) for x in g], axis=1)
        proj = jnp.stack([sum(jnp.sum(g[l].reshape(s, -1) * d[l].reshape(1, -1).astype(g[l].dtype), axis=1)
                              for l in range(len(g))) for d in dirs], -1)
        return {"loss": loss, "accuracy": acc, "grad_proj": proj, "grad_norm": jnp.linalg.norm(flat, axis=1),
                "n_spikes": n_spikes, "silent_fraction": silent.astype(loss.dtype), "problems": problem,
                "grad": flat, "times": ltimes}

    @eqx.filter_jit
    def program(offsets, base, dirs, model, times, units, labels):
        return jax.vmap(lambda o: point(o, base, dirs, model, times, units, labels))(offsets)

    return program


def program_for(run_config, per_sample: bool | None) -> Callable:
    """The cached grid program (``per_sample`` True/False) or forward program (``None``) of a run config."""
    key = ("landscape", json.dumps(run_config.to_dict(), sort_keys=True, default=str), per_sample)
    build = (lambda: _make_forward(run_config)) if per_sample is None else (
        lambda: _make_program(run_config, per_sample))
    return caches.cached(key, build)
