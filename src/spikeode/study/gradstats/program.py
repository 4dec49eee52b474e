"""The compiled gradient program: minibatch losses and their gradients with respect to the trainable weights.

The trainable weights are ``net.weights``, the recurrent weights and the voltage readout's weights when
present (neuron parameters are held fixed); ``param_groups`` names them by layer. One compiled program
per loss configuration, chunk and variant (cached in ``spikeode.study.caches``) maps over minibatches,
minibatch ``i`` at its own weights ``leaves[i]`` (``jax.lax.map``, ``chunk`` minibatches vmapped at once).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np

from spikeode.study import caches

__all__ = ["group", "param_groups", "program_for"]


def param_groups(model, config):
    """(getter(model) -> list of trainable arrays, layer index of each, layer names)."""
    from spikeode.training import spiking_layer_names

    net = model.net
    n = len(net.weights)
    spiking_out = model.readout_weights is None
    names = spiking_layer_names(config)
    layer_of = list(range(n))
    rec = [i for i, r in enumerate(net.recurrent) if r is not None]
    layer_of += rec
    if not spiking_out:
        names.append("readout")
        layer_of.append(n)

    def get(m):
        leaves = list(m.net.weights) + [m.net.recurrent[i] for i in rec]
        return leaves + ([m.readout_weights] if not spiking_out else [])

    return get, layer_of, names


def group(leaves: Sequence, layer_of: Sequence[int], n_layers: int, axis_lead: int) -> list[np.ndarray]:
    """Per layer, its leaves flattened after the first ``axis_lead`` axes and concatenated (``param_groups``)."""
    out = []
    for l in range(n_layers):
        parts = [np.asarray(x).reshape(*np.asarray(x).shape[:axis_lead], -1) for x, k in zip(leaves, layer_of) if k == l]
        out.append(np.concatenate(parts, -1) if len(parts) > 1 else parts[0])
    return out



def program_for(config, chunk: int, with_grad: bool = True):
    """One compiled ``f(leaves[B], model, times[B,b,E], units, labels[B,b]) -> (loss[B], problems[B], grads[B])``
    per loss configuration (seed excluded: it does not change the loss); ``with_grad=False``: the
    loss only (``grads`` is ``None``), a forward pass."""
    key = ("gradstats", json.dumps({k: v for k, v in config.to_dict().items() if k != "seed"}, sort_keys=True,
                                   default=str), chunk, with_grad)
    return caches.cached(key, lambda: _make_program(config, chunk, with_grad))


def _make_program(config, chunk: int, with_grad: bool) -> Callable:
    """The program of ``program_for`` (``jax.lax.map`` over minibatches, ``chunk`` of them vmapped at once)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from spikeode.spikes import Spikes
    from spikeode.training import make_loss_fn

    loss_fn = make_loss_fn(config)

    @eqx.filter_jit
    def program(leaves, model, times, units, labels):
        get, _, _ = param_groups(model, config)

        def one(args):
            w, t, u, y = args

            def objective(w):
                m = eqx.tree_at(get, model, list(w))
                loss, metrics = loss_fn(m, Spikes(t, u, model.net.sizes[0]), y, jnp.ones(y.shape, bool))
                return loss, metrics["problems"]

            if not with_grad:
                return (*objective(w), None)
            (loss, problems), g = jax.value_and_grad(objective, has_aux=True)(w)
            return loss, problems, g

        return jax.lax.map(one, (leaves, times, units, labels), batch_size=chunk)

    return program
