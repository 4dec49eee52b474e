"""The summary of located events: mid-trial share, order swaps preceding or coinciding with count changes.

Definitions and the chance baseline: ``spikeode.study.scan_events`` ("Summary").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spikeode.study.scan_events.events import Event

__all__ = ["WINDOW_FRACTION", "summarise_events"]

#: default window of ``event_statistics``, as a fraction of the scanned range ``a_max - a_min``
WINDOW_FRACTION = 0.01


def summarise_events(events: Sequence[Event], alpha: np.ndarray, *, window: float | None = None,
                     samples: Sequence[int] | None = None) -> dict:
    """The summary of ``events`` on the scan grid ``alpha``, pooled over ``samples`` (default: those with
    events); the keys of ``event_statistics``."""
    lo, hi = float(np.min(alpha)), float(np.max(alpha))
    window = WINDOW_FRACTION * (hi - lo) if window is None else float(window)
    samples = sorted({e.sample for e in events}) if samples is None else list(samples)
    rows = {"changes": [], "mid_trial": [], "order_preceded": [], "order_coincident": [], "baseline": []}
    for s in samples:
        ev = [e for e in events if e.sample == s]
        swaps = [e for e in ev if e.kind == "order_swap"]
        changes = [e for e in ev if e.kind in ("appearance", "disappearance")]
        coincident = lambda e, w: abs(w.location - e.location) <= e.error + w.error
        rows["changes"].append(len(changes))
        rows["mid_trial"].append(sum(not e.at_trial_end for e in changes))
        rows["order_preceded"].append(sum(any(e.location - window <= w.location < e.location and not coincident(e, w)
                                              for w in swaps) for e in changes))
        rows["order_coincident"].append(sum(any(coincident(e, w) for w in swaps) for e in changes))
        rows["baseline"].append(_covered([w.location for w in swaps], window, lo, hi) / (hi - lo))
    rows = {k: np.asarray(v) for k, v in rows.items()}
    n = rows["changes"].sum()
    share = lambda k: float(rows[k].sum() / n) if n else float("nan")
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
