"""Hyperparameter search (``spikeode.hpo``, ``spikeode hpo``): spaces, bad input, storages, workers, results.

Trials are tiny (32 train samples, 1 epoch, 4 hidden neurons) and the test space only varies the seed,
so every trial runs the same compiled programs (a persistent JAX compilation cache is shared by the
worker processes). PostgreSQL: a real server is started in a temporary directory (as the ``postgres``
user when the tests run as root, since initdb refuses root); skipped only where no server is installed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import xarray as xr

from spikeode import hpo
from spikeode.cli import main
from spikeode.train import TrainConfig, default_config

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
    trials = study.get_trials(deepcopy=False)
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
@pytest.mark.parametrize("neuron", ["lif", "qif"])
def test_builtin_spaces_are_valid_and_map_to_configs(neuron):
    base = default_config("synthetic", neuron, validation_fraction=0.2)
    space = hpo.validate_space(hpo.default_space(neuron), base)
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


def test_unreachable_storage_is_refused(tmp_path, env, space_file, capsys):
    port = _free_port()
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


# --- stale trials -------------------------------------------------------------------------------
def test_trials_of_dead_workers_are_failed(tmp_path):
    study = optuna.create_study(storage=hpo.open_storage(tmp_path / "s.log"), study_name="s", direction="maximize")
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
    assert sorted(hpo.fail_stale_trials(study, grace_period=300)) == [gone.number, silent.number]
    states = {t.number: t.state.name for t in study.trials}
    assert states == {0: "FAIL", 1: "FAIL", 2: "RUNNING", 3: "RUNNING"}
    assert "gone" in study.trials[0].user_attrs["failed_because"]
    assert hpo.fail_stale_trials(study, grace_period=300) == []


# --- storages and workers -----------------------------------------------------------------------
def test_two_sequential_invocations_continue_one_journal_study(tmp_path, env, space_file, capsys):
    storage, out = tmp_path / "study.log", tmp_path / "hpo.nc"
    outputs = [_wait_all([_worker(_hpo_args(storage, "seq", out, space_file), env, tmp_path)])[0] for _ in range(2)]
    assert sum(line.startswith("trial ") and " complete: " in line for line in "".join(outputs).splitlines()) == 4
    study = optuna.load_study(study_name="seq", storage=hpo.open_storage(storage))  # Optuna's own API reads it
    _check_study(study, out, 4)
    assert sorted(p.name for p in (tmp_path / "hpo_runs").glob("trial_*")) == [f"trial_{i}" for i in range(4)]
    seeds = [t.params["seed"] for t in study.trials]
    assert len(set(seeds)) == 4  # no trial repeated

    # the winner's configuration, in the format `spikeode train --config` reads
    capsys.readouterr()
    assert main(["hpo", "--best", "seq", "--storage", str(storage)]) == 0
    best = capsys.readouterr().out
    config = TrainConfig.from_dict(json.loads(best))
    assert config.seed == study.best_trial.params["seed"] and config.validation_fraction == 0.25
    from spikeode.commands.train import _read_config_file

    (tmp_path / "best.json").write_text(best)
    assert TrainConfig.from_dict(_read_config_file(tmp_path / "best.json")) == config


def test_two_concurrent_workers_on_one_journal_file(tmp_path, env, space_file):
    storage, out = tmp_path / "study.log", tmp_path / "hpo.nc"
    _wait_all([_worker(_hpo_args(storage, "par", out, space_file), env, tmp_path) for _ in range(2)])
    _check_study(optuna.load_study(study_name="par", storage=hpo.open_storage(storage)), out, 4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_binary(name):
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of our own in a temporary directory, on a free port; its URL."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql "
                    "(apt-get install postgresql; .ci/run does)")
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 (test extra) is needed for postgresql:// URLs")
    run_as = {}
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        run_as = {"user": user.pw_uid, "group": user.pw_gid}
    root = Path(tempfile.mkdtemp(prefix="spikeode-pg-"))
    if run_as:
        os.chown(root, run_as["user"], run_as["group"])
    data, port = root / "data", _free_port()
    try:
        subprocess.run([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, cwd=root, **run_as)
        subprocess.run([pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True, cwd=root, **run_as)
    except subprocess.CalledProcessError as err:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {err.stderr.decode(errors='replace')[-2000:]}")
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE hpo")
        conn.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/hpo"
    finally:
        subprocess.run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], check=False, capture_output=True,
                       cwd=root, **run_as)
        shutil.rmtree(root, ignore_errors=True)


def test_two_concurrent_workers_on_one_postgresql_database(tmp_path, env, space_file, postgres_url):
    out = tmp_path / "hpo.nc"
    _wait_all([_worker(_hpo_args(postgres_url, "pg", out, space_file), env, tmp_path) for _ in range(2)])
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; spikeode picks the installed driver, here explicit
    study = optuna.load_study(study_name="pg", storage=postgres_url.replace("postgresql://", "postgresql+psycopg2://"))
    _check_study(study, out, 4)
    with xr.open_dataset(out) as ds:
        assert ds.attrs["storage"] == postgres_url
