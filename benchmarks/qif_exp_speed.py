"""LIF vs QIF with matched exponential synapses, side by side in one process (issue 17, the fair pair's speed).

    python benchmarks/qif_exp_speed.py                         # yy + shd pairs, fwd and grad
    python benchmarks/qif_exp_speed.py --baseline-rev HEAD     # add the QIF of a git revision ("before")
    python benchmarks/qif_exp_speed.py --micro                 # per-method cost of the neuron models

The machine is shared: every configuration is compiled first, then the timed rounds interleave the
configurations (A, B, A, B, ...) and the table quotes the median over rounds of each round's median
step, in wall-clock time and in CPU time of the process (all its threads; the steadier of the two when
other jobs compete for the cores). ``--micro`` times the per-event work of one layer in isolation: ``time_to_threshold`` (the
ranking, stopped gradients), ``flow`` (value and reverse mode) and ``receive`` over ``batch x hidden``
states.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from spikeode.bench import RunConfig, make_step

PAIRS = {"yy": ("yy-lif", "yy-qif-exp", 5, 120), "shd": ("shd-lif", "shd-qif-exp", 2000, 128)}


def baseline_qif_class(rev: str):
    """The ``QIF`` class of ``src/spikeode/neurons/qif.py`` at git revision ``rev`` (loaded as its own module)."""
    root = Path(__file__).resolve().parents[1]
    src = subprocess.run(["git", "show", f"{rev}:src/spikeode/neurons/qif.py"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"qif_{rev.replace('/', '_')}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses (equinox) look the module up
    spec.loader.exec_module(module)
    return module.QIF


def swap_neurons(net, cls):
    """``net`` with every QIF replaced by ``cls`` of the same parameters."""
    neurons = tuple(swap_neurons_one(n, cls) for n in net.neurons)
    return eqx.tree_at(lambda m: m.neurons, net, neurons)


def build(workload, mode, batch, input_spikes, hidden, qif_cls=None):
    fn, args = make_step(RunConfig(workload, "closed_form", mode, "float32", batch, input_spikes, hidden))
    if qif_cls is not None:
        args = (swap_neurons(args[0], qif_cls), *args[1:])
    jax.block_until_ready(fn(*args))  # compile
    return fn, args


def timed(fn, args, calls):
    """Median wall-clock and CPU seconds of one call."""
    wall, cpu = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def side_by_side(pairs, modes, batch, rounds, calls, baseline_rev):
    """``{(label, mode): (samples/s, samples/CPU-s)}``, medians over interleaved rounds."""
    old = baseline_qif_class(baseline_rev) if baseline_rev else None
    configs = {}
    for pair in pairs:
        lif, qif, k_in, hidden = PAIRS[pair]
        variants = [(lif, None, lif), (qif, None, qif + " (now)")]
        if old is not None:
            variants.append((qif, old, f"{qif} ({baseline_rev})"))
        for mode in modes:
            for workload, cls, label in variants:
                t0 = time.perf_counter()
                configs[(label, mode)] = build(workload, mode, batch, k_in, hidden, cls)
                print(f"compiled {label} {mode} in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    steps = {key: [] for key in configs}
    for r in range(rounds):
        for key, (fn, args) in configs.items():
            steps[key].append(timed(fn, args, calls))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return {key: tuple(batch / statistics.median(t) for t in zip(*v)) for key, v in steps.items()}


def micro(batch, hidden, rounds, calls, baseline_rev):
    """Per-method cost over ``batch x hidden`` neurons, LIF-exp vs QIF-matched (ns per neuron and call)."""
    from spikeode.bench import WORKLOADS, make_neuron
    from spikeode.neurons import as_trainable

    rng = np.random.default_rng(0)
    m = batch * hidden
    models = {name: as_trainable(make_neuron(WORKLOADS[name]), jnp.float32) for name in ("shd-lif", "shd-qif-exp")}
    if baseline_rev:
        models[f"qif-exp@{baseline_rev}"] = swap_neurons_one(models["shd-qif-exp"], baseline_qif_class(baseline_rev))
    dt, horizon, w = jnp.float32(0.01), jnp.float32(0.05), jnp.asarray(rng.normal(0, 0.3, m), jnp.float32)
    fns = {
        "time_to_threshold (all)": lambda n, y: jax.vmap(n.time_to_threshold, in_axes=(0, None))(y, horizon),
        "flow": lambda n, y: jax.vmap(n.flow, in_axes=(0, None))(y, dt),
        "flow grad": jax.grad(lambda n, y: jnp.sum(jax.vmap(n.flow, in_axes=(0, None))(y, dt) ** 2), argnums=(0, 1)),
        "receive": lambda n, y: jax.vmap(n.receive)(y, w),
        "receive grad": jax.grad(lambda n, y: jnp.sum(jax.vmap(n.receive)(y, w) ** 2), argnums=(0, 1)),
    }
    jobs = {}
    for name, neuron in models.items():
        y0 = jnp.broadcast_to(neuron.initial_state(), (m, neuron.state_size))
        y = y0 + jnp.asarray(rng.normal(0, 0.5, y0.shape), jnp.float32)
        if "qif" in name:
            y = y.at[:, :2].set(y[:, :2] / jnp.linalg.norm(y[:, :2], axis=1, keepdims=True))
        for label, f in fns.items():
            f = jax.jit(f)
            jax.block_until_ready(f(neuron, y))
            jobs[(name, label)] = (f, (neuron, y))
    out = {key: [] for key in jobs}
    for _ in range(rounds):
        for key, (f, args) in jobs.items():
            out[key].append(timed(f, args, calls)[0])
    return {k: 1e9 * statistics.median(v) / m for k, v in out.items()}


def swap_neurons_one(neuron, cls):
    return cls(tau=neuron.tau, I0=neuron.I0, tau_syn="matched", theta0=neuron.theta0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", nargs="+", default=["yy", "shd"], choices=sorted(PAIRS))
    p.add_argument("--modes", nargs="+", default=["fwd", "grad"], choices=["fwd", "grad"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--baseline-rev", default=None, help="also time the QIF of this git revision")
    p.add_argument("--micro", action="store_true", help="per-method costs instead of whole networks")
    args = p.parse_args(argv)
    if args.micro:
        res = micro(args.batch, 128, args.rounds, args.calls, args.baseline_rev)
        for (name, label), ns in res.items():
            print(f"{name:16s} {label:24s} {ns:7.2f} ns/neuron")
        return 0
    res = side_by_side(args.pairs, args.modes, args.batch, args.rounds, args.calls, args.baseline_rev)
    print(f"{'config':34s} {'mode':5s} {'samples/s':>10s} {'vs LIF':>7s} {'per CPU-s':>10s} {'vs LIF':>7s}")
    for (label, mode), (sps, spc) in res.items():
        lif = next(v for (lab, md), v in res.items() if md == mode and lab.split("-")[0] == label.split("-")[0]
                   and "lif" in lab)
        print(f"{label:34s} {mode:5s} {sps:10.1f} {sps / lif[0]:7.2f} {spc:10.1f} {spc / lif[1]:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
