"""Refinement of a 1-D scan's grid intervals until every spike event sits in a bracket no wider than ``tol``.

Rounds, splitting, the per-interval cap: ``spikeode.study.scan_events``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float

from spikeode.study.scan_events.events import END_TOL, Event, classify_bracket, pattern_key

__all__ = ["MAX_BRACKETS", "MAX_SPLIT", "Evaluate", "locate_events"]

#: per grid interval, the most brackets followed by default
MAX_BRACKETS = 32
#: most interior points per bracket and round
MAX_SPLIT = 64

#: ``evaluate(a[P], sample_position[P]) -> (spike times [P, layer, neuron, slot], problem flags [P])``
Evaluate = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class _Bracket:
    sample: int
    edge: int
    lo: float
    hi: float
    t_lo: np.ndarray
    t_hi: np.ndarray
    bad: bool  # a simulation problem at either end


def locate_events(
    evaluate: Evaluate,
    alpha: Float[np.ndarray, " a"],
    grid_times: Float[np.ndarray, "sample a layer neuron slot"],
    T: float,
    *,
    tol: float,
    batch: int,
    grid_problems: Bool[np.ndarray, "sample a"] | None = None,
    sample_ids: Sequence[int] | None = None,
    max_brackets: int = MAX_BRACKETS,
    end_tol: float = END_TOL,
) -> tuple[list[Event], np.ndarray]:
    """Locate every event between neighbouring grid points whose patterns differ (``spikeode.study.scan_events``).

    Args:
        evaluate: spike times and problem flags of the network at scan parameters ``a[P]`` for the
            samples at positions ``sample_position[P]`` of ``grid_times``' sample axis.
        alpha: the scan grid (ascending).
        grid_times: spike times at the grid points (``+inf`` unused slot, NaN padding).
        T: trial end.
        tol: the final brackets' widest width (in units of ``a``).
        batch: points per round are a multiple of it (the evaluation's batch).
        grid_problems: simulation problems at the grid points (carried into ``Event.problems``).
        sample_ids: the samples' identifiers stored in ``Event.sample`` (default: their positions).
        max_brackets: per grid interval, the most brackets followed.

    Returns:
        the events sorted by sample and location, and ``capped[sample, a]``: brackets dropped per grid
        interval (last column 0).
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    grid_times = np.asarray(grid_times, np.float64)
    S, A = grid_times.shape[:2]
    ids = list(range(S)) if sample_ids is None else [int(s) for s in sample_ids]
    bad = np.zeros((S, A), bool) if grid_problems is None else np.asarray(grid_problems, bool)
    keys = [[pattern_key(grid_times[s, i]) for i in range(A)] for s in range(S)]
    open_ = [_Bracket(s, i, float(alpha[i]), float(alpha[i + 1]), grid_times[s, i], grid_times[s, i + 1],
                      bool(bad[s, i] | bad[s, i + 1]))
             for s in range(S) for i in range(A - 1) if keys[s][i] != keys[s][i + 1]]
    live = np.zeros((S, A), int)  # brackets per grid interval (open or final)
    for br in open_:
        live[br.sample, br.edge] = 1
    capped = np.zeros((S, A), int)
    final = [br for br in open_ if br.hi - br.lo <= tol]
    open_ = [br for br in open_ if br.hi - br.lo > tol]
    while open_:
        K = int(np.clip(batch // len(open_), 1, MAX_SPLIT))
        frac = np.arange(1, K + 1) / (K + 1)
        points = np.concatenate([br.lo + frac * (br.hi - br.lo) for br in open_])
        samples = np.repeat([br.sample for br in open_], K)
        times, problems = evaluate(points, samples)
        times, problems = np.asarray(times, np.float64), np.asarray(problems, bool)
        next_open = []
        for b, br in enumerate(open_):
            ends = [(br.lo, br.t_lo, False)] + [(points[b * K + k], times[b * K + k], problems[b * K + k])
                                                for k in range(K)] + [(br.hi, br.t_hi, False)]
            pk = [pattern_key(t) for _, t, _ in ends]
            subs = [_Bracket(br.sample, br.edge, ends[k][0], ends[k + 1][0], ends[k][1], ends[k + 1][1],
                             br.bad | ends[k][2] | ends[k + 1][2])
                    for k in range(K + 1) if pk[k] != pk[k + 1]]
            room = max_brackets - live[br.sample, br.edge] + 1
            capped[br.sample, br.edge] += max(len(subs) - room, 0)
            subs = subs[:room]
            live[br.sample, br.edge] += len(subs) - 1
            for sub in subs:
                (final if sub.hi - sub.lo <= tol else next_open).append(sub)
        open_ = next_open
    if capped.any():
        warnings.warn(f"{int(capped.sum())} brackets dropped in {int((capped > 0).sum())} grid intervals (more than "
                      f"max_brackets={max_brackets} events in one interval); see event_search_capped", stacklevel=2)
    events = [Event(sample=ids[br.sample], grid_edge=br.edge, location=0.5 * (br.lo + br.hi),
                    error=0.5 * (br.hi - br.lo), problems=br.bad, **ev)
              for br in final for ev in classify_bracket(br.t_lo, br.t_hi, T, end_tol=end_tol)]
    events.sort(key=lambda e: (ids.index(e.sample), e.location))
    return events, capped

