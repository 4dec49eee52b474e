"""The main job end to end on a tiny budget: every stage and file, resume, a changed config refused,
`spikeode report`, and every notebook executed against the output."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import xarray as xr
from nbclient import NotebookClient

from spikeode.study.stats import VERDICTS

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



def test_recipes_pair_the_same_synapse(monkeypatch):
    """Every data source's recipes give LIF and QIF one exponential synapse at the same tau_m, each at its
    closed-form ratio (LIF tau_mem = 2 tau_syn; QIF tau_syn = tau/2 at I0 = -1/4); the delta pair has none."""
    import importlib.util

    import pytest

    from spikeode.training.loop import RECIPES, default_config

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
