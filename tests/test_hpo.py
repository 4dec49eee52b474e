"""Hyperparameter search (``spikeode.study.hpo``, ``spikeode hpo``): spaces, bad input, storages, workers, results.

Trials are tiny (32 train samples, 1 epoch, 4 hidden neurons) and the test space only varies the seed,
so every trial runs the same compiled programs (a persistent JAX compilation cache is shared by the
worker processes). PostgreSQL: a real server is started in a temporary directory (as the ``postgres``
user when the tests run as root, since initdb refuses root); skipped only where no server is installed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import pkgutil
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import xarray as xr
from filelock import FileLock
from optuna.trial import TrialState

from spikeode.cli import main
from spikeode.study import hpo
from spikeode.study.hpo import liveness, search
from spikeode.training import TrainConfig, default_config

TINY = ["--train-samples", "32", "--test-samples", "16", "--epochs", "1", "--hidden", "4", "--k-in", "60",
        "--batch-size", "16", "--validation-fraction", "0.25"]
SPACE = {"seed": {"int": [0, 999]}, "lr": {"choices": [0.003]}}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Environment of every worker: data and JAX compilation caches shared within this module."""
    root = tmp_path_factory.mktemp("hpo_caches")
    values = {
        "SPIKEODE_CACHE": str(root / "data"),
        "JAX_COMPILATION_CACHE_DIR": str(root / "jax"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        "EQX_ON_ERROR": "nan",
        "JAX_PLATFORMS": "cpu",
    }
    saved = os.environ.get("SPIKEODE_CACHE")
    os.environ["SPIKEODE_CACHE"] = values["SPIKEODE_CACHE"]
    yield {**os.environ, **values}
    if saved is None:
        os.environ.pop("SPIKEODE_CACHE", None)
    else:
        os.environ["SPIKEODE_CACHE"] = saved


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(SPACE))
    return path


def _hpo_args(storage, study, out, space_file, trials=2, neuron="lif"):
    return ["hpo", "--neuron", neuron, "--trials", str(trials), "--storage", str(storage), "--study-name", study,
            "--out", str(out), "--space", str(space_file), *TINY]


def _worker(args, env, cwd):
    return subprocess.Popen([sys.executable, "-m", "spikeode.cli", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_all(procs, timeout=240):
    outputs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        outputs.append(out)
        assert p.returncode == 0, out[-3000:]
    return outputs


def _check_study(study, out, n):
    """``n`` complete trials numbered 0..n-1 (a worker that lost the race for the last slot adds an unrun one)."""
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(hpo.OVER_BUDGET)]
    assert hpo.trials_used(study) == n
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(n)), numbers
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), [t.state for t in trials]
    assert all(0.0 <= t.value <= 1.0 and "test_accuracy" in t.user_attrs for t in trials)
    ds = xr.open_dataset(out)
    with ds:
        assert sorted(ds.trial.values.tolist()) == list(range(n))
        assert len(set(ds.trial.values.tolist())) == n
        assert set(ds.state.values.tolist()) == {"COMPLETE"}
        np.testing.assert_allclose(ds.objective.values, [t.value for t in sorted(trials, key=lambda t: t.number)])
        assert json.loads(ds.attrs["search_space_json"]) == SPACE
        assert json.loads(ds.attrs["sampler_json"])["sampler"] == "TPESampler"
        assert ds.attrs["Conventions"] == "CF-1.11" and "config_json" in ds.attrs
        assert ds.objective.attrs["long_name"] and ds.seed.attrs["hyperparameter"] == "seed"


# --- spaces ---------------------------------------------------------------------------------------
def test_calibrated_spaces_search_the_calibration_and_differ_only_in_neuron_parameters():
    spaces = {}
    for neuron in ("lif", "qif"):
        base = default_config("synthetic", neuron, validation_fraction=0.2)
        assert base.init == "calibrated"
        spaces[neuron] = hpo.validate_space(hpo.default_space(neuron, base.init), base)
        assert not [k for k in spaces[neuron] if k.startswith(("weight_mean.", "weight_std."))]
        assert "calibration_rate" in spaces[neuron]
    shared = {n: {k: v for k, v in s.items() if not k.startswith("neuron_params.")} for n, s in spaces.items()}
    assert shared["lif"] == shared["qif"]


def test_objective_variable_follows_the_run_objective():
    base = default_config("synthetic", "qif")
    assert hpo.objective_variable(base) == "validation_accuracy"
    assert hpo.objective_variable(base.replace(objective="pseudo")) == "validation_accuracy_pseudo"


@pytest.mark.parametrize("neuron", ["lif", "qif"])
def test_builtin_spaces_are_valid_and_map_to_configs(neuron):
    base = default_config("synthetic", neuron, validation_fraction=0.2, init="recipe")
    space = hpo.validate_space(hpo.default_space(neuron, "recipe"), base)
    study = optuna.create_study(direction="maximize", sampler=hpo.TrialSeededSampler(1))
    for _ in range(5):
        trial = study.ask()
        config = hpo.apply_params(base, hpo.suggest(trial, space))
        depth = trial.params["hidden.depth"]
        assert config.hidden == (trial.params["hidden.width"],) * depth
        assert len(config.weight_mean) == len(config.weight_std) == len(config.n_slots) == depth + 1
        assert config.weight_mean[:-1] == (trial.params["weight_mean.hidden"],) * depth
        assert config.weight_std[-1] == trial.params["weight_std.output"]
        assert config.validation_fraction == 0.2 and config.neuron == neuron
        for key in [k for k in space if k.startswith("neuron_params.")]:
            assert config.neuron_params[key.split(".")[1]] == trial.params[key]
        study.tell(trial, 0.5)
    # the same seed and history propose the same trial (reproducible, also across workers)
    again = optuna.create_study(direction="maximize", sampler=hpo.TrialSeededSampler(1))
    first = again.ask()
    hpo.suggest(first, space)
    assert first.params == study.trials[0].params


def test_space_from_toml_and_user_neuron(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text('["neuron_params.tau"]\nlog = [0.5, 2.0]\n\n["neuron_params.v_peak"]\nfloat = [10.0, 30.0]\n'
                    '\n[optimizer]\nchoices = ["adam", "sgd"]\n')
    base = default_config("synthetic", "user_models:QuadraticV", validation_fraction=0.2)
    space = hpo.validate_space(hpo.read_space(path), base)
    assert space == {"neuron_params.tau": {"log": [0.5, 2.0]}, "neuron_params.v_peak": {"float": [10.0, 30.0]},
                     "optimizer": {"choices": ["adam", "sgd"]}}
    config = hpo.apply_params(base, {"neuron_params.tau": 0.7, "optimizer": "sgd"})
    assert config.neuron_params["tau"] == 0.7 and config.optimizer == "sgd"
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        hpo.validate_space({"neuron_params.tau_mem": {"float": [0.5, 1.0]}}, base)


# --- bad input: clear errors before any trial ---------------------------------------------------
@pytest.mark.parametrize("space, message", [
    ({"learning_rate": {"log": [1e-4, 1e-2]}}, "unknown hyperparameter"),
    ({"neuron_params.tau": {"log": [0.5, 2.0]}}, "unknown hyperparameter"),  # QIF's name, LIF searched
    ({"lr": {"log": [1e-2, 1e-4]}}, "inverted range"),
    ({"lr": {"float": [0.01, 0.01]}}, "empty range"),
    ({"optimizer": {"choices": []}}, "non-empty"),
    ({"lr": {"log": [0.0, 1e-2]}}, "low > 0"),
    ({"optimizer": {"choices": ["adam", "nesterov"]}}, "unknown optimizer"),
])
def test_bad_space_is_refused_before_any_trial(tmp_path, env, capsys, space, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(space))
    rc = main(_hpo_args(tmp_path / "s.log", "bad", tmp_path / "hpo.nc", path))
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s.log").exists() and not (tmp_path / "hpo.nc").exists()


def test_unreachable_storage_is_refused(tmp_path, env, space_file, capsys, free_port):
    port = free_port
    url = f"postgresql://nobody:secret@127.0.0.1:{port}/nothing"
    t0 = time.perf_counter()
    rc = main(_hpo_args(url, "x", tmp_path / "hpo.nc", space_file))
    err = capsys.readouterr().err
    assert rc == 2 and "cannot open storage" in err and "secret" not in err, err
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "hpo.nc").exists()


def test_existing_study_with_another_space_is_refused(tmp_path, env, space_file, capsys):
    storage = tmp_path / "s.log"
    assert main(_hpo_args(storage, "s", tmp_path / "hpo.nc", space_file, trials=0)) == 0
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"seed": {"int": [0, 99]}}))
    assert main(_hpo_args(storage, "s", tmp_path / "hpo.nc", other)) == 2
    assert "exists with another search space" in capsys.readouterr().err
    assert main(_hpo_args(storage, "s", tmp_path / "hpo.nc", space_file) + ["--epochs", "3"]) == 2
    assert "other fixed training settings" in capsys.readouterr().err
    study = optuna.load_study(study_name="s", storage=hpo.open_storage(storage))
    assert len(study.trials) == 0


def test_search_needs_a_validation_split(tmp_path, env, space_file, capsys):
    rc = main(_hpo_args(tmp_path / "s.log", "s", tmp_path / "hpo.nc", space_file) + ["--validation-fraction", "0"])
    assert rc == 2 and "validation" in capsys.readouterr().err


# --- the budget, the sampler, the heartbeat, the result file (no training: a stand-in objective) ---
BASE = default_config("synthetic", "lif", validation_fraction=0.25, train_samples=32, test_samples=16, epochs=1)


def _stand_in(fates):
    """``make_objective`` without training: call ``i`` prunes (``"prune"``) or returns ``fates[i]`` (default 0.5)."""
    calls = []

    def make(base, space, runs_dir, **kwargs):
        def objective(trial):
            hpo.suggest(trial, space)
            fate = fates[len(calls)] if len(calls) < len(fates) else 0.5
            calls.append(trial.number)
            if fate == "prune":
                raise optuna.TrialPruned("stand-in")
            return fate

        return objective

    return make, calls


def _search(tmp_path, lines, **kwargs):
    return functools.partial(hpo.run_search, BASE, SPACE, storage=tmp_path / "s.log", study_name="b",
                             out=tmp_path / "hpo.nc", echo=lines.append, **kwargs)


def test_every_trial_counts_toward_the_budget(tmp_path, monkeypatch):
    make, calls = _stand_in(["prune", 0.4, 0.6])
    monkeypatch.setattr(search, "make_objective", make)
    lines = []
    run = _search(tmp_path, lines)
    study = run(n_trials=0)
    crashed = study.ask()
    study.tell(crashed, state=TrialState.FAIL)
    running = study.ask()  # a live worker's trial (this process), still running
    for key, value in hpo.worker_identity().items():
        running.set_user_attr(key, value)
    study = run(n_trials=5)
    assert calls == [2, 3, 4]  # 5 = failed + running + 3 started (pruned, complete, complete)
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    assert states == ["FAIL", "RUNNING", "PRUNED", "COMPLETE", "COMPLETE"] and hpo.trials_used(study) == 5
    run(n_trials=5)  # a rerun of the finished study starts nothing
    assert calls == [2, 3, 4] and lines[-1] == "study 'b': 5 of 5 budgeted trials used, none started"
    with xr.open_dataset(tmp_path / "hpo.nc") as ds:
        assert ds.sizes["trial"] == 4 and ds.attrs["trial_budget"] == 5 and "every state" in ds.attrs["budget_rule"]


def test_a_worker_that_loses_the_race_for_the_last_slot_runs_nothing(tmp_path, monkeypatch):
    make, calls = _stand_in([])
    monkeypatch.setattr(search, "make_objective", make)
    lines = []
    run = _search(tmp_path, lines)
    run(n_trials=2)
    real, stale = hpo.trials_used, [1]  # another worker's view, read before the last slot was taken
    monkeypatch.setattr(search, "trials_used", lambda study: stale.pop() if stale else real(study))
    study = run(n_trials=2)
    assert calls == [0, 1] and "trial 2 not run: the budget was used up by other workers" in lines
    refused = study.get_trials(deepcopy=False)[2]
    assert refused.state == TrialState.FAIL and refused.user_attrs[hpo.OVER_BUDGET]
    assert real(study) == 2
    with xr.open_dataset(tmp_path / "hpo.nc") as ds:
        assert ds.trial.values.tolist() == [0, 1]


def _spy(monkeypatch, module, name: str) -> list[dict]:
    """Replace ``module.name`` (a class) by a subclass that records the keyword arguments of every instance."""
    built = []

    class Spy(getattr(module, name)):
        def __init__(self, **kwargs):
            built.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(module, name, Spy)
    return built


def test_the_sampler_and_pruner_receive_the_recorded_settings(tmp_path, monkeypatch):
    samplers = _spy(monkeypatch, optuna.samplers, "TPESampler")
    pruners = _spy(monkeypatch, optuna.pruners, "MedianPruner")
    monkeypatch.setattr(search, "make_objective", _stand_in([])[0])
    _search(tmp_path, [])(n_trials=2, seed=5, sampler_startup_trials=7, pruner_startup_trials=4)
    with xr.open_dataset(tmp_path / "hpo.nc") as ds:
        recorded = json.loads(ds.attrs["sampler_json"])
        recorded_pruner = json.loads(ds.attrs["pruner_json"])
    assert recorded["n_startup_trials"] == 7 and recorded["seed"] == 5  # not Optuna's default of 10
    assert {kw["seed"] for kw in samplers} == {5 * 1_000_003, 5 * 1_000_003 + 1}
    for kw in samplers:
        assert {k: kw[k] for k in ("n_startup_trials", "multivariate", "constant_liar")} == {
            k: recorded[k] for k in ("n_startup_trials", "multivariate", "constant_liar")}
    assert recorded_pruner["pruner"] == "median" and recorded_pruner["n_startup_trials"] == 4
    assert [{k: kw[k] for k in ("n_startup_trials", "n_warmup_steps")} for kw in pruners] == [
        {k: recorded_pruner[k] for k in ("n_startup_trials", "n_warmup_steps")}]


class _FlakyStorage(optuna.storages.InMemoryStorage):
    """A storage whose first ``failures`` heartbeat writes fail, as a database hiccup would."""

    def __init__(self, failures: int):
        super().__init__()
        self.failures = failures

    def set_trial_user_attr(self, trial_id, key, value):
        if key == "heartbeat" and self.failures > 0:
            self.failures -= 1
            raise RuntimeError("database hiccup")
        super().set_trial_user_attr(trial_id, key, value)


def test_the_heartbeat_survives_transient_storage_errors(caplog):
    study = optuna.create_study(storage=_FlakyStorage(failures=2), direction="maximize")
    trial = study.ask()
    with caplog.at_level(logging.WARNING, logger="spikeode.study.hpo.liveness"), liveness.Heartbeat(trial, 0.01):
        deadline = time.monotonic() + 10
        while "heartbeat" not in study.trials[0].user_attrs and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "heartbeat" in study.trials[0].user_attrs  # it kept beating after the errors
    logged = [r for r in caplog.records if "database hiccup" in r.getMessage()]
    assert [(r.name, r.levelno) for r in logged] == [("spikeode.study.hpo.liveness", logging.WARNING)] * 2
    beat = liveness.Heartbeat(trial, 0.01).__enter__()
    study.tell(trial, 1.0)  # a finished trial ends the beating on its own
    beat._thread.join(timeout=5)
    assert not beat._thread.is_alive()


def test_the_result_file_is_written_under_a_lock(tmp_path):
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: t.suggest_int("seed", 0, 999) / 1000, n_trials=1)
    kwargs = {"space": SPACE, "base": BASE}
    hpo.write_study(study, tmp_path / "warm" / "hpo.nc", **kwargs)  # first write: imports
    t0 = time.perf_counter()
    hpo.write_study(study, tmp_path / "warm" / "hpo.nc", **kwargs)  # without a competing lock a write takes this
    hold = max(1.0, 5 * (time.perf_counter() - t0))
    out = tmp_path / "hpo.nc"
    writer = threading.Thread(target=hpo.write_study, args=(study, out), kwargs=kwargs)
    with FileLock(tmp_path / ".hpo.nc.lock"):  # another worker writing
        writer.start()
        writer.join(hold)
        assert writer.is_alive() and not out.exists()
    writer.join(30)
    assert out.exists()


def test_only_public_optuna_api_no_unix_only_lock_and_no_docstring_parsing():
    """Every module of the package: no private Optuna attribute or module, no ``fcntl``, no ``__doc__`` read."""
    names = [info.name for info in pkgutil.iter_modules(hpo.__path__)]
    assert {"search", "liveness", "results"} <= set(names)
    for name in ["__init__", *names]:
        source = (Path(hpo.__path__[0]) / f"{name}.py").read_text()
        found = re.findall(r"\._(?:storage|trial_id|study_id|cached_frozen_trial)\b|optuna\._|\bfcntl\b|__doc__",
                           source)
        assert found == [], f"{name}.py: {found}"


# --- stale trials -------------------------------------------------------------------------------
def test_trials_of_dead_workers_are_failed(tmp_path):
    storage = hpo.open_storage(tmp_path / "s.log")
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    dead = subprocess.Popen(["true"])
    dead.wait()
    me = hpo.worker_identity()
    gone = study.ask()  # a worker on this machine whose process is gone
    for k, v in {**me, "worker_pid": dead.pid, "worker_proc_start": "1", "heartbeat": time.time()}.items():
        gone.set_user_attr(k, v)
    silent = study.ask()  # a worker on another machine that stopped beating long ago
    for k, v in {**me, "worker_host": "elsewhere", "heartbeat": time.time() - 1000}.items():
        silent.set_user_attr(k, v)
    alive = study.ask()  # a worker on another machine that beats
    for k, v in {**me, "worker_host": "elsewhere", "heartbeat": time.time()}.items():
        alive.set_user_attr(k, v)
    mine = study.ask()  # this process: alive
    for k, v in me.items():
        mine.set_user_attr(k, v)
    assert sorted(hpo.fail_stale_trials(study, storage, grace_period=300)) == [gone.number, silent.number]
    states = {t.number: t.state.name for t in study.trials}
    assert states == {0: "FAIL", 1: "FAIL", 2: "RUNNING", 3: "RUNNING"}
    assert "gone" in study.trials[0].user_attrs["failed_because"]
    assert hpo.fail_stale_trials(study, storage, grace_period=300) == []


# --- storages and workers -----------------------------------------------------------------------
def test_two_sequential_invocations_continue_one_journal_study(tmp_path, env, space_file, capsys):
    """A budget of 1, raised to 2: the second invocation adds 1; a third, on the finished study, starts none."""
    storage, out = tmp_path / "study.log", tmp_path / "hpo.nc"
    outputs = [_wait_all([_worker(_hpo_args(storage, "seq", out, space_file, trials=n), env, tmp_path)])[0]
               for n in (1, 2, 2)]
    started = [sum(line.startswith("trial ") and " complete: " in line for line in o.splitlines()) for o in outputs]
    assert started == [1, 1, 0], outputs[-1]
    assert "2 of 2 budgeted trials used, none started" in outputs[-1]
    study = optuna.load_study(study_name="seq", storage=hpo.open_storage(storage))  # Optuna's own API reads it
    _check_study(study, out, 2)
    assert sorted(p.name for p in (tmp_path / "hpo_runs").glob("trial_*")) == [f"trial_{i}" for i in range(2)]
    seeds = [t.params["seed"] for t in study.trials]
    assert len(set(seeds)) == 2  # no trial repeated

    # the winner's configuration, in the format `spikeode train --config` reads
    capsys.readouterr()
    assert main(["hpo", "--best", "seq", "--storage", str(storage)]) == 0
    best = capsys.readouterr().out
    config = TrainConfig.from_dict(json.loads(best))
    assert config.seed == study.best_trial.params["seed"] and config.validation_fraction == 0.25
    from spikeode.training import read_config_file

    (tmp_path / "best.json").write_text(best)
    assert TrainConfig.from_dict(read_config_file(tmp_path / "best.json")) == config


def test_two_concurrent_workers_on_one_journal_file(tmp_path, env, space_file):
    storage, out = tmp_path / "study.log", tmp_path / "hpo.nc"
    _wait_all([_worker(_hpo_args(storage, "par", out, space_file, trials=4), env, tmp_path) for _ in range(2)])
    _check_study(optuna.load_study(study_name="par", storage=hpo.open_storage(storage)), out, 4)


def test_two_concurrent_workers_on_one_postgresql_database(tmp_path, env, space_file, postgres_url):
    out = tmp_path / "hpo.nc"
    _wait_all([_worker(_hpo_args(postgres_url, "pg", out, space_file, trials=4), env, tmp_path) for _ in range(2)])
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; spikeode picks the installed driver, here explicit
    study = optuna.load_study(study_name="pg", storage=postgres_url.replace("postgresql://", "postgresql+psycopg2://"))
    _check_study(study, out, 4)
    with xr.open_dataset(out) as ds:
        assert ds.attrs["storage"] == postgres_url


def test_base_params_invert_apply_params_within_the_space():
    base = default_config("synthetic", "qif", validation_fraction=0.2, hidden=(48,), k_in=350, T=3.0)
    space = hpo.validate_space(hpo.default_space("qif", base.init), base)
    params = hpo.base_params(base, space)
    assert "T" not in params, "3.0 is not one of the choices: left to the sampler"
    assert params["hidden.width"] == 48 and params["hidden.depth"] == 1 and params["k_in"] == 350
    assert hpo.apply_params(base, params) == base


def test_the_first_trial_of_a_new_study_is_the_base_configuration(tmp_path, monkeypatch):
    monkeypatch.setattr(search, "make_objective", _stand_in([])[0])
    study = _search(tmp_path, [])(n_trials=2)
    first, second = study.get_trials(deepcopy=False)
    expected = hpo.base_params(BASE, hpo.validate_space(SPACE, BASE))
    assert expected and first.params == expected and first.user_attrs["baseline"] == 1
    assert "baseline" not in second.user_attrs
