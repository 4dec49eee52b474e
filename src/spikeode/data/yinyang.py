"""The Yin-Yang data set (Kriener, Göltz & Petrovici 2021, arXiv:2102.08211), latency-encoded.

Points ``(x, y)`` are drawn uniformly in the big circle of radius ``r_big = 0.5`` centred at
``(0.5, 0.5)``; the two small circles (radius ``r_small = 0.1``, centred at ``(0.25, 0.5)`` and
``(0.75, 0.5)``) are class 2 (``dot``), the rest of the disc is split into two interlocking halves,
classes 0 and 1, by the published rule (:func:`yinyang_class`). Labels follow the published code, whose
names are ``("yin", "yang", "dot")`` and whose label is ``int(is_yin)`` outside the dots -- so the
region of its ``is_yin`` criterion (upper half, ring around the left dot) carries label 1.

As in the published generator, each sample first draws its goal class uniformly
(``RandomState.randint(3)``) and then rejection-samples points until one of that class appears, so the
classes are balanced in expectation although the dots cover only 8 % of the disc. The splits use the
published sizes and seeds (train 5000 / seed 42, validation 1000 / seed 41, test 1000 / seed 40) and
the same legacy ``numpy.random.RandomState`` call sequence, so they should reproduce the published
points (not checked against a published file here).

Encoding (one spike per channel, 5 channels, published feature order):

    channel 0..3: x, y, 1 - x, 1 - y   ->  t = t_early + value * (t_late - t_early)
    channel 4:    bias spike at t_bias

Defaults ``t_early = 0.1``, ``t_late = 1.0``, ``t_bias = 0.0`` in dimensionless engine units (membrane
time constant 1), a trial of ``T = 2.0``: the analogue of Göltz et al.'s ``[0.15, 2] ms`` window with
``tau_mem`` of a few ms, leaving time after the last input for the output spikes.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int

from spikeode.spikes import Spikes, spikes_from_lists

__all__ = [
    "CLASS_NAMES",
    "SPLITS",
    "encode_latency",
    "sample_points",
    "yinyang_class",
    "yinyang_spikes",
]

R_SMALL = 0.1
R_BIG = 0.5
CLASS_NAMES = ("yin", "yang", "dot")
SPLITS = {"train": (5000, 42), "validation": (1000, 41), "test": (1000, 40)}  # size, published seed
N_CHANNELS = 5
#: The default latency code (dimensionless engine units): inputs spike in ``[T_EARLY, T_LATE]`` (+ bias).
T_EARLY, T_LATE = 0.1, 1.0


def yinyang_class(
    x: Float[np.ndarray, " n"], y: Float[np.ndarray, " n"], *, r_small: float = R_SMALL, r_big: float = R_BIG
) -> Int[np.ndarray, " n"]:
    """Class of points inside the big circle: 2 dot, else 1 where ``is_yin`` holds, else 0.

    ``is_yin`` (the published criterion, with the eyes at ``(r_big/2, r_big)`` "left" and
    ``(3 r_big/2, r_big)`` "right"): within ``r_small`` of the right eye, or between ``r_small`` and
    ``r_big/2`` from the left eye, or in the upper half (``y > r_big``) farther than ``r_big/2``
    from the right eye. A point within ``r_small`` of either eye is a dot (2).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    yin = (
        (d_right <= r_small)
        | ((d_left > r_small) & (d_left <= 0.5 * r_big))
        | ((y > r_big) & (d_right > 0.5 * r_big))
    )
    dot = (d_right < r_small) | (d_left < r_small)
    return np.where(dot, 2, yin.astype(np.int64))


def sample_points(
    size: int, seed: int, *, r_small: float = R_SMALL, r_big: float = R_BIG
) -> tuple[Float[np.ndarray, "n 2"], Int[np.ndarray, " n"]]:
    """``size`` points and labels by class-balanced rejection sampling (the published procedure).

    Returns:
        ``(points, labels)``: coordinates in ``[0, 2 r_big]^2`` and classes 0/1/2.
    """
    rng = np.random.RandomState(seed)
    points, labels = np.empty((size, 2)), np.empty(size, dtype=np.int64)
    for i in range(size):
        goal = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2.0 * r_big
            if np.hypot(x - r_big, y - r_big) > r_big:
                continue
            if yinyang_class(x, y, r_small=r_small, r_big=r_big) == goal:
                break
        points[i], labels[i] = (x, y), goal
    return points, labels


def encode_latency(
    points: Float[np.ndarray, "n 2"],
    *,
    t_early: float = T_EARLY,
    t_late: float = T_LATE,
    t_bias: float = 0.0,
    r_big: float = R_BIG,
) -> Float[np.ndarray, "n 5"]:
    """Spike time of each of the 5 channels: ``(x, y, 1-x, 1-y)`` latency-coded, then the bias.

    Coordinates are first divided by ``2 r_big`` so the values lie in ``[0, 1]``.
    """
    if not 0 <= t_early < t_late:
        raise ValueError(f"need 0 <= t_early < t_late, got {t_early}, {t_late}")
    if t_bias < 0:
        raise ValueError(f"t_bias must be >= 0, got {t_bias}")
    v = np.asarray(points, dtype=np.float64) / (2.0 * r_big)
    values = np.concatenate([v, 1.0 - v], axis=1)
    times = t_early + values * (t_late - t_early)
    return np.concatenate([times, np.full((len(v), 1), float(t_bias))], axis=1)


def yinyang_spikes(
    split: str,
    *,
    t_early: float = T_EARLY,
    t_late: float = T_LATE,
    t_bias: float = 0.0,
    dtype=np.float64,
) -> tuple[Spikes, Int[np.ndarray, " n"], Float[np.ndarray, "n 2"]]:
    """The published ``split`` (``train``/``validation``/``test``) as 5-channel ``Spikes``.

    Returns:
        ``(spikes, labels, points)``.
    """
    if split not in SPLITS:
        raise ValueError(f"Yin-Yang split must be one of {', '.join(SPLITS)}, got {split!r}")
    size, seed = SPLITS[split]
    points, labels = sample_points(size, seed)
    times = encode_latency(points, t_early=t_early, t_late=t_late, t_bias=t_bias)
    channels = np.arange(N_CHANNELS)
    spikes = spikes_from_lists(list(times), [channels] * len(times), N_CHANNELS, dtype=dtype)
    return spikes, labels, points
