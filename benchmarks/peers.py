"""spikeode vs spikegd vs Eventax on the ``shd`` workload: same inputs, same weights (a script, not a test).

    python benchmarks/peers.py --spikegd-src /tmp/spikegd --eventax-python /tmp/benchvenv/bin/python

* spikegd (Klos & Memmesheimer, ``chklos/spikegd``, imported from ``--spikegd-src``; never vendored):
  ``ThetaNeuron(tau=6/pi, I0=5/4)`` with delta synapses, the hidden and output layers as one
  148-neuron network (spikegd's own MNIST layout), every neuron starting at phase ``Theta/2``;
  this is exactly our ``QIF(tau=6/pi, I0=1, theta0=0)`` (``V_ours = V_spikegd - 1/2``). Event
  budget ``K`` = the same event capacity as ours (inputs + hidden and output spike slots + 1).
  Its first output spike times must equal ours to ``--tol`` (float32); a float64 run of both
  (``ref64``, untimed for the ratios) shows whether the models agree and which float32 run is off.
* Eventax (``pip install eventax`` into a separate venv, run with ``--eventax-python``): it has no
  delta-synapse QIF, so we compare its nearest equivalent: its ``QIF`` (``tmem dV/dt = V(V-1) +
  I + ic``, ``tsyn dI/dt = -I``, ``I -> I + W`` per spike) with ``tmem = 6/pi``, bias ``ic = 5/4``,
  a fast synapse ``tsyn = 0.01`` and weights ``W = w tmem/tsyn`` (the same voltage kick ``w`` once
  the current has decayed), starting at its fixed ``V = 0`` (our ``V = -1/2``). Tsit5 with
  Newton root tolerance 1e-6 (its accurate test settings), RecursiveCheckpointAdjoint, ``vmap``
  over the batch. Spike times are not expected to agree (different model); only cost is compared.

Every measurement runs in a fresh subprocess (peak RSS = the child's ``ru_maxrss``). Results go
to ``--out`` (JSON) and a table with the ratios spikeode/peer is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EVENTAX_TSYN = 0.01


# --------------------------------------------------------------------------------------------
# Problem: built once by spikeode (parent), shared with every peer through an .npz file.
# --------------------------------------------------------------------------------------------
def export_problem(path: str, batch: int, input_spikes: int, hidden: int) -> dict:
    """Write inputs, labels and the weights of spikeode's ``shd`` network to ``path``."""
    import numpy as np

    from spikeode.bench import WORKLOADS, RunConfig, make_problem

    cfg = RunConfig("shd", batch=batch, input_spikes=input_spikes, hidden=hidden)
    net, spikes, labels, T = make_problem(cfg)
    wl = WORKLOADS["shd"]
    meta = {"T": T, "n_in": wl.n_in, "hidden": hidden, "n_out": wl.n_out, "input_spikes": input_spikes, "batch": batch,
                "n_slots": list(wl.n_slots)}
    np.savez(path, times=np.asarray(spikes.times), units=np.asarray(spikes.units), labels=np.asarray(labels),
             w_in=np.asarray(net.weights[0]), w_out=np.asarray(net.weights[1]), meta=json.dumps(meta))
    return meta


def load_problem(path: str):
    import numpy as np

    d = np.load(path)
    return {k: d[k] for k in d.files if k != "meta"}, json.loads(str(d["meta"]))


def cross_entropy(t_out, labels):
    import jax
    import jax.numpy as jnp

    logp = jax.nn.log_softmax(-t_out, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def measure(fn, args, mode: str, repeats: int, batch: int) -> dict:
    """Time ``fn`` (first call and median steady call), as ``spikeode.bench`` does."""
    import jax

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    steps = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        steps.append(time.perf_counter() - t0)
    steady = statistics.median(steps)
    return {"mode": mode, "samples_per_s": batch / steady, "step_s": steady, "compile_s": max(first - steady, 0.0),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "out": out}


# --------------------------------------------------------------------------------------------
# The three engines (each runs in its own child process).
# --------------------------------------------------------------------------------------------
def ours_fn(data, meta, integrator: str, dtype: str = "float32", gradient: str = "autodiff"):
    import equinox as eqx
    import jax
    import numpy as np

    from spikeode.bench import RunConfig, make_loss, make_problem
    from spikeode.spikes import Spikes

    cfg = RunConfig("shd", integrator=integrator, batch=meta["batch"], input_spikes=meta["input_spikes"],
                    hidden=meta["hidden"])
    net, spikes, labels, T = make_problem(cfg)
    assert np.array_equal(np.asarray(net.weights[0]), data["w_in"]) and np.array_equal(np.asarray(spikes.times), data["times"])
    if dtype != "float32":  # the float64 reference: the same float32 values, computed in float64
        net = jax.tree_util.tree_map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, net)
        spikes = Spikes(spikes.times.astype(dtype), spikes.units, spikes.n_units)
    loss = make_loss(integrator, T, gradient)

    def fwd(net, spikes, labels):
        value, (_, t_out) = loss(net, spikes, labels)
        return value, t_out

    def grad(net, spikes, labels):
        return eqx.filter_value_and_grad(lambda n: loss(n, spikes, labels)[0])(net)

    return eqx.filter_jit(fwd), eqx.filter_jit(grad), (net, spikes, labels)


def spikegd_fn(data, meta, spikegd_src: str, dtype: str = "float32"):
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, spikegd_src)
    from spikegd.theta import ThetaNeuron

    neuron = ThetaNeuron(tau=6 / math.pi, I0=5 / 4)
    n_h, n_out, n_in, T = meta["hidden"], meta["n_out"], meta["n_in"], meta["T"]
    n = n_h + n_out
    s_h, s_o = meta["n_slots"]
    config = {"K": meta["input_spikes"] + n_h * s_h + n_out * s_o + 1, "T": T}
    phi0 = jnp.full(n, neuron.Theta() / 2, dtype)

    def first_output_times(p, times, units):
        w_in, w_out, phi = p
        weights_in = jnp.zeros((n, n_in), w_in.dtype).at[:n_h].set(w_in)
        weights_net = jnp.zeros((n, n), w_in.dtype).at[n_h:, :n_h].set(w_out)
        ts, spike_in, j, _ = neuron.event(phi[None], weights_net, weights_in, (times, units), config)

        def first(i):
            mask = (j == n_h + i) & ~spike_in
            return jnp.where(jnp.any(mask), ts[jnp.argmax(mask)], T)

        return jax.vmap(first)(jnp.arange(n_out))

    def fwd(p, times, units, labels):
        t_out = jax.vmap(first_output_times, in_axes=(None, 0, 0))(p, times, units)
        return cross_entropy(t_out, labels), t_out

    grad = jax.jit(jax.value_and_grad(lambda p, *a: fwd(p, *a)[0]))
    p = (jnp.asarray(data["w_in"], dtype), jnp.asarray(data["w_out"], dtype), phi0)
    args = (p, jnp.asarray(data["times"], dtype), jnp.asarray(data["units"]), jnp.asarray(data["labels"]))
    return jax.jit(fwd), grad, args


def eventax_fn(data, meta, batch_mode: str):
    import diffrax as dfx
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optimistix as optx
    from eventax.evnn import FFEvNN
    from eventax.neuron_models import QIF

    n_h, n_out, n_in, T = meta["hidden"], meta["n_out"], meta["n_in"], meta["T"]
    tmem = 6 / math.pi
    scale = tmem / EVENTAX_TSYN
    n = n_h + n_out
    w = np.zeros((n + n_in, n), np.float32)  # [pre, post]: rows 0..n-1 network, then inputs
    w[n:, :n_h] = data["w_in"].T * scale
    w[:n_h, n_h:] = data["w_out"].T * scale
    s_h, s_o = meta["n_slots"]
    snn = FFEvNN(
        layers=[n_h, n_out], in_size=n_in, neuron_model=QIF, max_solver_time=T, key=jax.random.PRNGKey(0),
        tmem=tmem, tsyn=EVENTAX_TSYN, init_weights=jnp.asarray(w), init_bias=5 / 4,
        solver=dfx.Tsit5(), root_finder=optx.Newton(1e-6, 1e-6, optx.rms_norm),
        stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-6), solver_stepsize=0.01,
        max_event_steps=meta["input_spikes"] + 2 * (n_h * s_h + n_out * s_o) + 1, dtype=jnp.float32,
    )
    x = _per_channel_times(data["times"], data["units"], n_in)

    def fwd(model, x, labels):
        t_out = jax.vmap(model.ttfs)(x) if batch_mode == "vmap" else jax.lax.map(model.ttfs, x)
        t_out = jnp.where(jnp.isfinite(t_out), t_out, T)
        return cross_entropy(t_out, labels), t_out

    grad = eqx.filter_jit(eqx.filter_value_and_grad(lambda m, *a: fwd(m, *a)[0]))
    return eqx.filter_jit(fwd), grad, (snn, jnp.asarray(x), jnp.asarray(data["labels"]))


def _per_channel_times(times, units, n_in):
    """Eventax's input layout: ``(batch, channel, k)`` spike times per channel, ``+inf`` padded."""
    import numpy as np

    b = times.shape[0]
    k = max(int(np.bincount(u, minlength=n_in).max()) for u in units)
    out = np.full((b, n_in, k), np.inf, np.float32)
    for s in range(b):
        fill = np.zeros(n_in, int)
        for t, u in zip(times[s], units[s]):
            out[s, u, fill[u]] = t
            fill[u] += 1
    return out


def child(args) -> int:
    """Measure one (engine, mode) in this process and print one JSON line."""
    import spikeode

    spikeode.use_fast_cpu_defaults()  # every engine gets the same XLA CPU code generation, before JAX starts
    data, meta = load_problem(args.data)
    dtype = "float32"
    if args.mode == "ref64":  # not timed: the float64 reference of the first output spike times
        from spikeode.precision import ensure_precision

        ensure_precision("float64")
        dtype = "float64"
    if args.engine.startswith("spikeode"):
        _, integrator, *gradient = args.engine.split(":")
        fwd, grad, call = ours_fn(data, meta, integrator, dtype, *gradient)
    elif args.engine == "spikegd":
        fwd, grad, call = spikegd_fn(data, meta, args.spikegd_src, dtype)
    else:
        fwd, grad, call = eventax_fn(data, meta, args.engine.split(":")[1])
    res = measure(grad if args.mode == "grad" else fwd, call, args.mode, args.repeats, meta["batch"])
    out = res.pop("out")
    if args.mode in ("fwd", "ref64"):
        import numpy as np

        res["t_out"] = np.asarray(out[1], np.float64).tolist()
    print(json.dumps({"engine": args.engine, **res}), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Parent: run every (engine, mode) in a fresh process, compare, write JSON.
# --------------------------------------------------------------------------------------------
def run_child(python: str, engine: str, mode: str, ns, data: str) -> dict:
    cmd = [python, os.path.abspath(__file__), "--child", "--engine", engine, "--mode", mode, "--data", data,
           "--repeats", str(ns.repeats_slow if engine.startswith("eventax") else ns.repeats)]
    if ns.spikegd_src:
        cmd += ["--spikegd-src", ns.spikegd_src]
    env = dict(os.environ)
    if python != sys.executable:
        env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=ns.timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"engine": engine, "mode": mode, "error": f"timed out after {ns.timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"engine": engine, "mode": mode, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1])


def compare_times(ours: dict, peer: dict) -> float:
    import numpy as np

    return float(np.max(np.abs(np.asarray(ours["t_out"]) - np.asarray(peer["t_out"]))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spikegd-src", help="root of a spikegd checkout (contains spikegd/)")
    p.add_argument("--eventax-python", help="python of a separate venv with eventax installed")
    p.add_argument("--eventax-modes", nargs="+", default=["vmap", "map"], choices=["vmap", "map"])
    p.add_argument("--integrators", nargs="+", default=["closed_form", "diffrax", "diffrax:adjoint"],
                   help="spikeode engines: INTEGRATOR[:GRADIENT] (gradient autodiff unless given)")
    p.add_argument("--modes", nargs="+", default=["fwd", "grad"], choices=["fwd", "grad"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--input-spikes", type=int, default=2000)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--repeats-slow", type=int, default=1, help="repeats for Eventax")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--tol", type=float, default=1e-4, help="max |t_out(spikeode) - t_out(spikegd)|")
    p.add_argument("--no-reference", dest="reference", action="store_false",
                   help="skip the float64 reference run of spikeode and spikegd")
    p.add_argument("--out", default=os.path.join(HERE, "results", "peers.json"))
    # child-only options
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.child:
        return child(ns)

    os.makedirs(os.path.dirname(os.path.abspath(ns.out)), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "problem.npz")
        meta = export_problem(data, ns.batch, ns.input_spikes, ns.hidden)
        engines = [(sys.executable, f"spikeode:{i}") for i in ns.integrators]
        if ns.spikegd_src:
            engines.append((sys.executable, "spikegd"))
        if ns.eventax_python:
            engines += [(ns.eventax_python, f"eventax:{m}") for m in ns.eventax_modes]
        results = []
        for python, engine in engines:
            modes = list(ns.modes)
            if engine in ("spikeode:closed_form", "spikegd") and ns.reference:
                modes.append("ref64")
            for mode in modes:
                r = run_child(python, engine, mode, ns, data)
                print(f"{engine:22s} {mode:5s} " + (r.get("error") or
                      f"{r['samples_per_s']:8.2f} samples/s  compile {r['compile_s']:6.2f} s  "
                      f"peak RSS {r['peak_rss_mib']:6.0f} MiB"), flush=True)
                results.append(r)
    summary = summarise(results, ns.tol)
    print(format_summary(summary))
    with open(ns.out, "w") as f:
        json.dump({"problem": meta, "runs": results, "summary": summary}, f, indent=1)
    print(f"wrote {ns.out}")
    return 0 if summary.get("spikegd_agrees", True) else 1


def summarise(results: list[dict], tol: float) -> dict:
    """Ratios spikeode/peer per mode (samples/s: > 1 means spikeode is faster) and the spike-time check."""
    by = {(r["engine"], r["mode"]): r for r in results if "error" not in r}
    out: dict = {"ratios": []}
    peers = sorted({e for e, _ in by if not e.startswith("spikeode")})
    for ours in sorted({e for e, _ in by if e.startswith("spikeode")}):
        for peer in peers:
            for mode in ("fwd", "grad"):
                if (ours, mode) in by and (peer, mode) in by:
                    a, b = by[ours, mode], by[peer, mode]
                    out["ratios"].append({"ours": ours, "peer": peer, "mode": mode,
                                              "speed_ratio": a["samples_per_s"] / b["samples_per_s"],
                                              "rss_ratio": a["peak_rss_mib"] / b["peak_rss_mib"]})
    if ("spikeode:closed_form", "fwd") in by and ("spikegd", "fwd") in by:
        err = compare_times(by["spikeode:closed_form", "fwd"], by["spikegd", "fwd"])
        out.update(spikegd_max_abs_time_diff=err, spikegd_agrees=err <= tol, tol=tol)
    # Float64 reference: do the two models agree exactly, and how far is each float32 run from it?
    ref = by.get(("spikeode:closed_form", "ref64"))
    if ref is not None:
        out["float32_error_vs_float64"] = {e: compare_times(by[e, "fwd"], ref) for e in ("spikeode:closed_form", "spikegd")
                                           if (e, "fwd") in by}
        if ("spikegd", "ref64") in by:
            out["float64_max_abs_time_diff"] = compare_times(ref, by["spikegd", "ref64"])
    return out


def format_summary(summary: dict) -> str:
    lines = [f"{'ours':24s} {'peer':16s} {'mode':5s} {'speed ours/peer':>16s} {'RSS ours/peer':>14s}"]
    for r in summary["ratios"]:
        lines.append(f"{r['ours']:24s} {r['peer']:16s} {r['mode']:5s} {r['speed_ratio']:16.2f} {r['rss_ratio']:14.2f}")
    if "spikegd_max_abs_time_diff" in summary:
        verdict = "OK" if summary["spikegd_agrees"] else "MISMATCH"
        lines.append(f"first output spike times vs spikegd: max |diff| = {summary['spikegd_max_abs_time_diff']:.2e} "
                     f"(tol {summary['tol']:.0e}) {verdict}")
    if "float64_max_abs_time_diff" in summary:
        lines.append(f"float64, spikeode vs spikegd: max |diff| = {summary['float64_max_abs_time_diff']:.2e}")
    for engine, err in summary.get("float32_error_vs_float64", {}).items():
        lines.append(f"float32 {engine} vs the float64 reference: max |diff| = {err:.2e}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
