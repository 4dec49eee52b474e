"""Worker liveness: who runs a trial, a heartbeat while it runs, and failing the trials of dead workers.

A journal storage has no heartbeat of its own (an RDB storage has Optuna's), so every trial records its
worker (host, boot id, pid and the pid's start time) and, while it runs, a ``heartbeat`` user attribute
(unix time) every ``interval`` seconds. A RUNNING trial is stale when its worker is provably gone (same
machine, pid dead or reused) or, where the heartbeat is used, when it has not beaten for ``grace_period``
seconds; stale trials are failed so that they count toward the budget and no longer block it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Self

import optuna
from optuna.trial import TrialState

_log = logging.getLogger(__name__)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_start(pid: int) -> str:
    """Start time of a process (``/proc/PID/stat`` field 22), ``""`` if unknown; guards against pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return ""


def _pid_alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now_start = _proc_start(pid)
    return not (start and now_start and now_start != start)


def worker_identity() -> dict:
    """This process as a trial records it: host name, boot id, pid and the pid's start time."""
    pid = os.getpid()
    return {"worker_host": socket.gethostname(), "worker_boot_id": _boot_id(), "worker_pid": pid,
            "worker_proc_start": _proc_start(pid)}


def _stale_reason(attrs: dict, started: float | None, me: dict, now: float, grace_period: float,
                  use_heartbeat: bool) -> str | None:
    """Why a RUNNING trial (user attrs ``attrs``, start time ``started``) is stale; ``None`` if it is not."""
    same_machine = (attrs.get("worker_host") == me["worker_host"]
                    and attrs.get("worker_boot_id", "") == me["worker_boot_id"])
    if same_machine and "worker_pid" in attrs and not _pid_alive(int(attrs["worker_pid"]),
                                                                 attrs.get("worker_proc_start", "")):
        return f"worker pid {attrs['worker_pid']} on {attrs['worker_host']} is gone"
    if use_heartbeat:
        last = attrs.get("heartbeat")
        last = started if last is None else last
        if last is not None and now - float(last) > grace_period:
            return f"no heartbeat for {now - float(last):.0f} s (> {grace_period:.0f} s)"
    return None


def fail_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage, grace_period: float, *,
                      use_heartbeat: bool = True) -> list[int]:
    """Mark RUNNING trials of dead workers as FAIL (through ``storage``, the study's); returns their numbers.

    A RUNNING trial is stale if (a) it was started on this machine (same host name and boot id) by a
    process that no longer exists (pid gone, or reused: other start time), or (b) ``use_heartbeat`` and its
    last heartbeat (user attr ``heartbeat``, written every ``heartbeat_interval`` by its worker; else its
    start time) is older than ``grace_period`` seconds -- a worker on another machine that died.
    """
    me = worker_identity()
    study_id = storage.get_study_id_from_name(study.study_name)
    now = time.time()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = t.datetime_start.timestamp() if t.datetime_start is not None else None
        reason = _stale_reason(t.user_attrs, started, me, now, grace_period, use_heartbeat)
        if reason is None:
            continue
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(trial_id, "failed_because", reason)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            failed.append(t.number)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, KeyError):
            pass  # another worker finished or failed it first
    return failed


class Heartbeat:
    """Writes user attr ``heartbeat`` (unix time) of a running trial every ``interval`` seconds until stopped.

    A failed write (a database or file-system hiccup) is logged and retried at the next beat, so one error
    does not let another worker fail a live trial (it waits ``grace_period``, several beats). The thread
    ends when stopped or when the trial is finished (e.g. failed by another worker).
    """

    def __init__(self, trial: optuna.Trial, interval: float):
        self._trial, self._interval = trial, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="spikeode-hpo-heartbeat")

    def _beat(self) -> bool:
        """Write one heartbeat; ``False`` when the trial is finished and beating is over."""
        try:
            self._trial.set_user_attr("heartbeat", time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        except Exception as err:  # noqa: BLE001 - any storage error: keep the live trial beating
            _log.warning("trial %d: heartbeat not written (%s: %s); retrying in %g s", self._trial.number,
                         type(err).__name__, err, self._interval)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._interval) and self._beat():
            pass

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
