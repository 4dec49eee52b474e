"""Spike patterns of scan points and the events that separate two of them (``classify_bracket``).

Definitions (pattern, matching, event kinds, trial end): ``spikeode.study.scan_events``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

__all__ = ["END_TOL", "EVENT_KINDS", "Event", "classify_bracket", "pattern_key", "same_pattern"]

#: the kinds of ``Event.kind``, in the order of the ``event_kind`` flag values
EVENT_KINDS = ("appearance", "disappearance", "order_swap", "order_tie")
#: an event at a location ``a`` is at the trial end when its spike time is ``>= T - END_TOL * T``
END_TOL = 1e-3


@dataclass(frozen=True)
class Event:
    """One located event (see ``spikeode.study.scan_events``); ``neurons``, ``ranks``, ``times`` have 1 or 2 entries."""

    kind: str
    sample: int
    grid_edge: int
    location: float
    error: float
    layer: int
    neurons: tuple[int, ...]
    ranks: tuple[int, ...]
    times: tuple[float, ...]
    at_trial_end: bool
    problems: bool


def pattern_key(times: Float[np.ndarray, "layer neuron slot"]) -> tuple:
    """A hashable key, equal for two points iff their spike patterns are equal (``spikeode.study.scan_events``)."""
    key = []
    for t in np.asarray(times, np.float64):
        finite = np.isfinite(t)
        n_idx, r_idx = np.nonzero(finite)
        tt = t[finite]
        order = np.lexsort((r_idx, n_idx, tt))
        key.append((finite.sum(-1).tobytes(), n_idx[order].tobytes(), r_idx[order].tobytes(),
                    (np.diff(tt[order]) == 0).tobytes()))
    return tuple(key)


def same_pattern(a: Float[np.ndarray, "layer neuron slot"], b: Float[np.ndarray, "layer neuron slot"]) -> bool:
    """Whether two points have the same spike counts per neuron and the same temporal order (ties included)."""
    return pattern_key(a) == pattern_key(b)


def _match(long: np.ndarray, short: np.ndarray) -> np.ndarray:
    """Ascending indices into ``long`` of the order-preserving injection of ``short`` that minimises
    ``sum_j |long[i_j] - short[j]|`` (dynamic programming; ``len(long) >= len(short)``)."""
    m, n = len(long), len(short)
    cost = np.full((m + 1, n + 1), np.inf)
    cost[:, 0] = 0.0
    for i in range(1, m + 1):
        for j in range(1, min(i, n) + 1):
            cost[i, j] = min(cost[i - 1, j], cost[i - 1, j - 1] + abs(long[i - 1] - short[j - 1]))
    idx, i, j = [], m, n
    while j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + abs(long[i - 1] - short[j - 1]):
            idx.append(i - 1)
            j -= 1
        i -= 1
    return np.asarray(idx[::-1], int)



def classify_bracket(lo: Float[np.ndarray, "layer neuron slot"], hi: Float[np.ndarray, "layer neuron slot"],
                     T: float, *, end_tol: float = END_TOL) -> list[dict]:
    """The events between the two ends of a final bracket (``spikeode.study.scan_events``), as dicts of ``Event`` fields
    without location: ``kind``, ``layer``, ``neurons``, ``ranks``, ``times``, ``at_trial_end``."""
    events = []
    end = lambda t: bool(t >= T * (1 - end_tol))
    for l, (a, b) in enumerate(zip(np.asarray(lo, np.float64), np.asarray(hi, np.float64))):
        matched = []  # (neuron, rank at lo, time at lo, time at hi)
        for n in range(a.shape[0]):
            ta, tb = a[n][np.isfinite(a[n])], b[n][np.isfinite(b[n])]
            if len(ta) == len(tb):
                ia = ib = np.arange(len(ta))
            elif len(ta) > len(tb):
                ia, ib = _match(ta, tb), np.arange(len(tb))
                for k in np.setdiff1d(np.arange(len(ta)), ia):
                    events.append({"kind": "disappearance", "layer": l, "neurons": (n,), "ranks": (int(k),),
                                       "times": (float(ta[k]),), "at_trial_end": end(ta[k])})
            else:
                ia, ib = np.arange(len(ta)), _match(tb, ta)
                for k in np.setdiff1d(np.arange(len(tb)), ib):
                    events.append({"kind": "appearance", "layer": l, "neurons": (n,), "ranks": (int(k),),
                                       "times": (float(tb[k]),), "at_trial_end": end(tb[k])})
            matched += [(n, int(i), ta[i], tb[j]) for i, j in zip(ia, ib)]
        if len(matched) < 2:
            continue
        neuron, rank, tl, th = (np.asarray(x) for x in zip(*matched))
        sl = np.sign(tl[:, None] - tl[None, :])
        sh = np.sign(th[:, None] - th[None, :])
        for kind, flips in (("order_swap", sl * sh < 0), ("order_tie", (sl == 0) != (sh == 0))):
            for p, q in zip(*np.nonzero(np.triu(flips, 1))):
                p, q = (p, q) if tl[p] <= tl[q] else (q, p)
                events.append({"kind": kind, "layer": l, "neurons": (int(neuron[p]), int(neuron[q])),
                                   "ranks": (int(rank[p]), int(rank[q])), "times": (float(tl[p]), float(tl[q])),
                                   "at_trial_end": end(tl[q])})
    return events

