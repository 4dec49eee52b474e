"""Landscapes: diagnostics on hand-built spike times, directions, the loss matches training, kill/resume,
Dask equality, single-sample spike arrays and located events, the CLI; CF compliance of the result files."""

import contextlib
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from spikeode.io.netcdf import read_dataset
from spikeode.study import caches
from spikeode.study import landscape as ls
from spikeode.study.diagnostics import (
    edge_diagnostics,
    is_jump,
    order_changes,
    spike_changes,
    summary_metrics,
)
from spikeode.study.landscape import LandscapeConfig, compute_landscape, filter_normalise, random_direction
from spikeode.training import default_config, load_checkpoint, load_data, make_loss_fn, train

INF = np.inf


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPIKEODE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@contextlib.contextmanager
def _module_cache(tmp_path_factory):
    """The tests' data cache for module-scoped fixtures (``monkeypatch`` is function-scoped)."""
    old = os.environ.get("SPIKEODE_CACHE")
    os.environ["SPIKEODE_CACHE"] = str(tmp_path_factory.getbasetemp() / "cache")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SPIKEODE_CACHE", None)
        else:
            os.environ["SPIKEODE_CACHE"] = old


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("landscape_run")
    with _module_cache(tmp_path_factory):
        config = default_config("synthetic", "qif", train_samples=16, test_samples=8, hidden=(6,), k_in=40,
                                epochs=1, batch_size=8, dtype="float64", n_slots=(3, 2))
        train(config, base, progress=False, stop_after=0)  # the initial checkpoint (epoch 0) is enough here
    return base


@pytest.fixture(scope="module")
def sample_scan(run_dir, tmp_path_factory):
    """A single-sample scan (2 samples, 5 points) with its located events: ``(config, path)``."""
    lc = LandscapeConfig(run=str(run_dir), kind="sample", points=5, span=0.5, train_samples=8, samples=(1, 3),
                         point_batch=5)
    path = tmp_path_factory.mktemp("scan") / "s.nc"
    with _module_cache(tmp_path_factory):
        compute_landscape(lc, path, progress=False)
    return lc, path


# ------------------------------------------------------------------------------------------ diagnostics

def test_hand_built_swap_and_disappearance_are_counted_exactly():
    # 3 neurons, 2 slots. A -> B: neurons 0 and 1 swap their first spikes (0.2 < 0.3 becomes 0.35 > 0.25);
    # neuron 2 loses its second spike; neuron 2's first spike (0.5) keeps its place after both.
    a = np.array([[0.2, INF], [0.3, INF], [0.5, 0.9]])
    b = np.array([[0.35, INF], [0.25, INF], [0.5, INF]])
    d = edge_diagnostics(a, b)
    assert int(d["order_changes"]) == 1
    assert int(d["disappearances"]) == 1 and int(d["appearances"]) == 0
    # and back: the spike reappears, the same pair swaps back
    d = edge_diagnostics(b, a)
    assert int(d["order_changes"]) == 1 and int(d["appearances"]) == 1 and int(d["disappearances"]) == 0
    # a spike only present at one point takes part in no swap: neuron 2's late spike at A (0.9) would be
    # after neuron 0's new spike 0.95 at B, but it is absent at B, so nothing counts
    c = np.array([[0.2, 0.95], [0.3, INF], [0.5, INF]])
    assert int(order_changes(a, c)) == 0
    app, dis = spike_changes(a, c)
    assert (int(app), int(dis)) == (1, 1)
    # batch axes lead; a full reversal of n spikes of n neurons has n (n - 1) / 2 swaps
    t = np.arange(1.0, 6.0)[:, None]
    batch_a = np.stack([t, t])
    batch_b = np.stack([t, t[::-1]])
    np.testing.assert_array_equal(order_changes(batch_a, batch_b), [0, 10])
    # ties are no swaps
    assert int(order_changes(np.array([[0.1], [0.2]]), np.array([[0.2], [0.2]]))) == 0


def test_scan_statistics_on_a_hand_built_scan():
    from spikeode.study.diagnostics import scan_statistics

    # one sample, 4 points, 1 layer of 2 neurons with 1 slot: neuron 0 overtakes neuron 1 on edge 1,
    # neuron 1's spike vanishes mid-trial on edge 2 (where the loss jumps)
    st = np.array([[0.3, 0.5], [0.45, 0.5], [0.55, 0.5], [0.55, INF]])[None, :, None, :, None]
    order = order_changes(st[:, :-1], st[:, 1:])
    np.testing.assert_array_equal(order[0, :, 0], [0, 1, 0])
    order = np.concatenate([order, np.full((1, 1, 1), np.nan)], axis=1)
    jumps = np.array([[0.0, 0.0, 1.0, np.nan]])
    s = scan_statistics(st, jumps, order, T=1.0)
    assert s["jump_edges"] == 1 and s["count_change_edges"] == 1
    assert s["p_change_given_jump"] == 1 and s["p_order_before_jump"] == 1 and s["p_jump_given_change"] == 1
    assert s["interior_change_share"] == 1
    assert s["time_discontinuity_edges"] == pytest.approx(2 / 3)  # shifts 0.15 and 0.1 > 0.05 T


def test_jump_criterion_and_summary():
    h = 0.1
    # a smooth quadratic L = x^2 on a grid: no jumps, slopes agree, TV = L(end) - L(min) + ...
    x = np.linspace(-1, 1, 21)
    L, g = x**2, 2 * x
    dL, sa, sb = np.diff(L), g[:-1] * h, g[1:] * h
    assert not np.any(is_jump(dL, sa, sb))
    m = summary_metrics(dL, sa, sb, h, np.ones_like(dL), n_lines=1)
    assert m["jump_fraction"] == 0 and m["slope_correlation"] > 0.999 and m["slope_relative_error"] < 1e-9
    assert m["loss_total_variation"] == pytest.approx(2.0)
    # a step of 0.5 on a flat line: exactly one jump edge carrying all of the variation
    L = np.where(x > 0.05, 0.5, 0.0)
    dL = np.diff(L)
    zeros = np.zeros_like(dL)
    m = summary_metrics(dL, zeros, zeros, h, np.ones_like(dL), n_lines=1)
    assert m["jump_fraction"] == pytest.approx(1 / 20) and m["jump_variation_share"] == 1.0
    assert np.isnan(is_jump(np.nan, 0.0, 0.0))


def test_filter_normalised_directions_are_seeded_and_per_neuron():
    rng = np.random.default_rng(0)
    weights = (rng.normal(size=(5, 7)), rng.normal(size=(3, 5)))
    d1, d2 = random_direction(weights, 3, 0), random_direction(weights, 3, 0)
    for a, b, w in zip(d1, d2, weights):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), np.linalg.norm(w, axis=1), rtol=1e-12)
    assert not np.allclose(random_direction(weights, 3, 1)[0], d1[0])
    zero = filter_normalise(np.ones((2, 3)), np.array([[0.0, 0, 0], [1, 2, 2]]))
    np.testing.assert_allclose(zero, [[0, 0, 0], [np.sqrt(3), np.sqrt(3), np.sqrt(3)]])


def test_gradient_direction_descends_and_is_filter_normalised(monkeypatch):
    """Alpha is -g with every neuron's row rescaled to that neuron's weight norm: a layer of small weights
    moves by its own size even when the gradient lives there (a global rescale moved it by the network's)."""
    from types import SimpleNamespace

    from spikeode.study.landscape import directions

    weights = (np.full((4, 6), 2.0), np.full((3, 4), 0.01))  # large hidden, small output weights
    g = [np.zeros((4, 6)), np.arange(12.0).reshape(3, 4) - 5.5]  # the gradient only in the output layer
    monkeypatch.setattr(directions, "_gradient_at", lambda *args: g)
    lc = SimpleNamespace(direction="gradient", seed=0, n_dirs=2)
    alpha, beta = directions.make_directions(lc, SimpleNamespace(net=SimpleNamespace(weights=weights)), None,
                                             None, None, None)
    np.testing.assert_array_equal(alpha[0], 0.0)  # no gradient, no move
    np.testing.assert_allclose(np.linalg.norm(alpha[1], axis=1), np.linalg.norm(weights[1], axis=1), rtol=1e-12)
    assert np.sum(alpha[1] * g[1]) < 0 and np.all(np.sign(alpha[1]) == -np.sign(g[1]))  # downhill, row by row
    assert all(np.array_equal(b, r) for b, r in zip(beta, random_direction(weights, 0, 1)))


# ------------------------------------------------------------------------------------------ landscapes

def _assert_same(a: xr.Dataset, b: xr.Dataset, rtol=0.0):
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=rtol, atol=0, equal_nan=True, err_msg=name)
    strip = lambda attrs: {k: v for k, v in attrs.items() if k != "created"}
    assert strip(a.attrs) == strip(b.attrs)


def test_landscape_center_is_the_training_loss_and_file_is_documented(run_dir, tmp_path):
    lc = LandscapeConfig(run=str(run_dir), kind="2d", points=3, span=0.2, train_samples=8, point_batch=3)
    ds = compute_landscape(lc, tmp_path / "l.nc", progress=False)
    model, _, _, config = load_checkpoint(run_dir)
    train_set, _, _ = load_data(config.replace(train_samples=8, test_samples=1))
    loss, metrics = make_loss_fn(config)(model, train_set.spikes, jnp.asarray(train_set.labels),
                                         jnp.ones(8, bool))
    center = ds.sel(alpha=0.0, beta=0.0)
    assert float(center.loss) == pytest.approx(float(loss), rel=1e-10)
    assert float(center.accuracy) == pytest.approx(float(metrics["correct"]) / 8)
    for l, counts in enumerate(metrics["spike_counts"]):
        assert float(center.n_spikes[l]) == pytest.approx(float(np.sum(counts)) / 8)
    assert ds.loss.dims == ("alpha", "beta") and ds.n_spikes.dims == ("alpha", "beta", "layer")
    assert ds.order_changes.dims == ("edge", "alpha", "beta", "layer")
    for name in ("loss", "accuracy", "grad_alpha", "grad_beta", "grad_norm", "n_spikes", "spike_appearances",
                 "spike_disappearances", "order_changes", "jump_fraction", "loss_total_variation",
                 "gradient_cosine_mean", "slope_correlation", "slope_relative_error"):
        assert ds[name].attrs["long_name"] and "units" in ds[name].attrs and ds[name].attrs["description"]
    cfg = json.loads(ds.attrs["config_json"])
    assert cfg["landscape"]["kind"] == "2d" and cfg["landscape"]["span"] == 0.2 and cfg["run_dir"]
    assert np.all(ds.row_finished.values == 1) and np.isfinite(ds.loss.values).all()
    # last alpha row has no alpha edge; last beta column no beta edge
    assert np.isnan(ds.loss_jump.sel(edge="alpha").values[-1]).all()
    assert np.isnan(ds.loss_jump.sel(edge="beta").values[:, -1]).all()
    # gradient projections agree with finite differences on this smooth (QIF) patch
    assert float(ds.slope_correlation) > 0.9
    # the stored direction is the seeded one
    np.testing.assert_array_equal(ds.direction_alpha_w0.values, random_direction(model.net.weights, 0, 0)[0])
    # the figure of 2-D landscapes (studies/landscape.py): one column per model
    from spikeode.io.plotting import plot_landscape_planes

    assert plot_landscape_planes({"qif": ds}, tmp_path / "planes.png").stat().st_size > 10_000


def test_kill_and_resume_recompute_no_finished_point(run_dir, tmp_path):
    # same grid shape and point batch as the test above: the compiled program is reused
    lc = LandscapeConfig(run=str(run_dir), kind="2d", points=3, span=0.3, train_samples=8, point_batch=3,
                         chunk_rows=1)
    full = compute_landscape(lc, tmp_path / "full.nc", progress=False)

    class Killed(Exception):
        pass

    def kill_after_second(r0, r1):
        if r0 == 1:
            raise Killed

    path = tmp_path / "part.nc"
    with pytest.raises(Killed):
        compute_landscape(lc, path, progress=False, on_chunk=kill_after_second)
    part = read_dataset(path)
    np.testing.assert_array_equal(part.row_finished.values, [1, 1, 0])
    assert np.isnan(part.loss.values[2:]).all() and np.isfinite(part.loss.values[:2]).all()
    caches.EVALUATED_ROWS.clear()
    resumed = compute_landscape(lc, path, progress=False)
    assert caches.EVALUATED_ROWS == [2]  # rows 0 and 1 were never evaluated again
    _assert_same(full, resumed)
    # a finished file is not recomputed at all
    caches.EVALUATED_ROWS.clear()
    compute_landscape(lc, path, progress=False)
    assert caches.EVALUATED_ROWS == []
    with pytest.raises(ValueError, match="another configuration"):
        compute_landscape(lc.__class__(**{**lc.to_dict(), "span": 0.4}), path, progress=False)


def test_single_sample_scan_keeps_spike_times(sample_scan):
    ds = read_dataset(sample_scan[1])
    assert ds.spike_times.dims == ("sample", "alpha", "layer", "neuron", "slot")
    assert ds.loss.dims == ("sample", "alpha") and list(ds.sample.values) == [1, 3]
    st = ds.spike_times.values  # hidden: 6 neurons x 3 slots, output: 20 neurons x 2 slots
    assert ds.sizes["neuron"] == 20 and ds.sizes["slot"] == 3
    assert np.isnan(st[:, :, 0, 6:]).all() and np.isnan(st[:, :, 1, :, 2]).all()  # padding
    hidden = st[:, :, 0, :6]
    assert not np.isnan(hidden).any() and not np.isnan(st[:, :, 1, :, :2]).any()
    assert (np.isfinite(hidden).sum(axis=(-2, -1)) == ds.n_spikes.sel(layer="hidden1").values).all()
    # edge counts are the diagnostics of the stored arrays
    a, b = hidden[:, :-1], hidden[:, 1:]
    app, dis = spike_changes(a, b)
    np.testing.assert_array_equal(ds.spike_appearances.sel(edge="alpha", layer="hidden1").values[:, :-1], app)
    np.testing.assert_array_equal(ds.spike_disappearances.sel(edge="alpha", layer="hidden1").values[:, :-1], dis)
    np.testing.assert_array_equal(ds.order_changes.sel(edge="alpha", layer="hidden1").values[:, :-1],
                                  order_changes(a, b))


def test_single_sample_scan_locates_every_event_exactly(sample_scan, monkeypatch):
    from spikeode.study import scan_events as se

    lc, path = sample_scan
    ds = read_dataset(path)
    events = se.events_from_dataset(ds)
    assert len(events) > 0 and ds.event_kind.attrs["flag_meanings"] == " ".join(se.EVENT_KINDS)
    alpha, samples = ds.alpha.values, list(ds.sample.values)
    st = ds.spike_times.transpose("sample", "alpha", "layer", "neuron", "slot").values
    counts = np.isfinite(st).sum(axis=(-2, -1))  # (sample, alpha, layer)
    capped = ds.event_search_capped.values
    for e in events:
        assert alpha[e.grid_edge] <= e.location <= alpha[e.grid_edge + 1]
        assert e.error <= ls.EVENT_TOL * lc.span / 2
    for s, sid in enumerate(samples):
        for i in range(len(alpha) - 1):
            here = [e for e in events if e.sample == sid and e.grid_edge == i]
            assert bool(here) != se.same_pattern(st[s, i], st[s, i + 1]), (sid, i)
            if capped[s, i] == 0:  # the net count change of each layer is the located (dis)appearances'
                net = np.zeros(counts.shape[-1], int)
                for e in here:
                    net[e.layer] += {"appearance": 1, "disappearance": -1}.get(e.kind, 0)
                np.testing.assert_array_equal(net, counts[s, i + 1] - counts[s, i])
    stats = se.event_statistics(ds)
    np.testing.assert_equal(float(ds.events_mid_trial_fraction), stats["mid_trial_fraction"])
    # a finished scan is not located again
    monkeypatch.setattr(se, "locate_events", lambda *a, **k: pytest.fail("events located again"))
    again = compute_landscape(lc, path, progress=False)
    assert se.events_from_dataset(again) == events


def _cf_failures(path) -> dict[str, list]:
    """High- and medium-priority failures of the IOOS compliance checker's newest CF suite on ``path``."""
    checker = pytest.importorskip("compliance_checker.runner")
    suite = checker.CheckSuite()
    suite.load_all_available_checkers()
    newest = max((k for k in suite.checkers if k.startswith("cf:")), key=lambda k: tuple(map(int, k[3:].split("."))))
    out = path.with_suffix(".cf.json")
    checker.ComplianceChecker.run_checker(str(path), [newest], 0, "normal", output_filename=str(out),
                                          output_format="json")
    report = json.loads(out.read_text())[newest]
    return {prio: [m for r in report[prio] if r["value"][0] < r["value"][1] for m in r["msgs"]]
            for prio in ("high_priorities", "medium_priorities")}


def test_result_files_are_cf_clean(run_dir, sample_scan, tmp_path):
    from spikeode.io.netcdf import write_dataset
    from spikeode.study.gradstats import run_gradstats

    lc = LandscapeConfig(run=str(run_dir), kind="2d", points=3, span=0.2, train_samples=8, point_batch=3)
    files = [run_dir / "run.nc", sample_scan[1], tmp_path / "l.nc", tmp_path / "gradstats.nc"]
    compute_landscape(lc, files[2], progress=False)
    write_dataset(run_gradstats([run_dir], n_batches=2, epochs="last", step_scales=(1.0,), progress=False), files[3])
    for path in files:
        assert _cf_failures(path) == {"high_priorities": [], "medium_priorities": []}, path.name


def test_dask_cluster_equals_in_process(run_dir, tmp_path):
    distributed = pytest.importorskip("distributed")
    lc = LandscapeConfig(run=str(run_dir), kind="2d", points=3, span=0.2, train_samples=8, point_batch=3,
                         chunk_rows=1, seed=5)
    local = compute_landscape(lc, tmp_path / "local.nc", progress=False)
    # one worker process: the chunks travel to another process and back (the client gathers them) as with
    # many; each further worker would only import and compile the same program again
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"EQX_ON_ERROR": "nan"}) as cluster:
        remote = compute_landscape(lc, tmp_path / "dask.nc", progress=False, dask_scheduler=cluster.scheduler_address)
    _assert_same(local, remote, rtol=1e-12)


def test_cli_help_and_bad_kind(capsys):
    from spikeode.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["landscape", "--help"])
    assert exc.value.code == 0
    assert "--dask-scheduler" in capsys.readouterr().out
    with pytest.raises(ValueError, match="kind"):
        LandscapeConfig(run="x", kind="3d")
    with pytest.raises(ValueError, match="outside"):
        LandscapeConfig(run="x", kind="sample", samples=(9,), train_samples=4)
