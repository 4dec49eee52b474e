"""One entry point for every command: ``--data synthetic[:DIFFICULTY] | yinyang | shd:DIR`` -> ``SpikeDataset``.

Defaults (chosen for exact event-based training; all are parameters, the training lead tunes them):

* ``T = 2.0`` dimensionless time units (membrane time constant 1) for every source;
* SHD-format (``synthetic``, ``shd:DIR``): drop the first and last 5 % of each sample's spikes,
  rescale to ``[0, T)``, cap at ``k_in = 1000`` events per sample (real SHD has 4,000-12,000, the
  synthetic set ~2,000-5,000: the event loop's cost grows with ``k_in``), all 700 channels;
* ``yinyang``: 5 spikes per sample in ``[0, 1]`` (see :mod:`spikeode.data.yinyang`); the SHD-only
  options ``pool``/``crop`` are errors there and ``drop_fraction``/``k_in`` do not apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeode.data.dataset import SpikeDataset, stratified_indices, summarize
from spikeode.data.shd import N_CHANNELS, Preprocessing, SHDFile, file_statistics, preprocess
from spikeode.data.synthetic import DIFFICULTIES, ensure_synthetic
from spikeode.data.yinyang import CLASS_NAMES as YINYANG_CLASSES
from spikeode.data.yinyang import SPLITS as YINYANG_SPLITS
from spikeode.data.yinyang import T_EARLY as YINYANG_T_EARLY
from spikeode.data.yinyang import T_LATE as YINYANG_T_LATE
from spikeode.data.yinyang import yinyang_spikes

__all__ = ["DataSource", "data_statistics", "load_dataset", "parse_data_source", "source_splits"]

DEFAULT_T = 2.0
DEFAULT_K_IN = 1000
DEFAULT_DROP_FRACTION = 0.05
_SHD_SPLITS = ("train", "test")


@dataclass(frozen=True)
class DataSource:
    """A parsed ``--data`` value: ``kind`` is ``synthetic`` (with its ``difficulty``), ``yinyang`` or ``shd``
    (with ``path``)."""

    kind: str
    path: Path | None = None
    difficulty: str = "standard"

    def __str__(self) -> str:
        if self.kind == "synthetic" and self.difficulty != "standard":
            return f"synthetic:{self.difficulty}"
        return f"shd:{self.path}" if self.kind == "shd" else self.kind

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(YINYANG_SPLITS) if self.kind == "yinyang" else _SHD_SPLITS


def parse_data_source(text: str | DataSource) -> DataSource:
    """Parse ``"synthetic"``, ``"synthetic:DIFFICULTY"`` (a key of ``synthetic.DIFFICULTIES``), ``"yinyang"`` or
    ``"shd:DIR"`` (DIR holds ``shd_train.h5``, ``shd_test.h5``).

    Only the syntax is checked here; missing files are reported when a split is loaded.
    """
    if isinstance(text, DataSource):
        return text
    value = str(text).strip()
    if value in ("synthetic", "yinyang"):
        return DataSource(value)
    if value.startswith("synthetic:"):
        difficulty = value[len("synthetic:") :]
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"unknown synthetic difficulty {difficulty!r}: use synthetic or synthetic:D with D one "
                             f"of {sorted(DIFFICULTIES)}")
        return DataSource("synthetic", difficulty=difficulty)
    if value.startswith("shd:"):
        directory = value[len("shd:") :]
        if not directory:
            raise ValueError("--data shd:DIR needs a directory, e.g. shd:/data/shd")
        return DataSource("shd", Path(directory).expanduser())
    raise ValueError(
        f"unknown data source {value!r}: use 'synthetic[:DIFFICULTY]' (built-in), 'yinyang', or 'shd:DIR' "
        "(DIR holds shd_train.h5 and shd_test.h5)"
    )


def source_splits(source: str | DataSource) -> tuple[str, ...]:
    """The splits a source provides (``train``, ``test``; plus ``validation`` for Yin-Yang)."""
    return parse_data_source(source).splits


def _shd_file(source: DataSource, split: str, cache_dir: str | Path | None) -> Path:
    if split not in _SHD_SPLITS:
        hint = " (carve one with split_validation(load_dataset(..., 'train'), fraction, seed))"
        raise ValueError(
            f"{source} has splits {', '.join(_SHD_SPLITS)}, not {split!r}"
            + (hint if split == "validation" else "")
        )
    if source.kind == "synthetic":
        directory = ensure_synthetic(cache_dir, difficulty=source.difficulty)
    else:
        directory = source.path
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory}: no such directory (--data shd:DIR)")
    path = directory / f"shd_{split}.h5"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (an SHD directory holds shd_train.h5 and shd_test.h5)")
    return path


def load_dataset(
    source: str | DataSource,
    split: str,
    *,
    T: float = DEFAULT_T,
    k_in: int | None = DEFAULT_K_IN,
    seed: int = 0,
    n_samples: int | None = None,
    pool: int = 1,
    drop_fraction: float = DEFAULT_DROP_FRACTION,
    crop: tuple[float, float] | None = None,
    t_early: float = YINYANG_T_EARLY,
    t_late: float = YINYANG_T_LATE,
    t_bias: float = 0.0,
    cache_dir: str | Path | None = None,
    dtype=np.float64,
) -> SpikeDataset:
    """Load one split of a data source as engine-ready :class:`SpikeDataset`.

    Args:
        source: ``"synthetic"``, ``"yinyang"``, ``"shd:DIR"`` or a :class:`DataSource`.
        split: ``"train"`` or ``"test"``; ``"validation"`` for Yin-Yang only
            (SHD-format: use :func:`~spikeode.data.split_validation` on ``train``).
        T: trial duration (dimensionless). SHD-format events are rescaled into ``[0, T)``;
            Yin-Yang needs ``t_late < T``.
        k_in: SHD-format: cap on events per sample (seeded random removal), ``None`` for no cap;
            also the padded width. Ignored by Yin-Yang (5 events).
        seed: seed of the ``n_samples`` subset and of the ``k_in`` removal.
        n_samples: a seeded, class-stratified subset of this size (smoke runs); only these samples
            are read from disk. ``None``: all.
        pool: SHD-format channel pooling factor (``700 -> ceil(700/pool)`` channels).
        drop_fraction: SHD-format share of spikes dropped at each end of a sample.
        crop: SHD-format ``(start, stop)`` window in seconds applied before everything else.
        t_early, t_late, t_bias: Yin-Yang latency code (see :mod:`spikeode.data.yinyang`).
        cache_dir: where the synthetic set is generated (default ``$SPIKEODE_CACHE`` or
            ``~/.cache/spikeode``).
        dtype: floating dtype of the spike times.

    Raises:
        ValueError: unknown source or split, bad option, invalid data (naming file, key, sample).
        FileNotFoundError: a missing SHD directory or file.
    """
    src = parse_data_source(source)
    common = {
        "source": str(src),
        "split": split,
        "T": float(T),
        "seed": int(seed),
        "n_samples": n_samples,
        "dtype": np.dtype(dtype).name,
    }
    if src.kind == "yinyang":
        if pool != 1 or crop is not None:
            raise ValueError("pool and crop apply to SHD-format data only, not to yinyang")
        latency = {"t_early": t_early, "t_late": t_late, "t_bias": t_bias}
        dataset = _load_yinyang(split, T=T, dtype=dtype, provenance=common, **latency)
        if n_samples is None:
            return dataset
        return dataset.select(stratified_indices(dataset.labels, n_samples, seed))
    options = Preprocessing(T=T, drop_fraction=drop_fraction, k_in=k_in, pool=pool, crop=crop, seed=seed)
    path = _shd_file(src, split, cache_dir)
    return _load_shd_format(
        path, options, n_samples, name=f"{src.kind}/{split}", dtype=dtype, provenance=common
    )


def _load_yinyang(
    split: str, *, T: float, t_early: float, t_late: float, t_bias: float, dtype, provenance: dict
) -> SpikeDataset:
    if not t_late < T:
        raise ValueError(f"yinyang needs t_late < T, got t_late={t_late}, T={T}")
    spikes, labels, _ = yinyang_spikes(split, t_early=t_early, t_late=t_late, t_bias=t_bias, dtype=dtype)
    return SpikeDataset(
        spikes=spikes,
        labels=labels,
        n_classes=len(YINYANG_CLASSES),
        class_names=YINYANG_CLASSES,
        T=float(T),
        name=f"yinyang/{split}",
        preprocessing={**provenance, "t_early": t_early, "t_late": t_late, "t_bias": t_bias},
    )


def _load_shd_format(
    path: Path, options: Preprocessing, n_samples: int | None, *, name: str, dtype, provenance: dict
) -> SpikeDataset:
    with SHDFile(path, n_channels=N_CHANNELS) as f:
        indices = None if n_samples is None else stratified_indices(f.labels, n_samples, options.seed)
        raw = f.read(indices)
    spikes, removed, trimmed = preprocess(raw, options, dtype=dtype)
    provenance = {**provenance, **options.as_dict(), "file": str(path)}
    generator = path.parent / "generator.json"  # written by the synthetic generator
    if generator.is_file():
        provenance["generator"] = json.loads(generator.read_text())
    return SpikeDataset(
        spikes=spikes,
        labels=raw.labels,
        n_classes=len(raw.class_names),
        class_names=raw.class_names,
        T=float(options.T),
        name=name,
        speakers=raw.speakers,
        sample_ids=raw.sample_ids,
        preprocessing=provenance,
        removed_spikes=removed,
        trimmed_spikes=trimmed,
    )


def data_statistics(source: str | DataSource, split: str, *, cache_dir: str | Path | None = None) -> dict:
    """Raw statistics of one split before preprocessing (``spikeode data-info``).

    Durations (last spike time per sample) are in seconds for SHD-format data and in the
    dimensionless engine units for Yin-Yang (``time_units`` says which).
    """
    src = parse_data_source(source)
    if src.kind != "yinyang":
        return file_statistics(_shd_file(src, split, cache_dir))
    spikes, labels, _ = yinyang_spikes(split)
    times, units = np.asarray(spikes.times), np.asarray(spikes.units)
    real = np.isfinite(times)
    return summarize(
        real.sum(axis=1),
        np.where(real, times, 0.0).max(axis=1),
        np.bincount(units[real], minlength=spikes.n_units),
        labels,
        n_classes=len(YINYANG_CLASSES),
        n_channels=spikes.n_units,
        speakers=None,
        time_units="1",
    )
