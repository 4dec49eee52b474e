"""XLA set-up for event loops, by explicit calls: CPU code-generation defaults and a compilation cache.

An event loop runs thousands of tiny steps; on CPU its cost is the code XLA emits per step.
XLA's newer "fusion emitters" (default in jaxlib 0.10) make that code slower and much larger to
compile for these programs. Measured on the ``shd`` benchmark (2-core CPU, float32, batch 32,
jaxlib 0.10.2): fwd+grad 107 -> 178 samples/s, compile 5.7 -> 3.9 s, peak RSS 749 -> 371 MiB (the
forward alone is unchanged, 1029 vs 1027 samples/s).

The flag only changes how XLA generates CPU code, never what it computes. ``import spikeode`` does not
set it; :func:`use_fast_cpu_defaults` does, and must run before the first JAX computation (XLA reads
``XLA_FLAGS`` once, when its CPU backend starts; a later call changes nothing and cannot tell).

Compiling an event loop and its gradient takes seconds to a minute, longer than a short training run.
:func:`enable_compilation_cache` keeps compiled programs on disk, so a process that builds a program seen
before (same shapes, dtypes, flags and versions) loads it instead. The CLI calls it too.
:func:`compile_time` says how much of a process's time went into making programs (the study prints it per
stage).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

__all__ = ["CACHE_ENV", "CPU_FLAGS", "MAX_CACHE_BYTES", "CompileTime", "compile_time", "default_cache_dir",
           "enable_compilation_cache", "use_fast_cpu_defaults"]

#: Added to ``XLA_FLAGS``; only for jaxlib versions where it was measured (it exists there).
CPU_FLAGS = ("--xla_cpu_use_fusion_emitters=false",)
_MEASURED_FROM = (0, 10)
#: Set to ``0`` to make :func:`use_fast_cpu_defaults` do nothing (e.g. to measure without the flag).
OPT_OUT = "SPIKEODE_XLA_DEFAULTS"


def _jaxlib_version() -> tuple[int, int]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (PackageNotFoundError, ValueError):
        return (0, 0)


def use_fast_cpu_defaults() -> bool:
    """Add ``CPU_FLAGS`` to ``XLA_FLAGS`` (faster, smaller CPU code for event loops); returns whether it did.

    Call it first thing in a script, before any JAX computation::

        import spikeode
        spikeode.use_fast_cpu_defaults()

    Nothing is added when ``SPIKEODE_XLA_DEFAULTS=0``, when jaxlib predates the measurement, or when
    ``XLA_FLAGS`` names the flag already (the user's value wins). A warning is issued when JAX is already
    imported: the flag then takes effect only if no JAX computation has run yet.
    """
    if os.environ.get(OPT_OUT, "1") == "0" or _jaxlib_version() < _MEASURED_FROM:
        return False
    current = os.environ.get("XLA_FLAGS", "")
    missing = [f for f in CPU_FLAGS if f.split("=")[0] not in current]
    if not missing:
        return False
    if "jax" in sys.modules:
        import warnings

        warnings.warn("spikeode.use_fast_cpu_defaults() called after JAX was imported: XLA_FLAGS takes effect "
                      "only if no JAX computation has run yet; call it before importing JAX", stacklevel=2)
    os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()
    return True


#: ``0`` turns :func:`enable_compilation_cache` off; any other value is the cache directory.
CACHE_ENV = "SPIKEODE_COMPILATION_CACHE"
#: Size cap of the cache; the least recently used programs are evicted beyond it.
MAX_CACHE_BYTES = 2**30


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/spikeode/jax``, i.e. ``~/.cache/spikeode/jax`` by default."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spikeode" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep compiled XLA programs on disk (JAX's persistent compilation cache); returns the directory,
    or ``None`` when ``SPIKEODE_COMPILATION_CACHE=0`` turns it off.

    Call it first thing in a script, after :func:`use_fast_cpu_defaults` and before any JAX computation
    (JAX looks at the cache settings once, at its first compilation)::

        import spikeode
        spikeode.use_fast_cpu_defaults()
        spikeode.enable_compilation_cache()

    The directory is ``path``, else ``$SPIKEODE_COMPILATION_CACHE``, else JAX's ``jax_compilation_cache_dir``
    if one is set, else :func:`default_cache_dir`. Every program is stored however short its compilation
    (JAX's default skips those under 1 s, most of ours), up to ``MAX_CACHE_BYTES`` (least recently used
    evicted; the cap also makes concurrent processes lock the directory while they read and write it).
    An entry's key covers the program, shapes, dtypes, ``XLA_FLAGS`` and the JAX version, so a cached
    program is the one a compilation would give. This does not import JAX: before JAX's import the
    settings go to the environment variables JAX reads (subprocesses inherit them).

    XLA cannot store programs with host callbacks, and equinox's runtime checks (in every diffrax solve)
    are host callbacks unless ``EQX_ON_ERROR=nan``. So this sets ``EQX_ON_ERROR=nan`` when the variable is
    unset and equinox not yet imported: a failed check then gives NaN instead of raising. The engine calls
    diffrax with ``throw=False`` and reports a failed solve in ``Trace.failed`` either way. A warning says
    so when diffrax programs cannot be cached (equinox imported before, or ``EQX_ON_ERROR=raise`` set).
    """
    setting = os.environ.get(CACHE_ENV, "")
    if setting == "0":
        return None
    directory = Path(path or setting or _jax_setting("jax_compilation_cache_dir") or default_cache_dir())
    directory = directory.expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    if "equinox" not in sys.modules:
        os.environ.setdefault("EQX_ON_ERROR", "nan")
    mode = _equinox_on_error() or os.environ.get("EQX_ON_ERROR", "raise")
    if mode not in ("nan", "off"):
        import warnings

        warnings.warn(f"spikeode.enable_compilation_cache(): equinox's runtime checks are host callbacks "
                      f"here (EQX_ON_ERROR={mode!r}), so diffrax programs will not be cached; call it before "
                      "importing equinox, diffrax or spikeode's engine", stacklevel=2)
    settings = {
        "jax_compilation_cache_dir": str(directory),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
        "jax_compilation_cache_max_size": MAX_CACHE_BYTES,
    }
    if "jax" in sys.modules:
        import jax

        for name, value in settings.items():
            jax.config.update(name, value)
    else:  # JAX reads its settings from the environment when imported: this does not import it
        os.environ.update({name.upper(): str(value) for name, value in settings.items()})
    return directory


def _jax_setting(name: str) -> str | None:
    """A JAX setting: from ``jax.config`` if JAX is imported, else from the variable JAX would read."""
    if "jax" in sys.modules:
        return getattr(sys.modules["jax"].config, name)
    return os.environ.get(name.upper())


def _equinox_on_error() -> str | None:
    """The ``EQX_ON_ERROR`` mode equinox read at its import (``None`` if it is not imported)."""
    config = sys.modules.get("equinox._config")
    return None if config is None else getattr(config, "EQX_ON_ERROR", None)


class CompileTime(NamedTuple):
    """Seconds a process spent making XLA programs, from JAX's monitoring events (cumulative since the first
    :func:`compile_time` call; subtract two readings for the time in between).

    ``trace``: tracing to jaxprs; ``lower``: lowering to MLIR; ``xla``: XLA compilation or, on a hit, loading
    from the persistent compilation cache; ``loaded``: the part of ``xla`` spent loading cached programs."""

    trace: float = 0.0
    lower: float = 0.0
    xla: float = 0.0
    loaded: float = 0.0

    @property
    def total(self) -> float:
        """Tracing, lowering and XLA together: the wall time a process spends before its programs run."""
        return self.trace + self.lower + self.xla

    def __sub__(self, other: CompileTime) -> CompileTime:  # type: ignore[override]
        return CompileTime(*(a - b for a, b in zip(self, other)))


#: JAX's monitoring event of each :class:`CompileTime` field.
_COMPILE_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "xla",
    "/jax/compilation_cache/cache_retrieval_time_sec": "loaded",
}
_compile_totals: dict[str, float] | None = None


def compile_time() -> CompileTime:
    """This process's :class:`CompileTime` so far (all threads). The first call imports JAX and starts
    counting; compilations before it are not seen."""
    global _compile_totals
    if _compile_totals is None:
        from jax import monitoring

        totals = _compile_totals = dict.fromkeys(CompileTime._fields, 0.0)

        def listen(event: str, seconds: float, **_) -> None:
            field = _COMPILE_EVENTS.get(event)
            if field is not None:
                totals[field] += seconds

        monitoring.register_event_duration_secs_listener(listen)
    return CompileTime(**_compile_totals)
