"""Calibrated initialisation: deterministic, reaches its targets layer by layer, for any neuron model."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikeode.engine.network import FeedForward, simulate
from spikeode.neurons import LIF, QIF
from spikeode.spikes import spikes_from_lists
from spikeode.training.calibrate import (
    HIDDEN_STATISTIC,
    OUTPUT_STATISTIC,
    calibrate,
    layer_activity,
    weight_shape,
)


def sparse_batch(n_samples=16, n_channels=30, n_events=6, seed=0):
    """Each sample: ``n_events`` spikes on random channels at random times in [0, 1)."""
    rng = np.random.default_rng(seed)
    times = [np.sort(rng.uniform(0, 1, n_events)) for _ in range(n_samples)]
    units = [rng.choice(n_channels, n_events, replace=False) for _ in range(n_samples)]
    return spikes_from_lists(times, units, n_channels, dtype=np.float64)


@pytest.mark.parametrize("neuron", [LIF(), QIF(I0=-0.05)], ids=["lif", "qif"])
def test_calibration_reaches_its_targets_and_is_deterministic(neuron):
    spikes = sparse_batch()
    # Random-sign weights of mean 0 (a user model with no recipe): the network starts silent.
    net = FeedForward(neuron, (30, 12, 4), key=jax.random.PRNGKey(1), n_slots=6, dtype=jnp.float64)
    assert int(simulate(net, spikes, 2.0).output.counts.sum()) == 0
    calibrated, found = calibrate(net, spikes, 2.0, hidden_rate=2.0, output_active=0.75)
    again, found_again = calibrate(net, spikes, 2.0, hidden_rate=2.0, output_active=0.75)
    assert found == found_again
    for w, w_again in zip(calibrated.weights, again.weights):
        np.testing.assert_array_equal(w, w_again)

    trace = simulate(calibrated, spikes, 2.0)
    hidden = layer_activity(trace.layers[0].counts, trace.layers[0].exhausted, HIDDEN_STATISTIC)
    output = layer_activity(trace.output.counts, trace.output.exhausted, OUTPUT_STATISTIC)
    assert [c.statistic for c in found] == [HIDDEN_STATISTIC, OUTPUT_STATISTIC]
    assert all(c.reached for c in found)
    assert hidden == found[0].activity >= 2.0 and output == found[1].activity >= 0.75
    for w, c in zip(calibrated.weights, found):
        assert float(jnp.mean(w)) == pytest.approx(c.weight_mean) and c.weight_mean > 0

    # The smallest scale that reaches the target: 1 % less falls short (bisection, not a lucky guess).
    shrunk = eqx.tree_at(lambda n: n.weights[0], calibrated, calibrated.weights[0] * 0.99)
    low = simulate(shrunk, spikes, 2.0).layers[0]
    assert layer_activity(low.counts, low.exhausted, HIDDEN_STATISTIC) < 2.0


def test_weight_shape_balances_the_drive_mean_against_its_spread():
    spikes = sparse_batch(n_samples=4, n_events=5)
    w = 0.3 * jax.random.normal(jax.random.PRNGKey(0), (50, 30), jnp.float64) + 7.0
    shape, drive = weight_shape(w, spikes.times, spikes.units, 2.0, balance=2.0)
    z = w - jnp.mean(w)
    # Five events on distinct channels: E = 5, Q = sqrt(5); the mean per weight is 2 std(z) sqrt(5)/5.
    np.testing.assert_allclose(jnp.mean(shape), 2.0 * jnp.std(z) / np.sqrt(5), rtol=1e-12)
    np.testing.assert_allclose(drive, 5 * jnp.mean(shape), rtol=1e-12)
    np.testing.assert_allclose(shape - jnp.mean(shape), z, atol=1e-12)


def test_activity_statistics_and_an_exhausted_budget_counts_as_too_active():
    counts = np.zeros((3, 2), int)
    assert layer_activity(counts, np.array([False, True, False]), OUTPUT_STATISTIC) == np.inf
    assert layer_activity(np.array([[0, 1], [2, 3]]), np.zeros(2, bool), HIDDEN_STATISTIC) == 1.5  # neuron means 1, 2
    assert layer_activity(np.array([[0, 1], [2, 3]]), np.zeros(2, bool), OUTPUT_STATISTIC) == 0.75
