"""Loss and gradient landscapes around a trained checkpoint, with spike-order diagnostics.

``L(W* + alpha delta + beta eta)`` on a grid (Li et al. 2018), where ``W*`` are the network weights of a
checkpoint (neuron parameters stay fixed) and ``delta``, ``eta`` are directions in weight space:

- ``random`` (default): seeded Gaussian directions with *filter normalisation per neuron*: for every
  layer ``l`` and neuron ``n`` the direction's incoming-weight row ``d_l[n, :]`` is rescaled to the norm
  of the neuron's incoming weights ``||W*_l[n, :]||``. Direction ``k`` (0: alpha, 1: beta) of layer ``l``
  is ``numpy.random.default_rng([seed, k, l]).standard_normal(W_l.shape)`` before rescaling, so the seed
  re-derives it exactly; the file stores the directions too.
- ``gradient`` (alpha only): ``-g ||W*|| / ||g||``, the descent direction of the loss on the landscape's
  samples at ``W*``, rescaled globally to the weights' norm; beta stays random.
- ``checkpoint:DIR`` (alpha only): ``W_DIR - W*`` (``alpha = 1`` reaches the other checkpoint).

Kinds: ``2d`` (alpha x beta over a batch: the first ``train_samples`` of the seeded training subset),
``1d`` (alpha over that batch), ``sample`` (alpha, each sample of ``samples`` separately, with the full
spike-time arrays of every layer, and the exact locations of its spike events: once every row is done,
each spike appearance, disappearance and order change between neighbouring points is located to
``EVENT_TOL * span`` by refining the grid interval with a forward-only program, and stored on an
``event`` dimension; see ``spikeode.study.scan_events``, whose ``event_statistics`` summarises them).

Computation: the grid's alpha rows are split into chunks; a chunk evaluates its points in vmapped
batches of ``point_batch`` parameter offsets with ONE compiled program (``value_and_grad`` of the loss),
plus a *halo*, the first row of the next chunk, so that every edge starting in the chunk (to the next
alpha row and to the next beta column) gets its diagnostics (``spikeode.study.diagnostics``) inside the
chunk. Chunks are independent: they run in process or on a Dask cluster, and after each one the whole
file is rewritten atomically (unfinished points NaN, ``row_finished`` flags); a rerun with the same
configuration skips finished chunks (resume). Event location runs in process after the last chunk and
is written once; a rerun of a file that has its events does not locate them again.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from spikeode.study import diagnostics
from spikeode.study import scan_events
from spikeode.io.netcdf import provenance_attrs, read_dataset, variable, write_dataset

__all__ = [
    "POINT_VARIABLES",
    "LandscapeConfig",
    "compute_landscape",
    "filter_normalise",
    "make_directions",
    "random_direction",
]

KINDS = ("2d", "1d", "sample")
#: exact event locations of the sample kind: final bracket width as a fraction of ``span``
EVENT_TOL = 1e-6


@dataclass(frozen=True)
class LandscapeConfig:
    """What a landscape is computed of (stored as JSON in ``config_json`` together with the run's config).

    Attributes:
        run: run directory with ``checkpoint.json`` / ``checkpoint.eqx``.
        kind: ``2d`` | ``1d`` | ``sample``.
        points: grid points per axis (odd numbers put ``W*`` on the grid).
        span: the grid covers ``[-span, span]`` on each axis.
        seed: seed of the random directions.
        train_samples: size of the seeded training subset (``spikeode train --train-samples N``); the
            batch of the ``2d``/``1d`` kinds is this whole subset, ``samples`` index into it.
        samples: sample indices of the ``sample`` kind.
        direction: ``random`` | ``gradient`` | ``checkpoint:DIR`` (the alpha direction).
        point_batch: parameter offsets per vmapped evaluation (one compiled program for all).
        chunk_rows: alpha rows per chunk (unit of checkpointing and of Dask tasks); default
            ``ceil(points / 4)``.
        jump_factor, jump_eps: the jump criterion (``spikeode.study.diagnostics``).
    """

    run: str
    kind: str = "2d"
    points: int = 21
    span: float = 1.0
    seed: int = 0
    train_samples: int = 256
    samples: tuple[int, ...] = (0,)
    direction: str = "random"
    point_batch: int = 4
    chunk_rows: int | None = None
    jump_factor: float = diagnostics.JUMP_FACTOR
    jump_eps: float = diagnostics.JUMP_EPS

    def __post_init__(self):
        object.__setattr__(self, "run", str(self.run))
        object.__setattr__(self, "samples", tuple(int(s) for s in self.samples))
        if self.kind not in KINDS:
            raise ValueError(f"unknown landscape kind {self.kind!r}: use one of {KINDS}")
        if self.points < 2:
            raise ValueError(f"points must be >= 2, got {self.points}")
        if not self.span > 0:
            raise ValueError(f"span must be positive, got {self.span}")
        if self.point_batch < 1 or self.train_samples < 1:
            raise ValueError("point_batch and train_samples must be >= 1")
        if not (self.direction in ("random", "gradient") or self.direction.startswith("checkpoint:")):
            raise ValueError(f"direction must be random, gradient or checkpoint:DIR, got {self.direction!r}")
        if self.kind == "sample":
            if not self.samples:
                raise ValueError("the sample kind needs at least one sample index")
            bad = [s for s in self.samples if not 0 <= s < self.train_samples]
            if bad:
                raise ValueError(f"sample indices {bad} outside the training subset [0, {self.train_samples})")

    @property
    def n_dirs(self) -> int:
        return 2 if self.kind == "2d" else 1

    @property
    def rows_per_chunk(self) -> int:
        return self.chunk_rows or max(1, math.ceil(self.points / 4))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["samples"] = list(self.samples)
        return d


# ----------------------------------------------------------------------------------------------- directions

def filter_normalise(direction: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rescale each row (one neuron's incoming weights, ``[out, in]`` layout) to the norm of that row of
    ``weights`` (Li et al. 2018 filter normalisation, per neuron). A zero row stays zero."""
    d = np.asarray(direction, np.float64)
    w = np.asarray(weights, np.float64)
    dn = np.linalg.norm(d, axis=1, keepdims=True)
    wn = np.linalg.norm(w, axis=1, keepdims=True)
    return np.where(dn > 0, d * wn / np.where(dn > 0, dn, 1.0), 0.0)


def random_direction(weights, seed: int, k: int) -> tuple[np.ndarray, ...]:
    """Filter-normalised Gaussian direction ``k`` for a tuple of layer weights (float64, exact from the seed)."""
    out = []
    for l, w in enumerate(weights):
        g = np.random.default_rng([int(seed), int(k), l]).standard_normal(np.shape(w))
        out.append(filter_normalise(g, w))
    return tuple(out)


def make_directions(lc: LandscapeConfig, model, run_config, times, units, labels) -> list[tuple[np.ndarray, ...]]:
    """The ``lc.n_dirs`` directions (alpha first) as float64 arrays per layer."""
    weights = tuple(np.asarray(w) for w in model.net.weights)
    dirs = [random_direction(weights, lc.seed, k) for k in range(lc.n_dirs)]
    if lc.direction == "gradient":
        g = _gradient_at(model, run_config, times, units, labels)
        wnorm = math.sqrt(sum(float(np.sum(np.square(w, dtype=np.float64))) for w in weights))
        gnorm = math.sqrt(sum(float(np.sum(np.square(x, dtype=np.float64))) for x in g))
        dirs[0] = tuple(-np.asarray(x, np.float64) * wnorm / max(gnorm, 1e-300) for x in g)
    elif lc.direction.startswith("checkpoint:"):
        from spikeode.training.loop import load_checkpoint

        other, _, _, _ = load_checkpoint(lc.direction.split(":", 1)[1])
        if [w.shape for w in other.net.weights] != [w.shape for w in weights]:
            raise ValueError(f"{lc.direction}: the other checkpoint's weight shapes differ")
        dirs[0] = tuple(np.asarray(o, np.float64) - np.asarray(w, np.float64) for o, w in zip(other.net.weights, weights))
    return dirs


def _gradient_at(model, run_config, times, units, labels):
    import jax
    import jax.numpy as jnp

    obj = _sample_objective(run_config)

    def mean_loss(w):
        losses, _ = jax.vmap(obj, in_axes=(None, None, 0, 0, 0))(w, model, times, units, labels)
        return jnp.mean(losses)

    return [np.asarray(x) for x in jax.jit(jax.grad(mean_loss))(tuple(model.net.weights))]


# ----------------------------------------------------------------------------------------------- the program

def _simulator(config):
    """``run(weights, model, times, units) -> (model with those weights, Trace)`` for one sample."""
    import equinox as eqx

    from spikeode.engine.network import simulate
    from spikeode.spikes import Spikes

    def run(w, model, times, units):
        model = eqx.tree_at(lambda m: m.net.weights, model, tuple(w))
        return model, simulate(model.net, Spikes(times, units, model.net.sizes[0]), config.T,
                               integrator=config.integrator)

    return run


def _problem(trace):
    """1 where a sample's event budget ran out, its slots overflowed or a solve failed."""
    import jax.numpy as jnp

    return (trace.exhausted | trace.overflow | trace.failed).astype(jnp.int32)


def _weights_at(offset, base, dirs):
    """``W* + sum_k offset[k] dirs[k]`` per layer, in the weights' dtype."""
    return tuple((b + sum(offset[k] * dirs[k][l] for k in range(len(dirs)))).astype(b.dtype)
                 for l, b in enumerate(base))


def _sample_objective(config):
    """``obj(weights, model, times, units, label) -> (loss, (accuracy, layer spike times, counts, problem))``
    for one sample: the training loss (``spikeode.training.loss``); the accuracy counts pseudospikes."""
    from spikeode.training.loss import Objective, sample_loss

    run = _simulator(config)
    objective = Objective.of(config)

    def obj(w, model, times, units, label):
        model, trace = run(w, model, times, units)
        loss, _, acc = sample_loss(objective, model.net, trace, label, model.readout_weights)
        return loss, (acc, tuple(la.times for la in trace.layers), tuple(la.counts for la in trace.layers),
                      _problem(trace))

    return obj


def _make_forward(config):
    """One jitted ``forward(offsets[P, 1], base, dirs, model, times[P], units[P]) -> (layer times, problem)``:
    the spike times of point ``p`` on its own sample, no gradient (event location, ``scan_events``)."""
    import equinox as eqx
    import jax

    run = _simulator(config)

    def point(offset, base, dirs, model, times, units):
        _, trace = run(_weights_at(offset, base, dirs), model, times, units)
        return tuple(la.times for la in trace.layers), _problem(trace)

    @eqx.filter_jit
    def forward(offsets, base, dirs, model, times, units):
        return jax.vmap(point, in_axes=(0, None, None, None, 0, 0))(offsets, base, dirs, model, times, units)

    return forward


def _make_program(config, per_sample: bool):
    """One jitted ``program(offsets[P, D], base, dirs, model, times, units, labels) -> dict`` (leading P)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    obj = _sample_objective(config)

    def point(offset, base, dirs, model, times, units, labels):
        w = _weights_at(offset, base, dirs)
        if per_sample:
            def one(t, u, y):
                (loss, aux), g = jax.value_and_grad(obj, has_aux=True)(w, model, t, u, y)
                return loss, aux, g

            loss, (acc, ltimes, counts, problem), g = jax.vmap(one)(times, units, labels)
            n_spikes = jnp.stack([c.sum(-1) for c in counts], -1).astype(loss.dtype)
            silent = jnp.stack([jnp.mean(c == 0, -1) for c in counts], -1)
        else:
            def mean_obj(w):
                losses, aux = jax.vmap(obj, in_axes=(None, None, 0, 0, 0))(w, model, times, units, labels)
                return jnp.mean(losses), aux

            (loss, (acc, ltimes, counts, problem)), g = jax.value_and_grad(mean_obj, has_aux=True)(w)
            loss, acc, problem = loss[None], jnp.mean(acc)[None], jnp.sum(problem)[None]
            g = tuple(x[None] for x in g)
            n_spikes = jnp.stack([jnp.mean(c.sum(-1)) for c in counts], -1)[None].astype(loss.dtype)
            silent = jnp.stack([jnp.mean(jnp.all(c == 0, axis=0)) for c in counts], -1)[None]
        s = loss.shape[0]
        flat = jnp.concatenate([x.reshape(s, -1) for x in g], axis=1)
        proj = jnp.stack([sum(jnp.sum(g[l].reshape(s, -1) * d[l].reshape(1, -1).astype(g[l].dtype), axis=1)
                              for l in range(len(g))) for d in dirs], -1)
        return {"loss": loss, "accuracy": acc, "grad_proj": proj, "grad_norm": jnp.linalg.norm(flat, axis=1),
                "n_spikes": n_spikes, "silent_fraction": silent.astype(loss.dtype), "problems": problem,
                "grad": flat, "times": ltimes}

    @eqx.filter_jit
    def program(offsets, base, dirs, model, times, units, labels):
        return jax.vmap(lambda o: point(o, base, dirs, model, times, units, labels))(offsets)

    return program


_PROGRAMS: dict = {}
_MODELS: dict = {}
#: alpha rows evaluated by this process, halo rows included (tests: a resumed run evaluates no finished row).
EVALUATED_ROWS: list[int] = []


def _program_for(run_config, per_sample: bool | None):
    """The cached grid program (``per_sample`` True/False) or forward program (``None``) of a run config."""
    key = (json.dumps(run_config.to_dict(), sort_keys=True, default=str), per_sample)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = _make_forward(run_config) if per_sample is None else _make_program(run_config, per_sample)
    return _PROGRAMS[key]


# ----------------------------------------------------------------------------------------------- one chunk

def evaluate_chunk(common: dict, r0: int, r1: int, progress: Callable[[int], None] | None = None) -> dict:
    """Points of alpha rows ``[r0, r1)`` and every edge starting there (module level: a Dask task).

    ``common`` (see ``_prepare``) holds plain numpy/pickleable data only; JAX is imported here.
    Returns numpy arrays: point variables with leading ``(rows, n_beta, S)``, edge variables with
    leading ``(edge axis, rows, n_beta, S)``.
    """
    import jax
    import jax.numpy as jnp

    from spikeode.precision import ensure_precision

    ensure_precision("float64" if common["x64"] else "float32")

    from spikeode.training.loop import TrainConfig

    run_config = TrainConfig.from_dict(common["run_config"])
    per_sample = common["kind"] == "sample"
    program = _program_for(run_config, per_sample)
    model = common["model"]
    alpha, beta = common["alpha"], common["beta"]
    na, nb = len(alpha), len(beta)
    rows = list(range(r0, min(r1 + 1, na)))  # + halo row r1
    offsets = np.array([[alpha[i], beta[j]][: common["n_dirs"]] for i in rows for j in range(nb)], np.float64)
    P, B = len(offsets), common["point_batch"]
    wdtype = np.asarray(common["base"][0]).dtype
    args = (tuple(jnp.asarray(b) for b in common["base"]),
            tuple(tuple(jnp.asarray(d, wdtype) for d in dk) for dk in common["dirs"]),
            model, jnp.asarray(common["times"]), jnp.asarray(common["units"]), jnp.asarray(common["labels"]))
    outs = []
    for start in range(0, P, B):
        batch = offsets[start:start + B]
        n = len(batch)
        if n < B:
            batch = np.concatenate([batch, np.repeat(batch[-1:], B - n, axis=0)])
        res = jax.device_get(program(jnp.asarray(batch, wdtype), *args))
        outs.append(jax.tree_util.tree_map(lambda x, n=n: np.asarray(x)[:n], res))
        if progress is not None:
            progress(sum(1 for p in range(start, start + n) if p < (r1 - r0) * nb))
    EVALUATED_ROWS.extend(rows)
    res = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *outs)
    shape = (len(rows), nb)
    res = jax.tree_util.tree_map(lambda x: x.reshape(shape + x.shape[1:]), res)
    return _chunk_edges(res, common, r0, r1)


def _chunk_edges(res: dict, common: dict, r0: int, r1: int) -> dict:
    """Edge diagnostics of every edge that starts in rows ``[r0, r1)`` (uses the halo row)."""
    alpha, beta = common["alpha"], common["beta"]
    na, nb = len(alpha), len(beta)
    n_rows = r1 - r0
    per_sample = common["kind"] == "sample"
    S = res["loss"].shape[2]
    L = len(res["times"])
    n_axes = common["n_dirs"]
    edge = {name: np.full((n_axes, n_rows, nb, S) + ((L,) if name in ("appearances", "disappearances",
                                                                      "order_changes") else ()), np.nan)
            for name in ("appearances", "disappearances", "order_changes", "dL", "slope_a", "slope_b", "cosine")}
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
                    for name in ("appearances", "disappearances", "order_changes"):
                        v = d[name]
                        edge[name][ax, i, j, :, l] = v if per_sample else np.sum(v)
    out = {k: v[:n_rows] for k, v in res.items() if k not in ("times", "grad")}
    if per_sample:
        out["spike_times"] = _pad_times([t[:n_rows] for t in res["times"]], common["max_neurons"], common["max_slots"])
    out["edges"] = edge
    return out


def _event_evaluator(common: dict) -> scan_events.Evaluate:
    """``evaluate(a[P], sample_position[P])``: padded spike times and problem flags of the scan's samples at
    ``W* + a delta``, in batches of ``point_batch x samples`` points through one compiled forward program."""
    import jax
    import jax.numpy as jnp

    from spikeode.training.loop import TrainConfig

    forward = _program_for(TrainConfig.from_dict(common["run_config"]), None)
    wdtype = np.asarray(common["base"][0]).dtype
    base = tuple(jnp.asarray(b) for b in common["base"])
    dirs = tuple(tuple(jnp.asarray(d, wdtype) for d in dk) for dk in common["dirs"])
    B = common["point_batch"] * len(common["labels"])

    def evaluate(a: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        times, problems = [], []
        for start in range(0, len(a), B):
            n = len(a[start:start + B])
            idx = np.concatenate([np.arange(start, start + n), np.full(B - n, start + n - 1)])
            t, prob = jax.device_get(forward(jnp.asarray(a[idx, None], wdtype), base, dirs, common["model"],
                                             jnp.asarray(common["times"][pos[idx]]),
                                             jnp.asarray(common["units"][pos[idx]])))
            times.append(_pad_times([np.asarray(x)[:n] for x in t], common["max_neurons"], common["max_slots"]))
            problems.append(np.asarray(prob)[:n])
        return np.concatenate(times), np.concatenate(problems)

    return evaluate


def _locate_events(lc: LandscapeConfig, common: dict, state: "_State", sample_ids: list[int]) -> dict:
    """The ``event_*`` variables of a finished sample-kind scan (``spikeode.study.scan_events``)."""
    grid = np.moveaxis(state.points["spike_times"][:, 0], 1, 0)  # (sample, alpha, layer, neuron, slot)
    problems = np.moveaxis(state.points["problems"][:, 0], 1, 0) > 0
    tol = EVENT_TOL * lc.span
    T = float(common["run_config"]["T"])
    events, capped = scan_events.locate_events(
        _event_evaluator(common), common["alpha"], grid, T, tol=tol,
        batch=common["point_batch"] * len(sample_ids), grid_problems=problems, sample_ids=sample_ids)
    return scan_events.event_variables(events, capped, common["alpha"], sample_ids, tol=tol, T=T)


def _pad_times(times: list[np.ndarray], n_max: int, s_max: int) -> np.ndarray:
    """Layers' ``(..., N_l, slots_l)`` spike times into one ``(..., layer, neuron, slot)`` array (NaN padding)."""
    lead = times[0].shape[:-2]
    out = np.full(lead + (len(times), n_max, s_max), np.nan)
    for l, t in enumerate(times):
        out[..., l, : t.shape[-2], : t.shape[-1]] = t
    return out


# ----------------------------------------------------------------------------------------------- dataset

#: point variables: name -> (extra dims, long_name, units, description)
POINT_VARIABLES = {
    "loss": ((), "loss", "1", ("mean loss over the batch (the training loss of the run's configuration); "
             "for the sample kind the loss of the single sample")),
    "accuracy": ((), "accuracy", "1", "fraction of samples classified correctly (earliest output, unique)"),
    "grad_alpha": ((), "dL/dalpha", "1", ("gradient of the loss projected on the alpha direction (directional "
                   "derivative dL/dalpha)")),
    "grad_beta": ((), "dL/dbeta", "1", "gradient of the loss projected on the beta direction (dL/dbeta)"),
    "grad_norm": ((), "gradient norm", "1", "Euclidean norm of the full gradient of the loss w.r.t. all weights"),
    "n_spikes": (("layer",), "spikes per sample", "1", ("spikes in [0, T] of the layer, summed over its neurons, "
                 "mean over the batch's samples")),
    "silent_fraction": (("layer",), "silent fraction", "1", ("fraction of the layer's neurons that fire no spike "
                        "in [0, T] on any sample of the batch")),
    "problems": ((), "simulation problems", "1", ("samples with an exhausted event budget, slot overflow or "
                 "failed solve (0 for a clean point)")),
}
EDGE_VARIABLES = {
    "spike_appearances": (("layer",), "spike appearances", "1",
                          ("from this point to its neighbour along `edge`: sum over neurons of max(n_B - n_A, 0), "
                          "n the neuron's recorded spikes (spikes beyond its slots are not recorded: see "
                          "`problems`) (summed over the batch's samples)")),
    "spike_disappearances": (("layer",), "spike disappearances", "1",
                             ("from this point to its neighbour along `edge`: sum over neurons of max(n_A - n_B, 0) "
                             "(summed over the batch's samples)")),
    "order_changes": (("layer",), "spike order changes", "1",
                      ("Kendall distance between this point and its neighbour along `edge`: number of pairs of "
                      "spikes present at both points (k-th spike of a neuron matched to its k-th spike, "
                      "k < min(n_A, n_B)) whose temporal order flips (summed over the batch's samples)")),
    "loss_jump": ((), "|loss change| to the neighbour", "1", ("|L_B - L_A| along the edge from this point to its "
                  "neighbour along `edge`")),
    "fd_slope": ((), "finite-difference slope", "1", "(L_B - L_A) / h along the edge"),
    "grad_slope": ((), "mean gradient slope", "1", "(g_A + g_B) / 2, g the loss derivative along the edge's axis"),
    "is_jump": ((), "loss jump flag", "1", "1 where |L_B - L_A| > jump_factor * max(|g_A h|, |g_B h|) + jump_eps"),
    "grad_cosine": ((), "cosine of neighbouring gradients", "1",
                    "cosine similarity of the full weight gradients at this point and its neighbour"),
}


#: stored edge quantities the summary metrics and a resume need: file name -> key of ``_State.edges``
_INTERNAL_EDGE_VARIABLES = {"loss_change": "dL", "slope_start": "slope_a", "slope_end": "slope_b"}


def _internal(ds: xr.Dataset, name: str, dims: tuple[str, ...]) -> np.ndarray:
    da = ds[name]
    for d in dims:
        if d not in da.dims:
            da = da.expand_dims(d)
    return da.transpose(*dims).values


class _State:
    """The grid's arrays in the internal layout ``(alpha, beta, sample, ...)`` (``edge`` first for edges)."""

    def __init__(self, lc: LandscapeConfig, alpha, beta, S: int, L: int, n_max: int, s_max: int):
        self.lc, self.alpha, self.beta = lc, alpha, beta
        na, nb = len(alpha), len(beta)
        D = lc.n_dirs
        self.points = {
            "loss": np.full((na, nb, S), np.nan), "accuracy": np.full((na, nb, S), np.nan),
            "grad_proj": np.full((na, nb, S, D), np.nan), "grad_norm": np.full((na, nb, S), np.nan),
            "n_spikes": np.full((na, nb, S, L), np.nan), "silent_fraction": np.full((na, nb, S, L), np.nan),
            "problems": np.full((na, nb, S), np.nan),
        }
        if lc.kind == "sample":
            self.points["spike_times"] = np.full((na, nb, S, L, n_max, s_max), np.nan)
        self.edges = {k: np.full((D, na, nb, S) + ((L,) if k in ("appearances", "disappearances", "order_changes")
                                                   else ()), np.nan)
                      for k in ("appearances", "disappearances", "order_changes", "dL", "slope_a", "slope_b", "cosine")}
        self.row_finished = np.zeros(na, np.int8)
        self.events: dict[str, xr.Variable] | None = None  # sample kind: located events, once all rows are done

    def merge(self, r0: int, r1: int, chunk: dict) -> None:
        for k, v in chunk.items():
            if k == "edges":
                for e, ev in v.items():
                    self.edges[e][:, r0:r1] = ev
            else:
                self.points[k][r0:r1] = v
        self.row_finished[r0:r1] = 1

    def load(self, ds: xr.Dataset) -> None:
        """Take the finished rows of an existing file."""
        dims = ("alpha", "beta", "sample")
        done = ds["row_finished"].values.astype(bool)
        self.row_finished[done] = 1
        get = lambda name, extra=(): _internal(ds, name, dims + extra)
        p = self.points
        p["loss"][done] = get("loss")[done]
        p["accuracy"][done] = get("accuracy")[done]
        p["grad_norm"][done] = get("grad_norm")[done]
        p["problems"][done] = get("problems")[done]
        p["grad_proj"][done, ..., 0] = get("grad_alpha")[done]
        if self.lc.n_dirs == 2:
            p["grad_proj"][done, ..., 1] = get("grad_beta")[done]
        p["n_spikes"][done] = get("n_spikes", ("layer",))[done]
        p["silent_fraction"][done] = get("silent_fraction", ("layer",))[done]
        if "spike_times" in p:
            p["spike_times"][done] = get("spike_times", ("layer", "neuron", "slot"))[done]
        edims = ("edge",) + dims
        e = self.edges
        for name, key in (("spike_appearances", "appearances"), ("spike_disappearances", "disappearances"),
                          ("order_changes", "order_changes")):
            e[key][:, done] = _internal(ds, name, edims + ("layer",))[:, done]
        for name, key in _INTERNAL_EDGE_VARIABLES.items():
            e[key][:, done] = _internal(ds, name, edims)[:, done]
        e["cosine"][:, done] = _internal(ds, "grad_cosine", edims)[:, done]
        if "event_kind" in ds:
            self.events = {name: ds[name].variable for name in ds.data_vars if name.startswith("event")}

    def dataset(self, attrs: dict, layer_names: list[str], directions, sample_ids) -> xr.Dataset:
        lc = self.lc
        two_d, per_sample = lc.kind == "2d", lc.kind == "sample"

        def out_dims(lead: tuple[str, ...], arr: np.ndarray, extra: tuple[str, ...]):
            dims = lead + ("alpha", "beta", "sample") + extra
            keep = [d for d in dims if not ((d == "beta" and not two_d) or (d == "sample" and not per_sample))]
            axes = tuple(i for i, d in enumerate(dims) if d not in keep)
            arr = np.squeeze(arr, axis=axes)
            # output order: (edge, sample, alpha, beta, extra)
            order = [d for d in ("edge", "sample", "alpha", "beta") if d in keep] + list(extra)
            return tuple(order), np.transpose(arr, [keep.index(d) for d in order])

        data = {}
        p = self.points
        fields = {"loss": p["loss"], "accuracy": p["accuracy"], "grad_alpha": p["grad_proj"][..., 0],
                  "grad_norm": p["grad_norm"], "n_spikes": p["n_spikes"], "silent_fraction": p["silent_fraction"],
                  "problems": p["problems"]}
        if two_d:
            fields["grad_beta"] = p["grad_proj"][..., 1]
        for name, arr in fields.items():
            extra, long_name, units, desc = POINT_VARIABLES[name]
            if per_sample:
                desc = desc.replace("mean over the batch's samples", "of the sample").replace(
                    "on any sample of the batch", "on the sample")
            dims, values = out_dims((), arr, extra)
            data[name] = variable(dims, values, long_name, units, description=desc)
        if per_sample:
            dims, values = out_dims((), p["spike_times"], ("layer", "neuron", "slot"))
            data["spike_times"] = variable(dims, values, "spike times", "1", description=(
                "spike times of every neuron of every layer, ascending per neuron; +inf: unused slot; "
                "NaN: unfinished point or padding (layers narrower than `neuron`/`slot`)"))
        e = self.edges
        h = np.array([self.alpha[1] - self.alpha[0]] + ([self.beta[1] - self.beta[0]] if two_d else []))
        hb = h[:, None, None, None]
        jumps = diagnostics.is_jump(e["dL"], e["slope_a"], e["slope_b"], factor=lc.jump_factor, eps=lc.jump_eps)
        edge_fields = {
            "spike_appearances": e["appearances"], "spike_disappearances": e["disappearances"],
            "order_changes": e["order_changes"], "loss_jump": np.abs(e["dL"]), "fd_slope": e["dL"] / hb,
            "grad_slope": 0.5 * (e["slope_a"] + e["slope_b"]) / hb, "is_jump": jumps, "grad_cosine": e["cosine"],
        }
        for name, arr in edge_fields.items():
            extra, long_name, units, desc = EDGE_VARIABLES[name]
            if per_sample:
                desc = desc.replace(" (summed over the batch's samples)", "")
            dims, values = out_dims(("edge",), arr, extra)
            data[name] = variable(dims, values, long_name, units, description=desc + "; NaN at the grid's last "
                                  "point along `edge` and for unfinished points")
        for name, key in _INTERNAL_EDGE_VARIABLES.items():
            dims, values = out_dims(("edge",), e[key], ())
            data[name] = variable(dims, values, {"dL": "signed loss change L_B - L_A", "slope_a": "g_A h",
                                                 "slope_b": "g_B h"}[key], "1",
                                  description="along the edge from this point to its neighbour along `edge` "
                                  "(kept for resume and the summary metrics); NaN at the last point")
        n_lines = (len(self.alpha) + len(self.beta)) if two_d else 1
        n_lines *= e["dL"].shape[3] if per_sample else 1
        summary = diagnostics.summary_metrics(e["dL"], e["slope_a"], e["slope_b"], hb, e["cosine"], n_lines=n_lines,
                                              factor=lc.jump_factor, eps=lc.jump_eps)
        for name, value in summary.items():
            long_name, desc = diagnostics.SUMMARY_DESCRIPTIONS[name]
            data[name] = variable((), value, long_name, "1", description=desc + " (NaN edges excluded)")
        data["row_finished"] = variable(("alpha",), self.row_finished, "alpha row finished", "1",
                                        description="1 where every point of the alpha row and its edges are written")
        for k, d in enumerate(directions):
            ax = ("alpha", "beta")[k]
            for l, arr in enumerate(d):
                data[f"direction_{ax}_w{l}"] = variable((f"post{l}", f"pre{l}"), arr, f"{ax} direction, layer {l} "
                                                        "weights", "1", description=(
                                                            f"the {ax} direction's component on weights[{l}] "
                                                            "([post, pre]); see the module docstring"))
        coords = {
            "alpha": ("alpha", self.alpha, {"long_name": "alpha", "units": "1"}),
            "layer": ("layer", layer_names, {"long_name": "spiking layer"}),
            "edge": ("edge", ["alpha", "beta"][: lc.n_dirs], {"long_name": "axis of the edge to the next point"}),
        }
        if two_d:
            coords["beta"] = ("beta", self.beta, {"long_name": "beta", "units": "1"})
        if per_sample:
            coords["sample"] = ("sample", np.asarray(sample_ids), {"long_name": "sample index in the training subset"})
            coords["neuron"] = ("neuron", np.arange(p["spike_times"].shape[-2]), {"long_name": "neuron"})
            coords["slot"] = ("slot", np.arange(p["spike_times"].shape[-1]), {"long_name": "spike slot"})
        data.update(self.events or {})
        ds = xr.Dataset(data, coords=coords)
        ds.attrs.update(attrs)
        return ds


def _prepare(lc: LandscapeConfig) -> tuple[dict, dict, list[str]]:
    """Load the checkpoint and data; the chunks' common payload, the config for ``config_json``, layer names."""
    import jax
    import jax.numpy as jnp

    from spikeode.training.loop import load_checkpoint, load_data

    model, _, epoch, run_config = load_checkpoint(lc.run)
    data_config = run_config.replace(train_samples=lc.train_samples, test_samples=1, validation_fraction=0.0)
    train_set, _, _ = load_data(data_config)
    if lc.kind == "sample":
        idx = np.asarray(lc.samples)
    else:
        idx = np.arange(len(train_set))
    times = np.asarray(train_set.spikes.times)[idx]
    units = np.asarray(train_set.spikes.units)[idx]
    labels = np.asarray(train_set.labels)[idx]
    model = jax.tree_util.tree_map(lambda x: np.asarray(x) if isinstance(x, jnp.ndarray) else x, model)
    dirs = make_directions(lc, model, run_config, jnp.asarray(times), jnp.asarray(units), jnp.asarray(labels))
    alpha = np.linspace(-lc.span, lc.span, lc.points)
    beta = alpha.copy() if lc.kind == "2d" else np.zeros(1)
    net = model.net
    common = {
        "run_config": run_config.to_dict(), "kind": lc.kind, "n_dirs": lc.n_dirs, "model": model,
        "base": tuple(np.asarray(w) for w in net.weights), "dirs": dirs, "times": times, "units": units,
        "labels": labels, "alpha": alpha, "beta": beta, "point_batch": lc.point_batch,
        "x64": bool(jax.config.jax_enable_x64), "max_neurons": max(net.sizes[1:]), "max_slots": max(net.n_slots),
    }
    layer_names = [f"hidden{i + 1}" for i in range(len(run_config.hidden))] + (
        ["output"] if run_config.readout == "first_spike" else [])
    full_config = {"landscape": lc.to_dict(), "run_dir": str(Path(lc.run).resolve()), "checkpoint_epoch": epoch,
                   "run_config": run_config.to_dict(), "n_samples": len(labels)}
    return common, full_config, layer_names


def compute_landscape(
    lc: LandscapeConfig,
    out: str | Path,
    *,
    progress: bool = True,
    dask_scheduler: str | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> xr.Dataset:
    """Compute (or resume) a landscape into ``out`` (netCDF, rewritten atomically after every chunk).

    Args:
        lc: what to compute.
        out: the netCDF file; if it exists with the same configuration, finished rows are kept.
        progress: tqdm bar over points.
        dask_scheduler: address of a Dask distributed scheduler; chunks then run as tasks there
            (workers need spikeode installed and access to the run directory only through the payload).
        on_chunk: called as ``on_chunk(r0, r1)`` after a chunk's rows are written (may raise to stop).

    Raises:
        ValueError: ``out`` holds a landscape of another configuration.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    common, full_config, layer_names = _prepare(lc)
    S = len(common["labels"]) if lc.kind == "sample" else 1
    state = _State(lc, common["alpha"], common["beta"], S, len(layer_names), common["max_neurons"],
                   common["max_slots"])
    attrs = provenance_attrs(f"spikeode {lc.kind} landscape of {full_config['run_dir']}", full_config, lc.seed)
    attrs.update(kind=lc.kind, neuron_model=full_config["run_config"]["neuron"], points=lc.points, span=lc.span,
                 direction=lc.direction, jump_factor=lc.jump_factor, jump_eps=lc.jump_eps)
    if out.exists():
        old = read_dataset(out)
        if json.loads(old.attrs.get("config_json", "{}")) != json.loads(attrs["config_json"]):
            raise ValueError(f"{out} holds a landscape of another configuration; choose another --out or remove it")
        state.load(old)
    sample_ids = list(lc.samples) if lc.kind == "sample" else []

    def write():
        write_dataset(state.dataset(attrs, layer_names, common["dirs"], sample_ids), out)

    na, nb, R = lc.points, len(common["beta"]), lc.rows_per_chunk
    chunks = [(r0, min(r0 + R, na)) for r0 in range(0, na, R)]
    todo = [c for c in chunks if not state.row_finished[c[0]:c[1]].all()]
    bar = tqdm(total=na * nb, initial=(na - sum(r1 - r0 for r0, r1 in todo)) * nb, disable=not progress,
               desc=f"landscape {lc.kind}", unit="point", dynamic_ncols=True)
    if not out.exists():
        write()
    try:
        if dask_scheduler is None:
            for r0, r1 in todo:
                state.merge(r0, r1, evaluate_chunk(common, r0, r1, progress=bar.update))
                write()
                if on_chunk is not None:
                    on_chunk(r0, r1)
        else:
            from distributed import Client, as_completed

            with Client(dask_scheduler) as client:
                shared = client.scatter(common, broadcast=True)
                futures = {client.submit(evaluate_chunk, shared, r0, r1, pure=False): (r0, r1) for r0, r1 in todo}
                for fut in as_completed(futures):
                    r0, r1 = futures[fut]
                    state.merge(r0, r1, fut.result())
                    bar.update((r1 - r0) * nb)
                    write()
                    if on_chunk is not None:
                        on_chunk(r0, r1)
    finally:
        bar.close()
    if lc.kind == "sample" and state.events is None:
        state.events = _locate_events(lc, common, state, sample_ids)
        write()
    return read_dataset(out)
