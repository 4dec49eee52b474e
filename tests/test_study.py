"""The main job end to end on a tiny budget: every stage and file, resume, a changed config refused,
`spikeode report`, and every notebook executed against the output."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import xarray as xr
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "lif_vs_qif.py"


def run_study(out, *extra, env):
    return subprocess.run([sys.executable, str(STUDY), "--preset", "tiny", "--out", str(out), *extra],
                          capture_output=True, text=True, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny study, interrupted after the retrain stage and then finished by the same command."""
    out = tmp_path_factory.mktemp("study")
    env = {**os.environ, "SPIKEODE_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}
    first = run_study(out, "--stop-after", "retrain", env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (out / "runs" / "qif" / "seed0" / "run.nc").exists() and not (out / "gradstats.nc").exists()
    second = run_study(out, env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return out, second.stdout, env


def test_every_file_is_written(study):
    out, _, _ = study
    for name in ("hpo_lif.nc", "hpo_qif.nc", "gradstats.nc", "landscape_lif.nc", "landscape_qif.nc",
                 "samples_lif.nc", "samples_qif.nc", "summary.nc", "summary.md", "learning_curves.png",
                 "landscapes.png", "samples.png", "hpo.png", "gradstats.png"):
        assert (out / name).exists(), name
    summary = xr.open_dataset(out / "summary.nc")
    assert set(summary.neuron_model.values) == {"lif", "qif"}
    assert summary.test_accuracy.dims == ("neuron_model", "seed", "epoch")
    assert "test accuracy" in (out / "summary.md").read_text()


def test_resume_skips_finished_stages(study):
    _, stdout, _ = study
    assert "hpo lif: 1 trials done, skipped" in stdout
    assert "retrain qif seed 0: done, skipped" in stdout


def test_changed_config_is_refused_naming_the_keys(study):
    out, _, env = study
    proc = run_study(out, "--seeds", "0", "1", env=env)
    assert proc.returncode != 0
    assert "changed keys: ['seeds']" in proc.stdout + proc.stderr


def test_report_regenerates_from_files(study):
    out, _, env = study
    (out / "summary.md").unlink()
    proc = subprocess.run([sys.executable, "-m", "spikeode.cli", "report", str(out)], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (out / "summary.md").exists()


@pytest.mark.parametrize("name", ["01_neuron_models", "02_training_and_hpo", "03_landscapes"])
def test_notebook_runs(study, name, tmp_path, monkeypatch):
    out, _, _ = study
    monkeypatch.setenv("SPIKEODE_STUDY_DIR", str(out))
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
