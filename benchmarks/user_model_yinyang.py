"""A user's own 2-D neuron model, declared by its ODE only, trained on Yin-Yang with the defaults (issue 18).

    python benchmarks/user_model_yinyang.py                  # -> benchmarks/results/user_model_yinyang.txt
    python benchmarks/user_model_yinyang.py --epochs 10 --seed 1

``SynapticLIF`` below is what a user writes: a vector field, a threshold, a reset and an input jump; no
closed form, no pseudodynamics, no weight recipe. It runs the command a user would type,
``spikeode train --neuron user_model_yinyang:SynapticLIF --data yinyang --epochs 10``: the diffrax path,
the event adjoint (the default gradient there), calibrated initialisation, pseudospikes off with a notice.
The table gives the test accuracy counting real output spikes per epoch and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax.numpy as jnp

from spikeode.neurons import AbstractNeuron

RESULTS = Path(__file__).resolve().parent / "results" / "user_model_yinyang.txt"


class SynapticLIF(AbstractNeuron):
    """``tau_m dV/dt = -V + I``, ``tau_s dI/dt = -I``; spike at ``V = 1``, reset ``V -> 0``, input ``I -> I + w``."""

    tau_m: float = 1.0
    tau_s: float = 0.5

    def initial_state(self):
        return jnp.zeros(2)

    def vector_field(self, t, y, args):
        return jnp.stack([(y[1] - y[0]) / self.tau_m, -y[1] / self.tau_s])

    def threshold(self, y):
        return y[0] - 1.0

    def reset(self, y):
        return y.at[0].set(0.0)

    def receive(self, y, w):
        return y.at[1].add(w)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: a temporary one)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    import xarray as xr

    run = args.out or Path(tempfile.mkdtemp(prefix="user_model_yinyang_"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent),
                                                       os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "spikeode.cli", "train", "--neuron", "user_model_yinyang:SynapticLIF",
               "--data", "yinyang", "--epochs", str(args.epochs), "--seed", str(args.seed), "--out", str(run)]
    t0 = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    wall = time.perf_counter() - t0
    with xr.open_dataset(run / "run.nc") as ds:
        lines = [f"# {' '.join(command[2:])}  (2 CPU cores, float32; wall {wall:.0f} s; gradient "
                 f"{ds.attrs['gradient_used']}, pseudospikes {json.loads(ds.attrs['config_json'])['pseudospikes']})",
                 "| epoch | test accuracy (real spikes) | silent outputs (share of test samples) |", "|---|---|---|"]
        lines += [f"| {int(e)} | {a:.3f} | {s:.3f} |" for e, a, s in
                  zip(ds.epoch.values, ds.test_accuracy.values, ds.output_silent_sample_fraction.values)]
    args.results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
