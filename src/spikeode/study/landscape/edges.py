"""Edge diagnostics of a chunk: from each grid point to its next neighbour along alpha and along beta.

For an edge from A to B along axis ``x`` with step ``h``: ``dL = L_B - L_A``, the first-order predicted
changes ``slope_a = g_A h`` and ``slope_b = g_B h`` (``g = dL/dx``, the gradient projected on the axis'
direction; the jump criterion ``spikeode.study.diagnostics.is_jump`` compares them), the cosine of the
full weight gradients at A and B, and per layer the spike appearances, disappearances and order changes
(``spikeode.study.diagnostics.edge_diagnostics``; summed over the batch's samples except for the sample
kind). An edge that leaves the grid is NaN.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from spikeode.study import diagnostics

__all__ = ["EDGE_KEYS", "LAYER_EDGE_KEYS", "chunk_edges", "empty_edges", "pad_times"]

#: edge quantities with a trailing layer axis
LAYER_EDGE_KEYS = ("appearances", "disappearances", "order_changes")
#: every edge quantity of a chunk (``dL``, ``slope_a``, ``slope_b`` as in the module docstring)
EDGE_KEYS = LAYER_EDGE_KEYS + ("dL", "slope_a", "slope_b", "cosine")


def empty_edges(lead: tuple[int, ...], n_layers: int) -> dict[str, np.ndarray]:
    """NaN edge arrays ``lead (+ (layer,))``, ``lead = (edge axis, rows, beta, sample)``."""
    return {k: np.full(lead + ((n_layers,) if k in LAYER_EDGE_KEYS else ()), np.nan) for k in EDGE_KEYS}


def chunk_edges(res: dict, common: dict, r0: int, r1: int) -> dict:
    """Edge diagnostics of every edge that starts in rows ``[r0, r1)`` (uses the halo row).

    ``res``: the program's outputs on rows ``r0 .. r1`` (halo included) with leading ``(rows, beta)``.
    Returns the point outputs of rows ``[r0, r1)`` (``spike_times`` padded for the sample kind) and
    ``edges``: ``{name: (edge axis, rows, beta, sample[, layer])}``.
    """
    alpha, beta = common["alpha"], common["beta"]
    na, nb = len(alpha), len(beta)
    n_rows = r1 - r0
    per_sample = common["kind"] == "sample"
    S = res["loss"].shape[2]
    L = len(res["times"])
    n_axes = common["n_dirs"]
    edge = empty_edges((n_axes, n_rows, nb, S), L)
    for ax in range(n_axes):
        h = (alpha[1] - alpha[0]) if ax == 0 else (beta[1] - beta[0])
        for i in range(n_rows):
            for j in range(nb):
                ni, nj = (i + 1, j) if ax == 0 else (i, j + 1)
                if (ax == 0 and r0 + ni >= na) or (ax == 1 and nj >= nb):
                    continue
                edge["dL"][ax, i, j] = res["loss"][ni, nj] - res["loss"][i, j]
                edge["slope_a"][ax, i, j] = res["grad_proj"][i, j, :, ax] * h
                edge["slope_b"][ax, i, j] = res["grad_proj"][ni, nj, :, ax] * h
                ga, gb = res["grad"][i, j].astype(np.float64), res["grad"][ni, nj].astype(np.float64)
                den = np.linalg.norm(ga, axis=-1) * np.linalg.norm(gb, axis=-1)
                edge["cosine"][ax, i, j] = np.sum(ga * gb, -1) / np.where(den > 0, den, np.nan)
                for l in range(L):
                    d = diagnostics.edge_diagnostics(res["times"][l][i, j], res["times"][l][ni, nj])
                    for name in LAYER_EDGE_KEYS:
                        v = d[name]
                        edge[name][ax, i, j, :, l] = v if per_sample else np.sum(v)
    out = {k: v[:n_rows] for k, v in res.items() if k not in ("times", "grad")}
    if per_sample:
        out["spike_times"] = pad_times([t[:n_rows] for t in res["times"]], common["max_neurons"], common["max_slots"])
    out["edges"] = edge
    return out


def pad_times(times: list[np.ndarray], n_max: int, s_max: int) -> Float[np.ndarray, "... layer neuron slot"]:
    """Layers' ``(..., N_l, slots_l)`` spike times into one ``(..., layer, neuron, slot)`` array (NaN padding)."""
    lead = times[0].shape[:-2]
    out = np.full(lead + (len(times), n_max, s_max), np.nan)
    for l, t in enumerate(times):
        out[..., l, : t.shape[-2], : t.shape[-1]] = t
    return out
