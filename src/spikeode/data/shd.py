"""Spiking Heidelberg Digits (SHD) files: a validating, chunked HDF5 reader and the preprocessing.

Layout (Cramer et al. 2020; the synthetic generator writes the same)::

    spikes/times   variable-length float per sample, seconds (any float dtype, e.g. float16)
    spikes/units   variable-length integer per sample, channel 0..699 (any numeric dtype, e.g. uint16)
    labels         class per sample (0-9 English digits, 10-19 German)
    extra/keys     class names                  (optional here: default "0".."19")
    extra/speaker  speaker per sample           (optional here: ``None``)
    extra/meta_info/{gender,age,body_height}    (not needed, not read)

Samples are read lazily in chunks of consecutive samples, any HDF5 chunking or compression.
Every sample is validated; a sample that cannot be used is an error naming file, key and sample index
(:class:`SHDFormatError`, a ``ValueError``) -- nothing is dropped silently.

Preprocessing (:class:`Preprocessing`, each step explicit and seeded), per sample in this order:

1. ``crop``: keep events with ``start <= t < stop`` seconds (off by default);
2. drop the first and the last ``drop_fraction`` of the events in time order (``floor(p*n)`` each
   side; default 5 %), then rescale the rest linearly so that the first kept event is at ``0`` and the
   last just below ``T`` (the largest float32 below ``T``, so times stay ``< T`` in float32 too);
3. ``k_in``: if more than ``k_in`` events remain, keep a uniformly random ``k_in`` of them (seeded by
   ``(seed, sample index in the file)``, so a sample's cap does not depend on which others are loaded);
   the removed count is reported; samples are padded to :func:`padded_width` events;
4. ``pool``: channel ``u -> u // pool`` (sums the spike trains of ``pool`` neighbouring channels),
   ``700 -> ceil(700 / pool)`` channels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
from jaxtyping import Float, Int

from spikeode.data.dataset import summarize
from spikeode.spikes import Spikes, spikes_from_lists

__all__ = [
    "N_CHANNELS",
    "N_CLASSES",
    "Preprocessing",
    "RawSamples",
    "SHDFile",
    "SHDFormatError",
    "cap_count",
    "crop_times",
    "file_statistics",
    "pool_units",
    "pooled_channels",
    "preprocess",
    "read_shd",
    "trim_and_rescale",
]

N_CHANNELS = 700
N_CLASSES = 20
_REQUIRED = ("spikes/times", "spikes/units", "labels")


class SHDFormatError(ValueError):
    """An SHD-format file that cannot be used as is (message names file, key and sample)."""


@dataclass(frozen=True, eq=False)
class RawSamples:
    """Samples as stored (times in seconds, float64; units int32), validated, not preprocessed."""

    times: list[Float[np.ndarray, " events"]]
    units: list[Int[np.ndarray, " events"]]
    labels: np.ndarray
    speakers: np.ndarray | None
    sample_ids: np.ndarray
    class_names: tuple[str, ...]
    n_channels: int
    path: Path

    def __len__(self) -> int:
        return len(self.labels)


class SHDFile:
    """An open SHD-format file: labels, speakers and class names read at once, spikes on demand.

    Use as a context manager (``with SHDFile(path) as f: raw = f.read(indices)``).

    Args:
        path: the ``.h5`` file.
        n_channels: valid units are ``0 .. n_channels-1`` (SHD: 700).

    Raises:
        FileNotFoundError: the file does not exist.
        SHDFormatError: not HDF5, a missing or malformed key, lengths that disagree, bad labels.
    """

    def __init__(self, path: str | Path, *, n_channels: int = N_CHANNELS):
        self.path = Path(path)
        self.n_channels = int(n_channels)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such file (expected an SHD HDF5 file)")
        if self.path.is_dir():
            raise SHDFormatError(f"{self.path}: is a directory, expected an SHD HDF5 file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise SHDFormatError(f"{self.path}: not a readable HDF5 file ({err})") from None
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> SHDFile:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self.labels)

    def _error(self, key: str, message: str) -> SHDFormatError:
        return SHDFormatError(f"{self.path}: {key}: {message}")

    def _dataset(self, key: str) -> h5py.Dataset:
        if key not in self._file:
            raise self._error(key, f"missing key (an SHD file holds {', '.join(_REQUIRED)})")
        node = self._file[key]
        if not isinstance(node, h5py.Dataset) or node.ndim != 1:
            raise self._error(key, "expected a 1-D dataset (one entry per sample)")
        return node

    def _vlen(self, key: str) -> h5py.Dataset:
        ds = self._dataset(key)
        base = h5py.check_vlen_dtype(ds.dtype)
        if base is None or not np.issubdtype(base, np.number):
            raise self._error(key, f"expected variable-length numbers per sample, found dtype {ds.dtype}")
        return ds

    def _read_header(self) -> None:
        self._times = self._vlen("spikes/times")
        self._units = self._vlen("spikes/units")
        n = len(self._times)
        if len(self._units) != n:
            raise self._error("spikes/units", f"{len(self._units)} samples but spikes/times has {n}")
        self.labels = self._integers("labels", n)
        self.class_names = self._class_names()
        self.n_classes = len(self.class_names)
        bad = np.flatnonzero((self.labels < 0) | (self.labels >= self.n_classes))
        if bad.size:
            i = int(bad[0])
            raise self._error("labels", f"sample {i}: label {self.labels[i]} outside [0, {self.n_classes})")
        self.speakers = self._integers("extra/speaker", n) if "extra/speaker" in self._file else None

    def _integers(self, key: str, n: int) -> np.ndarray:
        values = np.asarray(self._dataset(key)[()])
        if len(values) != n:
            raise self._error(key, f"{len(values)} entries but spikes/times has {n} samples")
        if not np.issubdtype(values.dtype, np.number):
            raise self._error(key, f"expected numbers, found dtype {values.dtype}")
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
        if bad.size:
            raise self._error(key, f"sample {int(bad[0])}: non-integer value {values[bad[0]]!r}")
        return values.astype(np.int64)

    def _class_names(self) -> tuple[str, ...]:
        if "extra/keys" not in self._file:
            return tuple(str(c) for c in range(N_CLASSES))
        keys = self._dataset("extra/keys")[()]
        return tuple(k.decode() if isinstance(k, bytes) else str(k) for k in keys)

    def iter_chunks(
        self, indices: np.ndarray | None = None, *, chunk_size: int = 1024
    ) -> Iterator[tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]]:
        """Read and validate samples ``indices`` (default all) in chunks of ``chunk_size``.

        Yields:
            ``(sample indices, times in seconds (float64), units (int32))`` per chunk, in ascending
            sample order.
        """
        idx = np.arange(len(self)) if indices is None else np.unique(np.asarray(indices, np.int64))
        if idx.size and (idx[0] < 0 or idx[-1] >= len(self)):
            raise IndexError(f"{self.path}: sample index outside [0, {len(self)})")
        for start in range(0, idx.size, chunk_size):
            chunk = idx[start : start + chunk_size]
            times, units = self._read_range(self._times, chunk), self._read_range(self._units, chunk)
            checked = [self._checked(i, t, u) for i, t, u in zip(chunk, times, units)]
            yield chunk, [t for t, _ in checked], [u for _, u in checked]

    @staticmethod
    def _read_range(ds: h5py.Dataset, chunk: np.ndarray) -> np.ndarray:
        if chunk[-1] - chunk[0] + 1 == chunk.size:  # consecutive: one hyperslab
            return ds[int(chunk[0]) : int(chunk[-1]) + 1]
        return ds[chunk]

    def _checked(self, i: int, t: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Validate one sample; return float64 times and int32 units."""
        if t.shape != u.shape:
            raise self._error(
                "spikes/units", f"sample {i}: {u.size} units but spikes/times has {t.size} times"
            )
        for kind, bad in (("NaN", np.isnan(t)), ("infinite", np.isinf(t)), ("negative", t < 0)):
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                raise self._error("spikes/times", f"sample {i}: {kind} time {t[j]!s} at event {j}")
        if u.size:
            if not np.issubdtype(u.dtype, np.integer):
                bad = np.flatnonzero(u != np.round(u))
                if bad.size:
                    j = int(bad[0])
                    raise self._error("spikes/units", f"sample {i}: non-integer unit {u[j]!r} at event {j}")
            bad = np.flatnonzero((u < 0) | (u >= self.n_channels))
            if bad.size:
                j = int(bad[0])
                raise self._error(
                    "spikes/units",
                    f"sample {i}: unit {u[j]} at event {j} outside [0, {self.n_channels})",
                )
        return t.astype(np.float64), u.astype(np.int32)

    def read(self, indices: np.ndarray | None = None, *, chunk_size: int = 1024) -> RawSamples:
        """Read samples ``indices`` (default all; returned in ascending order) into memory."""
        ids, times, units = [], [], []
        for chunk, t, u in self.iter_chunks(indices, chunk_size=chunk_size):
            ids.append(chunk)
            times += t
            units += u
        ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        return RawSamples(
            times=times,
            units=units,
            labels=self.labels[ids],
            speakers=None if self.speakers is None else self.speakers[ids],
            sample_ids=ids,
            class_names=self.class_names,
            n_channels=self.n_channels,
            path=self.path,
        )


def read_shd(path: str | Path, indices: np.ndarray | None = None, **kwargs) -> RawSamples:
    """Open, read samples ``indices`` (default all), close. See :class:`SHDFile`."""
    with SHDFile(path, **kwargs) as f:
        return f.read(indices)


def file_statistics(path: str | Path, *, n_channels: int = N_CHANNELS, chunk_size: int = 1024) -> dict:
    """Raw statistics (before preprocessing, durations in seconds) of a whole file, streamed."""
    counts, durations, channel_counts = [], [], np.zeros(n_channels, np.int64)
    with SHDFile(path, n_channels=n_channels) as f:
        for _, times, units in f.iter_chunks(chunk_size=chunk_size):
            counts += [t.size for t in times]
            durations += [t.max() if t.size else 0.0 for t in times]
            for u in units:
                channel_counts += np.bincount(u, minlength=n_channels)
        return summarize(
            np.asarray(counts),
            np.asarray(durations),
            channel_counts,
            f.labels,
            n_classes=f.n_classes,
            n_channels=n_channels,
            speakers=f.speakers,
            time_units="s",
        )


# --- preprocessing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocessing:
    """Options turning raw SHD-format samples into engine input (see the module docstring).

    Attributes:
        T: trial duration (dimensionless engine time); events are rescaled into ``[0, T)``.
        drop_fraction: share of events dropped at *each* end of a sample, in ``[0, 0.5)``.
        k_in: at most this many events per sample (seeded random removal); ``None``: no cap.
        pool: channel pooling factor (``1``: all 700 channels).
        crop: ``(start, stop)`` window in seconds applied first, or ``None``.
        seed: seed of the random removal (``>= 0``).
    """

    T: float = 2.0
    drop_fraction: float = 0.05
    k_in: int | None = 1000
    pool: int = 1
    crop: tuple[float, float] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.T) and self.T > 0):
            raise ValueError(f"T must be positive and finite, got {self.T}")
        if not 0.0 <= self.drop_fraction < 0.5:
            raise ValueError(f"drop_fraction must lie in [0, 0.5), got {self.drop_fraction}")
        if self.k_in is not None and self.k_in < 1:
            raise ValueError(f"k_in must be >= 1 or None (no cap), got {self.k_in}")
        if self.pool < 1:
            raise ValueError(f"pool must be >= 1, got {self.pool}")
        if self.crop is not None and not 0 <= self.crop[0] < self.crop[1]:
            raise ValueError(f"crop must be (start, stop) with 0 <= start < stop, got {self.crop}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["crop"] = None if self.crop is None else list(self.crop)
        return d


def crop_times(
    times: np.ndarray, units: np.ndarray, start: float, stop: float
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the events with ``start <= t < stop`` (times unchanged)."""
    keep = (times >= start) & (times < stop)
    return times[keep], units[keep]


def trim_and_rescale(
    times: np.ndarray, units: np.ndarray, drop_fraction: float, T: float
) -> tuple[np.ndarray, np.ndarray]:
    """Drop ``floor(drop_fraction * n)`` events at each end (time order), rescale the rest to ``[0, T)``.

    The first kept event goes to ``0``, the last to the largest float32 below ``T``, linearly in
    between; a sample whose kept events all share one time maps them to ``0``.

    Returns:
        times (float64, ascending) and units, ``n - 2 floor(drop_fraction n)`` events.
    """
    order = np.argsort(times, kind="stable")
    k = math.floor(drop_fraction * times.size)
    keep = order[k : times.size - k]
    t, u = times[keep].astype(np.float64), units[keep]
    if t.size == 0:
        return t, u
    span = t[-1] - t[0]
    top = float(np.nextafter(np.float32(T), np.float32(0)))
    scaled = (t - t[0]) * (top / span) if span > 0 else np.zeros_like(t)
    return np.minimum(scaled, top), u


def cap_count(
    times: np.ndarray, units: np.ndarray, k_in: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep a uniformly random ``k_in`` of the events (order preserved) if there are more.

    Returns:
        times, units, and the number of removed events.
    """
    if k_in is None or times.size <= k_in:
        return times, units, 0
    keep = np.sort(rng.choice(times.size, size=k_in, replace=False))
    return times[keep], units[keep], times.size - k_in


def pooled_channels(n_channels: int, pool: int) -> int:
    """Channels after pooling: ``ceil(n_channels / pool)`` (the last group may be smaller)."""
    return -(-n_channels // pool)


def pool_units(units: np.ndarray, pool: int) -> np.ndarray:
    """Map channel ``u`` to ``u // pool``: the pooled channel's train is the sum of its members'."""
    return units // pool if pool > 1 else units


def padded_width(longest: int, k_in: int | None) -> int:
    """Events per padded sample: the longest sample if uncapped; else the next power of two at or above it,
    at most ``k_in`` -- so sparse data (tens of events) is not padded to a cap of thousands (the event loop's
    cost grows with the width), while splits and subsets of one source mostly share a width (and programs)."""
    if k_in is None:
        return longest
    return min(k_in, 1 << max(longest - 1, 0).bit_length())


def preprocess(raw: RawSamples, options: Preprocessing, *, dtype=np.float64) -> tuple[Spikes, int, int]:
    """Apply crop, trim + rescale, ``k_in`` cap and pooling to every sample (module docstring).

    Returns:
        ``(spikes, removed, trimmed)``: the padded batch (:func:`padded_width`), events removed by the cap,
        events removed by crop and trim.
    """
    times, units, removed, trimmed = [], [], 0, 0
    for sample_id, t, u in zip(raw.sample_ids, raw.times, raw.units):
        n0 = t.size
        if options.crop is not None:
            t, u = crop_times(t, u, *options.crop)
        t, u = trim_and_rescale(t, u, options.drop_fraction, options.T)
        trimmed += n0 - t.size
        rng = np.random.default_rng([options.seed, int(sample_id)])
        t, u, r = cap_count(t, u, options.k_in, rng)
        removed += r
        times.append(t)
        units.append(pool_units(u, options.pool))
    spikes = spikes_from_lists(
        times,
        units,
        pooled_channels(raw.n_channels, options.pool),
        max_events=padded_width(max((t.size for t in times), default=0), options.k_in),
        dtype=dtype,
    )
    return spikes, removed, trimmed
