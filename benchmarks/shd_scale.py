"""SHD scale (issue 17): a training step of ``spikeode train``'s recipe for SHD at the real data's sizes.

    python benchmarks/shd_scale.py                          # -> benchmarks/results/shd_scale.txt
    python benchmarks/shd_scale.py --neuron lif --budgets 4 1

Two measurements on random SHD-like inputs (700 channels, uniform times in ``[0, T)``), with the ``shd``
recipe's network (hidden 128, exponential synapses, float32) and the training step of ``spikeode train``
(:func:`spikeode.training.loop.fitted_training_step`: the memory budget picks the microbatch):

* a batch of 1000 samples at ``k_in`` 10000 input spikes each, once per budget in ``--budgets`` (GiB; each
  in a process of its own): XLA's memory figure of the whole step, the microbatch chosen, the peak RSS of
  the process and the samples per second;
* one epoch of the real SHD train split's size (8156 samples) at ``k_in`` 1000 and 4000, batch 64,
  extrapolated from the median of timed steps, in minutes.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from spikeode.spikes import Spikes
from spikeode.training import build_model, default_config, make_optimizer, trainable_filter
from spikeode.training.loop import _step_gib, fitted_training_step, loss_hyperparameters, training_step

RESULTS = Path(__file__).resolve().parent / "results" / "shd_scale.txt"
SHD_TRAIN_SAMPLES = 8156


def random_batch(batch: int, k_in: int, T: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, T, (batch, k_in)), axis=1).astype(np.float32)
    units = rng.integers(0, 700, (batch, k_in)).astype(np.int32)
    labels = rng.integers(0, 20, batch).astype(np.int32)
    return Spikes(jnp.asarray(times), jnp.asarray(units), 700), jnp.asarray(labels), jnp.ones(batch, bool)


def measure(neuron: str, batch: int, k_in: int, budget: float, steps: int) -> dict:
    """Compile the fitted step, then time ``steps`` steps; seconds per step (median) and the split."""
    # the shd recipe (no data is read: the inputs are random)
    config = default_config("shd:unused", neuron, batch_size=batch, k_in=k_in, init="recipe", memory_budget=budget)
    model = build_model(config, 700, 20, key=jax.random.PRNGKey(0))
    spec = trainable_filter(model, config)
    spikes, labels, mask = random_batch(batch, k_in, config.T)
    hyper = loss_hyperparameters(config)
    t0 = time.perf_counter()
    opt_state = make_optimizer(config, 100).init(eqx.filter(model, spec))
    args = (model, opt_state, spikes, labels, mask, hyper, spec)
    whole_gib = _step_gib(training_step(config, 100, None, batch)[1], args)
    _, step, micro, notice = fitted_training_step(config, 100, None, args)
    model, opt_state, metrics, _, _ = step(*args)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model, opt_state, metrics, _, _ = step(model, opt_state, spikes, labels, mask, hyper, spec)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    return {"neuron": neuron, "batch": batch, "k_in": k_in, "microbatch": micro, "notice": notice, "whole_gib": whole_gib,
            "step_s": statistics.median(times), "compile_s": compile_s,
            "hidden_spikes": float(sum(np.sum(c) for c in metrics["spike_counts"][:-1])) / batch}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neuron", default="qif")
    parser.add_argument("--budgets", type=float, nargs="+", default=[8.0, 0.5],
                        help="memory budgets of the big step, GiB, one measurement (and process) each")
    parser.add_argument("--big-only", action="store_true", help="only the batch of 1000 (one budget)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    lines = [f"# {args.neuron}, shd recipe (hidden 128, float32), random inputs on 700 channels, "
             f"{jax.device_count()} {jax.default_backend()} device(s)"]
    if args.big_only:  # one budget in this process, so that its peak RSS is that budget's
        big = measure(args.neuron, 1000, 10_000, args.budgets[0], steps=1)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"batch 1000 x k_in 10000, budget {args.budgets[0]} GiB (XLA: whole step {big['whole_gib']:.2f} GiB): "
              f"microbatch {big['microbatch']}; step {big['step_s']:.0f} s ({1000 / big['step_s']:.1f} samples/s, "
              f"compile+first step {big['compile_s']:.0f} s); peak RSS {rss:.2f} GiB; "
              f"{big['hidden_spikes']:.0f} hidden spikes per sample", flush=True)
        return 0
    for budget in args.budgets:
        out = subprocess.run([sys.executable, __file__, "--neuron", args.neuron, "--big-only", "--budgets", str(budget)],
                             check=True, capture_output=True, text=True).stdout
        lines.append(out.strip().splitlines()[-1])
        print(lines[-1], flush=True)
    for k_in in (1000, 4000):
        r = measure(args.neuron, 64, k_in, args.budgets[0], steps=3)
        epoch_min = SHD_TRAIN_SAMPLES / 64 * r["step_s"] / 60
        lines.append(f"SHD train split (8156 samples) at k_in {k_in}, batch 64: {r['step_s']:.2f} s per step, "
                     f"one epoch {epoch_min:.1f} min ({64 / r['step_s']:.1f} samples/s)")
        print(lines[-1], flush=True)
    args.results.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
