"""Dataset conventions shared by every study: provenance attributes, atomic netCDF writes, reading back.

Every file spikeode writes is an ``xarray.Dataset`` in netCDF with CF-style ``long_name``/``units`` on
each variable and the global attributes ``title``, ``spikeode_version``, ``git_commit``, ``created``
(ISO 8601), ``seed``, ``config_json`` (the full configuration) and ``Conventions = "CF-1.11"``.

``write_dataset`` makes every file CF-clean (the IOOS compliance checker's ``cf`` suite passes with no
high- or medium-priority failure, tested): coordinate variables carry no ``_FillValue``; 64-bit integers
whose values fit are stored as 32-bit (CF before 1.9 has no 64-bit integers); variable names must begin
with a letter (an error otherwise); and the global ``history`` gets one line ``"<ISO time>: <command
line>"`` per process that wrote the file: a rewrite appends its line to the history of the dataset
written, or else to that of the file at the same path as this process last read (``read_dataset``, as a
resumed run does) or wrote it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from spikeode._version import __version__

__all__ = ["git_commit", "provenance_attrs", "write_dataset", "read_dataset", "variable", "config_of",
           "history_line"]

#: when this process started writing results: one ``history`` line per process, however often it rewrites
_PROCESS_START = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
_CF_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_INT32 = np.iinfo(np.int32)


def git_commit() -> str:
    """The commit of the spikeode source tree (``"unknown"`` outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def provenance_attrs(title: str, config: Mapping, seed: int | None) -> dict:
    """Global attributes of a result file (netCDF takes no dicts or booleans: config as JSON)."""
    return {
        "title": title,
        "spikeode_version": __version__,
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": -1 if seed is None else int(seed),
        "config_json": json.dumps(_jsonable(config), sort_keys=True),
        "Conventions": "CF-1.11",
    }


def config_of(ds: xr.Dataset) -> dict:
    """The configuration stored in a result file."""
    return json.loads(ds.attrs["config_json"])


def variable(dims, values, long_name: str, units: str = "1", **attrs) -> xr.Variable:
    """A data variable with the CF labels xarray uses for plot axes."""
    return xr.Variable(dims, np.asarray(values), attrs={"long_name": long_name, "units": units, **attrs})


def history_line() -> str:
    """``"<ISO time the process started>: <command line>"``, this process's line of ``history``."""
    return f"{_PROCESS_START}: {' '.join(sys.argv) or 'python'}"


#: ``history`` of the files this process read or wrote, by resolved path: a rewrite appends to it without
#: reopening the file (reopening a file xarray still holds open can crash HDF5)
_HISTORY: dict[str, str] = {}


def _cf_clean(ds: xr.Dataset, old_history: str) -> xr.Dataset:
    """A shallow copy with the CF fixes of the module docstring applied to its encodings and attributes."""
    bad = [str(name) for name in ds.variables if not _CF_NAME.fullmatch(str(name))]
    if bad:
        raise ValueError(f"variable names {bad} are not CF names (a letter, then letters, digits, underscores)")
    ds = ds.copy(deep=False)
    for name, var in ds.variables.items():
        if name in ds.coords:
            var.encoding["_FillValue"] = None
        if var.dtype == np.int64 and np.dtype(var.encoding.get("dtype", var.dtype)) == np.int64 and (
                var.size == 0 or (_INT32.min <= var.values.min() and var.values.max() <= _INT32.max)):
            var.encoding["dtype"] = "int32"
    lines = [line for line in (ds.attrs.get("history") or old_history).splitlines() if line]
    if not lines or lines[-1] != history_line():
        lines.append(history_line())
    ds.attrs["history"] = "\n".join(lines)
    return ds


def write_dataset(ds: xr.Dataset, path: str | Path) -> Path:
    """Write atomically: a temporary file in the same directory, fsync, then rename over ``path``.

    A failed write never leaves a truncated file, and readers never see a partial one. The file is made
    CF-clean on the way (see the module docstring); ``ds`` itself is not modified.

    Raises:
        ValueError: a variable name does not begin with a letter (CF 2.3).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _cf_clean(ds, _HISTORY.get(str(path.resolve()), ""))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".nc")
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are for everyone who may read the folder
        os.replace(tmp, path)
        _HISTORY[str(path.resolve())] = ds.attrs["history"]
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def read_dataset(path: str | Path) -> xr.Dataset:
    """Load a result file fully into memory and close it (so it can be rewritten safely)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no result file at {path}")
    with xr.open_dataset(path, engine="netcdf4") as handle:
        ds = handle.load()
    _HISTORY[str(path.resolve())] = str(ds.attrs.get("history", ""))
    return ds
