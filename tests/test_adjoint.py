"""The event adjoint (``spikeode.engine.adjoint``) equals autodiff through the event loop and finite differences."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from spikeode.engine._event_loop import END, INDUCED, RECEIVE, SPIKE
from spikeode.engine.adjoint import record_events, simulate_layer_adjoint
from spikeode.engine.layer import simulate_layer
from spikeode.engine.network import FeedForward, simulate
from spikeode.integrate import Diffrax
from spikeode.neurons import EIF, LIF, QIF, AbstractNeuron, as_trainable
from spikeode.spikes import spikes_from_lists

T = 4.0
SLOTS = 10
DIFFRAX = Diffrax(rtol=1e-12, atol=1e-12, root_tol=1e-12)


class AdaptiveCondLIF(AbstractNeuron):
    """A model declared here, as a user would: LIF with spike-triggered adaptation and a
    conductance-like input jump (state-dependent ``receive``, parameter-dependent ``reset`` and
    ``receive``: exercises ``J != I``, ``dr/dp`` and ``dj/dp``). No closed form: diffrax path."""

    tau: float = 1.0
    tau_a: float = 2.0
    I0: float = 1.3
    b: float = 0.3
    E: float = 3.0
    v_th: float = 1.0

    def initial_state(self):
        return jnp.zeros(2, dtype=jnp.result_type(self.tau, float))

    def vector_field(self, t, y, args):
        return jnp.stack([(-y[0] + self.I0 - y[1]) / self.tau, -y[1] / self.tau_a])

    def threshold(self, y):
        return y[0] - self.v_th

    def reset(self, y):
        return jnp.stack([0.1 * y[1], y[1] + self.b])

    def receive(self, y, w):
        return y.at[0].add(w * (self.E - y[0]) / self.E)


# name: (neuron, integrator, weight mean, weight std)
LAYER_MODELS = {
    "lif-delta": (LIF(tau_mem=1.0, I0=1.1), "closed_form", 0.5, 0.5),
    "lif-exp": (LIF(tau_mem=1.0, tau_syn=0.5, I0=0.8), "closed_form", 0.5, 0.5),
    "lif-exp-ratio": (LIF(tau_mem=1.0, tau_syn=0.3, I0=0.8), "closed_form", 0.5, 0.5),
    "qif-osc": (QIF(tau=1.0, I0=0.4), "closed_form", 0.2, 0.4),
    "qif-exc": (QIF(tau=1.0, I0=-0.05), "closed_form", 0.5, 0.5),
    "eif-diffrax": (EIF(I0=0.5), DIFFRAX, 0.5, 0.5),
    "user-diffrax": (AdaptiveCondLIF(), DIFFRAX, 0.6, 0.5),
}
# adjoint vs autodiff (relative, max-abs normalised per array). Closed form: both exact, so they
# agree to rounding. Diffrax: both carry the forward tolerance (rtol 1e-12) -- autodiff through the
# discretised solve, the adjoint through re-integrated segments; measured 1e-10 (LIF) .. 1e-8 (EIF,
# stiff near v_peak) at rtol 1e-11.
AD_TOL = {"closed_form": 1e-8, "diffrax": 1e-6}


def layer_inputs(seed, neuron, mean, std, n_in=5, n=4, k=15):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, T, k))
    u = rng.integers(0, n_in, k)
    w = mean + std * rng.standard_normal((n, n_in))
    return as_trainable(neuron), jnp.asarray(w), jnp.asarray(t), jnp.asarray(u, jnp.int32)


def spike_loss(times):
    """First-spike loss: each neuron's first spike time (``T`` if silent), weighted."""
    first = jnp.where(jnp.isfinite(times[:, 0]), times[:, 0], T)
    c = jnp.linspace(0.5, 1.5, times.shape[0])
    all_times = jnp.sum(jnp.where(jnp.isfinite(times), jnp.sin(1.3 * jnp.where(jnp.isfinite(times), times, 0.0)), 0.0))
    return jnp.sum(c * first) + 0.1 * all_times


def state_loss(y):
    b = jnp.linspace(-1.0, 1.0, y.size).reshape(y.shape)
    return jnp.sum(jnp.cos(y + b))


def layer_loss(sim, integ):
    def loss(params, u, mix):
        neuron, w, t = params
        tr = sim(neuron, w, t, u, T, n_slots=SLOTS, integrator=integ)
        return mix[0] * spike_loss(tr.times) + mix[1] * state_loss(tr.state_T)

    return loss


def rel_err(a, b):
    """max |a - b| / max |b| per array, worst over arrays."""
    errs = [float(jnp.max(jnp.abs(x - y)) / jnp.maximum(jnp.max(jnp.abs(y)), 1e-300))
            for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))]
    return max(errs)


MIXES = {"spikes": (1.0, 0.0), "state": (0.0, 1.0), "both": (1.0, 1.0)}


def directional_fd(value_and_counts, params, grad, n_dir=4, h=1e-6, seed=0):
    """Central differences of the loss along random directions vs ``grad . v`` (where no spike count changes).

    ``value_and_counts(params) -> (loss, spike counts)``.
    """
    diff, static = eqx.partition(params, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(diff)
    gflat, _ = ravel_pytree(eqx.filter(grad, eqx.is_inexact_array))
    v = jax.random.normal(jax.random.PRNGKey(seed), (n_dir, flat.size), flat.dtype)
    points = jnp.concatenate([flat + h * v, flat - h * v, flat[None]])
    vals, counts = jax.jit(jax.vmap(lambda x: value_and_counts(eqx.combine(unravel(x), static))))(points)
    counts = np.asarray(counts).reshape(len(points), -1)
    valid = np.all(counts[:-1] == counts[-1], axis=1)
    valid = valid[:n_dir] & valid[n_dir:]
    assert valid.sum() >= n_dir // 2, "finite differences crossed spike (dis)appearances"
    fd = np.asarray((vals[:n_dir] - vals[n_dir:2 * n_dir]) / (2 * h))
    exact = np.asarray(v @ gflat)
    return float(np.max(np.abs(fd - exact)[valid]) / np.max(np.abs(exact[valid])))


@pytest.mark.parametrize("name", list(LAYER_MODELS))
def test_layer_adjoint_matches_autodiff_and_fd(name):
    neuron, integ, mean, std = LAYER_MODELS[name]
    *params, u = layer_inputs(1, neuron, mean, std)
    params = tuple(params)
    closed = integ == "closed_form"
    mix_both = jnp.asarray(MIXES["both"])

    @jax.jit
    def forward(params, u):
        tr_a = simulate_layer(*params, u, T, n_slots=SLOTS, integrator=integ)
        tr_j = simulate_layer_adjoint(*params, u, T, n_slots=SLOTS, integrator=integ)
        kinds = record_events(*params, u, T, n_slots=SLOTS, integrator=integ).kind
        return tr_a, tr_j, kinds

    tr_a, tr_j, kinds = forward(params, u)
    kinds = np.bincount(np.asarray(kinds), minlength=5)
    assert kinds[SPIKE] + kinds[INDUCED] >= 3 and kinds[END] == 1 and kinds[RECEIVE] == 15
    # The forward pass is the layer's own event loop, value for value (up to XLA fusion rounding).
    np.testing.assert_allclose(tr_a.times, tr_j.times, rtol=1e-14)
    np.testing.assert_allclose(tr_a.state_T, tr_j.state_T, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(tr_a.counts, tr_j.counts)

    grad_ad = jax.jit(jax.grad(layer_loss(simulate_layer, integ)))
    grad_adj = jax.jit(jax.grad(layer_loss(simulate_layer_adjoint, integ)))
    tol = AD_TOL["closed_form" if closed else "diffrax"]
    for mix_name, mix in MIXES.items():
        mix = jnp.asarray(mix)
        g_ad, g_adj = grad_ad(params, u, mix), grad_adj(params, u, mix)
        for what, a, b in zip(("neuron", "weights", "input times"), g_adj, g_ad):
            err = rel_err(eqx.filter(a, eqx.is_inexact_array), eqx.filter(b, eqx.is_inexact_array))
            assert err <= tol, f"{name}, {mix_name} loss, {what}: adjoint vs autodiff {err:.2e}"

    # Central finite differences of the "both" loss along random directions in (params, W, input times).
    def value_and_counts(p):
        tr = simulate_layer(*p, u, T, n_slots=SLOTS, integrator=integ)
        return spike_loss(tr.times) + state_loss(tr.state_T), tr.counts

    h = 1e-6 if closed else 1e-5
    err = directional_fd(value_and_counts, params, grad_adj(params, u, mix_both), h=h)
    assert err <= 1e-5, f"{name}: adjoint vs central differences {err:.2e}"


NET_SLOTS = 16
# Two 2-layer networks cover the four closed-form models; layer 0 -> layer 1 chains through
# ``network._merge_spikes`` (the adjoint's input-time cotangent becomes layer 0's spike-time one).
NETWORKS = {
    "lif-delta->qif-osc": ((LIF(tau_mem=1.0, I0=0.9), QIF(tau=1.0, I0=0.4)), (0.35, 0.2), (0.5, 0.4)),
    "qif-exc->lif-exp": ((QIF(tau=1.0, I0=-0.05), LIF(tau_mem=1.0, tau_syn=0.5, I0=0.8)), (0.35, 0.6), (0.5, 0.8)),
}


def net_value(sim):
    def value(net, times, spikes, mix):
        tr = sim(net, eqx.tree_at(lambda s: s.times, spikes, times), T, integrator="closed_form")
        total = mix[0] * spike_loss(tr.output.times.reshape(-1, NET_SLOTS)) + mix[1] * state_loss(tr.output.state_T)
        total = total + 0.01 * sum(jnp.sum(jnp.where(jnp.isfinite(l.times), l.times, 0.0)) for l in tr.layers[:-1])
        return total, tr

    return value


@pytest.mark.parametrize("name", list(NETWORKS))
def test_two_layer_network_adjoint_matches_autodiff_and_fd(name):
    neurons, mean, std = NETWORKS[name]
    net = FeedForward(list(neurons), (6, 5, 3), key=jax.random.PRNGKey(0), weight_mean=mean, weight_std=std,
                      n_slots=NET_SLOTS)
    rng = np.random.default_rng(7)
    spikes = spikes_from_lists([rng.uniform(0, T, 25) for _ in range(2)], [rng.integers(0, 6, 25) for _ in range(2)], 6)
    mix = jnp.asarray(MIXES["both"])

    @jax.jit
    def grads(net, times):
        (_, tr), g_ad = jax.value_and_grad(net_value(simulate), argnums=(0, 1), has_aux=True)(net, times, spikes, mix)
        (_, tr_j), g_adj = jax.value_and_grad(net_value(functools.partial(simulate, gradient="adjoint")), argnums=(0, 1), has_aux=True)(
            net, times, spikes, mix)
        return tr, tr_j, g_ad, g_adj

    tr, tr_j, g_ad, g_adj = grads(net, spikes.times)
    assert int(tr.layers[1].counts.sum()) >= 2 and not bool(jnp.any(tr.overflow | tr.exhausted))
    for a, b in zip(tr.layers, tr_j.layers):
        np.testing.assert_allclose(a.times, b.times, rtol=1e-14)
    for l, (a, b) in enumerate(zip(g_adj[0].weights, g_ad[0].weights)):
        assert rel_err(a, b) <= 1e-8, f"layer {l} weights"
    for l, (a, b) in enumerate(zip(g_adj[0].neurons, g_ad[0].neurons)):
        assert rel_err(eqx.filter(a, eqx.is_inexact_array), eqx.filter(b, eqx.is_inexact_array)) <= 1e-8, f"layer {l} neuron"
    assert rel_err(g_adj[1], g_ad[1]) <= 1e-8, "input spike times"

    def value_and_counts(p):
        value, tr = net_value(simulate)(p[0], p[1], spikes, mix)
        return value, jnp.concatenate([l.counts.ravel() for l in tr.layers])

    err = directional_fd(value_and_counts, (net, spikes.times), g_adj)
    assert err <= 1e-5, f"{name}: 2-layer adjoint vs central differences {err:.2e}"


def test_jump_induced_spike_gradient():
    """LIF delta: an input lifts V over threshold -> spike at the input time (d s/d tau = 1), then the
    composite reset o receive carries the state gradient."""
    neuron = as_trainable(LIF(tau_mem=1.0, I0=0.5, v_th=1.0))
    w = jnp.asarray([[0.3, 0.9]])
    t_in = jnp.asarray([0.4, 1.0])
    u = jnp.asarray([0, 1], jnp.int32)

    def value(sim, args, mix):
        t_in, w, neuron = args
        tr = sim(neuron, w, t_in, u, 3.0, n_slots=2, integrator="closed_form")
        return mix[0] * tr.times[0, 0] + mix[1] * jnp.sum(tr.state_T ** 2)

    @jax.jit
    def run(args, mix):
        kinds = record_events(args[2], args[1], args[0], u, 3.0, n_slots=2, integrator="closed_form").kind
        first = simulate_layer_adjoint(args[2], args[1], args[0], u, 3.0, n_slots=2, integrator="closed_form").times[0, 0]
        return kinds, first, jax.grad(lambda a: value(simulate_layer_adjoint, a, mix))(args), \
            jax.grad(lambda a: value(simulate_layer, a, mix))(args)

    args = (t_in, w, neuron)
    kinds, first, g, g_ad = run(args, jnp.asarray([1.0, 0.0]))
    assert list(np.asarray(kinds[:4])) == [RECEIVE, RECEIVE, INDUCED, END]
    assert float(first) == 1.0
    np.testing.assert_allclose(g[0], [0.0, 1.0], atol=1e-14)
    np.testing.assert_allclose(g[1], 0.0, atol=1e-14)
    assert rel_err(eqx.filter(g, eqx.is_inexact_array), eqx.filter(g_ad, eqx.is_inexact_array)) <= 1e-12
    _, _, g, g_ad = run(args, jnp.asarray([0.0, 1.0]))
    assert rel_err(eqx.filter(g, eqx.is_inexact_array), eqx.filter(g_ad, eqx.is_inexact_array)) <= 1e-12


def test_recurrent_is_not_supported_yet():
    neuron = as_trainable(LIF(tau_mem=1.0, I0=1.1))
    with pytest.raises(NotImplementedError):
        simulate_layer_adjoint(neuron, jnp.ones((2, 2)), jnp.asarray([0.5]), jnp.asarray([0], jnp.int32), 1.0,
                               n_slots=2, recurrent_weights=jnp.zeros((2, 2)))
