"""Gradient statistics of a trained run, per checkpoint, and collected across runs (issue 8).

With the parameters of one checkpoint held fixed, ``B`` minibatches of the training split are drawn
(seeded: ``iterate_batches(train, b, seed=1_000_003 * seed + k, drop_last=True)`` for ``k = 0, 1, ...``
until ``B`` full batches exist; ``b`` is the run's batch size, or the split size if smaller). On
minibatch ``i`` the minibatch loss ``L_i`` is the run's training loss (``train.make_loss_fn``) and
``g_i = grad L_i(theta)`` its gradient with respect to the trainable weights (``net.weights``, the
recurrent weights and the voltage readout's weights when present; neuron parameters are held fixed).

Definitions: :data:`DEFINITIONS` (each variable's ``description`` attribute repeats its own; combined
Datasets carry all of them as attribute ``definitions``).

Cost per checkpoint: ``B + 2 probes`` minibatch gradients (at theta, with pseudospikes switched, after
the ``s = 1`` step) and ``len(step_scales) probes`` minibatch losses (forward passes only: the other scales, and ``theta -
delta(1)``), each
kind through one compiled function per run configuration (``jax.lax.map`` over minibatches, ``chunk`` of
them vmapped at once). With ``B = 16`` and 4 probes that is 24 gradients and 12 losses: measured at
1.07x the time of 20 training steps of the same run (synthetic QIF run, float32, batch 32, steady state).

Across runs, ``combine_gradstats`` puts per-checkpoint Datasets on dims
``(neuron_model, seed, epoch, layer[, step_scale])``; combinations with no checkpoint are NaN.
"""

from __future__ import annotations

import glob as _glob
import json
import math
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from spikeode.io.netcdf import provenance_attrs, variable

#: What every statistic means (stored as attribute ``definitions``; a constant, not the docstring, so that
#: ``python -OO`` keeps it).
DEFINITIONS = """Layers.  Layer ``l`` is the block ``g_{i,l}`` of the incoming weights of spiking layer ``l`` (named
``hidden1, ..., output`` as in ``run.nc``; ``readout`` for the voltage readout's weights); ``all`` is the
whole trainable vector, every block concatenated.

Per layer, with ``gbar = (1/B) sum_i g_i`` (all norms Euclidean over the layer's entries):
- ``grad_norm``: ``(1/B) sum_i ||g_i||``, the mean minibatch-gradient norm.
- ``grad_variance``: ``V = 1/(B-1) sum_i ||g_i - gbar||^2``, the total (trace) variance of the minibatch
  gradient across minibatches (unbiased).
- ``snr``: ``||gbar||^2 / V``, the plug-in estimate of the signal-to-noise ratio
  ``||E[g]||^2 / E||g - E[g]||^2``. Because ``E||gbar||^2 = ||E g||^2 + V/B``, pure noise gives
  ``snr ~ 1/B``; ``snr_debiased = (||gbar||^2 - V/B) / V`` removes that bias (can be negative).
- ``cosine``: mean pairwise cosine similarity ``2/(B(B-1)) sum_{i<j} <g_i, g_j> / (||g_i|| ||g_j||)``
  (pairs with a zero-norm gradient are left out; NaN if none remains).
- ``zero_grad_fraction`` (dim ``pseudospikes``, 1 = the loss uses pseudospikes for silent outputs,
  0 = a silent output reports ``T`` and passes no gradient): mean over the probe minibatches (below) of
  the fraction of the layer's parameters whose gradient is exactly ``0.0`` (silent pathways);
  ``zero_grad_fraction_all``: fraction of parameters whose gradient is exactly zero on every probe
  minibatch. Both computed with pseudospikes on and off, whatever the run trained with.

Probes.  The statistics below and the zero fractions use the first ``probes`` (default 4) of the ``B``
minibatches, ``i = 1..probes``; the statistics above use all ``B``.

Gradient predictiveness along the update (Santurkar et al. 2018, "How does batch normalization help
optimization?"), per probe minibatch ``i`` and step scale ``s`` (dim ``step_scale``): the step is
``delta_i(s) = -eta * s * c_i * g_i`` with ``eta`` the run's peak learning rate ``lr`` and ``c_i`` set by
``step_kind``: ``sgd``: ``c_i = 1`` (the plain SGD step ``-eta s g``); ``adam``: ``c_i = sqrt(P) / ||g_i||``
(the step along ``-g_i`` as long as an Adam step that moves each of the ``P`` parameters by ``eta``).
``step_kind = auto`` (default) takes ``sgd`` for runs trained with SGD, ``adam`` otherwise.
- ``step_length``: ``(1/B) sum_i ||delta_i(s)||``.
- ``loss_change``: ``(1/B) sum_i [L_i(theta + delta_i) - L_i(theta)]``; ``loss_change_predicted``: the
  first-order prediction ``(1/B) sum_i <g_i, delta_i>`` (negative).
- ``predictiveness_ratio``: median over minibatches of ``[L_i(theta + delta_i) - L_i(theta)] / <g_i, delta_i>``
  (1: the linear model is exact; 0: no decrease; negative: the loss went up).
- ``ascent_fraction``: fraction of minibatches where ``L_i(theta + delta_i) > L_i(theta)``: how often a
  step that the gradient says decreases the loss increases it.
- ``grad_change`` (dims ``layer, step_scale``): ``(1/B) sum_i ||g_{i,l}(theta) - g_{i,l}(theta + delta_i)||``
  (Santurkar's gradient predictiveness; small = predictive); ``grad_change_relative``: the same with each
  term divided by ``||g_{i,l}(theta)||``; ``effective_smoothness``: ``(1/B) sum_i ||g_i(theta) -
  g_i(theta + delta_i)|| / ||delta_i||`` (Santurkar's effective beta-smoothness, whole vector). These
  three need gradients after the step and are measured at ``s = 1`` only (NaN at the other scales).
  (In these sums ``B`` stands for the number of probes.)
Finite-difference agreement at the scale of one step (``s = 1``, ``h_i = ||delta_i(1)||``,
``d_i = -g_i / ||g_i||``):
- ``fd_slope_ratio``: median over minibatches of the central finite-difference slope
  ``[L_i(theta + h_i d_i) - L_i(theta - h_i d_i)] / (2 h_i)`` divided by the gradient's slope
  ``<g_i, d_i> = -||g_i||`` (1: agreement; negative: the finite difference says the loss goes up);
- ``fd_sign_agreement``: fraction of minibatches whose central finite-difference slope is negative
  (agrees in sign with the gradient).
Also ``loss`` (``(1/B) sum_i L_i(theta)``) and ``problems`` (samples with an exhausted event budget,
slot overflow or failed solve, summed over the ``B`` minibatches at ``theta``).
"""

__all__ = [
    "DEFAULT_STEP_SCALES",
    "VARIABLES",
    "checkpoint_gradstats",
    "combine_gradstats",
    "draw_minibatches",
    "expand_runs",
    "gradient_statistics",
    "layer_statistics",
    "plot_gradstats",
    "predictiveness_statistics",
    "run_gradstats",
    "select_epochs",
]

DEFAULT_STEP_SCALES: tuple[float, ...] = (0.5, 1.0, 2.0)
#: Minibatches (of the ``B``) that carry the step-based statistics (see "Cost" in the module docstring).
DEFAULT_PROBES = 4

#: name -> (dims, long_name, units, description). Dims without the run dims (neuron_model, seed, epoch).
VARIABLES: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "grad_norm": (("layer",), "mean minibatch gradient norm", "1",
                  "(1/B) sum_i ||g_i||, g_i the gradient of minibatch i's loss w.r.t. the layer's weights"),
    "grad_variance": (("layer",), "gradient variance across minibatches", "1",
                      "V = 1/(B-1) sum_i ||g_i - gbar||^2 with gbar = (1/B) sum_i g_i (trace of the covariance)"),
    "snr": (("layer",), "gradient signal-to-noise ratio", "1",
            "||gbar||^2 / V, plug-in estimate of ||E g||^2 / E||g - E g||^2 (pure noise gives ~1/B)"),
    "snr_debiased": (("layer",), "gradient signal-to-noise ratio (debiased)", "1",
                     "(||gbar||^2 - V/B) / V: ||gbar||^2 overestimates ||E g||^2 by V/B; can be negative"),
    "cosine": (("layer",), "mean pairwise cosine similarity of minibatch gradients", "1",
               "2/(B(B-1)) sum_{i<j} <g_i,g_j>/(||g_i|| ||g_j||), pairs with a zero gradient left out"),
    "zero_grad_fraction": (("pseudospikes", "layer"), "fraction of parameters with exactly zero gradient", "1",
                           ("mean over the probe minibatches of the fraction of the layer's weights whose minibatch "
                           "gradient is exactly 0.0; pseudospikes=1: silent outputs use pseudospike times, 0: they report T")),
    "zero_grad_fraction_all": (("pseudospikes", "layer"), "fraction of parameters with zero gradient on every minibatch",
                               "1", ("fraction of the layer's weights whose gradient is exactly 0.0 on every probe minibatch "
                               "(silent pathways); pseudospikes as for zero_grad_fraction")),
    "step_length": (("step_scale",), "length of the step along -g", "1",
                    ("(1/B) sum_i ||delta_i(s)||, delta_i(s) = -eta s c_i g_i (c_i = 1 for step_kind sgd, "
                    "sqrt(P)/||g_i|| for adam), eta the run's lr; i over the probe minibatches")),
    "loss_change": (("step_scale",), "loss change after a step along -g", "1",
                    "(1/B) sum_i [L_i(theta + delta_i(s)) - L_i(theta)], on the same minibatch; i over the probe minibatches"),
    "loss_change_predicted": (("step_scale",), "first-order predicted loss change", "1",
                              "(1/B) sum_i <g_i, delta_i(s)> (negative); i over the probe minibatches"),
    "predictiveness_ratio": (("step_scale",), "actual / predicted loss change (median over minibatches)", "1",
                             ("median_i [L_i(theta + delta_i) - L_i(theta)] / <g_i, delta_i>; 1: linear model exact, "
                             "negative: the loss went up; i over the probe minibatches")),
    "ascent_fraction": (("step_scale",), "fraction of descent steps that increase the loss", "1",
                        "fraction of minibatches with L_i(theta + delta_i(s)) > L_i(theta); i over the probe minibatches"),
    "grad_change": (("layer", "step_scale"), "gradient change after a step (gradient predictiveness)", "1",
                    ("(1/B) sum_i ||g_{i,l}(theta) - g_{i,l}(theta + delta_i(s))|| over the probes (Santurkar et al. "
                     "2018); measured at s = 1 only, NaN at other scales")),
    "grad_change_relative": (("layer", "step_scale"), "relative gradient change after a step", "1",
                             "(1/B) sum_i ||g_{i,l}(theta) - g_{i,l}(theta + delta_i(s))|| / ||g_{i,l}(theta)||; s = 1 only"),
    "effective_smoothness": (("step_scale",), "effective beta-smoothness along the step", "1",
                             "(1/B) sum_i ||g_i(theta) - g_i(theta + delta_i)|| / ||delta_i||, whole weight vector; s = 1 only"),
    "fd_slope_ratio": ((), "finite-difference slope / gradient slope along -g at one step (median)", "1",
                       ("median_i [L_i(theta + h_i d_i) - L_i(theta - h_i d_i)] / (2 h_i) / (-||g_i||), "
                       "d_i = -g_i/||g_i||, h_i = ||delta_i(1)||; 1: agreement; i over the probe minibatches")),
    "fd_sign_agreement": ((), "fraction of minibatches whose finite-difference slope along -g is negative", "1",
                          ("fraction of i with L_i(theta + h_i d_i) < L_i(theta - h_i d_i) (central difference at "
                          "the scale of one step agrees in sign with the gradient); i over the probe minibatches")),
    "loss": ((), "training loss at the checkpoint (mean over the B minibatches)", "1", "(1/B) sum_i L_i(theta)"),
    "problems": ((), "samples with an exhausted event budget, slot overflow or failed solve", "1",
                 "summed over the B minibatches at theta"),
}


# ------------------------------------------------------------------------------- statistics on arrays

def layer_statistics(grads: np.ndarray) -> dict[str, float]:
    """Statistics of one layer's minibatch gradients ``grads[B, ...]`` (B >= 2); see the module docstring."""
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
            "cosine": cosine, **_zero_fractions(g)}


def _with_all(groups: Sequence[np.ndarray]) -> list[np.ndarray]:
    B = len(groups[0])
    return [np.asarray(x) for x in groups] + [np.concatenate([np.asarray(x).reshape(B, -1) for x in groups], 1)]


def gradient_statistics(groups: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Per layer (``names``, then ``all``) statistics of ``groups[l][B, ...]``; values ``[layer]``."""
    rows = [layer_statistics(g) for g in _with_all(groups)]
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def predictiveness_statistics(loss0, grads0, step_scales, deltas, loss_s, grads_s, loss_back) -> dict[str, np.ndarray]:
    """Predictiveness from arrays (see the module docstring).

    Args:
        loss0: ``[B]`` minibatch losses at theta. grads0: per layer ``[B, ...]`` gradients at theta.
        step_scales: ``[S]``. deltas: per layer ``[S, B, ...]`` steps. loss_s: ``[S, B]`` losses after
        the steps; grads_s: per layer ``[S, B, ...]`` gradients there. loss_back: ``[B]`` losses at
        ``theta - delta(1)`` (for the central difference; requires ``1.0`` in ``step_scales``).
    """
    B = len(loss0)
    S = len(step_scales)
    g0 = _with_all(grads0)
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


# ------------------------------------------------------------------------------- the compiled program

def _param_groups(model):
    """(getter(model) -> list of trainable arrays, layer index of each, layer names)."""
    net = model.net
    n = len(net.weights)
    spiking_out = model.readout_weights is None
    names = [f"hidden{i + 1}" for i in range(n - 1)] + ["output" if spiking_out else f"hidden{n}"]
    layer_of = list(range(n))
    rec = [i for i, r in enumerate(net.recurrent) if r is not None]
    layer_of += rec
    if not spiking_out:
        names.append("readout")
        layer_of.append(n)

    def get(m):
        leaves = list(m.net.weights) + [m.net.recurrent[i] for i in rec]
        return leaves + ([m.readout_weights] if not spiking_out else [])

    return get, layer_of, names


def _group(leaves: Sequence, layer_of: Sequence[int], n_layers: int, axis_lead: int) -> list[np.ndarray]:
    out = []
    for l in range(n_layers):
        parts = [np.asarray(x).reshape(*np.asarray(x).shape[:axis_lead], -1) for x, k in zip(leaves, layer_of) if k == l]
        out.append(np.concatenate(parts, -1) if len(parts) > 1 else parts[0])
    return out


_PROGRAMS: dict = {}


def _program(config, chunk: int, with_grad: bool = True):
    """One compiled ``f(leaves[B], model, times[B,b,E], units, labels[B,b]) -> (loss[B], problems[B], grads[B])``
    per loss configuration (seed excluded: it does not change the loss); ``with_grad=False``: the
    loss only (``grads`` is ``None``), a forward pass."""
    key = (json.dumps({k: v for k, v in config.to_dict().items() if k != "seed"}, sort_keys=True, default=str), chunk,
           with_grad)
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from spikeode.spikes import Spikes
    from spikeode.training.loop import make_loss_fn

    loss_fn = make_loss_fn(config)

    @eqx.filter_jit
    def program(leaves, model, times, units, labels):
        get, _, _ = _param_groups(model)

        def one(args):
            w, t, u, y = args

            def objective(w):
                m = eqx.tree_at(get, model, list(w))
                loss, metrics = loss_fn(m, Spikes(t, u, model.net.sizes[0]), y, jnp.ones(y.shape, bool))
                return loss, metrics["problems"]

            if not with_grad:
                return (*objective(w), None)
            (loss, problems), g = jax.value_and_grad(objective, has_aux=True)(w)
            return loss, problems, g

        return jax.lax.map(one, (leaves, times, units, labels), batch_size=chunk)

    _PROGRAMS[key] = program
    return program


def draw_minibatches(train_set, batch_size: int, n_batches: int, seed: int):
    """``n_batches`` seeded full minibatches of the split, stacked: ``(times[B,b,E], units[B,b,E], labels[B,b])``."""
    from spikeode.data import iterate_batches

    b = min(batch_size, len(train_set))
    times, units, labels = [], [], []
    k = 0
    while len(labels) < n_batches:
        for spikes, y in iterate_batches(train_set, b, seed=1_000_003 * seed + k, drop_last=True):
            times.append(np.asarray(spikes.times))
            units.append(np.asarray(spikes.units))
            labels.append(np.asarray(y))
            if len(labels) == n_batches:
                break
        k += 1
    return np.stack(times), np.stack(units), np.stack(labels)


def checkpoint_gradstats(model, config, batches, *, step_scales: Sequence[float] = DEFAULT_STEP_SCALES,
                         step_kind: str = "auto", chunk: int = 4, probes: int = DEFAULT_PROBES) -> dict:
    """Every statistic of one checkpoint on ``batches = (times, units, labels)`` (``draw_minibatches``).

    ``probes``: how many of the ``B`` minibatches (the first ones) carry the step-based statistics and
    the zero fractions of the other pseudospike setting (see the module docstring, "Cost").
    Returns ``{"values": {name: array}, "layers": [...], "step_scales": [...], "timing": {...}}``.
    """
    import jax.numpy as jnp

    step_scales = [float(s) for s in step_scales]
    if 1.0 not in step_scales:
        step_scales.append(1.0)
    if step_kind == "auto":
        step_kind = "sgd" if config.optimizer == "sgd" else "adam"
    if step_kind not in ("sgd", "adam"):
        raise ValueError(f"step_kind must be auto, sgd or adam, got {step_kind!r}")
    get, layer_of, names = _param_groups(model)
    n_layers = len(names)
    times, units, labels = (jnp.asarray(x) for x in batches)
    B = labels.shape[0]
    if B < 2:
        raise ValueError("need at least 2 minibatches")
    n_probe = min(max(int(probes), 1), B)
    fit = lambda n: max(d for d in range(1, max(1, min(chunk, n)) + 1) if n % d == 0)  # noqa: E731 (one compiled body)
    base = [np.asarray(x) for x in get(model)]
    t0 = time.perf_counter()

    def call(leaves, n, *, with_grad=True, cfg=config):
        """The loss (and gradient) of the first ``n`` minibatches, minibatch ``i`` at parameters ``leaves[i]``."""
        prog = _program(cfg, fit(n), with_grad)
        loss, problems, g = prog([jnp.asarray(w) for w in leaves], model, times[:n], units[:n], labels[:n])
        return np.asarray(loss, np.float64), np.asarray(problems), (None if g is None else [np.asarray(x) for x in g])

    at_theta = lambda n: [np.broadcast_to(w, (n, *w.shape)) for w in base]  # noqa: E731
    loss0, problems0, g0 = call(at_theta(B), B)
    t_first = time.perf_counter() - t0
    g0_layers = _group(g0, layer_of, n_layers, 1)
    values = gradient_statistics(g0_layers, names)

    # The loss with pseudospikes switched, for the zero-gradient fractions (on the probes).
    _, _, g_other = call(at_theta(n_probe), n_probe, cfg=config.replace(pseudospikes=not config.pseudospikes))
    g_own = [x[:n_probe] for x in g0]
    zero = {}
    for setting, g in ((bool(config.pseudospikes), g_own), (not config.pseudospikes, g_other)):
        probe_stats = [_zero_fractions(x) for x in _with_all(_group(g, layer_of, n_layers, 1))]
        zero[setting] = {k: np.array([r[k] for r in probe_stats]) for k in probe_stats[0]}
    for name in ("zero_grad_fraction", "zero_grad_fraction_all"):
        values[name] = np.stack([zero[False][name], zero[True][name]])  # pseudospikes = 0, 1

    # Steps along -g on the probes: losses at every scale (forward passes), gradients after the s = 1 step.
    gflat = np.concatenate([x[:n_probe].reshape(n_probe, -1) for x in g0], 1).astype(np.float64)
    gnorm = np.linalg.norm(gflat, axis=1)
    P = gflat.shape[1]
    if step_kind == "sgd":
        c = np.ones(n_probe)
    else:
        c = np.where(gnorm > 0, math.sqrt(P) / np.where(gnorm > 0, gnorm, 1.0), 0.0)
    shifted = lambda d, sign: [(w[None] + sign * dd).astype(w.dtype) for w, dd in zip(base, d)]  # noqa: E731
    deltas, loss_s, grads_s = [], [], []
    for s in step_scales:
        d = [(-config.lr * s * c.reshape(-1, *[1] * (x.ndim - 1)) * x[:n_probe].astype(np.float64)) for x in g0]
        loss, _, g = call(shifted(d, 1.0), n_probe, with_grad=s == 1.0)
        deltas.append(d)
        loss_s.append(loss)
        grads_s.append(g if g is not None else [np.full(x[:n_probe].shape, np.nan) for x in g0])
    d1 = deltas[step_scales.index(1.0)]
    loss_back, _, _ = call(shifted(d1, -1.0), n_probe, with_grad=False)
    stack = lambda per_s: [np.stack([x[k] for x in per_s]) for k in range(len(base))]  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nan-means over the scales without gradients
        pred = predictiveness_statistics(
            loss0[:n_probe], [x[:n_probe] for x in g0_layers], step_scales,
            _group(stack(deltas), layer_of, n_layers, 2), np.stack(loss_s),
            _group(stack(grads_s), layer_of, n_layers, 2), loss_back)
    values.update(pred)
    values["loss"] = np.float64(loss0.mean())
    values["problems"] = np.float64(problems0.sum())
    total = time.perf_counter() - t0
    evaluations = {"gradients": B + 2 * n_probe, "losses": len(step_scales) * n_probe}
    return {"values": values, "layers": names + ["all"], "step_scales": step_scales, "step_kind": step_kind,
            "probes": n_probe, "timing": {"first_call_s": t_first, "total_s": total, **evaluations}}


def _zero_fractions(grads: np.ndarray) -> dict[str, float]:
    zero = np.asarray(grads).reshape(len(grads), -1) == 0.0
    return {"zero_grad_fraction": float(zero.mean()), "zero_grad_fraction_all": float(zero.all(0).mean())}


# ------------------------------------------------------------------------------- runs and Datasets

def select_epochs(available: Sequence[int], spec: str | None = None, every: int | None = None) -> list[int]:
    """Epochs to analyse among ``available``: ``spec`` is a comma list of integers and/or ``first``,
    ``middle`` (``max // 2`` rounded to the nearest available), ``last``, ``all``; ``every K`` takes
    ``0, K, 2K, ...`` and the last. Default: the last."""
    avail = sorted(int(e) for e in available)
    if not avail:
        raise FileNotFoundError("the run has no stored epochs")
    chosen: list[int] = []
    if every:
        chosen += [e for e in avail if e % every == 0] + [avail[-1]]
    for item in (spec.split(",") if spec else ([] if every else ["last"])):
        item = item.strip().lower()
        if item == "all":
            chosen += avail
        elif item == "first":
            chosen.append(avail[0])
        elif item == "last":
            chosen.append(avail[-1])
        elif item == "middle":
            chosen.append(min(avail, key=lambda e: (abs(e - avail[-1] // 2), e)))
        elif item:
            if int(item) not in avail:
                raise FileNotFoundError(f"epoch {item} is not stored (available: {avail})")
            chosen.append(int(item))
    return sorted(set(chosen))


def _stored_epochs(run_dir: Path) -> list[int]:
    from spikeode.training.loop import load_checkpoint

    _, _, last, _ = load_checkpoint(run_dir)
    epochs = {int(p.stem.split("_")[1]) for p in (run_dir / "epochs").glob("epoch_*.eqx")}
    return sorted(epochs | {last})


def expand_runs(items: Iterable[str | Path]) -> list[Path]:
    """Run directories from paths and globs (a ``checkpoint.json`` path stands for its directory)."""
    out: list[Path] = []
    for item in items:
        matches = sorted(_glob.glob(str(item))) or [str(item)]
        for m in matches:
            p = Path(m)
            p = p.parent if p.name in ("checkpoint.json", "checkpoint.eqx") else p
            if not (p / "checkpoint.json").exists():
                raise FileNotFoundError(f"{p} is not a run directory (no checkpoint.json)")
            if p not in out:
                out.append(p)
    return out


def _checkpoint_dataset(result: dict, run_dir, config, epoch: int, n_batches: int, batch_size: int) -> xr.Dataset:
    layers, scales = result["layers"], result["step_scales"]
    data = {}
    for name, (dims, long_name, units, description) in VARIABLES.items():
        data[name] = variable(dims, np.asarray(result["values"][name], np.float64), long_name, units,
                              description=description)
    ds = xr.Dataset(data, coords={
        "layer": ("layer", layers, {"long_name": "spiking layer",
                                    "description": "weights into the layer; 'all' = every trainable weight"}),
        "step_scale": ("step_scale", np.asarray(scales, np.float64),
                       {"long_name": "step scale s", "units": "1",
                        "description": f"step delta = -lr s c g (step_kind {result['step_kind']})"}),
        "pseudospikes": ("pseudospikes", np.array([0, 1]),
                         {"long_name": "pseudospikes in the loss (1) or silent outputs at T (0)", "units": "1"}),
    })
    ds.attrs.update({"neuron_model": config.neuron, "seed_run": int(config.seed), "epoch": int(epoch),
                     "run_dir": str(run_dir), "n_batches": int(n_batches), "batch_size": int(batch_size),
                     "step_kind": result["step_kind"], "probes": int(result["probes"]),
                     "seconds": float(result["timing"]["total_s"])})
    return ds


def run_gradstats(run_dirs: Sequence[str | Path], *, n_batches: int = 16, seed: int = 0, epochs: str | None = None,
                  every: int | None = None, step_scales: Sequence[float] = DEFAULT_STEP_SCALES,
                  step_kind: str = "auto", chunk: int = 4, probes: int = DEFAULT_PROBES,
                  progress: bool = True) -> xr.Dataset:
    """Statistics of the selected epochs of every run, combined (``combine_gradstats``) with provenance attrs."""
    from spikeode.precision import ensure_precision
    from spikeode.training.loop import load_data, load_model

    parts, configs = [], {}
    data_cache: dict = {}
    for run_dir in expand_runs(run_dirs):
        epochs_here = select_epochs(_stored_epochs(run_dir), epochs, every)
        model, config = load_model(run_dir)
        ensure_precision(config.dtype)
        data_key = json.dumps({k: getattr(config, k) for k in ("data", "T", "k_in", "pool", "train_samples",
                                                                "test_samples", "validation_fraction", "seed",
                                                                "dtype")}, default=str)
        if data_key not in data_cache:
            data_cache[data_key] = load_data(config)[0]
        train_set = data_cache[data_key]
        batches = draw_minibatches(train_set, config.batch_size, n_batches, seed)
        configs[str(run_dir)] = config.to_dict()
        for epoch in epochs_here:
            model, _ = load_model(run_dir, epoch)
            result = checkpoint_gradstats(model, config, batches, step_scales=step_scales, step_kind=step_kind,
                                          chunk=chunk, probes=probes)
            if progress:
                v = result["values"]
                print(f"gradstats {run_dir} epoch {epoch}: snr(all) {v['snr'][-1]:.3g} cosine(all) "
                      f"{v['cosine'][-1]:.3g} ascent@1 {v['ascent_fraction'][result['step_scales'].index(1.0)]:.2f} "
                      f"({result['timing']['total_s']:.1f} s)", flush=True)
            parts.append(_checkpoint_dataset(result, run_dir, config, epoch, n_batches, batches[2].shape[1]))
    options = {"n_batches": n_batches, "seed": seed, "epochs": epochs, "every": every,
               "step_scales": list(map(float, step_scales)), "step_kind": step_kind, "runs": configs}
    return combine_gradstats(parts, options=options, seed=seed)


def combine_gradstats(parts: Sequence[xr.Dataset], *, options: dict | None = None, seed: int | None = None) -> xr.Dataset:
    """Per-checkpoint Datasets (attrs ``neuron_model``, ``seed_run``, ``epoch``) on dims
    ``(neuron_model, seed, epoch, ...)``; combinations without a checkpoint are NaN (never dropped)."""
    if not parts:
        raise ValueError("no checkpoints to combine")
    models = sorted({p.attrs["neuron_model"] for p in parts})
    seeds = sorted({int(p.attrs["seed_run"]) for p in parts})
    epochs = sorted({int(p.attrs["epoch"]) for p in parts})
    layers: list[str] = []
    for p in parts:
        for name in p["layer"].values.tolist():
            if name not in layers:
                layers.append(name)
    if "all" in layers:
        layers.remove("all")
        layers.append("all")
    scales = sorted({float(s) for p in parts for s in p["step_scale"].values})
    template = parts[0]
    data = {}
    for name, da in template.data_vars.items():
        dims = ("neuron_model", "seed", "epoch") + da.dims
        shape = [len(models), len(seeds), len(epochs)] + [
            {"layer": len(layers), "step_scale": len(scales)}.get(d, template.sizes[d]) for d in da.dims]
        data[name] = (dims, np.full(shape, np.nan), dict(da.attrs))
    seconds = np.full((len(models), len(seeds), len(epochs)), np.nan)
    seen = set()
    for p in parts:
        key = (models.index(p.attrs["neuron_model"]), seeds.index(int(p.attrs["seed_run"])), epochs.index(int(p.attrs["epoch"])))
        if key in seen:
            raise ValueError(f"two checkpoints for neuron_model={p.attrs['neuron_model']}, seed={p.attrs['seed_run']}, "
                             f"epoch={p.attrs['epoch']}")
        seen.add(key)
        seconds[key] = float(p.attrs.get("seconds", np.nan))
        p = p.reindex(layer=layers, step_scale=scales)
        for name in data:
            data[name][1][key] = p[name].transpose(*template[name].dims).values
    ds = xr.Dataset(
        {k: xr.Variable(*v) for k, v in data.items()},
        coords={
            "neuron_model": ("neuron_model", models, {"long_name": "neuron model"}),
            "seed": ("seed", np.asarray(seeds), {"long_name": "training seed", "units": "1"}),
            "epoch": ("epoch", np.asarray(epochs), {"long_name": "epoch", "units": "1",
                                                    "description": "checkpoint after this many epochs (0 = initialisation)"}),
            "layer": ("layer", layers, dict(template["layer"].attrs)),
            "step_scale": ("step_scale", np.asarray(scales), dict(template["step_scale"].attrs)),
            "pseudospikes": ("pseudospikes", template["pseudospikes"].values, dict(template["pseudospikes"].attrs)),
        },
    )
    ds["seconds"] = variable(("neuron_model", "seed", "epoch"), seconds, "wall time of the checkpoint's statistics", "s",
                             description="all gradient evaluations of the checkpoint, compile time included")
    options = dict(options or {})
    options.setdefault("n_batches", int(template.attrs.get("n_batches", -1)))
    ds.attrs.update(provenance_attrs("spikeode gradient statistics across runs", options, seed))
    ds.attrs["definitions"] = DEFINITIONS.strip()
    return ds


# ------------------------------------------------------------------------------- figure

PLOT_PANELS: tuple[tuple[str, dict, bool], ...] = (
    ("snr", {"layer": "all"}, True),
    ("cosine", {"layer": "all"}, False),
    ("zero_grad_fraction", {"layer": "all", "pseudospikes": 1}, False),
    ("zero_grad_fraction", {"layer": "all", "pseudospikes": 0}, False),
    ("ascent_fraction", {"step_scale": 1.0}, False),
    ("predictiveness_ratio", {"step_scale": 1.0}, False),
    ("grad_change_relative", {"layer": "all", "step_scale": 1.0}, True),
    ("fd_slope_ratio", {}, False),
)


def plot_gradstats(ds: xr.Dataset, path: str | Path) -> Path:
    """PNG of the statistics over training per neuron model: mean over seeds, band = min–max over seeds."""
    from spikeode.io.plotting import axis_label, model_color, plt, save

    panels = [(n, sel, log) for n, sel, log in PLOT_PANELS if n in ds]
    ncol = 4
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.3 * nrow), constrained_layout=True, squeeze=False)
    for ax, (name, sel, log) in zip(axes.flat, panels):
        sel = {k: v for k, v in sel.items() if k in ds[name].dims}
        da = ds[name].sel(sel)
        for model in ds["neuron_model"].values.tolist():
            cur = da.sel(neuron_model=model)
            n_seeds = int(np.isfinite(cur).any("epoch").sum())
            mean, lo, hi = cur.mean("seed"), cur.min("seed"), cur.max("seed")
            color = model_color(model)
            ax.plot(ds["epoch"], mean, "o-", color=color, label=f"{model.upper()} (n={n_seeds})")
            if n_seeds > 1:
                ax.fill_between(ds["epoch"], lo, hi, color=color, alpha=0.2, linewidth=0)
        if log and np.nanmin(np.where(da.values > 0, da.values, np.nan), initial=np.inf) < np.inf:
            ax.set_yscale("log")
        ax.set_xlabel(axis_label(ds["epoch"]))
        title = axis_label(ds[name])
        extra = ", ".join(f"{k}={v}" for k, v in sel.items())
        ax.set_title(f"{title}\n({extra})" if extra else title, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(frameon=False, fontsize=8)
    nb = json.loads(ds.attrs.get("config_json", "{}")).get("n_batches", "?")
    fig.suptitle(f"Gradient statistics over training (B = {nb} minibatches; mean, min–max over seeds)")
    return save(fig, path)
