"""Exact event locations along 1-D scans: analytic single-neuron events, several events in one grid
interval, the bracket cap, the summary statistics."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from spikeode.engine.network import FeedForward, simulate
from spikeode.neurons import LIF
from spikeode.spikes import Spikes
from spikeode.study import scan_events as se

INF = np.inf
SPAN = 1.0
TOL = 1e-6 * SPAN


def _scan(neuron, base, direction, input_times, T, points=5, n_slots=2, **kwargs):
    """Locate the events of one layer of ``neuron``s fed by one input unit, weights ``base + a direction``."""
    base, direction = jnp.asarray(base, jnp.float64), jnp.asarray(direction, jnp.float64)
    net = FeedForward(neuron, (1, base.shape[0]), key=jax.random.key(0), n_slots=n_slots, dtype=jnp.float64)
    spikes = Spikes(jnp.asarray(input_times, jnp.float64), jnp.zeros(len(input_times), jnp.int32), 1)

    @jax.jit
    def run(a):
        def one(a):
            trace = simulate(eqx.tree_at(lambda m: m.weights, net, (base + a * direction,)), spikes, T)
            return trace.layers[0].times, trace.exhausted | trace.overflow | trace.failed

        return jax.vmap(one)(a)

    def evaluate(a, pos):
        times, problems = run(jnp.asarray(a, jnp.float64))
        return np.asarray(times)[:, None], np.asarray(problems)

    alpha = np.linspace(-SPAN, SPAN, points)
    grid, problems = evaluate(alpha, np.zeros(points, int))
    return se.locate_events(evaluate, alpha, grid[None], T, tol=TOL, batch=4, grid_problems=problems[None], **kwargs)


def _only(events, kind):
    assert [e.kind for e in events] == [kind], events
    e = events[0]
    assert e.error <= TOL / 2 and not e.problems
    return e


def test_delta_lif_spike_appears_at_the_threshold_weight():
    # I0 = 0, v_th = 1: the input jump V -> w spikes (at the input time 0.3) iff w >= 1; w = 0.7 + 0.5 a
    e = _only(_scan(LIF(I0=0.0), [[0.7]], [[0.5]], [0.3], T=1.0)[0], "appearance")
    assert abs(e.location - 0.6) <= TOL
    assert (e.layer, e.neurons, e.ranks) == (0, (0,), (0,)) and e.times == (pytest.approx(0.3, abs=1e-12),)
    assert not e.at_trial_end


def test_exponential_lif_spike_appears_mid_trial_at_the_tangency():
    # tau_mem = 2 tau_syn = 1, input at 0: V(t) = w (e^-t - e^-2t), maximal w/4 at t = ln 2, so the spike
    # appears at w = 4 (a = 0.5 for w = 3.5 + a) at t = ln 2 (the time moves as sqrt(w - 4): bracket-limited)
    e = _only(_scan(LIF(tau_mem=1.0, tau_syn=0.5), [[3.5]], [[1.0]], [0.0], T=2.0, points=4)[0], "appearance")
    assert abs(e.location - 0.5) <= TOL
    assert abs(e.times[0] - math.log(2)) < 5e-3 and not e.at_trial_end


def test_tonic_lif_spike_enters_through_the_trial_end():
    # I0 = 2 > v_th: after the input at 0.1 (V = c + w, c = 2 (1 - e^-0.1)) the spike comes at
    # 0.1 + ln(2 - c - w); it reaches T = 0.5 at w* = 2 - e^0.4 - c. Scan w = a.
    c = 2 * (1 - math.exp(-0.1))
    w_star = 2 - math.exp(0.4) - c
    events, capped = _scan(LIF(I0=2.0), [[0.0]], [[1.0]], [0.1], T=0.5, points=3)
    e = _only(events, "appearance")
    assert abs(e.location - w_star) <= TOL and e.at_trial_end and e.times[0] == pytest.approx(0.5, abs=1e-5)
    assert not capped.any()


def test_order_swap_of_two_tonic_neurons_at_equal_weights():
    # both neurons: I0 = 2, input at 0.1; neuron 0 with weight 0.2, neuron 1 with weight 0.3 a: they swap at
    # a = 2/3, where both fire at 0.1 + ln(1.8 - c); each fires once in [0, 1] over the whole scan
    c = 2 * (1 - math.exp(-0.1))
    e = _only(_scan(LIF(I0=2.0), [[0.2], [0.0]], [[0.0], [0.3]], [0.1], T=1.0, points=4)[0], "order_swap")
    assert abs(e.location - 2 / 3) <= TOL and e.layer == 0 and sorted(e.neurons) == [0, 1]
    np.testing.assert_allclose(e.times, 0.1 + math.log(1.8 - c), atol=1e-5)


# ------------------------------------------------------------------------------------------ pure refinement

def _staircase(locations, t=0.4):
    """A fake scan: one neuron with one spike at time ``t`` per location ``<= a`` (appearances there)."""
    locations = np.asarray(locations)

    def evaluate(a, pos):
        counts = (locations[None, :] <= np.asarray(a)[:, None]).sum(1)
        times = np.where(np.arange(8)[None, :] < counts[:, None], t + 0.01 * np.arange(8), INF)
        return times[:, None, None, :], np.zeros(len(a), bool)

    alpha = np.linspace(0.0, 1.0, 3)
    return evaluate, alpha, evaluate(alpha, np.zeros(3, int))[0][None]


def test_several_events_in_one_grid_interval_are_all_located_and_the_cap_is_reported():
    locs = [0.1, 0.1 + 3e-5, 0.1 + 7e-5, 0.8]
    evaluate, alpha, grid = _staircase(locs)
    events, capped = se.locate_events(evaluate, alpha, grid, 1.0, tol=TOL, batch=2)
    assert [e.kind for e in events] == ["appearance"] * 4 and not capped.any()
    np.testing.assert_allclose([e.location for e in events], locs, atol=TOL)
    assert [e.grid_edge for e in events] == [0, 0, 0, 1] and [e.ranks[0] for e in events] == [0, 1, 2, 3]
    with pytest.warns(UserWarning, match="brackets dropped"):
        events, capped = se.locate_events(evaluate, alpha, grid, 1.0, tol=TOL, batch=2, max_brackets=2)
    assert len(events) == 3 and capped[0].tolist() == [1, 0, 0]


def test_patterns_classify_ties_and_match_the_vanishing_spike():
    # a tie is a pattern of its own: 0.3/0.5 -> 0.4/0.4 -> 0.5/0.3 differs at each step
    a, tie, b = (np.array([[[x], [y]]]) for x, y in ((0.3, 0.5), (0.4, 0.4), (0.5, 0.3)))
    assert not se.same_pattern(a, tie) and not se.same_pattern(tie, b)
    assert [e["kind"] for e in se.classify_bracket(a, b, 1.0)] == ["order_swap"]
    assert [e["kind"] for e in se.classify_bracket(a, tie, 1.0)] == ["order_tie"]
    # the middle spike (rank 1) vanishes, the others move by 1e-9: matched by time, not by rank
    lo = np.array([[[0.2, 0.5, 0.8]]])
    hi = np.array([[[0.2 + 1e-9, 0.8 + 1e-9, INF]]])
    (ev,) = se.classify_bracket(lo, hi, 1.0)
    assert ev["kind"] == "disappearance" and ev["ranks"] == (1,) and ev["times"] == (0.5,)


def test_event_statistics_follow_their_definitions():
    def ev(kind, loc, t=0.5, s=0):
        n = 2 if kind == "order_swap" else 1
        return se.Event(kind, s, 0, loc, 1e-7, 0, (0, 1)[:n], (0, 0)[:n], (t, t)[:n], t >= 0.999, False)

    events = [
        ev("order_swap", 0.100), ev("disappearance", 0.105),                  # preceded (window 0.02)
        ev("appearance", 0.300, t=1.0),                                       # at the trial end, nothing before
        ev("order_swap", 0.500), ev("appearance", 0.500),                     # coincident, not preceded
        ev("disappearance", 0.7, s=1),                                        # sample 1: no swap at all
    ]
    alpha = np.linspace(-1.0, 1.0, 5)
    data = se.event_variables(events, np.zeros((2, 5), int), alpha, [0, 1], tol=TOL, T=1.0)
    ds = xr.Dataset(data, coords={"alpha": alpha, "sample": [0, 1]})
    assert [se.EVENT_KINDS[k] for k in ds.event_kind.values][:2] == ["order_swap", "disappearance"]
    s = se.event_statistics(ds)  # window: 1% of the range 2 = 0.02
    assert s["window"] == pytest.approx(0.02) and s["changes"] == 4
    assert s["mid_trial_fraction"] == pytest.approx(3 / 4)
    assert s["order_preceded_fraction"] == pytest.approx(1 / 4)
    assert s["order_coincident_fraction"] == pytest.approx(1 / 4)
    assert s["order_window_baseline"] == pytest.approx((2 * 0.02 / 2 + 0) / 2)
    np.testing.assert_array_equal(s["per_sample"]["changes"], [3, 1])
    assert float(ds.events_order_preceded_fraction) == pytest.approx(1 / 4)
    assert se.events_from_dataset(ds) == events
