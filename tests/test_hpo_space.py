"""The built-in search space fits the data source: every configuration it can draw loads."""

from __future__ import annotations

import pytest

from spikeode.data.yinyang import T_LATE
from spikeode.study import hpo
from spikeode.training import default_config


@pytest.mark.parametrize("neuron", ["lif", "qif"])
def test_yinyang_space_draws_only_loadable_trial_lengths(neuron):
    """Yin-Yang inputs spike up to T_LATE: a trial length T <= T_LATE cannot hold them (a pilot's trial
    failed with T = 1.0), and k_in (a cap on SHD-format inputs) has no effect there."""
    base = default_config("yinyang", neuron)
    space = hpo.validate_space(hpo.default_space(neuron, base.init, base.data), base)
    assert "k_in" not in space
    assert space["T"]["choices"] and min(space["T"]["choices"]) > T_LATE
    synthetic = hpo.default_space(neuron, base.init, "synthetic")
    assert "k_in" in synthetic and min(synthetic["T"]["choices"]) <= T_LATE  # only Yin-Yang is restricted


def test_trial_layers_keep_each_layers_value_and_a_mismatch_raises():
    """A deeper trial network repeats the base's deepest hidden value and keeps the output's own; a base
    with more per-layer values than layers raises instead of dropping one (it used to be dropped)."""
    import dataclasses

    base = dataclasses.replace(default_config("synthetic", "lif", hidden=(8,)), n_slots=(5, 7))
    assert hpo.apply_params(base, {"hidden.depth": 2}).n_slots == (5, 5, 7)
    with pytest.raises(ValueError, match="n_slots has 3 entries for 2 spiking layers"):
        hpo.apply_params(dataclasses.replace(base, n_slots=(5, 6, 7)), {"hidden.depth": 2})
