"""Gradient statistics: exact values on hand-built gradients, predictiveness on a quadratic, the combined
Dataset's dims and NaN for missing runs, epoch selection, and ``spikeode gradstats --run`` end to end."""

import math

import numpy as np
import pytest
import xarray as xr

from spikeode.cli import main
from spikeode.io.netcdf import read_dataset, write_dataset
from spikeode.study import gradstats as gs
from spikeode.training import default_config, train


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPIKEODE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_snr_cosine_and_zero_fraction_are_exact_on_hand_built_gradients():
    # three minibatch gradients of a 2-parameter layer: (1, 0), (0, 1), (1, 1)
    g = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    s = gs.layer_statistics(g)
    # gbar = (2/3, 2/3): ||gbar||^2 = 8/9; sum ||g_i - gbar||^2 = 5/9 + 5/9 + 2/9 = 4/3, V = (4/3) / 2 = 2/3
    assert s["grad_variance"] == pytest.approx(2 / 3, rel=1e-14)
    assert s["snr"] == pytest.approx((8 / 9) / (2 / 3), rel=1e-14)
    assert s["snr_debiased"] == pytest.approx((8 / 9 - (2 / 3) / 3) / (2 / 3), rel=1e-14)
    # cos(g1, g2) = 0, cos(g1, g3) = cos(g2, g3) = 1/sqrt(2)
    assert s["cosine"] == pytest.approx((0 + 2 / math.sqrt(2)) / 3, rel=1e-14)
    assert s["grad_norm"] == pytest.approx((1 + 1 + math.sqrt(2)) / 3, rel=1e-14)
    assert s["zero_grad_fraction"] == pytest.approx(1 / 3)  # 1 of 2 entries in g1 and g2, none in g3
    assert s["zero_grad_fraction_all"] == 0.0

    # identical gradients: cosine 1, no noise; opposite gradients: cosine -1, no signal
    same = gs.layer_statistics(np.tile([[3.0, 4.0, 0.0]], (4, 1)))
    assert same["cosine"] == pytest.approx(1.0) and same["snr"] == np.inf
    assert same["zero_grad_fraction_all"] == pytest.approx(1 / 3)
    opposite = gs.layer_statistics(np.array([[1.0, 2.0], [-1.0, -2.0]]))
    assert opposite["cosine"] == pytest.approx(-1.0) and opposite["snr"] == 0.0

    # per layer plus "all" (the concatenation): layer blocks of shapes (2, 1) and (1,)
    a = np.array([[[1.0], [0.0]], [[0.0], [1.0]], [[1.0], [1.0]]])
    b = np.array([[0.0], [0.0], [0.0]])
    stats = gs.gradient_statistics([a, b], ["hidden1", "output"])
    assert stats["snr"][0] == pytest.approx(4 / 3) and np.isnan(stats["cosine"][1])
    assert stats["snr"][2] == pytest.approx(4 / 3) and stats["zero_grad_fraction_all"][1] == 1.0
    # "all": g_i = (1, 0, 0), (0, 1, 0), (1, 1, 0): 2/3, 2/3 and 1/3 of the entries are zero
    assert stats["zero_grad_fraction"][2] == pytest.approx(5 / 9)


def test_predictiveness_on_a_quadratic_is_exact():
    # L_i(theta) = |theta_i|^2 / 2 (a different point per minibatch): g_i = theta_i, delta = -eta s g_i,
    # dL = |g|^2 (-eta s + eta^2 s^2 / 2), predicted = -eta s |g|^2, ratio = 1 - eta s / 2, grad change = eta s |g|
    rng = np.random.default_rng(0)
    eta, scales = 0.1, [0.5, 1.0, 2.0]
    theta = rng.normal(size=(5, 3))
    L = lambda x: 0.5 * np.sum(x**2, -1)
    deltas = np.stack([-eta * s * theta for s in scales])
    loss_s = np.stack([L(theta + d) for d in deltas])
    grads_s = theta[None] + deltas
    out = gs.predictiveness_statistics(L(theta), [theta], scales, [deltas], loss_s, [grads_s], L(theta - deltas[1]))
    n = np.linalg.norm(theta, axis=1)
    np.testing.assert_allclose(out["predictiveness_ratio"], [1 - eta * s / 2 for s in scales], rtol=1e-12)
    np.testing.assert_allclose(out["grad_change"][0], [eta * s * n.mean() for s in scales], rtol=1e-12)
    np.testing.assert_allclose(out["grad_change_relative"][1], [eta * s for s in scales], rtol=1e-12)
    np.testing.assert_allclose(out["effective_smoothness"], 1.0, rtol=1e-12)  # the Hessian is the identity
    np.testing.assert_allclose(out["step_length"], [eta * s * n.mean() for s in scales], rtol=1e-12)
    assert np.all(out["ascent_fraction"] == 0.0) and out["fd_sign_agreement"] == 1.0
    assert out["fd_slope_ratio"] == pytest.approx(1.0, rel=1e-12)  # central differences are exact on quadratics
    # a step far beyond the minimum (eta s > 2) increases every minibatch loss
    big = gs.predictiveness_statistics(L(theta), [theta], [1.0], [-3.0 * theta[None]], L(theta - 3.0 * theta)[None],
                                       [(theta - 3.0 * theta)[None]], L(theta + 3.0 * theta))
    assert big["ascent_fraction"][0] == 1.0 and big["predictiveness_ratio"][0] < 0


def _fake_checkpoint(model: str, seed: int, epoch: int, value: float) -> xr.Dataset:
    layers = ["hidden1", "output"]
    values = {}
    for name, (dims, *_rest) in gs.VARIABLES.items():
        shape = [{"layer": 3, "step_scale": 2, "pseudospikes": 2}[d] for d in dims]
        values[name] = np.full(shape, value)
    result = {"values": values, "layers": layers + ["all"], "step_scales": [0.5, 1.0], "step_kind": "adam", "probes": 4,
              "timing": {"total_s": 1.0}}
    config = default_config("synthetic", model, seed=seed)
    return gs.checkpoint_dataset(result, f"/runs/{model}_{seed}", config, epoch, 4, 8)


def test_combined_dataset_has_run_dims_and_nan_for_missing_runs(tmp_path):
    parts = [_fake_checkpoint(m, s, e, 10 * i + s + e / 10)
             for i, m in enumerate(["lif", "qif"]) for s in (0, 1) for e in (0, 2) if not (m == "lif" and s == 1)]
    ds = gs.combine_gradstats(parts, options={"n_batches": 4}, seed=0)
    assert dict(ds["snr"].sizes) == {"neuron_model": 2, "seed": 2, "epoch": 2, "layer": 3}
    assert list(ds.neuron_model.values) == ["lif", "qif"] and list(ds.epoch.values) == [0, 2]
    assert list(ds.layer.values) == ["hidden1", "output", "all"]
    assert ds["ascent_fraction"].dims == ("neuron_model", "seed", "epoch", "step_scale")
    assert bool(ds["snr"].sel(neuron_model="lif", seed=1).isnull().all())  # the missing run: NaN, not dropped
    assert float(ds["snr"].sel(neuron_model="qif", seed=1, epoch=2, layer="all")) == pytest.approx(11.2)
    mean = ds.sel(neuron_model="lif").mean("seed")  # the one-liner skips the missing seed
    assert float(mean["cosine"].sel(epoch=2, layer="output")) == pytest.approx(0.2)
    for name in gs.VARIABLES:
        attrs = ds[name].attrs
        assert attrs["long_name"] and attrs["units"] == "1" and attrs["description"]
    for key in ("title", "spikeode_version", "git_commit", "created", "seed", "config_json", "Conventions"):
        assert key in ds.attrs
    back = read_dataset(write_dataset(ds, tmp_path / "gs.nc"))
    xr.testing.assert_identical(back.drop_attrs(), ds.drop_attrs())
    with pytest.raises(ValueError, match="two checkpoints"):
        gs.combine_gradstats(parts + parts[:1])


def test_epoch_selection():
    avail = [0, 1, 2, 3, 4, 5]
    assert gs.select_epochs(avail) == [5]
    assert gs.select_epochs(avail, "first,middle,last") == [0, 2, 5]
    assert gs.select_epochs(avail, every=2) == [0, 2, 4, 5]
    assert gs.select_epochs(avail, "all") == avail
    with pytest.raises(FileNotFoundError):
        gs.select_epochs(avail, "7")


def test_runs_from_globs(tmp_path):
    for name in ("lif_s0", "qif_s0", "qif_s1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "checkpoint.json").write_text("{}")
    (tmp_path / "notes").mkdir()
    runs = gs.expand_runs([str(tmp_path / "*_s*"), tmp_path / "lif_s0" / "checkpoint.json"])
    assert [r.name for r in runs] == ["lif_s0", "qif_s0", "qif_s1"]
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        gs.expand_runs([tmp_path / "notes"])


def test_cli_gradstats_on_a_tiny_trained_run(tmp_path):
    config = default_config("synthetic", "qif", train_samples=16, test_samples=8, hidden=(6,), k_in=40,
                            epochs=1, batch_size=8, dtype="float64", n_slots=(3, 2))
    train(config, tmp_path / "run", progress=False)
    out, png = tmp_path / "gs.nc", tmp_path / "gs.png"
    assert main(["gradstats", "--run", str(tmp_path / "run"), "--batches", "3", "--epochs", "all",
                 "--step-scales", "1", "--out", str(out), "--plot", str(png), "--quiet"]) == 0
    ds = read_dataset(out)
    assert list(ds.epoch.values) == [0, 1] and list(ds.neuron_model.values) == ["qif"]
    assert list(ds.layer.values) == ["hidden1", "output", "all"] and list(ds.step_scale.values) == [1.0]
    for name in ("grad_norm", "snr", "cosine", "zero_grad_fraction", "ascent_fraction", "grad_change", "loss"):
        assert np.all(np.isfinite(ds[name].values)), name
    zf = ds["zero_grad_fraction"].values
    assert np.all((zf >= 0) & (zf <= 1))
    # the loss is the run's training loss: epoch 0 is the initialisation, its loss near the history's
    hist = read_dataset(tmp_path / "run" / "run.nc")
    assert abs(float(ds.loss.sel(epoch=0).squeeze()) - float(hist.train_loss.sel(epoch=0))) < 0.5 * float(
        hist.train_loss.sel(epoch=0))
    assert png.exists() and png.stat().st_size > 10_000
