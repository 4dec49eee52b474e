"""The compiled gradient program: minibatch losses and their gradients with respect to the trainable weights.

The trainable weights are ``net.weights``, the recurrent weights and the voltage readout's weights when
present (neuron parameters are held fixed); ``param_groups`` names them by layer. One compiled program
per loss key, chunk and variant (gradient or forward; cached in ``spikeode.study.caches``) maps over a
group of minibatches, minibatch ``i`` at its own weights ``leaves[i]`` (``jax.lax.map``, ``chunk`` of them
vmapped at once); the loss settings, the pseudospike switch included, are its arguments.
"""

from __future__ import annotations

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
    """One compiled ``f(leaves[G], model, times[G,b,E], units[G,b,E], labels[G,b], hyper) -> (loss[G],
    problems[G], grads[G])`` per loss key (``spikeode.training.loop.LossKey``), chunk and variant: ``hyper``
    (:func:`spikeode.training.loop.loss_hyperparameters`) carries ``T``, temperature, gamma and the
    pseudospike switch, so both pseudospike settings and every run of the key share it; ``with_grad=False``:
    the loss only (``grads`` is ``None``), a forward pass."""
    from spikeode.training.loop import LossKey

    key = ("gradstats", LossKey.of(config), chunk, with_grad)
    return caches.cached(key, lambda: _make_program(config, chunk, with_grad))


def _make_program(config, chunk: int, with_grad: bool) -> Callable:
    """The program of ``program_for`` (``jax.lax.map`` over minibatches, ``chunk`` of them vmapped at once)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from spikeode.spikes import Spikes
    from spikeode.training.loop import LossKey, batch_loss

    loss_fn = batch_loss(LossKey.of(config))

    @eqx.filter_jit
    def program(leaves, model, times, units, labels, hyper):
        get, _, _ = param_groups(model, config)

        def one(args):
            w, t, u, y = args

            def objective(w):
                m = eqx.tree_at(get, model, list(w))
                loss, metrics = loss_fn(m, Spikes(t, u, model.net.sizes[0]), y, jnp.ones(y.shape, bool), hyper)
                return loss, metrics["problems"]

            if not with_grad:
                return (*objective(w), None)
            (loss, problems), g = jax.value_and_grad(objective, has_aux=True)(w)
            return loss, problems, g

        return jax.lax.map(one, (leaves, times, units, labels), batch_size=chunk)

    return program
