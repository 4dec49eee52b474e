"""Shared test setup: float64 everywhere (exactness first) and small helpers."""

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
