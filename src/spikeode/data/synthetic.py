"""Synthetic SHD: a seeded generator of SHD-format files with SHD-like statistics.

The files have exactly the layout of the real ``shd_train.h5`` / ``shd_test.h5`` (see
:mod:`spikeode.data.shd`): variable-length float16 times in seconds, variable-length uint16 units,
uint8 labels, ``extra/speaker``, ``extra/keys`` and ``extra/meta_info``; so the real reader is what
every synthetic run exercises.

The model of a spoken word (a caricature of a cochleagram, not of speech):

* each of the 20 classes has a template: a sequence of 2-4 segments in normalised word time, each
  *voiced* (three formant-like tracks sweeping linearly across channels), *fricative* (a broad band in
  the high channels) or a short broadband *burst*; a word lasts 0.5-0.75 s plus silences;
* some class pairs (``CONFUSABLE_PAIRS``) use the same segments in reverse order with reversed
  sweeps and one slightly moved formant, so their spike counts per channel are nearly equal and only
  the temporal order separates them -- counts alone do not solve the task;
* each of 12 speakers has a channel shift and scale (vocal-tract size), a tempo and a loudness;
  every utterance adds its own time warp ``tau -> tau**gamma``, tempo and formant offsets, timing
  jitter (2 ms), per-spike channel noise and uniform background spikes;
* speakers ``HELD_OUT_SPEAKERS`` appear only in the test set (as in SHD, where 2 of 12 do).

Spike counts are ~2,000-5,000 per sample, below real SHD's ~4,000-12,000 to keep generation fast;
training caps the count at ``k_in`` (1000 by default) anyway.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .shd import N_CHANNELS, N_CLASSES

__all__ = [
    "CLASS_NAMES",
    "CONFUSABLE_PAIRS",
    "DEFAULT_N_TEST",
    "DEFAULT_N_TRAIN",
    "GENERATOR_VERSION",
    "HELD_OUT_SPEAKERS",
    "default_cache_dir",
    "ensure_synthetic",
    "generate_split",
    "write_shd_file",
    "write_synthetic",
]

GENERATOR_VERSION = 1
DEFAULT_N_TRAIN = 2000
DEFAULT_N_TEST = 600
CLASS_NAMES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "null", "eins", "zwei", "drei", "vier", "fuenf", "sechs", "sieben", "acht", "neun",
)  # fmt: skip
CONFUSABLE_PAIRS = ((1, 12), (4, 15), (7, 18), (8, 11), (2, 16))
N_SPEAKERS = 12
HELD_OUT_SPEAKERS = (4, 5)
HELD_OUT_TEST_SHARE = 0.4  # share of test samples spoken by the held-out speakers

_FORMANT_BANDS = ((40, 230), (230, 460), (440, 660))  # channel ranges of the three tracks
_PIVOT = N_CHANNELS / 2  # speaker channel scaling is about the middle channel
_BACKGROUND_RATE = 300.0  # uniform background spikes per second
_SPLIT_IDS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class _Segment:
    """One part of a word template (normalised word time ``[start, stop)``)."""

    kind: str  # "voiced" | "fricative" | "burst"
    start: float
    stop: float
    tracks: np.ndarray  # (n_tracks, 2) start/end channel of each track
    widths: np.ndarray  # (n_tracks,) channel spread (std) of each track
    rates: np.ndarray  # (n_tracks,) spikes per second of each track

    def reversed(self) -> _Segment:
        return _Segment(self.kind, 1 - self.stop, 1 - self.start, self.tracks[:, ::-1], self.widths, self.rates)


@dataclass(frozen=True)
class _Template:
    duration: float  # seconds, before speaker tempo
    segments: tuple[_Segment, ...]


def _random_segment(kind: str, start: float, stop: float, rng: np.random.Generator) -> _Segment:
    if kind == "voiced":
        tracks = np.array([rng.uniform(lo, hi, size=2) for lo, hi in _FORMANT_BANDS])
        return _Segment(kind, start, stop, tracks, rng.uniform(6, 12, 3), rng.uniform(1300, 2200, 3))
    if kind == "fricative":
        centre = rng.uniform(520, 660)
        return _Segment(kind, start, stop, np.array([[centre, centre]]), rng.uniform(30, 60, 1),
                        rng.uniform(1800, 2800, 1))  # fmt: skip
    centre = rng.uniform(250, 450)  # burst: broadband
    return _Segment(kind, start, stop, np.array([[centre, centre]]), np.array([180.0]), np.array([9000.0]))


def _random_template(rng: np.random.Generator) -> _Template:
    n = int(rng.integers(2, 5))
    kinds = ["voiced" if rng.random() < 0.7 else "fricative" for _ in range(n)]
    kinds[int(rng.integers(n))] = "voiced"  # every word has a vowel
    edges = np.concatenate([[0.0], np.cumsum(rng.dirichlet(np.full(n, 3.0)))])
    segments = [_random_segment(k, a, b, rng) for k, a, b in zip(kinds, edges[:-1], edges[1:])]
    if rng.random() < 0.4:  # plosive onset
        segments.insert(0, _random_segment("burst", 0.0, 0.05, rng))
    return _Template(float(rng.uniform(0.5, 0.75)), tuple(segments))


def _confusable(template: _Template, rng: np.random.Generator) -> _Template:
    """The template played backwards, one voiced formant track moved by 10-20 channels."""
    segments = [s.reversed() for s in reversed(template.segments)]
    voiced = [i for i, s in enumerate(segments) if s.kind == "voiced"]
    i = voiced[int(rng.integers(len(voiced)))]
    tracks = segments[i].tracks.copy()
    tracks[int(rng.integers(3))] += rng.choice([-1, 1]) * rng.uniform(10, 20)
    seg = segments[i]
    segments[i] = _Segment(seg.kind, seg.start, seg.stop, tracks, seg.widths, seg.rates)
    return _Template(template.duration, tuple(segments))


def _templates(seed: int) -> list[_Template]:
    rng = np.random.default_rng([seed, 101])
    templates = [_random_template(rng) for _ in range(N_CLASSES)]
    for a, b in CONFUSABLE_PAIRS:
        templates[b] = _confusable(templates[a], rng)
    return templates


@dataclass(frozen=True)
class _Speaker:
    shift: float  # channels
    scale: float  # channel scaling about _PIVOT
    tempo: float  # duration factor
    loudness: float  # rate factor


def _speakers(seed: int) -> list[_Speaker]:
    rng = np.random.default_rng([seed, 202])
    return [
        _Speaker(rng.normal(0, 12), rng.uniform(0.93, 1.07), rng.uniform(0.85, 1.15), rng.uniform(0.8, 1.2))
        for _ in range(N_SPEAKERS)
    ]


def _utterance(
    template: _Template, speaker: _Speaker, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (s, ascending) and channels of one spoken word."""
    duration = template.duration * speaker.tempo * rng.uniform(0.92, 1.08)
    onset, tail = rng.uniform(0.02, 0.08), rng.uniform(0.03, 0.12)
    gamma = np.exp(rng.normal(0, 0.12))  # per-utterance time warp
    times, chans = [], []
    for seg in template.segments:
        length = seg.stop - seg.start
        counts = rng.poisson(seg.rates * speaker.loudness * duration * length)
        for (a, b), width, n in zip(seg.tracks, seg.widths, counts):
            tau = rng.uniform(0, 1, n)
            centre = a + (b - a) * tau + rng.normal(0, 4)  # per-utterance formant offset
            times.append(onset + duration * (seg.start + length * tau) ** gamma)
            chans.append(centre + rng.normal(0, width, n))
    total = onset + duration + tail
    n_bg = rng.poisson(_BACKGROUND_RATE * total)
    t = np.concatenate(times)
    c = _PIVOT + speaker.scale * (np.concatenate(chans) - _PIVOT) + speaker.shift
    t = np.concatenate([t + rng.normal(0, 0.002, t.size), rng.uniform(0, total, n_bg)])
    c = np.concatenate([np.rint(c), rng.integers(0, N_CHANNELS, n_bg)])
    keep = (c >= 0) & (c < N_CHANNELS)
    t, c = np.maximum(t[keep], 0.0), c[keep]
    order = np.argsort(t, kind="stable")
    return t[order], c[order].astype(np.uint16)


def generate_split(
    split: str, n: int, *, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Generate one split in memory.

    Args:
        split: ``"train"`` (speakers other than ``HELD_OUT_SPEAKERS``) or ``"test"`` (a share
            ``HELD_OUT_TEST_SHARE`` from the held-out speakers, the rest from the others).
        n: number of samples; classes are balanced (``n // 20`` or one more each).
        seed: the templates and speakers depend on ``seed`` only (the same in both splits);
            every sample is seeded by ``(seed, split, index)``.

    Returns:
        times (float64 seconds), units (uint16), labels (uint8), speakers (uint8).
    """
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    templates, speakers = _templates(seed), _speakers(seed)
    rng = np.random.default_rng([seed, 303, _SPLIT_IDS[split]])
    labels = rng.permutation(np.arange(n) % N_CLASSES).astype(np.uint8)
    seen = [s for s in range(N_SPEAKERS) if s not in HELD_OUT_SPEAKERS]
    who = rng.choice(seen, size=n)
    if split == "test":
        held = rng.random(n) < HELD_OUT_TEST_SHARE
        who[held] = rng.choice(HELD_OUT_SPEAKERS, size=int(held.sum()))
    times, units = [], []
    for i, (label, s) in enumerate(zip(labels, who)):
        t, u = _utterance(templates[label], speakers[s], np.random.default_rng([seed, _SPLIT_IDS[split], i]))
        times.append(t)
        units.append(u)
    return times, units, labels, who.astype(np.uint8)


def write_shd_file(
    path: str | Path,
    times: Sequence[np.ndarray],
    units: Sequence[np.ndarray],
    labels: np.ndarray,
    speakers: np.ndarray,
    *,
    class_names: Sequence[str] = CLASS_NAMES,
    meta_info: dict[str, np.ndarray] | None = None,
    times_dtype=np.float16,
    units_dtype=np.uint16,
    compression: str | None = None,
) -> None:
    """Write samples in the SHD layout (``spikes/times``, ``spikes/units``, ``labels``, ``extra/...``).

    Times are stored as variable-length ``times_dtype`` seconds (float16 like the real files, which
    rounds to ~0.5 ms near 1 s), units as variable-length ``units_dtype``.
    """

    def vlen(values: Sequence[np.ndarray], dtype) -> np.ndarray:
        out = np.empty(len(values), dtype=object)
        out[:] = [np.asarray(v, dtype=dtype) for v in values]
        return out

    with h5py.File(path, "w") as f:
        for key, values, dtype in (("spikes/times", times, times_dtype), ("spikes/units", units, units_dtype)):
            ds = f.create_dataset(key, (len(values),), dtype=h5py.vlen_dtype(dtype), compression=compression)
            ds[...] = vlen(values, dtype)
        f.create_dataset("labels", data=np.asarray(labels))
        f.create_dataset("extra/speaker", data=np.asarray(speakers))
        f.create_dataset("extra/keys", data=np.array([k.encode() for k in class_names]))
        for key, values in (meta_info or {}).items():
            f.create_dataset(f"extra/meta_info/{key}", data=values)


def _meta_info(seed: int) -> dict[str, np.ndarray]:
    """Per-speaker metadata (indexed by speaker id), as in ``extra/meta_info`` of SHD."""
    rng = np.random.default_rng([seed, 404])
    return {
        "gender": np.array([b"female", b"male"])[rng.integers(0, 2, N_SPEAKERS)],
        "age": rng.integers(20, 60, N_SPEAKERS).astype(np.uint8),
        "body_height": rng.integers(155, 195, N_SPEAKERS).astype(np.uint8),
    }


def write_synthetic(directory: str | Path, *, n_train: int, n_test: int, seed: int = 0) -> Path:
    """Generate ``shd_train.h5`` and ``shd_test.h5`` (and ``generator.json``) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        times, units, labels, speakers = generate_split(split, n, seed=seed)
        write_shd_file(directory / f"shd_{split}.h5", times, units, labels, speakers, meta_info=_meta_info(seed))
    (directory / "generator.json").write_text(json.dumps(_params(n_train, n_test, seed), indent=1))
    return directory


def _params(n_train: int, n_test: int, seed: int) -> dict:
    return {"generator": "spikeode.data.synthetic", "version": GENERATOR_VERSION,
            "n_train": n_train, "n_test": n_test, "seed": seed}  # fmt: skip


def default_cache_dir() -> Path:
    """``$SPIKEODE_CACHE`` if set, else ``~/.cache/spikeode``."""
    return Path(os.environ.get("SPIKEODE_CACHE") or Path.home() / ".cache" / "spikeode")


def ensure_synthetic(
    cache_dir: str | Path | None = None,
    *,
    n_train: int = DEFAULT_N_TRAIN,
    n_test: int = DEFAULT_N_TEST,
    seed: int = 0,
) -> Path:
    """The directory of the synthetic set with these parameters, generated on first use.

    The folder ``synthetic-v{GENERATOR_VERSION}-train{n_train}-test{n_test}-seed{seed}`` under
    ``cache_dir`` (default :func:`default_cache_dir`) is generated into a temporary sibling and
    renamed into place, so a killed generation never leaves a partial folder that would be reused;
    concurrent first uses each generate and the first rename wins.
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train}, {n_test}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"synthetic-v{GENERATOR_VERSION}-train{n_train}-test{n_test}-seed{seed}"
    if all((target / f"shd_{s}.h5").is_file() for s in ("train", "test")):
        return target
    if target.exists():  # not ours to trust: no generation leaves this behind
        raise RuntimeError(f"{target}: incomplete synthetic data folder; delete it to regenerate")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}.tmp-"))
    try:
        write_synthetic(tmp, n_train=n_train, n_test=n_test, seed=seed)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first
            if not target.exists():
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
