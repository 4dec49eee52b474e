"""Work units of a landscape: the points and edges of a chunk of alpha rows, and the scan's exact events.

``common`` (built by ``spikeode.study.landscape.driver``) is the payload every unit shares: plain
NumPy/pickleable data (the run configuration as a dict, the model with NumPy leaves, the base weights,
the directions, the batch, the grid), so that a unit runs in process or as a Dask task; JAX is imported
inside the units.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from spikeode.study import caches, scan_events
from spikeode.study.landscape.config import EVENT_TOL, LandscapeConfig
from spikeode.study.landscape.edges import chunk_edges, pad_times
from spikeode.study.landscape.program import program_for

__all__ = ["evaluate_chunk", "event_evaluator", "locate_scan_events"]


def _device_args(common: dict) -> tuple:
    """``(base weights, directions)`` as JAX arrays in the weights' dtype, and that dtype."""
    import jax.numpy as jnp

    wdtype = np.asarray(common["base"][0]).dtype
    base = tuple(jnp.asarray(b) for b in common["base"])
    dirs = tuple(tuple(jnp.asarray(d, wdtype) for d in dk) for dk in common["dirs"])
    return base, dirs, wdtype


def evaluate_chunk(common: dict, r0: int, r1: int, progress: Callable[[int], None] | None = None) -> dict:
    """Points of alpha rows ``[r0, r1)`` and every edge starting there (module level: a Dask task).

    The grid points of rows ``r0 .. r1`` (the halo row ``r1`` included) run through the cached program in
    batches of ``point_batch`` offsets (the last batch padded by repeating its last offset). Returns NumPy
    arrays: point variables with leading ``(rows, n_beta, S)``, edge variables with leading
    ``(edge axis, rows, n_beta, S)`` (``spikeode.study.landscape.edges.chunk_edges``).
    """
    import jax
    import jax.numpy as jnp

    from spikeode.precision import ensure_precision

    ensure_precision("float64" if common["x64"] else "float32")

    from spikeode.training import TrainConfig

    program = program_for(TrainConfig.from_dict(common["run_config"]), common["kind"] == "sample")
    alpha, beta = common["alpha"], common["beta"]
    na, nb = len(alpha), len(beta)
    rows = list(range(r0, min(r1 + 1, na)))  # + halo row r1
    offsets = np.array([[alpha[i], beta[j]][: common["n_dirs"]] for i in rows for j in range(nb)], np.float64)
    P, B = len(offsets), common["point_batch"]
    base, dirs, wdtype = _device_args(common)
    args = (base, dirs, common["model"], jnp.asarray(common["times"]), jnp.asarray(common["units"]),
            jnp.asarray(common["labels"]))
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
    caches.EVALUATED_ROWS.extend(rows)
    res = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *outs)
    shape = (len(rows), nb)
    res = jax.tree_util.tree_map(lambda x: x.reshape(shape + x.shape[1:]), res)
    return chunk_edges(res, common, r0, r1)


def event_evaluator(common: dict) -> scan_events.Evaluate:
    """``evaluate(a[P], sample_position[P])``: padded spike times and problem flags of the scan's samples at
    ``W* + a delta``, in batches of ``point_batch x samples`` points through one compiled forward program."""
    import jax
    import jax.numpy as jnp

    from spikeode.training import TrainConfig

    forward = program_for(TrainConfig.from_dict(common["run_config"]), None)
    base, dirs, wdtype = _device_args(common)
    B = common["point_batch"] * len(common["labels"])

    def evaluate(a: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        times, problems = [], []
        for start in range(0, len(a), B):
            n = len(a[start:start + B])
            idx = np.concatenate([np.arange(start, start + n), np.full(B - n, start + n - 1)])
            t, prob = jax.device_get(forward(jnp.asarray(a[idx, None], wdtype), base, dirs, common["model"],
                                             jnp.asarray(common["times"][pos[idx]]),
                                             jnp.asarray(common["units"][pos[idx]])))
            times.append(pad_times([np.asarray(x)[:n] for x in t], common["max_neurons"], common["max_slots"]))
            problems.append(np.asarray(prob)[:n])
        return np.concatenate(times), np.concatenate(problems)

    return evaluate


def locate_scan_events(lc: LandscapeConfig, common: dict, spike_times: np.ndarray, problems: np.ndarray,
                       sample_ids: list[int]) -> dict:
    """The ``event_*`` variables of a finished sample-kind scan (``spikeode.study.scan_events``), located to
    ``EVENT_TOL * span``; ``spike_times``/``problems``: the grid's, ``(sample, alpha, ...)``."""
    tol = EVENT_TOL * lc.span
    T = float(common["run_config"]["T"])
    events, capped = scan_events.locate_events(
        event_evaluator(common), common["alpha"], spike_times, T, tol=tol,
        batch=common["point_batch"] * len(sample_ids), grid_problems=problems, sample_ids=sample_ids)
    return scan_events.event_variables(events, capped, common["alpha"], sample_ids, tol=tol, T=T)
