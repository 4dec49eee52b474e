"""A sparse latency code in the SHD layout: tens of input spikes per sample, read by the real SHD reader.

Each class has its own latency on each of ``n_active`` channels (a random subset of ``n_channels``,
shared by the classes). A sample of class ``c`` spikes once on a random subset of those channels
(between ``spikes[0]`` and ``spikes[1]`` of them), each at the class's latency plus Gaussian ``jitter``
(times in seconds, clipped at 0, within ``[0, 1]`` before the jitter). Only the timing carries the
class: which channels spike is random, so counts per channel say nothing.

It is the sparse regime of real latency-coded data (Yin-Yang, MNIST latency codes) that the SHD-sized
synthetic set never reaches: most neurons see a handful of inputs, and a network must learn to spike at
all. ``benchmarks/sparse_latency.py`` trains on it; the tests use a small copy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeode.data.synthetic import write_shd_file


def write_latency_shd(directory: str | Path, *, n_classes: int = 10, n_channels: int = 700, n_active: int = 60,
                      spikes: tuple[int, int] = (16, 42), n_train: int = 1400, n_test: int = 400,
                      jitter: float = 0.02, seed: int = 0) -> Path:
    """Write ``shd_train.h5`` and ``shd_test.h5`` of the sparse latency code into ``directory``.

    Labels cycle through the classes (balanced); every draw comes from one generator seeded by ``seed``.
    """
    lo, hi = spikes
    if not 1 <= lo <= hi <= n_active <= n_channels:
        raise ValueError(f"need 1 <= spikes[0] <= spikes[1] <= n_active <= n_channels, got spikes={spikes}, "
                         f"n_active={n_active}, n_channels={n_channels}")
    rng = np.random.default_rng(seed)
    active = rng.choice(n_channels, n_active, replace=False)
    latency = rng.uniform(0.0, 1.0, (n_classes, n_active))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = (np.arange(n) % n_classes).astype(np.uint8)
        times, units = [], []
        for c in labels:
            which = rng.choice(n_active, rng.integers(lo, hi + 1), replace=False)
            t = np.clip(latency[c, which] + jitter * rng.standard_normal(which.size), 0.0, None)
            order = np.argsort(t)
            times.append(t[order])
            units.append(active[which][order])
        write_shd_file(directory / f"shd_{split}.h5", times, units, labels, np.zeros(n, np.uint8),
                       class_names=[f"class{k}" for k in range(n_classes)], times_dtype=np.float32)
    return directory
