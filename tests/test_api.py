"""The public API (``import spikeode``), its freedom from side effects, precision and per-layer values.

Checks of global state run in a fresh interpreter (this process has JAX with x64 on, see conftest).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

import spikeode
from spikeode.training import build_model, default_config

FLAG = "--xla_cpu_use_fusion_emitters=false"
TESTS = Path(__file__).parent


def _python(code: str, *options: str, env: dict | None = None) -> dict:
    """Run ``code`` in a fresh interpreter (no XLA_FLAGS, x64 off); it prints one JSON line, returned here."""
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64", "SPIKEODE_XLA_DEFAULTS")}
    proc = subprocess.run([sys.executable, *options, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**clean, "JAX_PLATFORMS": "cpu", **(env or {})}, cwd=TESTS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- public names ---------------------------------------------------------------------------------
def test_the_package_gives_the_names_a_user_needs():
    from spikeode import data, neurons, spikes, train
    from spikeode.engine import network

    assert spikeode.FeedForward is network.FeedForward and spikeode.simulate is network.simulate
    assert spikeode.simulate_neuron is network.simulate_neuron and spikeode.Spikes is spikes.Spikes
    assert (spikeode.LIF, spikeode.QIF, spikeode.EIF, spikeode.AbstractNeuron) == (
        neurons.LIF, neurons.QIF, neurons.EIF, neurons.AbstractNeuron)
    assert spikeode.load_dataset is data.load_dataset and spikeode.SpikeDataset is data.SpikeDataset
    module = importlib.import_module("spikeode.training")
    assert spikeode.train is module.train and train is module.train and callable(spikeode.train)
    assert spikeode.TrainConfig is module.TrainConfig and spikeode.default_config is module.default_config
    for name in spikeode.__all__:
        assert getattr(spikeode, name) is not None, name
    assert set(spikeode.__all__) <= set(dir(spikeode))
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        spikeode.nonexistent  # noqa: B018


def test_static_imports_list_the_same_names():
    """The ``TYPE_CHECKING`` imports (what IDEs see) name exactly the lazily imported public names."""
    import ast
    import inspect

    block = next(node for node in ast.parse(inspect.getsource(spikeode)).body
                 if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    static = {(imp.module, alias.name) for imp in block.body for alias in imp.names}
    assert static == {(f"spikeode{module}", name) for name, module in spikeode._LAZY.items()}


def test_import_is_light_and_changes_no_global_state():
    out = _python("import json, os, sys, spikeode; spikeode.FeedForward, spikeode.QIF, spikeode.train; "
                  "print(json.dumps({'xla': os.environ.get('XLA_FLAGS'), 'x64': __import__('jax').config.jax_enable_x64}))")
    assert out == {"xla": None, "x64": False}
    out = _python("import json, sys, spikeode; print(json.dumps({'jax': 'jax' in sys.modules}))")
    assert out == {"jax": False}  # JAX loads when a name that needs it is first used


# --- XLA CPU defaults: an explicit call, made by the CLI --------------------------------------------
def test_fast_cpu_defaults_are_explicit_and_respect_the_user():
    code = ("import json, os, spikeode; r = spikeode.use_fast_cpu_defaults(); "
            "print(json.dumps({'returned': r, 'xla': os.environ.get('XLA_FLAGS')}))")
    assert _python(code) == {"returned": True, "xla": FLAG}
    assert _python(code, env={"SPIKEODE_XLA_DEFAULTS": "0"}) == {"returned": False, "xla": None}
    mine = "--xla_cpu_use_fusion_emitters=true --xla_force_host_platform_device_count=2"
    assert _python(code, env={"XLA_FLAGS": mine}) == {"returned": False, "xla": mine}


def test_cli_applies_the_cpu_defaults_before_jax_starts():
    """The flag is in XLA_FLAGS when a subcommand runs, and nothing started JAX before that."""
    code = """
import json, os, sys
import spikeode.commands.data_info as command
seen = {}
def probe(args):
    seen.update(xla=os.environ.get("XLA_FLAGS"), jax_imported_before="jax" in sys.modules)
    import jax.numpy as jnp
    seen["computes"] = float(jnp.ones(3).sum())  # XLA's CPU backend starts here, with the flag
    return 0
command.run = probe
from spikeode.cli import main
seen["rc"] = main(["data-info"])
print(json.dumps(seen))
"""
    assert _python(code) == {"xla": FLAG, "jax_imported_before": False, "computes": 3.0, "rc": 0}


# --- precision ------------------------------------------------------------------------------------
def test_train_in_float64_without_x64_enabled_by_the_caller(tmp_path):
    code = f"""
import json, jax, numpy as np, spikeode
from spikeode.training import load_model
assert not jax.config.jax_enable_x64
config = spikeode.default_config("synthetic", "qif", dtype="float64", hidden=(3,), train_samples=16,
                                 test_samples=8, epochs=1, batch_size=8, k_in=30, init="recipe")
history = spikeode.train(config, {str(tmp_path / "run")!r}, progress=False, stop_after=0)  # built and evaluated
model, _ = load_model({str(tmp_path / "run")!r})
print(json.dumps({{"weights": [str(w.dtype) for w in model.net.weights],
                  "finite": bool(np.isfinite(history.test_loss.values).all())}}))
"""
    assert _python(code) == {"weights": ["float64", "float64"], "finite": True}


def test_precision_helper_refuses_unknown_dtypes():
    from spikeode.precision import ensure_precision, jax_dtype

    assert jax_dtype("float64") is jax.numpy.float64 and jax.config.jax_enable_x64
    with pytest.raises(ValueError, match="float16"):
        ensure_precision("float16")


# --- per-layer values -----------------------------------------------------------------------------
@pytest.mark.parametrize("key, value", [("weight_mean", (0.1, 0.2, 0.3)), ("weight_std", (1.0, 1.0, 1.0)),
                                        ("n_slots", (4, 4, 4)), ("n_slots", (4, 4, 4, 4))])
def test_per_layer_values_of_the_wrong_length_raise(key, value):
    config = default_config("synthetic", "lif", hidden=(5,), **{key: value})  # 2 spiking layers
    with pytest.raises(ValueError, match=f"{key} has {len(value)} entries for 2 spiking layers"):
        build_model(config, 6, 3, key=jax.random.PRNGKey(0))


def test_per_layer_values_expand_and_the_voltage_readout_takes_the_recipe():
    config = default_config("synthetic", "lif", hidden=(5, 4), n_slots=3, weight_std=1.0,
                            weight_mean=(0.1, 0.2, 0.3))
    model = build_model(config, 6, 3, key=jax.random.PRNGKey(0))
    assert model.net.n_slots == (3, 3, 3) and len(model.net.weights) == 3
    # the recipe's (hidden, output) lists with a non-spiking readout: the output entry is unused
    voltage = default_config("synthetic", "lif", hidden=(5,), readout="max_voltage")
    assert len(voltage.n_slots) == 2
    assert build_model(voltage, 6, 3, key=jax.random.PRNGKey(0)).net.n_slots == voltage.n_slots[:1]
    with pytest.raises(ValueError, match="n_slots has 3 entries for 1 spiking layers"):
        build_model(voltage.replace(n_slots=(4, 4, 4)), 6, 3, key=jax.random.PRNGKey(0))


# --- no module reads its own docstring ----------------------------------------------------------
def test_gradstats_definitions_survive_python_OO():
    code = """
import json
import spikeode.study.gradstats as gs
from test_gradstats import _fake_checkpoint
ds = gs.combine_gradstats([_fake_checkpoint("lif", 0, 0, 1.0)])
print(json.dumps({"definitions": ds.attrs["definitions"][:7], "doc": gs.__doc__}))
"""
    assert _python(code, "-OO") == {"definitions": "Layers.", "doc": None}
