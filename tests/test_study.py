"""The main study end to end on a tiny budget and past one machine: its searches on a PostgreSQL server that
a second study process reads; every stage and file, resume, a changed config refused, `spikeode report`, every
notebook executed against the output; then a copy resumed on a Dask cluster, with the single process's
numbers."""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import optuna
import xarray as xr
from nbclient import NotebookClient

from spikeode.study.stats import VERDICTS

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "lif_vs_qif.py"


def study_command(out, *extra):
    return [sys.executable, str(STUDY), "--preset", "tiny", "--out", str(out), *extra]


def run_study(out, *extra, env):
    return subprocess.run(study_command(out, *extra), capture_output=True, text=True, env=env, cwd=ROOT, check=False)


def test_study_end_to_end(tmp_path, monkeypatch, postgres_url):
    """One test (one xdist worker, so the later runs load the programs the first compiled), past one machine:
    the study, interrupted after retrain, keeps its searches on a PostgreSQL server; a second study process (its
    own OUT) on that server finds their budget used, starts no trial and reports the same searches; the first
    command, run again, finishes. Then every file, a changed config refused, `spikeode report`, every notebook
    against the output; and a copy with a landscape file removed, resumed on a Dask cluster, which
    recomputes exactly that, with the same numbers. (Concurrent workers racing for one budget: test_hpo.)"""
    out, other = tmp_path / "study", tmp_path / "a"
    env = {**os.environ, "SPIKEODE_CACHE": str(tmp_path / "cache")}
    shared = ("--storage", postgres_url)
    first = run_study(out, *shared, "--stop-after", "retrain", env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (out / "runs" / "qif" / "seed0" / "run.nc").exists() and not (out / "gradstats.nc").exists()
    # progress: every unit shows its command and one line when finished
    assert "$ spikeode hpo --neuron lif" in first.stdout and "$ spikeode train --config" in first.stdout
    assert "trial 0 complete" in first.stdout and "retrain qif seed 0: final test accuracy" in first.stdout
    again = run_study(other, *shared, "--stop-after", "hpo", env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    _check_shared_searches(first.stdout, again.stdout, out, other, postgres_url)
    second = run_study(out, *shared, env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    # resume skipped the finished stages
    assert "hpo lif: 1 trials done, skipped" in second.stdout
    assert "retrain qif seed 0: done, skipped" in second.stdout

    # every file
    for name in ("hpo_lif.nc", "hpo_qif.nc", "gradstats.nc", "landscape_lif.nc", "landscape_qif.nc",
                 "landscape_lif_plane1.nc", "landscape_qif_plane1.nc", "samples_lif.nc", "samples_qif.nc",
                 "summary.nc", "summary.md", "learning_curves.png", "landscapes.png", "samples.png", "hpo.png",
                 "gradstats.png"):
        assert (out / name).exists(), name
    with xr.open_dataset(out / "summary.nc") as summary:
        assert set(summary.neuron_model.values) == {"lif", "qif"}
        assert summary.test_accuracy.dims == ("neuron_model", "seed", "epoch")
        assert summary.landscape_jump_fraction.dims == ("neuron_model", "plane") and summary.sizes["plane"] == 2
        assert summary.scan_mid_trial.dims == ("neuron_model", "scan_sample")
        claims = summary.claim.values.tolist()
        assert claims[:3] == ["accuracy", "jump_fraction_random", "jump_variation_share_random"]
        assert {"gradient_snr", "gradient_cosine", "gradient_fd_sign_agreement", "mid_trial"} <= set(claims)
        assert set(summary.claim_verdict.values) <= set(VERDICTS)
        assert summary.claim_n_lif.sel(claim="jump_fraction_random") == 2
        assert all({"long_name", "units"} <= set(summary[v].attrs) for v in summary.data_vars)
        assert "same exponential synapse" in summary.attrs["pair"] and "synthetic" in summary.attrs["data_source"]
    text = (out / "summary.md").read_text()
    assert text.index("## The seed's claims") < text.index("| `accuracy` (claimed > 0) |") < text.index("## Per model")
    assert "same exponential synapse" in text and "difficulty" in text and "test accuracy" in text

    # a changed configuration is refused, naming the keys
    for flags, key in ((("--seeds", "0", "1"), "seeds"), (("--synapse", "delta"), "synapse")):
        changed = run_study(out, *flags, env=env)
        assert changed.returncode != 0
        assert f"changed keys: ['{key}']" in changed.stdout + changed.stderr

    # the report regenerates from the files alone, with the layout the study stored
    (out / "summary.md").unlink()
    report = subprocess.run([sys.executable, "-m", "spikeode.cli", "report", str(out)], capture_output=True,
                            text=True, env=env, check=False)
    assert report.returncode == 0, report.stderr
    assert (out / "summary.md").read_text() == text

    # every notebook runs green against this output
    monkeypatch.setenv("SPIKEODE_STUDY_DIR", str(out))
    for name in ("01_neuron_models", "02_training_and_hpo", "03_landscapes"):
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()

    _check_resumed_on_a_cluster(out, tmp_path / "b", shared, env)


#: A Dask cluster of one in-process worker thread, in a process of its own (x64 off, like a study process);
#: prints its scheduler address and lives until its standard input closes.
CLUSTER = """
import sys, spikeode
spikeode.use_fast_cpu_defaults(); spikeode.enable_compilation_cache()
from distributed import LocalCluster
with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                  dashboard_address=None) as cluster:
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def dask_cluster(env: dict, cwd: Path):
    """The address of a :data:`CLUSTER` that lives while the context does."""
    cluster = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=env, cwd=cwd)
    try:
        address = cluster.stdout.readline().strip()
        assert address.startswith("tcp://"), address
        yield address
    finally:
        cluster.stdin.close()
        cluster.wait(timeout=60)


def _check_shared_searches(first: str, again: str, out: Path, other: Path, url: str) -> None:
    """Every model's search on ``url`` holds the one budgeted trial, run by the first process; the second
    (OUT ``other``) started none, stopped after the searches and reports the same search results."""
    storage = url.replace("postgresql://", "postgresql+psycopg2://")
    for model in ("lif", "qif"):
        trials = optuna.load_study(study_name=f"lif_vs_qif_{model}", storage=storage).get_trials()
        assert len(trials) == 1 and trials[0].state.name == "COMPLETE", trials  # the equal budget, shared
        assert f"study 'lif_vs_qif_{model}': 1 of 1 budgeted trials used, none started" in again
    assert first.count("trial 0 complete") == 2 and "trial 0 complete" not in again
    assert not (other / "runs").exists()  # it stopped after the searches
    for model in ("lif", "qif"):
        with xr.open_dataset(out / f"hpo_{model}.nc") as expected, xr.open_dataset(other / f"hpo_{model}.nc") as got:
            for var in ("objective", "test_accuracy", "best_validation_accuracy"):
                np.testing.assert_array_equal(got[var].values, expected[var].values, err_msg=f"{model} {var}")
            assert got.state.values.tolist() == expected.state.values.tolist() == ["COMPLETE"], model


#: A landscape plane's file; the cluster recomputes it in a resumed copy of the study (every later unit goes
#: through the same run_units, as a module-level function of picklable arguments).
RECOMPUTED = ("landscape_lif_plane1.nc",)


def _check_resumed_on_a_cluster(single: Path, copy: Path, shared: tuple[str, ...], env: dict) -> None:
    """A copy of the finished study ``single`` without :data:`RECOMPUTED` and its summary, resumed as tasks of
    a Dask cluster: exactly those units run, and their files and the summary equal ``single``'s."""
    shutil.copytree(single, copy)
    for name in (*RECOMPUTED, "summary.nc", "summary.md"):
        (copy / name).unlink()
    with dask_cluster(env, copy.parent) as address:
        resumed = run_study(copy, *shared, "--dask-scheduler", address, env=env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "landscape landscape_lif_plane1.nc: jump_fraction" in resumed.stdout  # finished as a task
    assert "landscape landscape_lif.nc" not in resumed.stdout and "samples qif: done, skipped" in resumed.stdout
    assert "gradstats: done, skipped" in resumed.stdout
    for name in (*RECOMPUTED, "summary.nc"):
        with xr.open_dataset(single / name) as expected, xr.open_dataset(copy / name) as got:
            assert set(got.data_vars) == set(expected.data_vars), name
            for var in set(expected.data_vars) - {"seconds"}:  # gradstats' wall time
                if np.issubdtype(expected[var].dtype, np.number):
                    np.testing.assert_array_equal(got[var].values, expected[var].values, err_msg=f"{name} {var}")
                else:
                    assert got[var].values.tolist() == expected[var].values.tolist(), f"{name} {var}"


def test_recipes_pair_the_same_synapse(monkeypatch):
    """Every data source's recipes give LIF and QIF one exponential synapse at the same tau_m, each at its
    closed-form ratio (LIF tau_mem = 2 tau_syn; QIF tau_syn = tau/2 at I0 = -1/4); the delta pair has none."""
    import importlib.util

    import pytest

    from spikeode.training import RECIPES, default_config

    spec = importlib.util.spec_from_file_location("lif_vs_qif", STUDY)
    study = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "lif_vs_qif", study)  # dataclasses look their module up there
    spec.loader.exec_module(study)
    for kind in RECIPES:
        data = "shd:/nowhere" if kind == "shd" else kind
        pair = study.pair_neuron_params(study.StudyConfig(data=data))
        lif, qif = pair["lif"], pair["qif"]
        assert lif["tau_syn"] == qif["tau_syn"] and lif["tau_mem"] == qif["tau"] == 2 * lif["tau_syn"], kind
        assert qif["I0"] == -0.25, kind
        assert pair == {m: default_config(data, m).neuron_params for m in ("lif", "qif")}
    delta = study.pair_neuron_params(study.StudyConfig(synapse="delta"))
    assert delta["lif"]["tau_syn"] is None and "tau_syn" not in delta["qif"]
    with pytest.raises(ValueError, match="unknown synapse"):
        study.StudyConfig(synapse="alpha")
    with pytest.raises(ValueError, match="not TrainConfig fields"):
        study.StudyConfig(train_overrides={"hiden": (4,)})


def test_the_report_reads_the_files_the_layout_names(tmp_path):
    """The report's paths come from the study's layout: found by pattern, numbered fields in numeric order,
    other files ignored; a study.json without a layout is refused by name."""
    import json

    import pytest

    from spikeode.study.report import StudyLayout, read_layout

    layout = StudyLayout(title="A vs B", pair="two models", models=("a", "b"), run="r/{model}/s{seed}",
                         hpo="h_{model}.nc", best="w_{model}.json", gradstats="g.nc", first_plane="p_{model}.nc",
                         plane="p_{model}_{plane}.nc", gradient_plane="q_{model}_{seed}.nc", samples="x_{model}.nc")
    for name in ("r/a/s0/run.nc", "r/a/s12/run.nc", "r/a/sx/run.nc", "r/b/s3/run.nc", "p_a.nc", "p_a_10.nc",
                 "p_a_2.nc", "p_b_1.nc", "q_a_1.nc"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    assert layout.find(tmp_path, "run", model="a") == [(0, tmp_path / "r/a/s0"), (12, tmp_path / "r/a/s12")]
    assert layout.random_planes(tmp_path, "a") == [tmp_path / "p_a.nc", tmp_path / "p_a_2.nc", tmp_path / "p_a_10.nc"]
    assert layout.random_planes(tmp_path, "b") == [tmp_path / "p_b_1.nc"]
    assert layout.gradient_planes(tmp_path, "a") == {1: tmp_path / "q_a_1.nc"}
    with pytest.raises(ValueError, match="two distinct models"):
        StudyLayout(**{**layout.to_dict(), "models": ("a", "a")})
    (tmp_path / "study.json").write_text(json.dumps({"seeds": [0]}))
    with pytest.raises(ValueError, match="holds no layout"):
        read_layout(tmp_path)
    (tmp_path / "study.json").write_text(json.dumps({"seeds": [0], "layout": layout.to_dict()}))
    assert read_layout(tmp_path) == layout
