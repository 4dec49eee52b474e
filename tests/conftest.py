"""Shared test setup: the CLI's XLA CPU defaults, float64 everywhere (exactness first) and small helpers."""

import spikeode

spikeode.use_fast_cpu_defaults()  # before JAX starts, as the CLI and the studies do (faster compiles)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
