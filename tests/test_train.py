"""Training: loss decreases, run.nc conventions, kill/resume, pseudospikes, SHD layout, NaN stop."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spikeode.data.synthetic import write_synthetic
from spikeode.results import config_of
from spikeode.train import HISTORY_VARIABLES, build_model, default_config, load_data, make_loss_fn, train


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
    (loss, metrics), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model, spikes, labels, jnp.ones(16, bool))
    assert all(int(c.sum()) == 0 for c in metrics["spike_counts"]), "the network must start fully silent"
    return config, grads


def test_silent_network_gets_gradients_only_with_pseudospikes(tmp_path):
    _, grads_on = _silent_setup(True)
    _, grads_off = _silent_setup(False)
    for w_on, w_off in zip(grads_on.net.weights, grads_off.net.weights):
        assert float(jnp.abs(w_on).max()) > 0
        assert float(jnp.abs(w_off).max()) == 0
    config, _ = _silent_setup(True)
    ds = train(config.replace(epochs=4), tmp_path, progress=False)
    assert ds.train_loss.values[-1] < ds.train_loss.values[0]


def test_runs_on_real_shd_layout(tmp_path):
    write_synthetic(tmp_path / "shd", n_train=40, n_test=20, seed=3)
    config = tiny(data=f"shd:{tmp_path / 'shd'}", train_samples=None, test_samples=None, epochs=1)
    ds = train(config, tmp_path / "run", progress=False)
    assert np.isfinite(ds.test_loss.values).all()


def test_non_finite_loss_stops_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    import spikeode.train as train_module

    config = tiny(epochs=2)
    monkeypatch.setattr(train_module, "first_spike_loss", lambda *a, **k: jnp.full(a[1].shape, jnp.nan))
    with pytest.raises(FloatingPointError, match="epoch 1.*checkpoint of epoch 0"):
        train(config, tmp_path, progress=False)
    assert (tmp_path / "checkpoint.eqx").exists()


def test_adjoint_training_gives_the_autodiff_history(tmp_path):
    config = tiny(epochs=2, neuron="lif")
    a = train(config, tmp_path / "autodiff", progress=False)
    b = train(config.replace(gradient="adjoint"), tmp_path / "adjoint", progress=False)
    for name in ("train_loss", "test_loss", "test_accuracy", "grad_norm"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-9, err_msg=name)
