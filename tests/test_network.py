"""The event-driven network engine: exactness of both integrators, hand-computed cases, flags, batching."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from spikeode.engine.network import FeedForward, check_trace, simulate
from spikeode.integrate import Diffrax
from spikeode.neurons import LIF, QIF
from spikeode.spikes import Spikes, spikes_from_lists

DIFFRAX = Diffrax(rtol=1e-11, atol=1e-11, root_tol=1e-12)
T = 4.0


def random_inputs(rng, batch, n_in, n_events):
    times = [rng.uniform(0, T, n_events) for _ in range(batch)]
    units = [rng.integers(0, n_in, n_events) for _ in range(batch)]
    return spikes_from_lists(times, units, n_in)


def smooth_loss(trace):
    """A scalar touching every spike time of every layer and the final states."""
    total = 0.0
    for layer in trace.layers:
        t = layer.times
        finite = jnp.isfinite(t)
        total += jnp.sum(jnp.where(finite, jnp.sin(1.3 * jnp.where(finite, t, 0.0)), 0.0))
        total += 0.1 * jnp.sum(jnp.cos(layer.state_T))
    return total


NETWORKS = {
    "lif-delta": (LIF(tau_mem=1.0, I0=0.9), 0.35, 0.5),
    "lif-exp": (LIF(tau_mem=1.0, tau_syn=0.5, I0=0.8), 0.6, 0.8),
    "qif-osc": (QIF(tau=1.0, I0=0.4), 0.2, 0.4),
    "qif-exc": (QIF(tau=1.0, I0=-0.05), 0.35, 0.5),
    "qif-exc->lif-exp": ([QIF(tau=1.0, I0=-0.05), LIF(tau_mem=1.0, tau_syn=0.5, I0=0.8)], (0.35, 0.6), (0.5, 0.8)),
}


def make_net(name, key=0, sizes=(6, 5, 3), recurrent=False):
    neuron, mean, std = NETWORKS[name]
    return FeedForward(neuron, sizes, key=jax.random.PRNGKey(key), weight_mean=mean, weight_std=std,
                       n_slots=12, recurrent=recurrent, recurrent_std=0.3)


def counts_of(trace):
    return [np.asarray(layer.counts) for layer in trace.layers]


# Diffrax gradients of a 2-layer network take ~25 s to compile: compared once, for a network of an excitable
# QIF layer (delta synapses) into a LIF layer (exponential synapses); spike times and finite differences for all.
@pytest.mark.parametrize("name, diffrax_grad", [("lif-delta", False), ("lif-exp", False), ("qif-osc", False),
                                                ("qif-exc", False), ("qif-exc->lif-exp", True)])
def test_closed_form_matches_diffrax_and_finite_differences(name, diffrax_grad, rng):
    net = make_net(name)
    spikes = random_inputs(rng, 2, 6, 25)

    def loss(n, integ):
        return smooth_loss(simulate(n, spikes, T, integrator=integ))

    tr_cf = simulate(net, spikes, T, integrator="closed_form")
    tr_dx = simulate(net, spikes, T, integrator=DIFFRAX)
    assert sum(int(c.sum()) for c in counts_of(tr_cf)[1:]) >= 2, "test network should make output spikes"
    for a, b in zip(tr_cf.layers, tr_dx.layers):
        np.testing.assert_array_equal(a.counts, b.counts)
        fin = np.isfinite(a.times)
        np.testing.assert_array_equal(fin, np.isfinite(b.times))
        assert np.max(np.abs(np.asarray(a.times)[fin] - np.asarray(b.times)[fin]), initial=0) <= 1e-8
    g_cf = eqx.filter_jit(eqx.filter_grad(loss))(net, "closed_form")
    flat_cf, _ = ravel_pytree(eqx.filter(g_cf, eqx.is_inexact_array))
    if diffrax_grad:
        g_dx = eqx.filter_grad(loss)(net, DIFFRAX)
        flat_dx, _ = ravel_pytree(eqx.filter(g_dx, eqx.is_inexact_array))
        assert np.max(np.abs(flat_cf - flat_dx)) / np.max(np.abs(flat_cf)) <= 1e-6

    # Central finite differences on the closed-form path along 8 random directions in parameter space.
    diff, static = eqx.partition(net, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(diff)

    def value_and_counts(v):
        trace = simulate(eqx.combine(unravel(v), static), spikes, T, integrator="closed_form")
        return smooth_loss(trace), jnp.concatenate([layer.counts.ravel() for layer in trace.layers])

    directions = jnp.asarray(rng.standard_normal((8, flat.size)))
    directions = directions / jnp.linalg.norm(directions, axis=1, keepdims=True)
    h = 1e-6
    f = jax.jit(jax.vmap(value_and_counts))
    (lp, cp), (lm, cm) = f(flat + h * directions), f(flat - h * directions)
    _, c0 = value_and_counts(flat)
    valid = np.asarray(jnp.all(cp == c0, axis=1) & jnp.all(cm == c0, axis=1))
    assert valid.sum() >= 6
    fd = np.asarray((lp - lm) / (2 * h))[valid]
    predicted = np.asarray(directions @ flat_cf)[valid]
    assert np.max(np.abs(fd - predicted)) / np.max(np.abs(predicted)) <= 1e-5


def test_recurrent_layer_matches_diffrax_and_zero_recurrence_is_feedforward(rng):
    spikes = random_inputs(rng, 2, 6, 25)
    net = make_net("qif-osc", recurrent=[True, False])
    ff = eqx.tree_at(lambda n: n.recurrent, net, (None, None))
    zero = eqx.tree_at(lambda n: n.recurrent[0], net, jnp.zeros_like(net.recurrent[0]))
    a, b = simulate(zero, spikes, T), simulate(ff, spikes, T)
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_allclose(la.times, lb.times, rtol=0, atol=1e-14)
    tr_cf = simulate(net, spikes, T, integrator="closed_form")
    tr_dx = simulate(net, spikes, T, integrator=DIFFRAX)
    assert not np.array_equal(np.asarray(tr_cf.layers[0].times), np.asarray(b.layers[0].times))
    for la, lb in zip(tr_cf.layers, tr_dx.layers):
        np.testing.assert_array_equal(la.counts, lb.counts)
        fin = np.isfinite(la.times)
        assert np.max(np.abs(np.asarray(la.times)[fin] - np.asarray(lb.times)[fin]), initial=0) <= 1e-8


def test_hand_computed_chain():
    """1 input -> 1 hidden -> 1 output, LIF delta with supra-threshold drive: every formula by hand."""
    tau, i_h, i_o, t_a, w1, w2 = 1.0, 1.5, 1.2, 0.3, 0.4, 0.3
    hidden, out = LIF(tau_mem=tau, I0=i_h), LIF(tau_mem=tau, I0=i_o)
    net = FeedForward([hidden, out], (1, 1, 1), key=jax.random.PRNGKey(0), n_slots=1)
    net = eqx.tree_at(lambda n: n.weights, net, (jnp.array([[w1]]), jnp.array([[w2]])))
    spikes = Spikes(jnp.array([t_a]), jnp.array([0]), 1)

    def first_times(n):
        tr = simulate(n, spikes, 1.5, integrator="closed_form")
        return tr.layers[0].times[0, 0], tr.layers[1].times[0, 0]

    v_plus = i_h * (1 - np.exp(-t_a / tau)) + w1
    t_h = t_a + tau * np.log((i_h - v_plus) / (i_h - 1))
    vo_plus = i_o * (1 - np.exp(-t_h / tau)) + w2
    t_o = t_h + tau * np.log((i_o - vo_plus) / (i_o - 1))
    dth_dw1 = -tau / (i_h - v_plus)
    dto_dth = 1 - tau * (i_o / tau) * np.exp(-t_h / tau) / (i_o - vo_plus)
    dto_dw2 = -tau / (i_o - vo_plus)
    th, to = first_times(net)
    assert abs(float(th) - t_h) < 1e-14 and abs(float(to) - t_o) < 1e-14
    g = eqx.filter_grad(lambda n: first_times(n)[1])(net)
    assert np.isclose(float(g.weights[0][0, 0]), dto_dth * dth_dw1, rtol=1e-12)
    assert np.isclose(float(g.weights[1][0, 0]), dto_dw2, rtol=1e-12)


def test_budget_exhaustion_is_flagged_and_strict_raises(rng):
    net = make_net("qif-osc")
    spikes = random_inputs(rng, 3, 6, 25)
    tr = simulate(net, spikes, T, budget=[10, None])
    assert bool(np.all(tr.exhausted))
    with pytest.raises(RuntimeError, match=r"layer 0, sample 0: the event budget ran out.*budget 10 events, this sample needs \d+"):
        simulate(net, spikes, T, budget=[10, None], strict=True)
    full = simulate(net, spikes, T, strict=True)
    assert not bool(np.any(full.exhausted))
    needed = int(full.layers[0].events_used[0])
    assert f"needs {needed}" in _strict_message(net, spikes)


def _strict_message(net, spikes):
    try:
        simulate(net, spikes, T, budget=[10, None], strict=True)
    except RuntimeError as err:
        return str(err)
    return ""


def test_slot_overflow_is_flagged():
    net = FeedForward(QIF(tau=0.1, I0=4.0), (1, 2), key=jax.random.PRNGKey(0), n_slots=2)
    spikes = Spikes(jnp.array([[0.1]]), jnp.array([[0]]), 1)
    tr = simulate(net, spikes, T)
    assert bool(tr.overflow[0]) and int(tr.layers[0].counts[0, 0]) > 2
    with pytest.raises(RuntimeError, match="spike slots"):
        check_trace(tr)


def test_nan_weight_is_a_clear_error(rng):
    net = make_net("lif-delta")
    net = eqx.tree_at(lambda n: n.weights[1], net, net.weights[1].at[2, 1].set(jnp.nan))
    with pytest.raises(ValueError, match=r"layer 1 weights\[2, 1\] is nan"):
        simulate(net, random_inputs(rng, 1, 6, 5), T, strict=True)


def test_vmap_equals_python_loop(rng):
    net = make_net("lif-delta")
    spikes = random_inputs(rng, 4, 6, 20)
    batch = simulate(net, spikes, T)
    for b in range(4):
        single = simulate(net, spikes[b], T)
        for lb, ls in zip(batch.layers, single.layers):
            np.testing.assert_array_equal(lb.counts[b], ls.counts)  # same events ...
            np.testing.assert_allclose(lb.times[b], ls.times, rtol=1e-10)  # ... up to rounding of fused ops
            np.testing.assert_allclose(lb.state_T[b], ls.state_T, rtol=1e-10, atol=1e-12)


def test_wrong_input_width_is_an_error(rng):
    with pytest.raises(ValueError, match="6 channels"):
        simulate(make_net("lif-delta", sizes=(7, 3)), random_inputs(rng, 1, 6, 5), T)
