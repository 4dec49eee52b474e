"""The main job end to end on a tiny budget: every stage and file, resume, a changed config refused,
`spikeode report`, and every notebook executed against the output."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import xarray as xr
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "lif_vs_qif.py"


def run_study(out, *extra, env):
    return subprocess.run([sys.executable, str(STUDY), "--preset", "tiny", "--out", str(out), *extra],
                          capture_output=True, text=True, env=env, cwd=ROOT)


def test_study_end_to_end(tmp_path, monkeypatch):
    """One test (one xdist worker): interrupted after retrain, finished by the same command, then checked."""
    out = tmp_path / "study"
    env = {**os.environ, "SPIKEODE_CACHE": str(tmp_path / "cache")}
    first = run_study(out, "--stop-after", "retrain", env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (out / "runs" / "qif" / "seed0" / "run.nc").exists() and not (out / "gradstats.nc").exists()
    second = run_study(out, env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    # resume skipped the finished stages
    assert "hpo lif: 1 trials done, skipped" in second.stdout
    assert "retrain qif seed 0: done, skipped" in second.stdout

    # every file
    for name in ("hpo_lif.nc", "hpo_qif.nc", "gradstats.nc", "landscape_lif.nc", "landscape_qif.nc",
                 "samples_lif.nc", "samples_qif.nc", "summary.nc", "summary.md", "learning_curves.png",
                 "landscapes.png", "samples.png", "hpo.png", "gradstats.png"):
        assert (out / name).exists(), name
    with xr.open_dataset(out / "summary.nc") as summary:
        assert set(summary.neuron_model.values) == {"lif", "qif"}
        assert summary.test_accuracy.dims == ("neuron_model", "seed", "epoch")
    assert "test accuracy" in (out / "summary.md").read_text()

    # a changed configuration is refused, naming the keys
    changed = run_study(out, "--seeds", "0", "1", env=env)
    assert changed.returncode != 0
    assert "changed keys: ['seeds']" in changed.stdout + changed.stderr

    # the report regenerates from the files alone
    (out / "summary.md").unlink()
    report = subprocess.run([sys.executable, "-m", "spikeode.cli", "report", str(out)], capture_output=True,
                            text=True, env=env)
    assert report.returncode == 0, report.stderr
    assert (out / "summary.md").exists()

    # every notebook runs green against this output
    monkeypatch.setenv("SPIKEODE_STUDY_DIR", str(out))
    for name in ("01_neuron_models", "02_training_and_hpo", "03_landscapes"):
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
