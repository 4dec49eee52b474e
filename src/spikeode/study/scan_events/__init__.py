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

Modules: ``events`` (patterns, :class:`Event`, :func:`classify_bracket`), ``locate`` (the refinement,
:func:`locate_events`), ``summary`` (the summary above), ``records`` (the ``event_*`` variables of a scan
file, reading them back, :func:`event_statistics`).
"""

from spikeode.study.scan_events.events import END_TOL, EVENT_KINDS, Event, classify_bracket, same_pattern
from spikeode.study.scan_events.locate import MAX_BRACKETS, MAX_SPLIT, Evaluate, locate_events
from spikeode.study.scan_events.records import SUMMARY, event_statistics, event_variables, events_from_dataset
from spikeode.study.scan_events.summary import WINDOW_FRACTION, summarise_events

__all__ = [
    "END_TOL",
    "EVENT_KINDS",
    "MAX_BRACKETS",
    "MAX_SPLIT",
    "SUMMARY",
    "WINDOW_FRACTION",
    "Evaluate",
    "Event",
    "classify_bracket",
    "event_statistics",
    "event_variables",
    "events_from_dataset",
    "locate_events",
    "same_pattern",
    "summarise_events",
]
