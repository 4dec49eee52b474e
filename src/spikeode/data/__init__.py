"""Input data: SHD files, the synthetic SHD-format set, Yin-Yang -> :class:`SpikeDataset`.

Every command goes through :func:`load_dataset` (``--data synthetic | yinyang | shd:DIR``)::

    from spikeode.data import iterate_batches, load_dataset, split_validation

    train = load_dataset("synthetic", "train", T=2.0, k_in=1000, seed=0)
    train, val = split_validation(train, 0.1, seed=0)
    for spikes, labels in iterate_batches(train, 64, seed=epoch):
        ...

Modules: :mod:`~spikeode.data.shd` (reader + preprocessing), :mod:`~spikeode.data.synthetic`
(generator, cache), :mod:`~spikeode.data.yinyang`, :mod:`~spikeode.data.source` (the entry point),
:mod:`~spikeode.data.dataset` (``SpikeDataset``, subsets, batches).
"""

from spikeode.data.dataset import SpikeDataset, iterate_batches, split_validation, stratified_indices
from spikeode.data.shd import Preprocessing, RawSamples, SHDFile, SHDFormatError, preprocess, read_shd
from spikeode.data.source import DataSource, data_statistics, load_dataset, parse_data_source, source_splits
from spikeode.data.synthetic import ensure_synthetic, write_shd_file
from spikeode.data.yinyang import yinyang_class, yinyang_spikes

__all__ = [
    "DataSource",
    "Preprocessing",
    "RawSamples",
    "SHDFile",
    "SHDFormatError",
    "SpikeDataset",
    "data_statistics",
    "ensure_synthetic",
    "iterate_batches",
    "load_dataset",
    "parse_data_source",
    "preprocess",
    "read_shd",
    "source_splits",
    "split_validation",
    "stratified_indices",
    "write_shd_file",
    "yinyang_class",
    "yinyang_spikes",
]
