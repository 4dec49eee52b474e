"""Study storage: a journal file or a database URL, opened with retries, its password kept out of messages.

Every worker of a study opens the same storage: a journal file (any path; Optuna's ``JournalFileBackend``,
which locks the file itself) or an RDB URL (``sqlite:///``, ``postgresql://``, ...). RDB storages carry
Optuna's heartbeat; journal files have none, so ``liveness`` writes one as a trial user attribute.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from pathlib import Path

import optuna

#: Attempts to open an RDB storage while concurrent workers create the tables of a fresh database.
OPEN_ATTEMPTS = 3


def is_rdb_url(storage: str | Path) -> bool:
    """Whether ``storage`` is a database URL (``scheme://...``) rather than a journal file path."""
    return "://" in str(storage)


def redact(storage: str | Path) -> str:
    """A storage spec without its password (for messages and result files)."""
    if not is_rdb_url(storage):
        return str(storage)
    try:
        from sqlalchemy.engine import make_url

        return make_url(str(storage)).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<unparsable URL>"


def _postgres_driver(url: str) -> str:
    """``postgresql://`` with the installed driver: SQLAlchemy 2.1 defaults to psycopg 3; psycopg2 also works."""
    scheme, _, rest = url.partition("://")
    if "+" in scheme:
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    return url


def open_storage(storage: str | Path, *, heartbeat_interval: int = 60,
                 grace_period: int = 240) -> optuna.storages.BaseStorage:
    """A journal file (any path) or an RDB (``sqlite:///``, ``postgresql://``... URL) storage.

    RDB storages get Optuna's heartbeat (``heartbeat_interval``/``grace_period``); journal files have none,
    see :func:`spikeode.study.hpo.liveness.fail_stale_trials`.

    Raises:
        RuntimeError: the database cannot be reached or opened (checked here, before any trial).
    """
    if is_rdb_url(storage):
        return _open_rdb(str(storage), heartbeat_interval, grace_period)
    return _open_journal(Path(storage))


def _open_rdb(spec: str, heartbeat_interval: int, grace_period: int) -> optuna.storages.RDBStorage:
    engine_kwargs: dict = {"pool_pre_ping": True}
    if spec.startswith(("postgresql", "postgres")):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
        spec = _postgres_driver(spec)
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    def attempt() -> optuna.storages.RDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
            return optuna.storages.RDBStorage(spec, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                                              grace_period=grace_period)

    try:
        for retry in range(OPEN_ATTEMPTS - 1):
            try:
                return attempt()
            except (IntegrityError, ProgrammingError):
                # workers creating the tables of a fresh database at the same time: one wins, retry
                time.sleep(0.5 + retry)
        return attempt()
    except Exception as err:  # driver and connection errors of every kind
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RuntimeError(f"cannot open storage {redact(spec)}: {type(err).__name__}: {msg}") from err


def _open_journal(path: Path) -> optuna.storages.JournalStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if path.is_dir():
        raise RuntimeError(f"storage {path} is a directory; give a journal file path (e.g. study.log) or a DB URL")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as err:
        raise RuntimeError(f"cannot open journal storage {path}: {err}") from err
