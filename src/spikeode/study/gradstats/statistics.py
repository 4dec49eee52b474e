"""Gradient statistics on NumPy arrays: signal-to-noise, cosine, zero fractions, and step predictiveness.

Inputs are minibatch gradients per layer ``g[B, ...]`` (and losses) already evaluated; the formulas are
``spikeode.study.gradstats.DEFINITIONS``. Everything is computed in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["gradient_statistics", "layer_statistics", "predictiveness_statistics", "with_all", "zero_fractions"]


def layer_statistics(grads: np.ndarray) -> dict[str, float]:
    """Statistics of one layer's minibatch gradients ``grads[B, ...]`` (B >= 2); see ``DEFINITIONS``."""
    g = np.asarray(grads, np.float64).reshape(len(grads), -1)
    B = g.shape[0]
    if B < 2:
        raise ValueError(f"need at least 2 minibatches, got {B}")
    gbar = g.mean(0)
    norms = np.linalg.norm(g, axis=1)
    var = float(np.sum((g - gbar) ** 2) / (B - 1))
    sig = float(gbar @ gbar)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = sig / var if var > 0 else (np.inf if sig > 0 else np.nan)
        snr_d = (sig - var / B) / var if var > 0 else (np.inf if sig > 0 else np.nan)
    ok = norms > 0
    gn = g[ok] / norms[ok, None]
    k = gn.shape[0]
    if k >= 2:
        gram = gn @ gn.T
        cosine = float((gram.sum() - np.trace(gram)) / (k * (k - 1)))
    else:
        cosine = np.nan
    return {"grad_norm": float(norms.mean()), "grad_variance": var, "snr": float(snr), "snr_debiased": float(snr_d),
            "cosine": cosine, **zero_fractions(g)}



def with_all(groups: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The layers' gradients ``groups[l][B, ...]`` and, last, ``all``: every layer flattened and concatenated."""
    B = len(groups[0])
    return [np.asarray(x) for x in groups] + [np.concatenate([np.asarray(x).reshape(B, -1) for x in groups], 1)]


def gradient_statistics(groups: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Per layer (``names``, then ``all``) statistics of ``groups[l][B, ...]``; values ``[layer]``."""
    rows = [layer_statistics(g) for g in with_all(groups)]
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def predictiveness_statistics(loss0, grads0, step_scales, deltas, loss_s, grads_s, loss_back) -> dict[str, np.ndarray]:
    """Predictiveness from arrays (see ``DEFINITIONS``).

    Args:
        loss0: ``[B]`` minibatch losses at theta. grads0: per layer ``[B, ...]`` gradients at theta.
        step_scales: ``[S]``. deltas: per layer ``[S, B, ...]`` steps. loss_s: ``[S, B]`` losses after
        the steps; grads_s: per layer ``[S, B, ...]`` gradients there. loss_back: ``[B]`` losses at
        ``theta - delta(1)`` (for the central difference; requires ``1.0`` in ``step_scales``).
    """
    B = len(loss0)
    S = len(step_scales)
    g0 = with_all(grads0)
    flat = lambda x: np.asarray(x, np.float64).reshape(S, B, -1)
    d = np.concatenate([flat(x) for x in deltas], -1)
    gs = [flat(x) for x in grads_s]
    gs.append(np.concatenate(gs, -1))
    g0f = [np.asarray(x, np.float64).reshape(B, -1) for x in g0]
    loss0 = np.asarray(loss0, np.float64)
    dL = np.asarray(loss_s, np.float64) - loss0[None]
    pred = np.einsum("sbp,bp->sb", d, g0f[-1])
    dlen = np.linalg.norm(d, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.stack([np.linalg.norm(gs[l] - g0f[l][None], axis=-1) for l in range(len(g0f))])  # [L,S,B]
        gnorm = np.stack([np.linalg.norm(x, axis=-1) for x in g0f])  # [L, B]
        out = {
            "step_length": dlen.mean(1),
            "loss_change": dL.mean(1),
            "loss_change_predicted": pred.mean(1),
            "predictiveness_ratio": np.nanmedian(np.where(pred != 0, dL / pred, np.nan), axis=1),
            "ascent_fraction": (dL > 0).mean(1),
            "grad_change": change.mean(-1),
            "grad_change_relative": np.nanmean(np.where(gnorm[:, None] > 0, change / gnorm[:, None], np.nan), -1),
            "effective_smoothness": np.nanmean(np.where(dlen > 0, change[-1] / dlen, np.nan), -1),
        }
        one = list(np.asarray(step_scales, float)).index(1.0)
        h = dlen[one]
        fd = (np.asarray(loss_s[one], np.float64) - np.asarray(loss_back, np.float64)) / (2 * h)
        out["fd_slope_ratio"] = np.float64(np.nanmedian(np.where(gnorm[-1] > 0, fd / -gnorm[-1], np.nan)))
        out["fd_sign_agreement"] = np.float64(np.mean(fd < 0))
    return out



def zero_fractions(grads: np.ndarray) -> dict[str, float]:
    """Fractions of the entries of ``grads[B, ...]`` that are exactly 0: mean over minibatches, and on all."""
    zero = np.asarray(grads).reshape(len(grads), -1) == 0.0
    return {"zero_grad_fraction": float(zero.mean()), "zero_grad_fraction_all": float(zero.all(0).mean())}

