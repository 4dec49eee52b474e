"""Training: loss decreases, run.nc conventions, kill/resume, pseudospikes, SHD layout, NaN stop; defaults
that give a network that really spikes (calibrated init, real-spike accuracy, models without pseudodynamics);
the CLI's flags generated from the configuration, and a user's own neuron model trained from the CLI."""

import dataclasses
import importlib
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from spikeode.cli import build_parser
from spikeode.cli import main as cli_main
from spikeode.commands.train import config_flags, config_from_args
from spikeode.data.latency import write_latency_shd
from spikeode.data.synthetic import write_synthetic
from spikeode.io.netcdf import config_of
from spikeode.neurons import EIF, LIF, QIF
from spikeode.training import (
    CALIBRATION_VARIABLES,
    HISTORY_VARIABLES,
    TrainConfig,
    build_model,
    changed_keys,
    default_config,
    load_data,
    load_model,
    make_loss_fn,
    read_config_file,
    resolve_gradient,
    train,
)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPIKEODE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def tiny(**overrides):
    values = dict(train_samples=48, test_samples=24, hidden=(8,), k_in=80, epochs=3, batch_size=16, lr=1e-2,
                  dtype="float64")
    values.update(overrides)
    return default_config(values.pop("data", "synthetic"), values.pop("neuron", "qif"), **values)


def test_loss_decreases_and_history_is_documented(tmp_path):
    ds = train(tiny(epochs=4), tmp_path, progress=False)
    assert ds.train_loss.values[-1] < ds.train_loss.values[1]
    assert list(ds.epoch.values) == [0, 1, 2, 3, 4]
    for name in HISTORY_VARIABLES:
        assert name in ds and ds[name].attrs["long_name"] and "units" in ds[name].attrs
    for key in ("title", "spikeode_version", "git_commit", "created", "seed", "config_json", "Conventions"):
        assert key in ds.attrs
    assert config_of(ds)["neuron"] == "qif"
    assert (tmp_path / "checkpoint.eqx").exists() and (tmp_path / "run.nc").exists()


def test_resume_gives_the_identical_history(tmp_path):
    config = tiny(neuron="lif")
    full = train(config, tmp_path / "full", progress=False)
    train(config, tmp_path / "killed", progress=False, stop_after=1)
    resumed = train(config, tmp_path / "killed", progress=False)
    for name in HISTORY_VARIABLES:
        if name != "wall_time":
            np.testing.assert_array_equal(full[name].values, resumed[name].values, err_msg=name)


def test_microbatches_give_the_whole_batch_step_and_fit_a_memory_budget():
    """Gradients summed over microbatches (a lax.scan in the step) give the whole batch's step to float64
    rounding, masked samples included; a memory budget below the whole step's picks a microbatch that fits,
    and one below any microbatch's is an error naming the budget."""
    from spikeode.training.loop import (
        _padded_batches,
        _step_gib,
        fitted_training_step,
        loss_hyperparameters,
        training_step,
    )
    from spikeode.training.optim import trainable_filter

    config = default_config("synthetic", "lif", hidden=(4,), k_in=40, train_samples=24, test_samples=8, epochs=1,
                            batch_size=12, dtype="float64", optimizer="sgd", grad_clip=0)
    train_set = load_data(config)[0]
    model = build_model(config, train_set.n_channels, train_set.n_classes, key=jax.random.PRNGKey(0))
    spec = trainable_filter(model, config)
    spikes, labels, mask = next(_padded_batches(train_set, 12))
    mask = mask.at[-2:].set(False)
    hyper = loss_hyperparameters(config)
    results, need = {}, {}
    for micro in (12, 6):
        optimizer, step = training_step(config, 2, None, micro)
        args = (model, optimizer.init(eqx.filter(model, spec)), spikes, labels, mask, hyper, spec)
        need[micro] = _step_gib(step, args)
        results[micro] = step(*args)
    (m12, _, metrics12, g12, ok12), (m6, _, metrics6, g6, ok6) = results[12], results[6]
    assert bool(ok12) and bool(ok6) and float(metrics12["n"]) == 10
    np.testing.assert_allclose(float(g6), float(g12), rtol=1e-13)
    for name in ("loss_sum", "correct", "n"):
        np.testing.assert_allclose(float(metrics6[name]), float(metrics12[name]), rtol=1e-13)
    for a, b in zip(jax.tree.leaves(eqx.filter(m6, eqx.is_inexact_array)),
                    jax.tree.leaves(eqx.filter(m12, eqx.is_inexact_array))):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)  # sgd: the update is the gradient itself

    assert need[6] < need[12]
    budget = (need[6] + need[12]) / 2  # the first candidate, 6, is estimated and then measured to fit
    _, _, micro, notice = fitted_training_step(config.replace(memory_budget=budget), 2, None, args)
    assert micro == 6 and "microbatches of 6" in notice
    assert fitted_training_step(config, 2, None, args)[2:] == (12, "")  # default budget: half the RAM
    with pytest.raises(MemoryError, match="memory budget"):
        fitted_training_step(config.replace(memory_budget=1e-9), 2, None, args)
    with pytest.raises(ValueError, match="microbatch must divide"):
        config.replace(microbatch=5)


@pytest.fixture
def own_programs(monkeypatch):
    """The training module, with the test tracing its own steps and losses: none of earlier tests of this
    process is reused, and none of the test's (a patched loss, say) is left to later ones."""
    loop = importlib.import_module("spikeode.training.loop")
    monkeypatch.setattr(loop, "_STEPS", {})
    loop.batch_loss.cache_clear()
    loop._jitted_loss.cache_clear()
    yield loop
    loop.batch_loss.cache_clear()
    loop._jitted_loss.cache_clear()


def test_hyperparameters_that_keep_shapes_reuse_the_compiled_programs(tmp_path, monkeypatch, own_programs):
    """Learning rate, clipping norm, the schedule's length (epochs), trial length, temperature, gamma and the
    time constants are arrays of the compiled step and loss, not constants: a second run that differs only in
    them traces nothing (issue 17), and still uses them; LIF's time constants leave the closed-form ratio
    tau_mem = 2 tau_syn (another branch of the same program)."""
    loop = own_programs
    traces = []
    simulate = loop.simulate
    monkeypatch.setattr(loop, "simulate", lambda *a, **k: traces.append(1) or simulate(*a, **k))
    config = tiny(neuron="lif")
    first = train(config, tmp_path / "a", progress=False)
    assert traces  # the step and the evaluation were traced
    traces.clear()
    other = dataclasses.replace(config, lr=3e-2, grad_clip=0.5, T=2.5, temperature=0.3, gamma=0.1, epochs=2,
                                neuron_params={**config.neuron_params, "tau_mem": 1.3, "tau_syn": 0.4})
    second = train(other, tmp_path / "b", progress=False)
    assert not traces
    assert second.sizes["epoch"] == 3
    assert not np.allclose(first.train_loss.values[1:3], second.train_loss.values[1:])


@pytest.mark.parametrize("schedule, reference", [
    ("cosine", lambda total: optax.cosine_decay_schedule(1.0, total, alpha=0.01)),
    ("exponential", lambda total: optax.exponential_decay(1.0, transition_steps=total, decay_rate=0.1))])
def test_schedules_with_their_length_in_the_state_are_optax_schedules(schedule, reference):
    """The schedule's length is optimiser state (one compiled step for any number of epochs); the factors are
    optax's, past the end too."""
    from spikeode.training.optim import _scale_by_decay

    total = 7
    decay = _scale_by_decay(schedule, total)
    state = decay.init({"w": jnp.zeros(2)})
    for count in range(total + 3):
        updates, state = decay.update({"w": jnp.ones(2)}, state)
        expected = reference(total)(jnp.asarray(count, jnp.int32))  # optax.scale_by_schedule's int32 count
        np.testing.assert_allclose(updates["w"], float(expected), rtol=1e-14)


def test_resume_with_another_config_is_refused(tmp_path):
    train(tiny(epochs=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"differing keys: \['lr'\]"):
        train(tiny(epochs=1, lr=0.5), tmp_path, progress=False)


def _silent_setup(pseudospikes):
    config = tiny(weight_mean=(-0.5, -0.5), weight_std=(0.1, 0.1), pseudospikes=pseudospikes)
    train_set, _, _ = load_data(config)
    model = build_model(config, train_set.n_channels, train_set.n_classes, key=jax.random.PRNGKey(0))
    loss_fn = make_loss_fn(config)
    spikes, labels = train_set.spikes[:16], jnp.asarray(train_set.labels[:16])
    (_, metrics), grads = eqx.filter_jit(eqx.filter_value_and_grad(loss_fn, has_aux=True))(
        model, spikes, labels, jnp.ones(16, bool))
    assert all(int(c.sum()) == 0 for c in metrics["spike_counts"]), "the network must start fully silent"
    return config, grads


def test_silent_network_gets_gradients_only_with_pseudospikes(tmp_path):
    config, grads_on = _silent_setup(True)
    _, grads_off = _silent_setup(False)
    for w_on, w_off in zip(grads_on.net.weights, grads_off.net.weights):
        assert float(jnp.abs(w_on).max()) > 0
        assert float(jnp.abs(w_off).max()) == 0
    ds = train(config.replace(epochs=4), tmp_path, progress=False)
    assert ds.train_loss.values[-1] < ds.train_loss.values[0]


def test_runs_on_real_shd_layout(tmp_path):
    write_synthetic(tmp_path / "shd", n_train=40, n_test=20, seed=3)
    config = tiny(data=f"shd:{tmp_path / 'shd'}", train_samples=None, test_samples=None, epochs=1)
    ds = train(config, tmp_path / "run", progress=False)
    assert np.isfinite(ds.test_loss.values).all()


def test_gamma_term_stays_finite_for_far_pseudospikes():
    """Beyond ``T`` the gamma term continues ``exp(t/T) - 1`` linearly (value and slope match at ``T``), so a
    silent label's pseudospike ~1e6 T late (a strongly inhibited QIF) gives a finite loss and gradient."""
    loss_module = importlib.import_module("spikeode.training.loss")
    T, labels = 2.0, jnp.array([0])
    loss = lambda t_label: loss_module.first_spike_loss(  # noqa: E731
        jnp.array([[t_label, 0.5, 2.5]]), labels, T, temperature=0.1, gamma=0.8)[0]
    below = 0.7 * T
    np.testing.assert_allclose(loss_module.gamma_term(jnp.array(below / T)), np.expm1(below / T), rtol=1e-12)
    eps = 1e-7
    np.testing.assert_allclose(loss(T + eps), loss(T - eps), atol=1e-5)
    np.testing.assert_allclose(jax.grad(loss)(T + eps), jax.grad(loss)(T - eps), rtol=1e-5)
    far = 1.35e6  # the silent label's pseudospike time that stopped a QIF Yin-Yang run (issue 18)
    assert np.isfinite(float(loss(far))) and np.isfinite(float(jax.grad(loss)(far)))
    assert float(jax.grad(loss)(far)) > 0  # a later silent label still costs more


def test_non_finite_loss_stops_and_keeps_the_checkpoint(tmp_path, monkeypatch, own_programs):
    loss_module = importlib.import_module("spikeode.training.loss")

    config = tiny(epochs=2)
    monkeypatch.setattr(loss_module, "first_spike_loss", lambda *a, **k: jnp.full(a[1].shape, jnp.nan))
    with pytest.raises(FloatingPointError, match="epoch 1.*checkpoint of epoch 0"):
        train(config, tmp_path, progress=False)
    assert (tmp_path / "checkpoint.eqx").exists()


def test_adjoint_training_gives_the_autodiff_history(tmp_path):
    config = tiny(epochs=2, neuron="lif")
    a = train(config, tmp_path / "autodiff", progress=False)
    b = train(config.replace(gradient="adjoint"), tmp_path / "adjoint", progress=False)
    for name in ("train_loss", "test_loss", "test_accuracy", "grad_norm"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-9, err_msg=name)


# --- defaults that give a network that really spikes ----------------------------------------------


@pytest.mark.parametrize("neuron", ["qif", "lif"])
def test_defaults_train_a_network_that_spikes_on_sparse_latency_data(tmp_path, neuron):
    data = write_latency_shd(tmp_path / "latency", n_classes=4, n_channels=40, n_active=40, spikes=(16, 16),
                             n_train=96, n_test=48)
    # The recipe of SHD-layout data with a small network; calibrated init and gradient as by default.
    config = default_config(f"shd:{data}", neuron, hidden=(16,), k_in=None, epochs=8, batch_size=16)
    ds = train(config, tmp_path / "run", progress=False)
    assert ds.attrs["init"] == "calibrated" and ds.attrs["objective"] == "test_accuracy"
    assert float(ds.test_accuracy[-1]) >= 0.5, "real-spike accuracy must be well above chance (0.25)"
    assert float(ds.output_silent_sample_fraction[-1]) < 0.5 and ds.attrs["outputs_mostly_silent"] == 0
    assert (ds.test_accuracy <= ds.test_accuracy_pseudo + 1e-12).all(), "real spikes count a subset of samples"
    np.testing.assert_array_less(ds.calibration_target.values - 1e-9, ds.calibration_activity.values)
    for name, _ in CALIBRATION_VARIABLES.values():
        assert ds[name].dims == ("layer",) and ds[name].attrs["long_name"]


def test_user_model_without_pseudodynamics_trains_with_a_notice(tmp_path, capsys):
    config = tiny(neuron="user_models:UserDeltaLIF", epochs=1)
    ds = train(config, tmp_path, progress=False)
    notice = capsys.readouterr().err
    assert "declares no pseudodynamics" in notice and "linear continuation" in notice
    assert config_of(ds)["pseudospikes"] is True and "linear continuation" in ds.attrs["notice"]
    assert np.isfinite(ds.train_loss.values).all()
    train(config, tmp_path, progress=False)  # resumes: the effective configuration is the stored one


def test_linear_continuation_is_the_generic_pseudodynamics():
    """For a threshold linear in the state (``V - v_th``, reset to 0) the continuation is exact: delay
    ``(v_th - V)/s`` and period ``v_th/s`` at speed ``s = softplus(1 + drive)``; the delay falls to 0 as V
    reaches the threshold, and a silent network of such a model gets gradients through it."""
    from user_models import UserDeltaLIF

    from spikeode.training.readout import linear_continuation

    neuron = UserDeltaLIF(v_th=1.3)
    speed = float(jax.nn.softplus(1.0 + 0.4))
    for v in (-0.5, 0.2, 1.3 - 1e-9):
        delay, period = linear_continuation(neuron, jnp.array([v]), 0.4)
        np.testing.assert_allclose([float(delay), float(period)], [(1.3 - v) / speed, 1.3 / speed], rtol=1e-12)
    grad = jax.grad(lambda v: linear_continuation(neuron, jnp.array([v]), 0.4)[0])(0.2)
    np.testing.assert_allclose(float(grad), -1 / speed, rtol=1e-12)

    config = tiny(neuron="user_models:UserDeltaLIF", weight_mean=(-0.5, -0.5), weight_std=(0.1, 0.1), init="recipe")
    train_set = load_data(config)[0]
    model = build_model(config, train_set.n_channels, train_set.n_classes, key=jax.random.PRNGKey(0))
    spikes, labels = train_set.spikes[:8], jnp.asarray(train_set.labels[:8])
    (_, metrics), grads = eqx.filter_jit(eqx.filter_value_and_grad(make_loss_fn(config), has_aux=True))(
        model, spikes, labels, jnp.ones(8, bool))
    assert all(int(c.sum()) == 0 for c in metrics["spike_counts"]), "the network must start fully silent"
    assert all(float(jnp.abs(w).max()) > 0 for w in grads.net.weights)


def test_auto_gradient_is_the_adjoint_on_the_diffrax_path():
    config = tiny()
    assert config.gradient == "auto"
    assert resolve_gradient(config, [QIF(), QIF()]) == "autodiff"
    assert resolve_gradient(config, [EIF()]) == "adjoint"
    assert resolve_gradient(config.replace(integrator="diffrax"), [LIF()]) == "adjoint"
    assert resolve_gradient(config.replace(gradient="autodiff", integrator="diffrax"), [LIF()]) == "autodiff"


def test_recipe_init_is_kept_and_silent_outputs_are_flagged(tmp_path):
    # The fixed synthetic recipe on this tiny subset leaves the outputs silent: a warning and a flag say so.
    config = tiny(init="recipe", epochs=1)
    with pytest.warns(UserWarning, match="no real output spike"):
        ds = train(config, tmp_path, progress=False)
    assert ds.attrs["init"] == "recipe" and "calibration_scale" not in ds
    assert ds.attrs["outputs_mostly_silent"] == 1 and float(ds.output_silent_sample_fraction[-1]) > 0.5
    assert float(ds.test_accuracy[-1]) == 0.0


# --- the configuration on the command line -------------------------------------------------------------------
def _argv(config: TrainConfig) -> list[str]:
    """``config`` as ``spikeode train`` flags (tuples comma-separated, dicts as JSON, switches when set)."""
    argv = []
    for key, options in config_flags().items():
        value = getattr(config, key)
        if options.get("action") == "store_const":
            argv += [options["flag"]] if value == options["const"] else []
        elif isinstance(value, tuple):
            argv += [options["flag"], ",".join(map(str, value))]
        else:
            argv += [options["flag"], json.dumps(value) if isinstance(value, dict) else str(value)]
    return argv


def _train_args(*argv: str):
    return build_parser().parse_args(["train", "--out", "unused", *argv])


def test_every_config_field_has_a_documented_flag(capsys):
    assert set(config_flags()) == {f.name for f in dataclasses.fields(TrainConfig)}
    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for f in dataclasses.fields(TrainConfig):
        options = config_flags()[f.name]
        assert len(f.metadata["help"]) > 10 and options["flag"] in text and options["help"] in text, f.name
        assert all(choice in options["help"] for choice in f.metadata.get("choices", ())), f.name  # values named


def test_flags_round_trip_to_the_configuration():
    config = TrainConfig(
        neuron="lif", neuron_params={"tau_mem": 0.8}, data="synthetic:easy", T=1.5, k_in=40, pool=2,
        train_samples=24, test_samples=12, validation_fraction=0.25, hidden=(6, 5), epochs=2, batch_size=8,
        optimizer="sgd", lr=0.05, schedule="constant", grad_clip=0.5, weight_mean=(0.1, 0.2, 0.3),
        weight_std=(1.5,), n_slots=(3, 4, 5), temperature=0.3, gamma=0.1, pseudospikes=False, readout="max_voltage",
        train_neuron=True, integrator="diffrax", gradient="adjoint", init="recipe", calibration_rate=1.5,
        calibration_output=0.5, objective="pseudo", dtype="float64", microbatch=4, memory_budget=2.5, seed=7)
    recipe = default_config(config.data, config.neuron)
    same = [f.name for f in dataclasses.fields(TrainConfig) if getattr(config, f.name) == getattr(recipe, f.name)]
    assert same == ["neuron", "data"], "every other flag must change the recipe's value to be tested"
    assert config_from_args(_train_args(*_argv(config))) == config
    assert config_from_args(_train_args("--grad-clip", "0")).grad_clip is None  # 0: no clipping


def test_config_file_sits_between_the_recipe_and_the_flags(tmp_path):
    (tmp_path / "c.toml").write_text('neuron = "lif"\nlr = 0.1\nepochs = 3\nhidden = [7, 5]\n')
    config = config_from_args(_train_args("--config", str(tmp_path / "c.toml"), "--lr", "0.2"))
    assert (config.neuron, config.lr, config.epochs, config.hidden) == ("lif", 0.2, 3, (7, 5))
    assert config.batch_size == default_config("synthetic", "lif").batch_size
    (tmp_path / "c.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a table"):
        read_config_file(tmp_path / "c.json")
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(ValueError, match="cannot parse config file"):
        read_config_file(tmp_path / "c.json")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_config_file(tmp_path / "missing.json")


def test_changed_keys_names_every_difference():
    assert changed_keys({"a": 1, "b": None}, {"a": 1, "c": None}) == ["b", "c"]
    assert changed_keys({"a": [1, 2]}, {"a": [1, 2]}) == []


@pytest.mark.filterwarnings("ignore:.*no real output spike")  # recipe init on 16 samples: outputs may stay silent
def test_users_model_trains_from_the_cli(tmp_path, capsys):
    params = {"tau": 0.7, "v_th": 0.8}
    argv = ["train", "--neuron", "user_models:UserDeltaLIF", "--neuron-params", json.dumps(params), "--hidden", "3",
            "--train-samples", "16", "--test-samples", "8", "--batch-size", "8", "--k-in", "30", "--epochs", "1",
            "--init", "recipe", "--dtype", "float64", "--quiet", "--out", str(tmp_path / "run")]
    assert cli_main(argv) == 0
    assert "final test accuracy" in capsys.readouterr().out
    model, config = load_model(tmp_path / "run")
    assert config.neuron == "user_models:UserDeltaLIF" and config.neuron_params == params
    assert [(n.tau, n.v_th) for n in model.net.neurons] == [(0.7, 0.8)] * 2


def test_the_package_lists_each_public_name_once_and_statically():
    """``spikeode.training``'s lazily imported names are exactly its ``TYPE_CHECKING`` imports (what IDEs see)."""
    import ast
    import inspect

    import spikeode.training as package

    block = next(node for node in ast.parse(inspect.getsource(package)).body
                 if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    static = {(imp.module, alias.name) for imp in block.body for alias in imp.names}
    assert static == {(f"spikeode.training{module}", name) for name, module in package._LAZY.items()}
    assert all(getattr(package, name) is not None for name in package.__all__)
