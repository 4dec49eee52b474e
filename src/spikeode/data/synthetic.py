"""Synthetic SHD: a seeded generator of SHD-format files with SHD-like statistics.

The files have exactly the layout of the real ``shd_train.h5`` / ``shd_test.h5`` (see
:mod:`spikeode.data.shd`): variable-length float16 times in seconds, variable-length uint16 units,
uint8 labels, ``extra/speaker``, ``extra/keys`` and ``extra/meta_info``; so the real reader is what
every synthetic run exercises.

The model of a spoken word (a caricature of a cochleagram, not of speech):

* a pool of 15 shared sound prototypes: *voiced* (three formant-like tracks sweeping linearly across
  channels), *fricative* (a broad band in the high channels) and short broadband *bursts*;
* each of the 20 classes is a sequence of 2-4 prototypes (its own slightly moved copies, its own
  relative lengths), sometimes after a burst; a word lasts 0.5-0.75 s plus 0.05-0.27 s of silences;
* some class pairs (``CONFUSABLE_PAIRS``) use the same segments in reverse order with reversed
  sweeps and one slightly moved formant, so their spike counts per channel are nearly equal and only
  the temporal order separates them -- counts alone do not solve the task;
* each of 12 speakers has a channel shift and scale (vocal-tract size), a tempo and a loudness;
  every utterance adds its own tempo, segment lengths, time warp ``tau -> tau**gamma``, formant
  offsets, onset, timing jitter (2 ms), per-spike channel noise and uniform background spikes;
* speakers ``HELD_OUT_SPEAKERS`` appear only in the test set (as in SHD, where 2 of 12 do).

Difficulty (``--data synthetic:<difficulty>``, ``DIFFICULTIES``): every speaker and utterance variation
above (channel shift and scale, tempo, loudness, segment lengths, time warp, onset and tail, formant
offsets, jitter, background rate) is multiplied by the difficulty's factor (ranges shrink about their
middle); the 20 words themselves, confusable pairs included, are the same at every difficulty.
``standard`` (factor 1) is the set described here. A ridge classifier on log per-channel spike counts
(standardised, one time bin; 2,000 train / 600 test, seed 0) reaches 29 % test accuracy on ``standard``,
65 % on ``easy`` (factor 0.5) and 88 % on ``easier`` (0.25); with 4 time bins 76 %, 99 % and 100 %.

Spike counts are ~1,500-6,000 per sample (mean ~3,700), below real SHD's ~4,000-12,000 to keep
generation and files small; training caps the count at ``k_in`` (1000 by default) anyway. With the
default seed a ridge classifier on per-channel spike counts reaches ~30-40 % test accuracy (chance
5 %), on counts in 4 time bins ~90 % (held-out speakers ~85 %).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import h5py
import numpy as np

from spikeode.data.shd import N_CHANNELS, N_CLASSES

__all__ = [
    "CLASS_NAMES",
    "CONFUSABLE_PAIRS",
    "DEFAULT_N_TEST",
    "DIFFICULTIES",
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
_SPLIT_IDS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class _Variation:
    """How much words vary between classes, speakers and utterances (fixed per generator version)."""

    template_spread: float = 8.0  # channels: a class's copy of a shared sound prototype
    speaker_shift: float = 20.0  # channels (std)
    speaker_scale: tuple[float, float] = (0.9, 1.1)  # channel scaling about _PIVOT
    speaker_tempo: tuple[float, float] = (0.85, 1.15)
    speaker_loudness: tuple[float, float] = (0.8, 1.2)
    tempo: tuple[float, float] = (0.9, 1.1)  # per utterance
    segment_spread: float = 0.25  # per-utterance log-normal change of each segment's length
    warp: float = 0.2  # std of log(gamma) of the warp tau -> tau**gamma
    onset: tuple[float, float] = (0.02, 0.15)  # seconds of silence before the word
    tail: tuple[float, float] = (0.03, 0.12)  # seconds after it
    formant_offset: float = 8.0  # channels (std), per utterance and track
    jitter: float = 0.002  # seconds (std), per spike
    background_rate: float = 400.0  # uniform background spikes per second


_VARIATION = _Variation()
#: ``synthetic:<difficulty>`` -> factor on every speaker and utterance variation (module docstring)
DIFFICULTIES = {"standard": 1.0, "easy": 0.5, "easier": 0.25}


def _variation(difficulty: str) -> _Variation:
    """``_VARIATION`` with every speaker and utterance spread times the difficulty's factor."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown synthetic difficulty {difficulty!r}: use one of {sorted(DIFFICULTIES)}")
    k = DIFFICULTIES[difficulty]
    if k == 1.0:
        return _VARIATION  # bit-identical to the set generated before difficulties existed

    def scale(x):
        if isinstance(x, tuple):
            mid = 0.5 * (x[0] + x[1])
            return (mid - k * (mid - x[0]), mid + k * (x[1] - mid))
        return k * x

    return replace(_VARIATION, **{f.name: scale(getattr(_VARIATION, f.name)) for f in fields(_VARIATION)
                                  if f.name != "template_spread"})  # the words themselves stay


@dataclass(frozen=True)
class _Segment:
    """One part of a word: ``length`` is its relative duration; segments play one after another."""

    kind: str  # "voiced" | "fricative" | "burst"
    length: float
    tracks: np.ndarray  # (n_tracks, 2) start and end channel of each track
    widths: np.ndarray  # (n_tracks,) channel spread (std) of each track
    rates: np.ndarray  # (n_tracks,) spikes per second of each track


@dataclass(frozen=True)
class _Template:
    duration: float  # seconds, before speaker and utterance tempo
    segments: tuple[_Segment, ...]


def _random_segment(kind: str, rng: np.random.Generator) -> _Segment:
    if kind == "voiced":
        tracks = np.array([rng.uniform(lo, hi, size=2) for lo, hi in _FORMANT_BANDS])
        return _Segment(kind, 1.0, tracks, rng.uniform(6, 12, 3), rng.uniform(1300, 2200, 3))
    centre = np.full((1, 2), rng.uniform(520, 660) if kind == "fricative" else rng.uniform(250, 450))
    if kind == "fricative":  # a broad high band
        return _Segment(kind, 1.0, centre, rng.uniform(30, 60, 1), rng.uniform(1800, 2800, 1))
    return _Segment(kind, 0.05, centre, np.array([180.0]), np.array([9000.0]))  # broadband burst


def _segment_pool(rng: np.random.Generator) -> list[_Segment]:
    """Shared sound prototypes: words differ by which ones they use, in which order."""
    return [_random_segment(kind, rng) for kind in ["voiced"] * 9 + ["fricative"] * 4 + ["burst"] * 2]


def _variant(proto: _Segment, length: float, rng: np.random.Generator) -> _Segment:
    """A class's own copy of a shared prototype: its own length, tracks moved a little."""
    tracks = proto.tracks + rng.normal(0, _VARIATION.template_spread, proto.tracks.shape)
    return replace(proto, length=float(length), tracks=tracks)


def _random_template(pool: list[_Segment], rng: np.random.Generator) -> _Template:
    of_kind = {k: [s for s in pool if s.kind == k] for k in ("voiced", "fricative", "burst")}
    n = int(rng.integers(2, 5))
    picks = [of_kind["voiced" if rng.random() < 0.7 else "fricative"] for _ in range(n)]
    picks[int(rng.integers(n))] = of_kind["voiced"]  # every word has a vowel
    lengths = rng.dirichlet(np.full(n, 3.0))
    segments = [_variant(group[int(rng.integers(len(group)))], ln, rng) for group, ln in zip(picks, lengths)]
    if rng.random() < 0.4:  # plosive onset
        segments.insert(0, of_kind["burst"][int(rng.integers(2))])
    return _Template(float(rng.uniform(0.5, 0.75)), tuple(segments))


def _confusable(template: _Template, rng: np.random.Generator) -> _Template:
    """The template played backwards (reversed sweeps), one voiced track moved by 10-20 channels."""
    segments = [replace(s, tracks=s.tracks[:, ::-1]) for s in reversed(template.segments)]
    i = int(rng.choice([j for j, s in enumerate(segments) if s.kind == "voiced"]))
    tracks = segments[i].tracks.copy()
    tracks[int(rng.integers(3))] += rng.choice([-1, 1]) * rng.uniform(10, 20)
    segments[i] = replace(segments[i], tracks=tracks)
    return _Template(template.duration, tuple(segments))


def _templates(seed: int) -> list[_Template]:
    rng = np.random.default_rng([seed, 101])
    pool = _segment_pool(rng)
    templates = [_random_template(pool, rng) for _ in range(N_CLASSES)]
    for a, b in CONFUSABLE_PAIRS:
        templates[b] = _confusable(templates[a], rng)
    return templates


@dataclass(frozen=True)
class _Speaker:
    shift: float  # channels
    scale: float  # channel scaling about _PIVOT
    tempo: float  # duration factor
    loudness: float  # rate factor


def _speakers(seed: int, v: _Variation) -> list[_Speaker]:
    rng = np.random.default_rng([seed, 202])
    return [
        _Speaker(
            rng.normal(0, v.speaker_shift),
            rng.uniform(*v.speaker_scale),
            rng.uniform(*v.speaker_tempo),
            rng.uniform(*v.speaker_loudness),
        )
        for _ in range(N_SPEAKERS)
    ]


def _utterance(
    template: _Template, speaker: _Speaker, rng: np.random.Generator, v: _Variation
) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (s, ascending) and channels of one spoken word."""
    duration = template.duration * speaker.tempo * rng.uniform(*v.tempo)
    onset, tail = rng.uniform(*v.onset), rng.uniform(*v.tail)
    gamma = np.exp(rng.normal(0, v.warp))
    lengths = np.array([s.length for s in template.segments])
    lengths *= np.exp(rng.normal(0, v.segment_spread, lengths.size))
    starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]]) / lengths.sum()
    lengths /= lengths.sum()
    times, chans = [], []
    for seg, start, length in zip(template.segments, starts, lengths):
        counts = rng.poisson(seg.rates * speaker.loudness * duration * length)
        for (a, b), width, n in zip(seg.tracks, seg.widths, counts):
            tau = rng.uniform(0, 1, n)
            centre = a + (b - a) * tau + rng.normal(0, v.formant_offset)
            times.append(onset + duration * (start + length * tau) ** gamma)
            chans.append(centre + rng.normal(0, width, n))
    total = onset + duration + tail
    n_bg = rng.poisson(v.background_rate * total)
    t = np.concatenate(times)
    c = _PIVOT + speaker.scale * (np.concatenate(chans) - _PIVOT) + speaker.shift
    t = np.concatenate([t + rng.normal(0, v.jitter, t.size), rng.uniform(0, total, n_bg)])
    c = np.concatenate([np.rint(c), rng.integers(0, N_CHANNELS, n_bg)])
    keep = (c >= 0) & (c < N_CHANNELS)
    t, c = np.maximum(t[keep], 0.0), c[keep]
    order = np.argsort(t, kind="stable")
    return t[order], c[order].astype(np.uint16)


def generate_split(
    split: str, n: int, *, seed: int = 0, difficulty: str = "standard"
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Generate one split in memory.

    Args:
        split: ``"train"`` (speakers other than ``HELD_OUT_SPEAKERS``) or ``"test"`` (a share
            ``HELD_OUT_TEST_SHARE`` from the held-out speakers, the rest from the others).
        n: number of samples; classes are balanced (``n // 20`` or one more each).
        seed: the templates and speakers depend on ``seed`` only (the same in both splits);
            every sample is seeded by ``(seed, split, index)``.
        difficulty: a key of ``DIFFICULTIES`` (module docstring).

    Returns:
        times (float64 seconds), units (uint16), labels (uint8), speakers (uint8).
    """
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    v = _variation(difficulty)
    templates, speakers = _templates(seed), _speakers(seed, v)
    rng = np.random.default_rng([seed, 303, _SPLIT_IDS[split]])
    labels = rng.permutation(np.arange(n) % N_CLASSES).astype(np.uint8)
    seen = [s for s in range(N_SPEAKERS) if s not in HELD_OUT_SPEAKERS]
    who = rng.choice(seen, size=n)
    if split == "test":
        held = rng.random(n) < HELD_OUT_TEST_SHARE
        who[held] = rng.choice(HELD_OUT_SPEAKERS, size=int(held.sum()))
    times, units = [], []
    for i, (label, s) in enumerate(zip(labels, who)):
        t, u = _utterance(templates[label], speakers[s], np.random.default_rng([seed, _SPLIT_IDS[split], i]), v)
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
    with h5py.File(path, "w") as f:
        for key, values, dtype in (
            ("spikes/times", times, times_dtype),
            ("spikes/units", units, units_dtype),
        ):
            ds = f.create_dataset(key, (len(values),), dtype=h5py.vlen_dtype(dtype), compression=compression)
            for i, v in enumerate(values):  # one by one: h5py reads equal lengths as a 2-D block
                ds[i] = np.asarray(v, dtype=dtype)
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


def write_synthetic(directory: str | Path, *, n_train: int, n_test: int, seed: int = 0,
                    difficulty: str = "standard") -> Path:
    """Generate ``shd_train.h5`` and ``shd_test.h5`` (and ``generator.json``) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        times, units, labels, speakers = generate_split(split, n, seed=seed, difficulty=difficulty)
        write_shd_file(
            directory / f"shd_{split}.h5", times, units, labels, speakers, meta_info=_meta_info(seed)
        )
    params = _params(n_train, n_test, seed, difficulty)
    (directory / "generator.json").write_text(json.dumps(params, indent=1))
    return directory


def _params(n_train: int, n_test: int, seed: int, difficulty: str) -> dict:
    return {"generator": "spikeode.data.synthetic", "version": GENERATOR_VERSION,
            "n_train": n_train, "n_test": n_test, "seed": seed, "difficulty": difficulty}  # fmt: skip


def default_cache_dir() -> Path:
    """``$SPIKEODE_CACHE`` if set, else ``~/.cache/spikeode``."""
    return Path(os.environ.get("SPIKEODE_CACHE") or Path.home() / ".cache" / "spikeode")


def ensure_synthetic(
    cache_dir: str | Path | None = None,
    *,
    n_train: int = DEFAULT_N_TRAIN,
    n_test: int = DEFAULT_N_TEST,
    seed: int = 0,
    difficulty: str = "standard",
) -> Path:
    """The directory of the synthetic set with these parameters, generated on first use.

    The folder ``synthetic-v{GENERATOR_VERSION}-train{n_train}-test{n_test}-seed{seed}`` (plus
    ``-{difficulty}`` unless ``standard``) under
    ``cache_dir`` (default :func:`default_cache_dir`) is generated into a temporary sibling and
    renamed into place, so a killed generation never leaves a partial folder that would be reused;
    concurrent first uses each generate and the first rename wins.
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train}, {n_test}")
    _variation(difficulty)  # an unknown difficulty fails before anything is written
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    suffix = "" if difficulty == "standard" else f"-{difficulty}"
    target = root / f"synthetic-v{GENERATOR_VERSION}-train{n_train}-test{n_test}-seed{seed}{suffix}"
    if all((target / f"shd_{s}.h5").is_file() for s in ("train", "test")):
        return target
    if target.exists():  # not ours to trust: no generation leaves this behind
        raise RuntimeError(f"{target}: incomplete synthetic data folder; delete it to regenerate")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}.tmp-"))
    try:
        write_synthetic(tmp, n_train=n_train, n_test=n_test, seed=seed, difficulty=difficulty)
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
