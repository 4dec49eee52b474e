"""Shared test setup: the CLI's XLA CPU defaults (plus -O0 code generation), one compilation cache for all
test processes, float64 everywhere (exactness first) and small helpers."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import spikeode
from spikeode._xla import CACHE_ENV

#: The suite is compile-bound (tiny programs, each run a few times), so its processes ask LLVM for -O0:
#: XLA's CPU compile time halves (the tiny LIF batch-loss gradient: 4.9 -> 2.5 s) and the programs run 3-4x
#: slower (6 -> 21 ms). The same operations run; only last-bit rounding can differ (it exposed a root-find
#: flaw, fixed). Set before JAX starts; CLI subprocesses inherit it. A level in XLA_FLAGS wins, e.g.
#: ``XLA_FLAGS=--xla_backend_optimization_level=3`` runs the suite on the code users get.
TEST_XLA_FLAG = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAG}".strip()
spikeode.use_fast_cpu_defaults()  # before JAX starts, as the CLI and the studies do (faster compiles)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


def pytest_configure(config):
    """One persistent compilation cache for every test process: xdist workers, the CLI subprocesses (through
    ``SPIKEODE_COMPILATION_CACHE``) and later runs load a program compiled once. It lives in pytest's cache
    (``.pytest_cache``; a temp directory under ``-p no:cacheprovider``) unless ``SPIKEODE_COMPILATION_CACHE``
    names one; ``SPIKEODE_COMPILATION_CACHE=0`` runs without it. Runs before test modules import equinox."""
    if os.environ.get(CACHE_ENV) == "0":
        return
    cache = getattr(config, "cache", None)
    default = (cache.mkdir("spikeode-jax") if cache is not None
               else Path(tempfile.gettempdir()) / f"spikeode-tests-jax-{os.getuid()}")
    os.environ[CACHE_ENV] = str(spikeode.enable_compilation_cache(os.environ.get(CACHE_ENV) or default))


#: Tests that take minutes, started first: pytest-xdist hands out tests in collection order, and the
#: suite's time is the busiest worker's, so the longest test should not start last.
LONGEST_FIRST = ("tests/test_study.py::test_study_end_to_end",)


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.nodeid not in LONGEST_FIRST)  # stable: the rest keep their order


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return _free_port()


def _pg_binary(name):
    """The PostgreSQL server program ``name`` on PATH or in Debian's /usr/lib/postgresql/<version>/bin."""
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
