"""Reverse mode through a diffrax solve from fewer stored steps than it takes is recomputed, not truncated."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikeode.engine.adjoint import simulate_layer_adjoint
from spikeode.engine.layer import simulate_layer
from spikeode.integrate import Diffrax
from spikeode.neurons import EIF

T = 3.0
SLOTS = 4


@pytest.mark.parametrize("simulate", [simulate_layer, simulate_layer_adjoint], ids=["autodiff", "adjoint"])
def test_few_checkpoints_give_the_same_gradient(simulate):
    # Sparse inputs: inter-event solves of length ~1 take many Tsit5 steps at 1e-12, more than 1 checkpoint.
    neuron = EIF(I0=0.5)
    weights = jnp.array([[0.9, 0.4], [0.3, 1.1]])
    in_times = jnp.array([0.4, 1.1, 1.9, 2.2])
    in_units = jnp.array([0, 1, 0, 1])

    def loss(w, integ):
        tr = simulate(neuron, w, in_times, in_units, T, n_slots=SLOTS, integrator=integ)
        assert tr.times.dtype == jnp.float64
        return jnp.sum(jnp.where(jnp.isfinite(tr.times), tr.times, 0.0)) + jnp.sum(tr.state_T), tr

    grads = {}
    for c in (1, 64):
        integ = Diffrax(rtol=1e-12, atol=1e-12, root_tol=1e-12, checkpoints=c)
        (value, tr), grads[c] = jax.value_and_grad(loss, has_aux=True)(weights, integ)
        assert not bool(tr.failed) and int(jnp.sum(tr.counts)) >= 2
    np.testing.assert_allclose(grads[1], grads[64], rtol=1e-12, atol=1e-14)
    assert np.count_nonzero(grads[64]) >= 3  # the comparison is not between zeros
