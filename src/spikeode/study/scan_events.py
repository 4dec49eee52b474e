"""Exact locations of spike events along a 1-D scan ``theta(a) = theta* + a delta`` in parameter space.

A grid scan only says that the spikes differ between two neighbouring points ``a_i < a_{i+1}``. This
module finds *where*: it refines every grid interval whose end points differ, by evaluating the network
(forward only) at interior points, until each remaining bracket ``[lo, hi]`` is no wider than
``tol`` (``1e-6`` of the scan's half-width ``span`` in the landscapes), and then classifies the change
across the bracket.

Definitions (the ``description`` attributes of the ``event_*`` variables repeat them):

Spike pattern.  At a point ``a`` each layer has spike times ``t[n, k]`` (neuron ``n``, its ``k``-th
spike, ascending; ``+inf``/NaN = none). Its pattern is the spike count of every neuron together with the
temporal order of all the layer's spikes, ties (equal times) included: two points have the same pattern
iff every neuron has the same count and every pair of spikes ``(n, k)``, ``(m, j)`` has the same sign of
``t[n, k] - t[m, j]`` (-, 0 or +). Equality of patterns is an equivalence, so a bracket whose ends
differ always keeps a sub-bracket whose ends differ.

Refinement.  Each round splits every open bracket at ``K`` equally spaced interior points (``K`` chosen
so one round fills the evaluation batch; ``K = 1`` is bisection) and keeps each sub-bracket whose ends
differ. Several events inside one grid interval therefore end in separate brackets. Per grid interval at
most ``max_brackets`` brackets are followed; the rest are dropped and counted (``event_search_capped``,
and a warning), never silently. Events whose effects cancel between two evaluated points (a spike that
appears and disappears again inside one sub-bracket) are invisible to any finite scan.

Classification of a final bracket ``[lo, hi]`` (direction of travel: increasing ``a``).  Per layer and
neuron whose count changes, the spikes of the side with more spikes are matched to those of the other
side by the order-preserving matching that minimises ``sum |t_lo - t_hi|`` (all other spikes move by
``O(tol)``); each unmatched spike is one event:
- ``appearance``: present at ``hi`` only; its spike time is the one at ``hi``;
- ``disappearance``: present at ``lo`` only; its spike time is the one at ``lo``.
Over the matched spikes of a layer, each pair whose order flips (``+`` <-> ``-``) is one ``order_swap``
(spike times at ``lo``, the earlier spike first); each pair that becomes or stops being simultaneous
(``0`` <-> ``+/-``) is one ``order_tie``. The event's location is the bracket's midpoint, its error the
half-width. A (dis)appearance is *at the trial end* when its spike time is ``>= T - end_tol`` (a spike
that leaves or enters through ``T``), else *mid-trial*; an order event is at the trial end when its
later spike is.

Summary (``event_statistics``), pooled over samples, with ``window`` in units of ``a``:
- ``mid_trial_fraction``: share of (dis)appearances that are mid-trial;
- ``order_preceded_fraction``: share of (dis)appearances ``e`` with an ``order_swap`` of the same sample
  located in ``[a_e - window, a_e)`` and not coincident with ``e`` (farther than the sum of both
  location errors): the order changed shortly *before* the spike count, travelling towards increasing ``a``;
- ``order_coincident_fraction``: share of (dis)appearances with an ``order_swap`` at the same location
  (within the location errors): order and count change in one discontinuity;
- ``order_window_baseline``: the share of the scanned range covered by the windows ``[a_s, a_s + window]``
  after the swaps, mean over samples: the chance that a random location has a swap within the window
  before it (compare ``order_preceded_fraction`` with it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr
from jaxtyping import Bool, Float

__all__ = [
    "EVENT_KINDS",
    "Event",
    "classify_bracket",
    "event_statistics",
    "event_variables",
    "events_from_dataset",
    "locate_events",
    "same_pattern",
]

EVENT_KINDS = ("appearance", "disappearance", "order_swap", "order_tie")
#: an event at a location ``a`` is at the trial end when its spike time is ``>= T - END_TOL * T``
END_TOL = 1e-3
#: default window of ``event_statistics``, as a fraction of the scanned range ``a_max - a_min``
WINDOW_FRACTION = 0.01
#: per grid interval, the most brackets followed by default
MAX_BRACKETS = 32
#: most interior points per bracket and round
MAX_SPLIT = 64

#: ``evaluate(a[P], sample_position[P]) -> (spike times [P, layer, neuron, slot], problem flags [P])``
Evaluate = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Event:
    """One located event (see the module docstring); ``neurons``, ``ranks``, ``times`` have 1 or 2 entries."""

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


# ----------------------------------------------------------------------------------------------- patterns

def _pattern(times: Float[np.ndarray, "layer neuron slot"]) -> tuple:
    """A hashable key, equal for two points iff their spike patterns are equal (module docstring)."""
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
    return _pattern(a) == _pattern(b)


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


# ----------------------------------------------------------------------------------------------- classification

def classify_bracket(lo: Float[np.ndarray, "layer neuron slot"], hi: Float[np.ndarray, "layer neuron slot"],
                     T: float, *, end_tol: float = END_TOL) -> list[dict]:
    """The events between the two ends of a final bracket (module docstring), as dicts of ``Event`` fields
    without location: ``kind``, ``layer``, ``neurons``, ``ranks``, ``times``, ``at_trial_end``."""
    events = []
    end = lambda t: bool(t >= T * (1 - end_tol))  # noqa: E731
    for l, (a, b) in enumerate(zip(np.asarray(lo, np.float64), np.asarray(hi, np.float64))):
        matched = []  # (neuron, rank at lo, time at lo, time at hi)
        for n in range(a.shape[0]):
            ta, tb = a[n][np.isfinite(a[n])], b[n][np.isfinite(b[n])]
            if len(ta) == len(tb):
                ia = ib = np.arange(len(ta))
            elif len(ta) > len(tb):
                ia, ib = _match(ta, tb), np.arange(len(tb))
                for k in np.setdiff1d(np.arange(len(ta)), ia):
                    events.append(dict(kind="disappearance", layer=l, neurons=(n,), ranks=(int(k),),
                                       times=(float(ta[k]),), at_trial_end=end(ta[k])))
            else:
                ia, ib = np.arange(len(ta)), _match(tb, ta)
                for k in np.setdiff1d(np.arange(len(tb)), ib):
                    events.append(dict(kind="appearance", layer=l, neurons=(n,), ranks=(int(k),),
                                       times=(float(tb[k]),), at_trial_end=end(tb[k])))
            matched += [(n, int(i), ta[i], tb[j]) for i, j in zip(ia, ib)]
        if len(matched) < 2:
            continue
        neuron, rank, tl, th = (np.asarray(x) for x in zip(*matched))
        sl = np.sign(tl[:, None] - tl[None, :])
        sh = np.sign(th[:, None] - th[None, :])
        for kind, flips in (("order_swap", sl * sh < 0), ("order_tie", (sl == 0) != (sh == 0))):
            for p, q in zip(*np.nonzero(np.triu(flips, 1))):
                p, q = (p, q) if tl[p] <= tl[q] else (q, p)
                events.append(dict(kind=kind, layer=l, neurons=(int(neuron[p]), int(neuron[q])),
                                   ranks=(int(rank[p]), int(rank[q])), times=(float(tl[p]), float(tl[q])),
                                   at_trial_end=end(tl[q])))
    return events


# ----------------------------------------------------------------------------------------------- refinement

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
    """Locate every event between neighbouring grid points whose patterns differ (module docstring).

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
    keys = [[_pattern(grid_times[s, i]) for i in range(A)] for s in range(S)]
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
            pk = [_pattern(t) for _, t, _ in ends]
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


# ----------------------------------------------------------------------------------------------- storage

_FLAGS = {"flag_values": np.arange(len(EVENT_KINDS), dtype=np.int8), "flag_meanings": " ".join(EVENT_KINDS)}
#: summary variables stored in a scan file: name -> (long_name, description)
SUMMARY = {
    "events_mid_trial_fraction": ("mid-trial share of spike (dis)appearances",
                                  "share of located appearances and disappearances whose spike time is < T (1 - "
                                  "end_tol)"),
    "events_order_preceded_fraction": ("share of (dis)appearances preceded by an order swap",
                                       "share of (dis)appearances e with an order_swap of the same sample in "
                                       "[a_e - window, a_e), not coincident with e"),
    "events_order_coincident_fraction": ("share of (dis)appearances coincident with an order swap",
                                         "share of (dis)appearances with an order_swap at the same location "
                                         "(within the sum of both location errors)"),
    "events_order_window_baseline": ("chance level of an order swap within the window",
                                     "share of the scanned range within [a_s, a_s + window] of some order_swap "
                                     "a_s, mean over samples"),
}


def event_variables(events: Sequence[Event], capped: np.ndarray, alpha: np.ndarray, sample_ids: Sequence[int], *,
                    tol: float, T: float, end_tol: float = END_TOL,
                    window: float | None = None) -> dict[str, xr.Variable]:
    """The ``event_*`` variables of a scan file (dimension ``event``; ``event_spike``: first/second spike),
    and the ``events_*`` summary scalars (``event_statistics`` with ``window``)."""
    E = len(events)
    two = lambda get, fill, dtype: np.array([list(get(e)) + [fill] * (2 - len(get(e))) for e in events],  # noqa: E731
                                            dtype).reshape(E, 2)
    var = lambda dims, values, long_name, desc, units="1", **attrs: xr.Variable(  # noqa: E731
        dims, np.asarray(values), attrs={"long_name": long_name, "units": units, "description": desc, **attrs})
    ev = ("event",)
    out = {
        "event_kind": var(ev, np.array([EVENT_KINDS.index(e.kind) for e in events], np.int8), "event kind",
                          "appearance / disappearance of a spike, order_swap / order_tie of a pair of spikes, going "
                          "towards increasing alpha (spikeode.study.scan_events)", **_FLAGS),
        "event_sample": var(ev, np.array([e.sample for e in events], np.int32), "sample of the event",
                            "sample index in the training subset (the `sample` coordinate)"),
        "event_grid_edge": var(ev, np.array([e.grid_edge for e in events], np.int32), "grid interval of the event",
                               "i: the event lies between alpha[i] and alpha[i + 1]"),
        "event_alpha": var(ev, np.array([e.location for e in events], np.float64), "event location",
                           "midpoint of the final bracket of the scan parameter alpha"),
        "event_alpha_error": var(ev, np.array([e.error for e in events], np.float64), "event location error",
                                 f"half-width of the final bracket (<= tol / 2, tol = {tol:g})"),
        "event_layer": var(ev, np.array([e.layer for e in events], np.int32), "layer of the event",
                           "index into the `layer` coordinate"),
        "event_neuron": var(ev + ("event_spike",), two(lambda e: e.neurons, -1, np.int32), "neurons of the event",
                            "neuron of the (dis)appearing spike, or of the two spikes of an order event (earlier "
                            "first); -1: none"),
        "event_rank": var(ev + ("event_spike",), two(lambda e: e.ranks, -1, np.int32), "spike ranks of the event",
                          "k: the neuron's k-th spike (0-based) on the side where it exists (order events: lo side); "
                          "-1: none"),
        "event_spike_time": var(ev + ("event_spike",), two(lambda e: e.times, np.nan, np.float64),
                                "spike times at the event",
                                "appearance: time at the bracket's upper end; disappearance and order events: at its "
                                "lower end; NaN: none"),
        "event_at_trial_end": var(ev, np.array([e.at_trial_end for e in events], np.int8), "event at the trial end",
                                  f"1 when the (later) spike time is >= T (1 - end_tol), end_tol = {end_tol:g}",
                                  flag_values=np.array([0, 1], np.int8), flag_meanings="mid_trial at_trial_end"),
        "event_problems": var(ev, np.array([e.problems for e in events], np.int8), "simulation problem at the event",
                              "1 when a bracket end had an exhausted event budget, slot overflow or failed solve",
                              flag_values=np.array([0, 1], np.int8), flag_meanings="clean problem"),
        "event_search_capped": var(("sample", "alpha"), capped.astype(np.int32), "dropped event brackets",
                                   "brackets not followed in the grid interval from alpha[i] to alpha[i + 1] "
                                   "(more events than max_brackets); 0 on a complete search"),
    }
    for v in out.values():
        if v.dims[:1] == ("event",):
            v.attrs.update(event_tol=tol, trial_end=T)
    stats = _statistics(events, alpha, window=window, samples=sample_ids)
    for name, (long_name, desc) in SUMMARY.items():
        out[name] = var((), stats[name.removeprefix("events_")], long_name, desc + f" (window {stats['window']:g})")
    return out


def events_from_dataset(ds: xr.Dataset) -> list[Event]:
    """The events stored in a scan file (``event_variables``)."""
    if "event_kind" not in ds:
        raise KeyError("the dataset holds no located events (event_kind): a sample-kind landscape computes them")
    v = {k: ds[k].values for k in ("event_kind", "event_sample", "event_grid_edge", "event_alpha",
                                   "event_alpha_error", "event_layer", "event_neuron", "event_rank",
                                   "event_spike_time", "event_at_trial_end", "event_problems")}
    out = []
    for e in range(ds.sizes.get("event", 0)):
        n = 1 if EVENT_KINDS[v["event_kind"][e]] in ("appearance", "disappearance") else 2
        out.append(Event(kind=EVENT_KINDS[v["event_kind"][e]], sample=int(v["event_sample"][e]),
                         grid_edge=int(v["event_grid_edge"][e]), location=float(v["event_alpha"][e]),
                         error=float(v["event_alpha_error"][e]), layer=int(v["event_layer"][e]),
                         neurons=tuple(int(x) for x in v["event_neuron"][e, :n]),
                         ranks=tuple(int(x) for x in v["event_rank"][e, :n]),
                         times=tuple(float(x) for x in v["event_spike_time"][e, :n]),
                         at_trial_end=bool(v["event_at_trial_end"][e]), problems=bool(v["event_problems"][e])))
    return out


# ----------------------------------------------------------------------------------------------- statistics

def _statistics(events: Sequence[Event], alpha: np.ndarray, *, window: float | None = None,
                samples: Sequence[int] | None = None) -> dict:
    lo, hi = float(np.min(alpha)), float(np.max(alpha))
    window = WINDOW_FRACTION * (hi - lo) if window is None else float(window)
    samples = sorted({e.sample for e in events}) if samples is None else list(samples)
    rows = {"changes": [], "mid_trial": [], "order_preceded": [], "order_coincident": [], "baseline": []}
    for s in samples:
        ev = [e for e in events if e.sample == s]
        swaps = [e for e in ev if e.kind == "order_swap"]
        changes = [e for e in ev if e.kind in ("appearance", "disappearance")]
        coincident = lambda e, w: abs(w.location - e.location) <= e.error + w.error  # noqa: E731
        rows["changes"].append(len(changes))
        rows["mid_trial"].append(sum(not e.at_trial_end for e in changes))
        rows["order_preceded"].append(sum(any(e.location - window <= w.location < e.location and not coincident(e, w)
                                              for w in swaps) for e in changes))
        rows["order_coincident"].append(sum(any(coincident(e, w) for w in swaps) for e in changes))
        rows["baseline"].append(_covered([w.location for w in swaps], window, lo, hi) / (hi - lo))
    rows = {k: np.asarray(v) for k, v in rows.items()}
    n = rows["changes"].sum()
    share = lambda k: float(rows[k].sum() / n) if n else float("nan")  # noqa: E731
    return {
        "window": window, "changes": int(n), "mid_trial_fraction": share("mid_trial"),
        "order_preceded_fraction": share("order_preceded"), "order_coincident_fraction": share("order_coincident"),
        "order_window_baseline": float(np.mean(rows["baseline"])) if samples else float("nan"),
        "per_sample": {"sample": np.asarray(samples), **rows},
    }


def _covered(starts: Sequence[float], window: float, lo: float, hi: float) -> float:
    """Length of ``[lo, hi]`` covered by the union of the intervals ``[s, s + window]``."""
    total, reach = 0.0, lo
    for s in sorted(starts):
        a, b = max(s, reach), min(s + window, hi)
        if b > a:
            total += b - a
            reach = b
    return total


def event_statistics(ds: xr.Dataset, *, window: float | None = None) -> dict:
    """The summary of a scan file's located events (module docstring), pooled over its samples.

    Args:
        ds: a sample-kind landscape (``spikeode landscape --kind sample``) with ``event_*`` variables.
        window: the window before a (dis)appearance in which an order swap counts as preceding it, in
            units of alpha (default ``WINDOW_FRACTION`` of the scanned range).

    Returns:
        ``changes`` (number of (dis)appearances), ``mid_trial_fraction``, ``order_preceded_fraction``,
        ``order_coincident_fraction``, ``order_window_baseline``, ``window``, and ``per_sample``: per
        sample (``sample``) the counts ``changes``, ``mid_trial``, ``order_preceded``,
        ``order_coincident`` and the ``baseline`` share (for intervals over samples). Fractions are NaN
        when no (dis)appearance was found.
    """
    return _statistics(events_from_dataset(ds), ds["alpha"].values, window=window,
                       samples=[int(s) for s in ds["sample"].values])
