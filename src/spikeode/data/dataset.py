"""``SpikeDataset``: a labelled batch of padded spike trains, plus subsets, splits and batches.

Every loader (:mod:`~spikeode.data.shd`, :mod:`~spikeode.data.yinyang`, through
:func:`~spikeode.data.load_dataset`) returns a :class:`SpikeDataset`; training code only sees this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from spikeode.spikes import Spikes

__all__ = ["SpikeDataset", "iterate_batches", "split_validation", "stratified_indices", "summarize"]


@dataclass(frozen=True, eq=False)
class SpikeDataset:
    """Labelled input spike trains of one split, ready for the engine.

    Attributes:
        spikes: padded events, batch axis = samples. The padded width is the same for every subset
            of one dataset (``k_in`` when the count is capped), so batches share one compiled shape.
        labels: class index per sample, ``int64``.
        n_classes: number of classes (also those absent from this subset).
        class_names: one name per class.
        T: trial duration in the engine's dimensionless time units; every event lies in ``[0, T)``.
        name: human-readable identity, e.g. ``"synthetic/train"``.
        speakers: speaker id per sample, or ``None`` where the source has none.
        sample_ids: index of each sample in its source split (provenance; seeds per-sample choices).
        preprocessing: the exact options that produced ``spikes`` (JSON-serialisable, provenance).
        removed_spikes: events removed by the ``k_in`` cap (random removal), summed over samples.
        trimmed_spikes: events removed by the time crop and the drop-first/last-fraction trim.
    """

    spikes: Spikes
    labels: np.ndarray
    n_classes: int
    class_names: tuple[str, ...]
    T: float
    name: str
    speakers: np.ndarray | None = None
    sample_ids: np.ndarray | None = None
    preprocessing: Mapping = field(default_factory=dict)
    removed_spikes: int = 0
    trimmed_spikes: int = 0

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.spikes.batch_shape != (n,):
            raise ValueError(f"spikes batch shape {self.spikes.batch_shape} does not match {n} labels")
        if self.speakers is not None and len(self.speakers) != n:
            raise ValueError(f"{len(self.speakers)} speakers for {n} samples")
        if self.sample_ids is None:
            object.__setattr__(self, "sample_ids", np.arange(n))
        if len(self.class_names) != self.n_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.n_classes} classes")

    @property
    def n_channels(self) -> int:
        """Number of input channels (after pooling)."""
        return self.spikes.n_units

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> SpikeDataset:
        """The samples at ``indices`` (positions in this dataset), same padded width.

        ``removed_spikes``/``trimmed_spikes`` are totals of the parent and are not recomputed.
        """
        idx = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self,
            spikes=_take(self.spikes, idx),
            labels=self.labels[idx],
            speakers=None if self.speakers is None else self.speakers[idx],
            sample_ids=self.sample_ids[idx],
            name=self.name if name is None else name,
        )


def _take(spikes: Spikes, idx: np.ndarray) -> Spikes:
    """Samples ``idx`` of a batch, gathered on the host (no per-shape compiled gather)."""
    times, units = np.asarray(spikes.times)[idx], np.asarray(spikes.units)[idx]
    return Spikes(jnp.asarray(times), jnp.asarray(units), spikes.n_units)


def stratified_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded subset of ``n`` positions whose class proportions follow ``labels`` (±1 per class).

    Each class is shuffled; the ``r``-th element of a class of size ``m`` gets the key
    ``(r + 0.5) / m`` and the ``n`` smallest keys are taken (ties in random order). On balanced
    data this gives equal counts per class; for ``n < n_classes`` it picks ``n`` distinct classes.

    Returns:
        sorted positions (ascending), so reading them from a file is sequential.
    """
    labels = np.asarray(labels)
    if not 0 <= n <= len(labels):
        raise ValueError(f"cannot take {n} samples out of {len(labels)}")
    rng = np.random.default_rng(seed)
    keys = np.empty(len(labels))
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        ranks = rng.permutation(len(members))
        keys[members] = (ranks + 0.5) / len(members)
    tiebreak = rng.random(len(labels))
    order = np.lexsort((tiebreak, keys))
    return np.sort(order[:n])


def split_validation(dataset: SpikeDataset, fraction: float, seed: int) -> tuple[SpikeDataset, SpikeDataset]:
    """Carve a seeded, class-stratified validation set out of ``dataset`` (e.g. SHD train).

    Args:
        dataset: the split to divide.
        fraction: share of samples that go to validation, in ``(0, 1)``.
        seed: the same seed always gives the same division.

    Returns:
        ``(rest, validation)``, disjoint, together all samples; names get ``"-rest"``/``"-validation"``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must lie in (0, 1), got {fraction}")
    n_val = round(fraction * len(dataset))
    if not 0 < n_val < len(dataset):
        raise ValueError(f"fraction {fraction} of {len(dataset)} samples leaves an empty split")
    val = stratified_indices(dataset.labels, n_val, seed)
    rest = np.setdiff1d(np.arange(len(dataset)), val)
    return (
        dataset.select(rest, name=f"{dataset.name}-rest"),
        dataset.select(val, name=f"{dataset.name}-validation"),
    )


def iterate_batches(
    dataset: SpikeDataset,
    batch_size: int,
    *,
    seed: int,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[Spikes, Int[Array, " batch"]]]:
    """Yield ``(spikes, labels)`` batches covering the dataset once.

    Args:
        dataset: the samples.
        batch_size: samples per batch (> 0).
        seed: order of the shuffle (pass e.g. ``seed + epoch`` for a new order each epoch).
        shuffle: ``False`` keeps the dataset order (evaluation).
        drop_last: the last, smaller batch (when ``len(dataset) % batch_size != 0``) is *yielded*
            by default, so every sample is seen once (its different shape costs one extra compile);
            with ``drop_last=True`` it is skipped and those samples are not seen this pass.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(dataset)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield _take(dataset.spikes, idx), jnp.asarray(dataset.labels[idx])


def summarize(
    counts: np.ndarray,
    durations: np.ndarray,
    channel_counts: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    n_channels: int,
    speakers: np.ndarray | None,
    time_units: str,
) -> dict:
    """The statistics object of ``spikeode data-info`` for one split (plain Python types).

    Args:
        counts: events per sample.
        durations: last event time per sample (0 for an empty sample).
        channel_counts: events per channel summed over the split.
        labels: class per sample.
        n_classes, n_channels: sizes of the label and channel spaces.
        speakers: speaker id per sample, or ``None``.
        time_units: unit of ``durations`` (``"s"``, or ``"1"`` when dimensionless).
    """

    def triple(x: np.ndarray) -> dict:
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return {"mean": 0.0, "min": 0.0, "max": 0.0}
        return {"mean": float(x.mean()), "min": float(x.min()), "max": float(x.max())}

    return {
        "n_samples": len(labels),
        "n_classes": int(n_classes),
        "n_channels": int(n_channels),
        "class_counts": np.bincount(labels, minlength=n_classes).astype(int).tolist(),
        "n_speakers": None if speakers is None else len(np.unique(speakers)),
        "spikes_per_sample": triple(counts),
        "total_spikes": int(np.sum(counts)),
        "duration_s": triple(durations),
        "time_units": time_units,
        "active_channels": int(np.count_nonzero(channel_counts)),
    }
