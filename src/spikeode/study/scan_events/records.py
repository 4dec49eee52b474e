"""Located events on a scan file: the ``event_*`` variables and ``events_*`` summaries, and reading them back."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from spikeode.study.scan_events.events import END_TOL, EVENT_KINDS, Event
from spikeode.study.scan_events.summary import summarise_events

__all__ = ["SUMMARY", "event_statistics", "event_variables", "events_from_dataset"]

_FLAGS = {"flag_values": np.arange(len(EVENT_KINDS), dtype=np.int8), "flag_meanings": " ".join(EVENT_KINDS)}
#: summary variables stored in a scan file: name -> (long_name, description)
SUMMARY = {
    "events_mid_trial_fraction": ("mid-trial share of spike (dis)appearances",
                                  ("share of located appearances and disappearances whose spike time is < T (1 - "
                                  "end_tol)")),
    "events_order_preceded_fraction": ("share of (dis)appearances preceded by an order swap",
                                       ("share of (dis)appearances e with an order_swap of the same sample in "
                                       "[a_e - window, a_e), not coincident with e")),
    "events_order_coincident_fraction": ("share of (dis)appearances coincident with an order swap",
                                         ("share of (dis)appearances with an order_swap at the same location "
                                         "(within the sum of both location errors)")),
    "events_order_window_baseline": ("chance level of an order swap within the window",
                                     ("share of the scanned range within [a_s, a_s + window] of some order_swap "
                                     "a_s, mean over samples")),
}


def event_variables(events: Sequence[Event], capped: np.ndarray, alpha: np.ndarray, sample_ids: Sequence[int], *,
                    tol: float, T: float, end_tol: float = END_TOL,
                    window: float | None = None) -> dict[str, xr.Variable]:
    """The ``event_*`` variables of a scan file (dimension ``event``; ``event_spike``: first/second spike),
    and the ``events_*`` summary scalars (``event_statistics`` with ``window``)."""
    E = len(events)
    two = lambda get, fill, dtype: np.array([list(get(e)) + [fill] * (2 - len(get(e))) for e in events],
                                            dtype).reshape(E, 2)
    var = lambda dims, values, long_name, desc, units="1", **attrs: xr.Variable(
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
    stats = summarise_events(events, alpha, window=window, samples=sample_ids)
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



def event_statistics(ds: xr.Dataset, *, window: float | None = None) -> dict:
    """The summary of a scan file's located events (``spikeode.study.scan_events``), pooled over its samples.

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
    return summarise_events(events_from_dataset(ds), ds["alpha"].values, window=window,
                       samples=[int(s) for s in ds["sample"].values])
