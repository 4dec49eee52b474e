"""Process-wide mutable state of the study layer, in one place: compiled programs and evaluation counters.

Tracing and compiling an event-driven network takes seconds to minutes, so the studies keep their jitted
programs for the life of the process in :data:`PROGRAMS`, keyed by the study's name and everything that
changes the traced computation (the run configuration as JSON, the program's variant). A key that differs
only in data, not in configuration, reuses the program. No other module of ``spikeode.study`` holds
module-level mutable state; :func:`clear` forgets all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

__all__ = ["EVALUATED_ROWS", "PROGRAMS", "cached", "clear"]

P = TypeVar("P")

#: compiled programs: ``(study, ...configuration key)`` -> jitted function
PROGRAMS: dict[Hashable, Callable] = {}
#: landscape alpha rows evaluated by this process, halo rows included (a resumed run evaluates no finished row)
EVALUATED_ROWS: list[int] = []


def cached(key: Hashable, build: Callable[[], P]) -> P:
    """``PROGRAMS[key]``, built by ``build()`` on first use."""
    if key not in PROGRAMS:
        PROGRAMS[key] = build()
    return PROGRAMS[key]


def clear() -> None:
    """Forget every compiled program (their memory is freed; the next use recompiles) and every counter."""
    PROGRAMS.clear()
    EVALUATED_ROWS.clear()
