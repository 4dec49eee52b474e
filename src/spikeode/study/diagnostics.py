"""Spike-order diagnostics between neighbouring landscape points, and fragmentation/gradient statistics.

These compare grid points; ``spikeode.study.scan_events`` locates the same events exactly between them.

Definitions (used verbatim in the ``description`` attribute of every variable ``landscape.nc`` holds):

Spike identity.  Spike times come as ``(..., neurons, slots)`` arrays, ascending per neuron, ``+inf`` in
unused slots. Between two points A and B the ``k``-th spike of neuron ``n`` at A is identified with the
``k``-th spike of neuron ``n`` at B ("rank matching"); a spike is *present at both points* when
``k < min(n_A, n_B)`` with ``n_A``, ``n_B`` the neuron's numbers of recorded spikes. Spikes beyond a
neuron's slots (slot overflow, flagged as ``problems`` in a landscape) are not seen by these counts.

Appearances / disappearances.  ``appearances = sum_n max(n_B - n_A, 0)``,
``disappearances = sum_n max(n_A - n_B, 0)`` (net change of each neuron's spike count, summed over
the layer's neurons; going from A to B).

Order changes (Kendall distance).  Over the spikes present at both points, the number of pairs
``(p, q)`` whose temporal order flips: ``(tA_p - tA_q) * (tB_p - tB_q) < 0``. Ties at either point
(equal times) are not counted as swaps. Pairs of spikes of the same neuron never swap (ascending).

Loss jump.  For an edge from A to B along grid axis ``x`` (``alpha`` or ``beta``) with step ``h``:
``dL = L_B - L_A``; the first-order predictions of the change are ``s_A = g_A h`` and ``s_B = g_B h``
with ``g`` the directional derivative ``dL/dx`` (the gradient projected on the axis direction). The edge
*jumps* when ``|dL| > c * max(|s_A|, |s_B|) + eps`` (defaults ``c = 2``, ``eps = 1e-4``). For a loss
that is C^2 along the edge, ``|dL| <= max(|s_A|, |s_B|) + O(h^2)``, so on a fine grid a smooth edge
does not jump; a discontinuity of size ``J`` jumps once ``J`` exceeds the slope term.

Summary metrics (over all finished edges of both axes, and every sample for single-sample scans):
- ``jump_fraction``: fraction of edges that jump (the fragmentation metric).
- ``loss_total_variation``: ``sum |dL|`` over the edges, divided by the number of grid lines
  (rows + columns), i.e. the mean total variation of one 1-D line of the grid.
- ``jump_variation_share``: ``sum_{jump edges} |dL| / sum_{edges} |dL|``, the share of the variation
  carried by jumps.
- ``gradient_cosine_mean``: mean over edges of the cosine similarity of the full weight gradients at
  both ends (1: the gradient field is smooth; small or negative: erratic).
- ``slope_correlation``: Pearson correlation over edges of the finite-difference slope ``dL / h`` and
  the mean projected gradient ``(g_A + g_B) / 2``.
- ``slope_relative_error``: median over edges of ``|dL/h - (g_A+g_B)/2| / max(|dL/h|, |(g_A+g_B)/2|, tiny)``
  (0: gradient and finite differences agree; 1: unrelated).
"""

from __future__ import annotations

import numpy as np

from spikeode.study import caches

__all__ = [
    "JUMP_EPS",
    "JUMP_FACTOR",
    "SUMMARY_DESCRIPTIONS",
    "edge_diagnostics",
    "is_jump",
    "order_changes",
    "scan_statistics",
    "spike_changes",
    "summary_metrics",
]

JUMP_FACTOR = 2.0
JUMP_EPS = 1e-4


def _n_spikes(times):
    return np.sum(np.isfinite(times), axis=-1)


def spike_changes(times_a, times_b) -> tuple[np.ndarray, np.ndarray]:
    """``(appearances, disappearances)`` from A to B, summed over the neuron axis.

    ``times_*``: ``(..., neurons, slots)`` spike times (+inf padded). Returns arrays of shape ``(...)``.
    """
    na, nb = _n_spikes(np.asarray(times_a)), _n_spikes(np.asarray(times_b))
    return np.maximum(nb - na, 0).sum(-1), np.maximum(na - nb, 0).sum(-1)


def order_changes(times_a, times_b) -> np.ndarray:
    """Kendall distance (number of swapped pairs) over the spikes present at both A and B.

    ``times_*``: ``(..., neurons, slots)``; returns ``(...)`` integer counts. A spike (neuron ``n``,
    rank ``k``) is present at both points when ``k < min(n_A, n_B)`` (see the module docstring).
    Evaluated as one fused, jitted pairwise comparison (no ``spikes x spikes`` temporaries).
    """
    a, b = np.asarray(times_a), np.asarray(times_b)
    lead = a.shape[:-2]
    n = a.shape[-2] * a.shape[-1]
    a2, b2 = a.reshape((-1, n)), b.reshape((-1, n))
    if a2.shape[0] == 0 or n == 0:
        return np.zeros(lead, np.int64)
    return np.asarray(_kendall(a2, b2)).astype(np.int64).reshape(lead)


def _kendall_impl(a, b):
    import jax.numpy as jnp

    both = jnp.isfinite(a) & jnp.isfinite(b)
    a = jnp.where(both, a, 0.0)
    b = jnp.where(both, b, 0.0)
    da = a[:, :, None] - a[:, None, :]
    db = b[:, :, None] - b[:, None, :]
    pair = both[:, :, None] & both[:, None, :]
    swapped = pair & (((da < 0) & (db > 0)) | ((da > 0) & (db < 0)))
    return jnp.sum(swapped, axis=(1, 2), dtype=jnp.int32) // 2


def _kendall(a, b):
    """``_kendall_impl`` compiled once per process (``spikeode.study.caches``)."""
    def build():
        import jax

        return jax.jit(_kendall_impl)

    return caches.cached(("diagnostics", "kendall"), build)(a, b)


def edge_diagnostics(times_a, times_b) -> dict:
    """Appearances, disappearances and order changes from A to B (see ``spike_changes``, ``order_changes``)."""
    app, dis = spike_changes(times_a, times_b)
    return {"appearances": app, "disappearances": dis, "order_changes": order_changes(times_a, times_b)}


def is_jump(dL, slope_a, slope_b, *, factor: float = JUMP_FACTOR, eps: float = JUMP_EPS):
    """``|dL| > factor * max(|slope_a|, |slope_b|) + eps`` (slopes: first-order predicted changes ``g h``).

    NaN where any input is NaN (unfinished edges).
    """
    dL, slope_a, slope_b = (np.asarray(x, np.float64) for x in (dL, slope_a, slope_b))
    out = (np.abs(dL) > factor * np.maximum(np.abs(slope_a), np.abs(slope_b)) + eps).astype(np.float64)
    return np.where(np.isnan(dL) | np.isnan(slope_a) | np.isnan(slope_b), np.nan, out)


SUMMARY_DESCRIPTIONS = {
    "jump_fraction": ("fraction of grid edges with a loss jump",
                      ("fraction of finished edges with |dL| > jump_factor * max(|g_A h|, |g_B h|) + jump_eps, "
                      "g the loss derivative along the edge's axis at either end, h the grid step")),
    "loss_total_variation": ("total variation of the loss per grid line",
                             ("sum over finished edges of |L_B - L_A|, divided by the number of 1-D grid lines "
                             "(rows plus columns; times samples for single-sample scans)")),
    "jump_variation_share": ("share of the loss variation carried by jumps",
                             "sum of |dL| over jump edges divided by the sum of |dL| over all finished edges"),
    "gradient_cosine_mean": ("mean cosine similarity of neighbouring gradients",
                             "mean over finished edges of cos(grad L(A), grad L(B)), full weight gradients"),
    "slope_correlation": ("correlation of finite-difference and gradient slopes",
                          "Pearson correlation over finished edges of (L_B - L_A)/h and (g_A + g_B)/2"),
    "slope_relative_error": ("median relative error of the gradient slope",
                             "median over finished edges of |dL/h - (g_A+g_B)/2| / max(|dL/h|, |(g_A+g_B)/2|, 1e-12)"),
}


def summary_metrics(dL, slope_a, slope_b, h, cosine, *, n_lines: int, factor: float = JUMP_FACTOR,
                    eps: float = JUMP_EPS) -> dict[str, float]:
    """The scalar metrics of ``SUMMARY_DESCRIPTIONS`` from per-edge arrays (any shape, NaN = unfinished).

    Args:
        dL: loss change along each edge.
        slope_a, slope_b: predicted changes ``g h`` at the edge's start and end.
        h: the edge's step (broadcastable).
        cosine: cosine similarity of the full gradients at both ends.
        n_lines: number of 1-D grid lines (for the total variation per line).
    """
    dL, slope_a, slope_b, cosine, h = np.broadcast_arrays(*(np.asarray(x, np.float64)
                                                            for x in (dL, slope_a, slope_b, cosine, h)))
    dL, slope_a, slope_b, cosine, h = (x.ravel() for x in (dL, slope_a, slope_b, cosine, h))
    ok = np.isfinite(dL) & np.isfinite(slope_a) & np.isfinite(slope_b)
    if not ok.any():
        return {k: float("nan") for k in SUMMARY_DESCRIPTIONS}
    dL, slope_a, slope_b, h = dL[ok], slope_a[ok], slope_b[ok], h[ok]
    jumps = is_jump(dL, slope_a, slope_b, factor=factor, eps=eps).astype(bool)
    total = np.sum(np.abs(dL))
    fd = dL / h
    g = 0.5 * (slope_a + slope_b) / h
    corr = float(np.corrcoef(fd, g)[0, 1]) if len(fd) > 1 and np.std(fd) > 0 and np.std(g) > 0 else float("nan")
    rel = np.abs(fd - g) / np.maximum(np.maximum(np.abs(fd), np.abs(g)), 1e-12)
    cos = cosine[ok]
    cos = cos[np.isfinite(cos)]
    return {
        "jump_fraction": float(np.mean(jumps)),
        "loss_total_variation": float(total / max(n_lines, 1)),
        "jump_variation_share": float(np.sum(np.abs(dL[jumps])) / total) if total > 0 else 0.0,
        "gradient_cosine_mean": float(np.mean(cos)) if cos.size else float("nan"),
        "slope_correlation": corr,
        "slope_relative_error": float(np.median(rel)),
    }


def scan_statistics(spike_times, is_jump, order, T: float, *, window: int = 3, boundary: float = 0.05,
                    time_jump: float = 0.05) -> dict[str, float]:
    """Event statistics of single-sample 1-D scans: do loss jumps coincide with spike (dis)appearances,
    and are they preceded by order changes? Do spike times move continuously?

    Args:
        spike_times: ``(sample, alpha, layer, neuron, slot)`` (+inf unused slot, NaN padding).
        is_jump: ``(sample, alpha)`` jump flag of the edge from ``alpha_i`` to ``alpha_{i+1}`` (last NaN).
        order: ``(sample, alpha, layer)`` order changes (Kendall distance) of those edges.
        T: trial end.
        window: an order change "precedes" a jump at edge ``i`` when it occurs on one of the edges
            ``i - window, ..., i`` (the same edge included: the grid may not resolve the order).
        boundary: a (dis)appearing spike is *at the trial end* when its time is ``> T (1 - boundary)``.
        time_jump: an edge has a *spike-time discontinuity* when a matched spike (same neuron and rank,
            present at both ends) moves by more than ``time_jump * T``.

    Returns (edges pooled over samples; the (dis)appearing spike of a neuron is the one of highest rank):
        ``jump_edges``, ``count_change_edges``: numbers of edges with a loss jump / a spike-count change;
        ``p_change_given_jump``: share of jump edges with a spike-count change (any layer) on the edge;
        ``p_order_before_jump``: share of jump edges with an order change within the window before;
        ``p_order_window_baseline``: the same share over all edges (chance level);
        ``p_jump_given_change``: share of count-change edges that jump;
        ``order_changes_mean_{jump,other,change}_edges``: mean order changes (all layers) on jump edges,
        on the other edges, and on count-change edges;
        ``interior_change_share``: share of (dis)appearing spikes with time ``<= T (1 - boundary)``;
        ``time_discontinuity_edges``: share of edges with a spike-time discontinuity;
        ``max_matched_shift_median``: median over edges of the largest |shift| of a matched spike.
    """
    st = np.asarray(spike_times, np.float64)
    jumps = np.asarray(is_jump, np.float64)[:, :-1] == 1
    order_counts = order
    order = np.nansum(np.asarray(order, np.float64)[:, :-1], axis=-1) > 0
    a, b = st[:, :-1], st[:, 1:]
    na = np.sum(np.isfinite(a), -1)
    nb = np.sum(np.isfinite(b), -1)  # (sample, edge, layer, neuron)
    changed = np.any(na != nb, axis=(-2, -1))
    S, E = jumps.shape
    before = np.zeros_like(order)
    for i in range(E):
        before[:, i] = np.any(order[:, max(0, i - window): i + 1], axis=1)
    rank = np.arange(st.shape[-1])
    lost = (rank >= nb[..., None]) & np.isfinite(a)   # spikes of A beyond B's count
    gained = (rank >= na[..., None]) & np.isfinite(b)
    changed_times = np.concatenate([a[lost], b[gained]])
    both = np.isfinite(a) & np.isfinite(b)
    shift = np.abs(np.where(both, a, 0.0) - np.where(both, b, 0.0)).max(axis=(-3, -2, -1))
    n_order = np.nansum(np.asarray(order_counts, np.float64)[:, :-1], axis=-1)
    share = lambda x: float(np.mean(x)) if np.size(x) else float("nan")
    return {
        "edges": int(S * E),
        "jump_edges": int(jumps.sum()),
        "count_change_edges": int(changed.sum()),
        "p_change_given_jump": share(changed[jumps]),
        "p_order_before_jump": share(before[jumps]),
        "p_order_before_jump_with_change": share(before[jumps & changed]),
        "p_order_window_baseline": share(before),
        "p_jump_given_change": share(jumps[changed]),
        "order_changes_mean_jump_edges": share(n_order[jumps]),
        "order_changes_mean_other_edges": share(n_order[~jumps]),
        "order_changes_mean_change_edges": share(n_order[changed]),
        "interior_change_share": share(changed_times <= T * (1 - boundary)),
        "time_discontinuity_edges": share(shift > time_jump * T),
        "max_matched_shift_median": float(np.median(shift)),
    }
