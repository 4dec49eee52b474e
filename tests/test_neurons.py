"""Neuron models: analytic spike times, closed form vs diffrax, gradients vs finite differences, errors."""

import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikeode.check import (
    FD_NOISE,
    TOL,
    _fd_rows,
    _finite_differences,
    _loss_fn,
    _rel,
    gradient_error,
    run_check,
)
from spikeode.engine.network import simulate_neuron
from spikeode.integrate import Diffrax
from spikeode.neurons import EIF, LIF, QIF, as_trainable, resolve_neuron_class

TESTS = Path(__file__).parent
DIFFRAX = Diffrax(rtol=1e-10, atol=1e-10, root_tol=1e-12)


def first_spike(neuron, integrator, T=20.0):
    """First spike time with no input. Parameters and T as float64 arrays: every parameter value of a model
    runs one compiled program per integrator."""
    no_input = jnp.full(1, jnp.inf, jnp.float64)
    return simulate_neuron(as_trainable(neuron, jnp.float64), no_input, jnp.zeros(1), jnp.asarray(T, jnp.float64),
                           n_slots=2, integrator=integrator).times[0, 0]


@pytest.mark.parametrize("tau, drive", [(1.0, 0.7), (6 / np.pi, 1.25), (0.5, 3.0)])
def test_qif_analytic_period(tau, drive):
    neuron = QIF(tau=tau, I0=drive)
    exact = tau * np.pi / np.sqrt(drive)
    assert abs(float(first_spike(neuron, "closed_form")) - exact) <= 1e-12
    assert abs(float(first_spike(neuron, DIFFRAX)) - exact) <= 1e-9
    grad = jax.grad(lambda i: first_spike(QIF(tau=tau, I0=i), "closed_form"))(drive)
    assert np.isclose(grad, -tau * np.pi / (2 * drive**1.5), rtol=1e-10)


@pytest.mark.parametrize("tau_syn", [None, 0.3])
def test_lif_analytic_first_spike(tau_syn):
    tau, drive = 1.7, 1.4
    exact = tau * np.log(drive / (drive - 1.0))
    neuron = LIF(tau_mem=tau, tau_syn=tau_syn, I0=drive)
    assert abs(float(first_spike(neuron, "closed_form")) - exact) <= 1e-12
    t, grad = jax.value_and_grad(lambda i: first_spike(LIF(tau_mem=tau, tau_syn=tau_syn, I0=i), DIFFRAX))(drive)
    assert abs(float(t) - exact) <= 1e-9
    assert np.isclose(grad, -tau / (drive * (drive - 1.0)), rtol=1e-6)


# The variants no other test compares the same way (benchmarks/check_all.sh runs every variant of every model,
# `spikeode check` on the command line too). The others' rows are covered elsewhere: closed form vs diffrax
# and finite differences in test_network (lif-delta, lif-exp at tau_mem = 2 tau_syn, qif-osc) and test_qif_exp
# (the matched QIF synapse, also against the adjoint), adjoint vs autodiff and finite differences per layer
# model in test_adjoint, the analytic first spikes in test_lif_analytic_first_spike / test_qif_analytic_period.
# EIF (diffrax only) is compared the same way in test_adjoint (eif-diffrax: adjoint vs autodiff and finite
# differences), and `check` of a diffrax-only model runs in test_check_cli_user_model_passes.
# Kept: LIF's bracketed root find (exponential synapse off the ratio), the excitable theta neuron and QIF with
# an exponential synapse off the matched ratio (diffrax the reference).
CHECK_VARIANTS = {
    "lif": ["lif exp other ratio"],
    "qif": ["qif delta excitable", "qif exp excitable"],
}


@pytest.mark.parametrize("name", list(CHECK_VARIANTS))
def test_check_passes_for_builtin_models(name):
    """The generic exactness check: closed form vs diffrax, analytic, finite differences, event adjoint."""
    rows = run_check(name, variants=CHECK_VARIANTS[name])
    failed = [r for r in rows if not r.passed]
    assert not failed, failed
    quantities = {r.quantity for r in rows}
    assert "closed form vs diffrax: spike times" in quantities
    assert any("finite differences" in q for q in quantities)
    assert any(q.startswith("adjoint vs autodiff") for q in quantities)


def test_lif_exp_root_find_matches_brentq():
    from scipy.optimize import brentq

    neuron = LIF(tau_mem=1.0, tau_syn=0.37, I0=0.2)  # not tau_mem = 2 tau_syn: the bracketed root find
    grid = np.linspace(0, 10, 20001)
    for v0, i0 in [(0.0, 2.5), (0.5, 1.2), (-0.3, 4.0), (0.9, 0.25)]:
        y = jnp.array([v0, i0])
        dt = float(neuron.time_to_threshold(y, 10.0))
        values = np.asarray(jax.vmap(lambda t: neuron.flow(y, t)[0])(jnp.asarray(grid))) - 1.0
        above = np.flatnonzero(values >= 0)
        if above.size == 0:
            assert dt == np.inf
        else:
            v = lambda t: float(neuron.flow(y, t)[0]) - 1.0  # noqa: E731
            ref = brentq(v, grid[above[0] - 1], grid[above[0]], xtol=1e-15)
            assert abs(dt - ref) < 1e-12


@pytest.mark.parametrize("power", [2, 3])
def test_bracketed_root_keeps_an_exact_root(power):
    """Newton lands exactly on the root of t^p - 2^p: the next iterations must stay there, not bisect away
    (a strict bracket test did, ending 2e-13 to 5e-13 off after 24 iterations)."""
    from spikeode.neurons._roots import bracketed_root

    root = bracketed_root(lambda t: t**power - 2.0**power, lambda t: power * t ** (power - 1), 0.0, 3.0)
    assert float(root) == 2.0


def test_lif_exp_equal_time_constants_is_finite():
    neuron = LIF(tau_mem=0.5, tau_syn=0.5, I0=0.0)
    y = jnp.array([0.0, 3.0])
    dt, g = jax.value_and_grad(lambda yy: neuron.time_to_threshold(yy, 5.0))(y)
    assert np.isfinite(dt) and np.all(np.isfinite(g))
    # V(t) = I t/tau e^{-t/tau} at tau_syn = tau_mem.
    assert abs(3.0 * dt / 0.5 * np.exp(-dt / 0.5) - 1.0) < 1e-12


@pytest.mark.parametrize("integrator", ["closed_form", DIFFRAX])
def test_jump_over_threshold_spikes_at_input_time(integrator):
    neuron = LIF(tau_mem=1.0, I0=0.5)  # sub-threshold drive: only the input can make it fire
    tr = simulate_neuron(neuron, jnp.array([1.0, 3.0]), jnp.array([1.5, 0.1]), 5.0, integrator=integrator)
    assert int(tr.counts[0]) == 1
    assert float(tr.times[0, 0]) == 1.0


def test_theta_input_jump_is_v_plus_w_and_finite_at_pi():
    neuron = QIF()
    for theta in (-0.3, 1.2, 2.9):
        y = jnp.array([np.sin(theta / 2), np.cos(theta / 2)])
        v_after = np.tan(float(QIF.theta(neuron.receive(y, 0.7))) / 2)
        assert np.isclose(v_after, np.tan(theta / 2) + 0.7, rtol=1e-12)
    for y in (jnp.array([-1.0, 0.0]), jnp.array([1.0, 1e-12])):  # theta = -pi and just below pi
        out, grad = jax.value_and_grad(lambda w: QIF.theta(neuron.receive(y, w)))(0.7)
        assert np.isfinite(out) and np.isfinite(grad)
    assert float(QIF.theta(neuron.receive(jnp.array([-1.0, 0.0]), 0.7))) == pytest.approx(-np.pi)


def test_excitable_qif_rests_without_input():
    neuron = QIF(tau=1.0, I0=-0.2)
    tr = simulate_neuron(neuron, jnp.array([jnp.inf]), jnp.zeros(1), 50.0)
    assert int(tr.counts[0]) == 0
    assert np.isclose(float(QIF.theta(tr.state_T[0])), -2 * np.arctan(np.sqrt(0.2)))


@pytest.mark.parametrize(
    "times, weights, match",
    [
        ([1.0, 0.5], [0.1, 0.1], "not sorted"),
        ([-1.0, 0.5], [0.1, 0.1], "negative"),
        ([np.nan, 0.5], [0.1, 0.1], "NaN"),
        ([0.5, 1.0], [0.1, np.inf], "weight"),
        ([0.5, 1.0], [np.nan, 0.1], "weight"),
    ],
)
def test_bad_inputs_are_named(times, weights, match):
    with pytest.raises(ValueError, match=match):
        simulate_neuron(LIF(), jnp.array(times), jnp.array(weights), 2.0)


@pytest.mark.parametrize("neuron, match", [(LIF(tau_mem=-1.0), "tau_mem"), (QIF(tau=0.0), "tau"), (EIF(tau=-2.0), "tau")])
def test_non_positive_time_constant_is_an_error(neuron, match):
    with pytest.raises(ValueError, match=match):
        simulate_neuron(neuron, jnp.array([0.5]), jnp.array([0.1]), 2.0)


def test_resolve_neuron_class_errors():
    with pytest.raises(ValueError, match="unknown neuron"):
        resolve_neuron_class("hodgkin")
    with pytest.raises(ValueError, match="cannot import"):
        resolve_neuron_class("no_such_module_xyz:Cls")
    with pytest.raises(ValueError, match="not a subclass"):
        resolve_neuron_class("numpy:ndarray")


def test_check_names_an_unknown_variant():
    with pytest.raises(ValueError, match=r"unknown variant\(s\) \['qif delta'\] of qif: choose from"):
        run_check("qif", variants=["qif delta"])


def test_never_crossing_threshold_is_reported():
    sys.path.insert(0, str(TESTS))
    try:
        with pytest.raises(ValueError, match="never crossed zero"):
            run_check("user_models:NeverFires")
    finally:
        sys.path.remove(str(TESTS))


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "spikeode.cli", *args], capture_output=True, text=True, env=env)


def test_check_cli_user_model_passes():
    out = _cli("check", "--neuron", "user_models:QuadraticV")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "QuadraticV" in out.stdout and "0 failed" in out.stdout


def test_check_cli_broken_flow_fails_and_names_it():
    out = _cli("check", "--neuron", "user_models:BrokenFlowLIF")
    assert out.returncode != 0
    assert "flow disagrees with vector_field" in out.stdout
    assert "closed form vs diffrax" in out.stdout


def test_reversed_firing_order_is_caught_by_check():
    from user_models import WrongOrderLIF

    from spikeode.check import _firing_order_row

    neuron = WrongOrderLIF(tau_mem=1.0, I0=1.5)
    states = jnp.linspace(-1.0, 0.9, 7)[:, None]
    dts = jax.vmap(lambda y: neuron.time_to_threshold(y, 1e3))(states)
    row = _firing_order_row("wrong", neuron, states, dts)
    assert not row.passed and row.error == 1.0 and "firing_order disagrees" in row.note


@pytest.mark.parametrize("params, seed, w_mean, w_std", [
    ({"tau": 1.0, "I0": 1.1}, 3, 0.4, 0.5),
    ({"tau": 1.0, "I0": -0.2}, 3, 0.4, 0.5),
    ({"tau": 1.0, "I0": -0.25, "tau_syn": "matched"}, 4, 0.5, 1.0),
])
def test_firing_order_shortcut_gives_the_same_layer(params, seed, w_mean, w_std):
    """Ranking by ``firing_order`` (one crossing time per event) equals ranking by every neuron's time, for
    delta synapses in both regimes and the matched exponential synapse."""
    from user_models import QIFWithoutOrder

    from spikeode.engine.layer import simulate_layer

    rng = np.random.default_rng(seed)
    w = jnp.asarray(rng.normal(w_mean, w_std, (6, 5)))
    times = jnp.asarray(np.sort(rng.uniform(0.0, 8.0, 40)))
    units = jnp.asarray(rng.integers(0, 5, 40), dtype=jnp.int32)

    def run(cls):
        def spike_sum(w):
            tr = simulate_layer(cls(**params), w, times, units, 8.0, n_slots=6, integrator="closed_form")
            return jnp.sum(jnp.where(jnp.isfinite(tr.times), tr.times, 0.0)), tr
        return jax.value_and_grad(spike_sum, has_aux=True)(w)

    (_, fast), g_fast = run(QIF)
    (_, slow), g_slow = run(QIFWithoutOrder)
    assert QIF(**params).has_firing_order and not QIFWithoutOrder(**params).has_firing_order
    assert int(fast.counts.sum()) >= 5
    np.testing.assert_array_equal(np.asarray(fast.times), np.asarray(slow.times))
    np.testing.assert_allclose(np.asarray(g_fast), np.asarray(g_slow), rtol=1e-12, atol=1e-14)


# -- check's finite-difference rule: |g - fd| <= rtol max(|g|, |fd|) + atol --------------------------
def test_gradient_error_has_a_noise_floor_and_scales_with_the_loss():
    eps, rtol = np.finfo(np.float64).eps, TOL["fd"]
    atol = FD_NOISE * eps * 1.0 / 1e-4  # a loss of size 1, step 1e-4
    noise = np.full(3, 3e-12)  # the finite-difference noise of an exactly zero gradient (issue 18)
    assert _rel(np.zeros(3), noise) == 1.0  # the old, purely relative comparison failed a correct model
    assert gradient_error(np.zeros(3), noise, atol, rtol) <= rtol
    assert gradient_error(np.zeros(3), np.zeros(3), 0.0, rtol) == 0.0
    # A small gradient off by 2x fails as soon as the floor (here for a loss of size 1e-3) is below it.
    assert gradient_error(np.array([2e-9]), np.array([1e-9]), 1e-3 * atol, rtol) > rtol
    assert gradient_error(np.array([1e-9 * (1 + 1e-7)]), np.array([1e-9]), 1e-3 * atol, rtol) <= rtol


def _reduced_check(neuron, times, weights, loss_scale=1.0):
    """The check's finite-difference rows on the closed-form path for one input train (no diffrax run)."""
    base = _loss_fn(jnp.asarray(times), "closed_form")

    def loss(params):
        value, aux = base(params)
        return loss_scale * value, aux._replace(scale=loss_scale * aux.scale)

    params = (as_trainable(neuron, jnp.float64), jnp.asarray(weights))
    grads = eqx.filter_grad(lambda p: loss(p)[0])(params)
    return grads, _fd_rows("reduced", grads, _finite_differences(loss, params, 1e-5), "closed_form")


def test_check_passes_a_model_whose_gradient_is_exactly_zero():
    """Adaptive LIF without bias: it spikes only at input times, so no weight moves a spike or the final state."""
    from user_models import AdaptiveLIF

    times = np.array([0.5, 1.7, 3.2, 4.0, 6.6, 8.1])
    weights = np.linspace(3.0, 3.5, 6)  # every input lifts V over threshold
    grads, rows = _reduced_check(AdaptiveLIF(), times, weights)
    assert np.all(np.asarray(grads[1]) == 0.0) and float(grads[0].v_th) == 0.0
    assert float(grads[0].tau_m) != 0.0  # the final state still depends on the time constants
    assert all(r.passed for r in rows), rows


@pytest.mark.parametrize("factor, passes", [(1.0, True), (1.5, False)])
def test_check_catches_a_small_wrong_gradient(factor, passes):
    """A crossing time with 1.5x its true derivative, in a loss of size ~1e-6: the small wrong gradient fails."""
    from user_models import SkewedGradientLIF

    times = np.array([0.3, 1.2, 2.9, 4.4, 5.0, 7.7])
    weights = np.linspace(0.05, 0.2, 6)
    grads, rows = _reduced_check(SkewedGradientLIF(gradient_factor=factor), times, weights, loss_scale=1e-6)
    assert 0 < float(jnp.max(jnp.abs(grads[1]))) < 1e-5
    assert all(r.passed for r in rows) == passes, rows
