"""QIF with exponential synapses at the matched ratio tau_syn = tau/(4 sqrt(-I0)): closed form vs numerics,
the engine's paths and gradients, and how the ratio is held."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from spikeode.engine.network import FeedForward, simulate, simulate_neuron
from spikeode.integrate import ClosedForm, Diffrax, make_integrator
from spikeode.neurons import QIF
from spikeode.spikes import spikes_from_lists

DIFFRAX = Diffrax(rtol=1e-12, atol=1e-12, root_tol=1e-12, max_steps=4096)


def matched(tau, beta):
    return QIF(tau=tau, I0=-(beta**2) / 4, tau_syn="matched")


def scipy_solution(neuron, y0, t_end):
    """The ODE in the state coordinates, float64 DOP853 at rtol 1e-13, stopped at the spike (x2 = 0 downwards)."""
    tau, i0, tau_s = float(neuron.tau), float(neuron.I0), float(neuron.synaptic_time_constant)

    def rhs(t, y):
        return [(i0 + y[2]) * y[1] / tau, -y[0] / tau, -y[2] / tau_s]

    def spike(t, y):
        return y[1]

    spike.terminal, spike.direction = True, -1
    return solve_ivp(rhs, (0.0, t_end), y0, method="DOP853", rtol=1e-13, atol=1e-14, dense_output=True, events=spike)


@pytest.mark.parametrize("beta", [1.0, 0.6])
@pytest.mark.parametrize("theta", [-0.6, 2.2])  # below / above the unstable point of the uncoupled neuron
@pytest.mark.parametrize("current", [0.4, -0.3])
def test_matched_flow_and_spike_time_match_scipy(beta, theta, current):
    neuron = matched(1.3, beta)
    y0 = np.array([np.sin(theta / 2), np.cos(theta / 2), current])
    sol = scipy_solution(neuron, y0, 20.0)
    t_spike = sol.t_events[0][0] if sol.t_events[0].size else np.inf
    for t in (0.4, 1.5, 6.0):
        if t < 0.95 * t_spike:
            ref = sol.sol(t)
            got = np.asarray(neuron.flow(jnp.asarray(y0), t))
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12 * np.max(np.abs(ref)))
    got_t = float(neuron.time_to_threshold(jnp.asarray(y0), 20.0))
    if np.isfinite(t_spike):
        assert abs(got_t - t_spike) <= 1e-10 * t_spike
    else:
        assert got_t == np.inf
    # the flow's slope at 0 is the vector field (the exact representative, not only the same V)
    slope = jax.jvp(lambda dt: neuron.flow(jnp.asarray(y0), dt), (0.0,), (1.0,))[1]
    np.testing.assert_allclose(slope, neuron.vector_field(0.0, jnp.asarray(y0), None), rtol=1e-12, atol=1e-14)


def test_both_spike_cases_are_covered():
    """The parametrised cases above include states that spike and states that never do."""
    outcomes = set()
    for beta in (1.0, 0.6):
        for theta in (-0.6, 2.2):
            for current in (0.4, -0.3):
                y0 = jnp.array([np.sin(theta / 2), np.cos(theta / 2), current])
                outcomes.add(bool(jnp.isfinite(matched(1.3, beta).time_to_threshold(y0, 20.0))))
    assert outcomes == {True, False}


def test_spike_time_gradient_matches_finite_differences_through_zero_current():
    """The blow-up time is one smooth function through I = 0 (the state before any input)."""
    neuron = matched(1.0, 1.0)
    y0 = jnp.array([np.sin(1.1), np.cos(1.1), 0.0])
    grad = jax.grad(lambda y: neuron.time_to_threshold(y, 50.0))(y0)
    h = 1e-6
    for k in range(3):
        e = jnp.zeros(3).at[k].set(h)
        fd = (neuron.time_to_threshold(y0 + e, 50.0) - neuron.time_to_threshold(y0 - e, 50.0)) / (2 * h)
        assert abs(float(grad[k]) - float(fd)) <= 1e-7 * max(1.0, abs(float(fd)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_gradients_stay_finite_just_above_rest_with_a_strong_current(dtype):
    """A state a hair above the unstable point (``z1 ~ 1e-5``, right after a kick at rest) with a large
    current makes ``q = -I rho^2 ~ -1e10``: the unused series branch once overflowed there (float32),
    and its infinite derivative times a zero cotangent made the gradient NaN."""
    from spikeode.neurons._base import as_trainable

    neuron = as_trainable(matched(1.0, 1.0), dtype)
    y = jnp.array([-0.54332, 1.0866562, 0.5125927], dtype)  # V = x1/x2 = -0.5 + 8e-6
    t, grad = jax.value_and_grad(lambda y: neuron.time_to_threshold(y, 2.0))(y)
    assert not np.isfinite(float(t))  # fires only after the horizon
    assert np.all(np.isfinite(np.asarray(grad)))
    s_grad = jax.grad(lambda y: jnp.sum(neuron.flow(y, 1.4e-5)))(y)
    assert np.all(np.isfinite(np.asarray(s_grad)))


def _tiny_net(neuron):
    return FeedForward(neuron, (4, 3), key=jax.random.PRNGKey(2), weight_mean=0.5, weight_std=0.5, n_slots=4)


def _tiny_spikes():
    rng = np.random.default_rng(5)
    return spikes_from_lists([np.sort(rng.uniform(0.0, 8.0, 14))], [rng.integers(0, 4, 14)], 4)


def test_network_closed_form_matches_diffrax_and_adjoint():
    net, spikes = _tiny_net(matched(1.0, 1.0)), _tiny_spikes()

    def value(net, integrator, gradient):
        tr = simulate(net, spikes, 8.0, integrator=integrator, gradient=gradient).output
        t = jnp.where(jnp.isfinite(tr.times), tr.times, 0.0)
        return jnp.sum(jnp.sin(t)) + jnp.sum(jnp.sin(tr.state_T)), tr

    results = {}
    for name, integ, gradient in (("closed", "closed_form", "autodiff"), ("adjoint", "closed_form", "adjoint"),
                                  ("diffrax", DIFFRAX, "autodiff")):
        (_, tr), g = eqx.filter_value_and_grad(lambda n: value(n, integ, gradient), has_aux=True)(net)
        results[name] = (tr, g)
    tr_cf, g_cf = results["closed"]
    assert int(tr_cf.counts.sum()) >= 3
    for name in ("adjoint", "diffrax"):
        tr, g = results[name]
        np.testing.assert_array_equal(tr.counts, tr_cf.counts)
        np.testing.assert_allclose(tr.times, tr_cf.times, rtol=0, atol=1e-9)
        tol = 1e-8 if name == "adjoint" else 1e-6
        for a, b in zip(jax.tree_util.tree_leaves(eqx.filter(g, eqx.is_inexact_array)),
                        jax.tree_util.tree_leaves(eqx.filter(g_cf, eqx.is_inexact_array))):
            assert float(jnp.max(jnp.abs(a - b))) <= tol * max(float(jnp.max(jnp.abs(b))), 1e-12), name
    # the time constants reach the gradient through the tied tau_syn on both paths
    assert float(g_cf.neurons[0].tau) != 0.0 and float(g_cf.neurons[0].I0) != 0.0


# -- the ratio --------------------------------------------------------------------------------------
def test_numeric_tau_syn_at_the_ratio_selects_the_closed_form():
    tau, i0 = 1.3, -0.2
    neuron = QIF(tau=tau, I0=i0, tau_syn=tau / (4 * np.sqrt(-i0)))
    assert neuron.matched and neuron.tau_syn == "matched" and neuron.has_closed_form
    assert isinstance(make_integrator("auto", neuron), ClosedForm)
    assert float(neuron.synaptic_time_constant) == pytest.approx(tau / (4 * np.sqrt(-i0)), rel=1e-15)


@pytest.mark.parametrize("tau_syn", [0.5, 1.3 / (4 * np.sqrt(0.2)) * (1 + 1e-9)])
def test_numeric_tau_syn_off_the_ratio_stays_on_diffrax(tau_syn):
    neuron = QIF(tau=1.3, I0=-0.2, tau_syn=tau_syn)
    assert not neuron.matched and not neuron.has_closed_form and not neuron.has_firing_order
    assert isinstance(make_integrator("auto", neuron), Diffrax)
    assert neuron.synaptic_time_constant == tau_syn
    with pytest.raises(ValueError, match="no closed form"):
        make_integrator("closed_form", neuron)


def test_matched_ratio_holds_when_tau_and_I0_change():
    """tau_syn is no parameter of its own: new tau, I0 (e.g. a training step) carry it along."""
    neuron = eqx.tree_at(lambda m: (m.tau, m.I0), matched(1.0, 1.0), (jnp.asarray(2.0), jnp.asarray(-0.16)))
    assert neuron.matched and float(neuron.synaptic_time_constant) == pytest.approx(2.0 / (4 * 0.4), rel=1e-15)
    y = jnp.array([0.1, 0.9, 1.0])
    assert float(neuron.vector_field(0.0, y, None)[2]) == pytest.approx(-1.0 / 1.25, rel=1e-15)
    # one gradient step on (tau, I0) under jit: the stepped model's flow still matches scipy
    step = eqx.filter_jit(lambda m: eqx.apply_updates(m, jax.tree_util.tree_map(
        lambda g: -0.05 * g, eqx.filter_grad(lambda m: m.time_to_threshold(jnp.array([0.6, 0.8, 0.5]), 50.0))(m))))
    stepped = step(neuron)
    assert stepped.matched and float(stepped.tau) != 2.0
    sol = scipy_solution(stepped, np.array([0.1, 0.9, 1.0]), 1.0)
    np.testing.assert_allclose(stepped.flow(y, 1.0), sol.sol(1.0), rtol=1e-10)


def test_matched_model_passes_plain_jax_transforms():
    """The matched marker is an empty pytree, not a leaf: jax.jit and tree_map see only the parameters."""
    neuron = matched(1.0, 0.6)
    assert len(jax.tree_util.tree_leaves(neuron)) == 2
    t = jax.jit(lambda m, y: m.time_to_threshold(y, 20.0))(neuron, jnp.array([0.8, 0.6, 0.3]))
    assert np.isfinite(float(t))
    doubled = jax.tree_util.tree_map(lambda x: 2 * x, neuron)
    assert doubled.matched and doubled.tau == 2.0


def test_matched_needs_negative_I0():
    with pytest.raises(ValueError, match="I0 < 0"):
        QIF(tau=1.0, I0=0.1, tau_syn="matched").check_parameters()
    with pytest.raises(ValueError, match="I0 < 0"):
        simulate_neuron(QIF(tau=1.0, I0=0.0, tau_syn="matched"), jnp.array([1.0]), jnp.array([0.5]), 3.0)
    with pytest.raises(ValueError, match="'matched'"):
        QIF(tau=1.0, I0=-0.1, tau_syn="exp")


def test_I0_drifting_to_non_negative_is_nan_not_silent():
    """Under jit (no host check) a matched model with I0 >= 0 yields NaN, never a wrong finite flow."""
    y = jnp.array([0.6, 0.8, 0.3])
    for i0 in (0.0, 0.05):
        neuron = eqx.tree_at(lambda m: m.I0, matched(1.0, 1.0), jnp.asarray(i0))
        assert np.isnan(neuron.synaptic_time_constant)
        assert np.all(np.isnan(neuron.flow(y, 0.5))) and np.isnan(neuron.time_to_threshold(y, 10.0))
        assert np.isnan(neuron.vector_field(0.0, y, None)[2])
        tr = eqx.filter_jit(lambda m: simulate_neuron(m, jnp.array([1.0]), jnp.array([0.5]), 3.0, n_slots=2))(neuron)
        assert not np.all(np.isfinite(np.asarray(tr.state_T)))


@pytest.mark.parametrize("tau_syn", [None, "matched"])
def test_pseudospike_of_a_deeply_inhibited_neuron_is_finite_in_float32(tau_syn):
    """A strongly inhibited neuron (``I_syn ~ -90``) once gave ``sqrt(softplus(-93)) = 0`` in float32:
    delay and period inf and the pseudo rate ``1 - delay/period`` NaN."""
    from spikeode.neurons._base import as_trainable

    neuron = as_trainable(QIF(tau=1.0, I0=-0.25, tau_syn=tau_syn), jnp.float32)
    y = jnp.array([-1.1e5, 1.2e4, -92.5][: 2 if tau_syn is None else 3], jnp.float32)
    drive = jnp.float32(-92.5 if tau_syn is None else 0.0)
    delay, period = neuron.pseudo_spike(y, drive)
    grads = jax.grad(lambda y: 1.0 - jnp.divide(*neuron.pseudo_spike(y, drive)))(y)  # d(pseudo rate)/dy
    assert np.isfinite(float(delay)) and np.isfinite(float(period)) and 0 < float(delay / period) <= 1
    assert np.all(np.isfinite(np.asarray(grads)))


def test_receive_renormalises_the_phase_vector_of_exponential_synapses():
    neuron = matched(1.0, 1.0)
    y = neuron.receive(jnp.array([-3.0e5, 4.0e5, 0.2]), 0.3)
    np.testing.assert_allclose(np.asarray(y), [-0.6, 0.8, 0.5], rtol=1e-14)


def test_firing_order_ranks_like_the_spike_time():
    """The matched model's ``firing_order`` (the blow-up time ``s*``) orders states as ``time_to_threshold``:
    excitatory and inhibitory currents, currents near zero (the series branch), phases on both sides of 0."""
    from spikeode.check import _firing_order_row

    neuron = matched(1.3, 0.8)
    assert neuron.has_firing_order
    rng = np.random.default_rng(5)
    theta = rng.uniform(-3.0, 3.0, 200)
    current = np.concatenate([rng.normal(0.0, 2.0, 150), rng.normal(0.0, 1e-4, 50)])
    states = jnp.asarray(np.stack([np.sin(theta / 2), np.cos(theta / 2), current], axis=1))
    dts = jax.vmap(lambda y: neuron.time_to_threshold(y, 1e3))(states)
    assert 20 <= int(jnp.isfinite(dts).sum()) <= 180
    row = _firing_order_row("matched", neuron, states, dts)
    assert row.passed, row


def test_flow_derivative_rule_matches_differentiating_the_functions():
    """The custom JVP of ``(cosh(sqrt q), sinh(sqrt q)/sqrt q)`` (from the values) equals autodiff through
    expm1/cos/sin/sqrt and the series, across both regimes and the series cut."""
    from spikeode.neurons.qif import _cosh_sinhc_sqrt

    q = jnp.asarray(np.concatenate([-np.logspace(-8, 3, 40), [0.0], np.logspace(-8, 3, 40)]))
    for i in (0, 1):
        rule = jax.vmap(jax.grad(lambda x, i=i: _cosh_sinhc_sqrt(x)[i]))(q)
        direct = jax.vmap(jax.grad(lambda x, i=i: _cosh_sinhc_sqrt.fun(x)[i]))(q)
        np.testing.assert_allclose(np.asarray(rule), np.asarray(direct), rtol=1e-12)


@pytest.mark.parametrize("dtype, ulps", [(np.float64, 4), (np.float32, 8)])
def test_vectorised_transcendentals_match_numpy(dtype, ulps):
    """The hand-written ``cos/sin``, ``atan`` and ``atanh`` (XLA's CPU versions are several times slower)
    agree with numpy to a few ulps, across quadrants and the half-angle and series ranges."""
    from spikeode.neurons.qif import _atan2, _atanh, _cos_sin

    eps = np.finfo(dtype).eps
    r = np.concatenate([np.linspace(0.0, 20.0, 4001), np.geomspace(20.0, 1e3, 200)]).astype(dtype)
    cos, sin = (np.asarray(v, np.float64) for v in _cos_sin(jnp.asarray(r)))
    np.testing.assert_allclose(cos, np.cos(r.astype(np.float64)), rtol=0, atol=ulps * eps * max(1.0, r.max() * 1e-3))
    np.testing.assert_allclose(sin, np.sin(r.astype(np.float64)), rtol=0, atol=ulps * eps * max(1.0, r.max() * 1e-3))
    y, x = (v.ravel().astype(dtype) for v in np.meshgrid(np.linspace(-3, 3, 61), np.concatenate([np.linspace(-3, 3, 61), [1e-30]])))
    ref = np.arctan2(y.astype(np.float64), x.astype(np.float64))
    np.testing.assert_allclose(np.asarray(_atan2(jnp.asarray(y), jnp.asarray(x)), np.float64), ref, rtol=0, atol=ulps * eps * np.pi)
    t = np.geomspace(1e-6, 0.99, 500).astype(dtype)
    np.testing.assert_allclose(np.asarray(_atanh(jnp.asarray(t)), np.float64), np.arctanh(t.astype(np.float64)), rtol=ulps * eps)
