"""Defaults on sparse data (issue 18): ``spikeode train --neuron qif|lif --epochs 10`` on a sparse latency code.

    python benchmarks/sparse_latency.py                   # -> benchmarks/results/sparse_latency.txt
    python benchmarks/sparse_latency.py --neurons lif --seeds 0 1 2

The data (:func:`spikeode.data.latency.write_latency_shd`, defaults: 10 classes, 60 active of 700
channels, 16-42 input spikes per sample, 1400 train / 400 test) is written in the SHD layout and read
back by ``--data shd:DIR``: the same path a user's own files take. Every run uses the command line a user
would type, with only ``--epochs 10``; the table gives the test accuracy counting real output spikes
(the headline), the one counting pseudospikes, the share of test samples with silent outputs and the
wall time. Template matching on the spike times (:func:`template_accuracy`) is the data's own reference:
how separable the code is.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from spikeode.data.latency import write_latency_shd
from spikeode.data.shd import read_shd

RESULTS = Path(__file__).resolve().parent / "results" / "sparse_latency.txt"


def template_accuracy(data: Path) -> float:
    """Template matching, train -> test: each class's mean spike time per channel (over the training samples
    where that channel spikes); a test sample goes to the class nearest on the channels it spikes on."""
    def read(split):
        raw = read_shd(data / f"shd_{split}.h5")
        x = np.full((len(raw.labels), raw.n_channels), np.nan)
        for i, (t, u) in enumerate(zip(raw.times, raw.units)):
            x[i, u] = t
        return x, np.asarray(raw.labels)

    (xa, ya), (xb, yb) = read("train"), read("test")
    classes = np.unique(ya)
    templates = np.stack([np.nanmean(xa[ya == c], axis=0) for c in classes])
    distance = np.nanmean((xb[:, None, :] - templates[None]) ** 2, axis=-1)
    return float(np.mean(classes[np.nanargmin(distance, axis=1)] == yb))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neurons", nargs="+", default=["qif", "lif"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="run directories (default: a temporary one)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="sparse_latency_"))
    data = write_latency_shd(out / "data")
    lines = [f"# spikeode train --data shd:DIR --epochs {args.epochs} on write_latency_shd's defaults (10 classes, "
             f"60 of 700 channels, 16-42 spikes per sample, 1400 train / 400 test), 2 CPU cores, float32; "
             f"template-matching reference {template_accuracy(data):.3f}",
             "| neuron | seed | epochs | test accuracy (real spikes) | with pseudospikes | silent outputs | wall s |",
             "|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for neuron in args.neurons:
        for seed in args.seeds:
            run = out / f"{neuron}_seed{seed}"
            command = [sys.executable, "-m", "spikeode.cli", "train", "--neuron", neuron, "--data", f"shd:{data}",
                       "--epochs", str(args.epochs), "--seed", str(seed), "--out", str(run)]
            t0 = time.perf_counter()
            subprocess.run(command, check=True)
            wall = time.perf_counter() - t0
            with xr.open_dataset(run / "run.nc") as ds:
                row = (f"| {neuron} | {seed} | {args.epochs} | {float(ds.test_accuracy[-1]):.3f} | "
                       f"{float(ds.test_accuracy_pseudo[-1]):.3f} | {float(ds.output_silent_sample_fraction[-1]):.3f} "
                       f"| {wall:.0f} |")
            lines.append(row)
            print(row, flush=True)
    args.results.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
