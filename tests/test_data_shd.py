"""SHD reader: layout, dtypes, chunking, validation errors; preprocessing; datasets and batches."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest

from spikeode.data import (
    SHDFormatError,
    iterate_batches,
    load_dataset,
    parse_data_source,
    read_shd,
    split_validation,
)
from spikeode.data.latency import write_latency_shd
from spikeode.data.shd import (
    Preprocessing,
    SHDFile,
    cap_count,
    crop_times,
    pool_units,
    pooled_channels,
    preprocess,
    trim_and_rescale,
)

# --- helpers: hand-written SHD files -----------------------------------------------------------


def write_h5(
    path,
    times,
    units,
    labels,
    *,
    speakers=None,
    keys=None,
    times_dtype=np.float32,
    units_dtype=np.uint16,
    skip=(),
    **dataset_kwargs,
):
    """Write an SHD-layout file by hand with h5py (independent of the generator's writer)."""
    with h5py.File(path, "w") as f:
        for key, values, dtype in (
            ("spikes/times", times, times_dtype),
            ("spikes/units", units, units_dtype),
        ):
            if key in skip:
                continue
            ds = f.create_dataset(key, (len(values),), dtype=h5py.vlen_dtype(dtype), **dataset_kwargs)
            for i, v in enumerate(values):  # one by one: h5py reads equal lengths as a 2-D block
                ds[i] = np.asarray(v, dtype=dtype)
        if "labels" not in skip:
            f.create_dataset("labels", data=np.asarray(labels))
        if speakers is not None:
            f.create_dataset("extra/speaker", data=np.asarray(speakers))
        if keys is not None:
            f.create_dataset("extra/keys", data=np.array([k.encode() for k in keys]))
    return path


def random_samples(n: int, rng: np.random.Generator, *, max_events: int = 60):
    """``n`` samples of sorted float16-representable times in [0, 1) s and units in [0, 700)."""
    counts = rng.integers(20, max_events, n)
    times = [np.sort(rng.uniform(0, 1, c)).astype(np.float16) for c in counts]
    units = [rng.integers(0, 700, c).astype(np.uint16) for c in counts]
    labels = (np.arange(n) % 20).astype(np.uint8)
    return times, units, labels


KEYS = tuple(f"class{c}" for c in range(20))


@pytest.fixture
def shd_dir(tmp_path, rng):
    """A directory with small hand-written shd_train.h5 / shd_test.h5 (60 / 40 samples)."""
    for split, n in (("train", 60), ("test", 40)):
        times, units, labels = random_samples(n, rng)
        write_h5(tmp_path / f"shd_{split}.h5", times, units, labels, speakers=np.arange(n) % 3, keys=KEYS)
    return tmp_path


# --- reading -----------------------------------------------------------------------------------


def test_compact_dtypes_with_gzip_chunking_read_back(tmp_path, rng):
    times, units, labels = random_samples(11, rng)
    path = write_h5(
        tmp_path / "c.h5", times, units, labels, speakers=np.arange(11), keys=KEYS,
        times_dtype=np.float16, units_dtype=np.uint16, compression="gzip", chunks=(3,), shuffle=True,
    )  # fmt: skip
    with h5py.File(path) as f:  # the file really is compact and chunked
        assert f["spikes/times"].compression == "gzip" and f["spikes/times"].chunks == (3,)
        assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float16
    raw = read_shd(path)
    assert len(raw) == 11 and raw.class_names == KEYS
    np.testing.assert_array_equal(raw.labels, labels)
    np.testing.assert_array_equal(raw.speakers, np.arange(11))
    for t, u, t0, u0 in zip(raw.times, raw.units, times, units):
        assert t.dtype == np.float64 and u.dtype == np.int32
        np.testing.assert_array_equal(t, t0.astype(np.float64))
        np.testing.assert_array_equal(u, u0)


@pytest.mark.parametrize("times_dtype, units_dtype", [(np.float64, np.int32), (np.float32, np.float32)])
def test_other_numeric_dtypes(tmp_path, rng, times_dtype, units_dtype):
    times, units, labels = random_samples(5, rng)
    path = write_h5(tmp_path / "d.h5", times, units, labels.astype(np.int64),
                    times_dtype=times_dtype, units_dtype=units_dtype)  # fmt: skip
    raw = read_shd(path)
    assert raw.speakers is None and raw.class_names == tuple(str(c) for c in range(20))
    for u, u0 in zip(raw.units, units):
        np.testing.assert_array_equal(u, u0)


def test_chunked_and_subset_reads_agree_with_full_read(tmp_path, rng):
    times, units, labels = random_samples(30, rng)
    path = write_h5(tmp_path / "s.h5", times, units, labels)
    full = read_shd(path)
    with SHDFile(path) as f:
        small = f.read(chunk_size=4)
        subset = f.read(np.array([17, 3, 4, 5, 29]), chunk_size=2)  # unsorted, mixed runs
    for a, b in zip(full.times, small.times):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(subset.sample_ids, [3, 4, 5, 17, 29])
    for i, t in zip(subset.sample_ids, subset.times):
        np.testing.assert_array_equal(t, full.times[i])
    np.testing.assert_array_equal(subset.labels, labels[[3, 4, 5, 17, 29]])


# --- bad input: every message names file, key and sample ----------------------------------------


def _bad_sample(rng, t=(0.1, 0.2, 0.3), u=(1, 2, 3)):
    """Five good samples with sample 3 replaced by times ``t`` and units ``u``."""
    times, units, labels = random_samples(5, rng)
    times = [x.astype(np.float32) for x in times]
    units = [x.astype(np.int32) for x in units]
    times[3], units[3] = np.asarray(t, np.float32), np.asarray(u, np.int32)
    return times, units, labels


@pytest.mark.parametrize(
    "change, key, fragment",
    [
        ({"u": [1, 700, 2]}, "spikes/units", "unit 700 at event 1 outside [0, 700)"),
        ({"u": [1, -1, 2]}, "spikes/units", "unit -1 at event 1"),
        ({"t": [0.1, np.nan, 0.3]}, "spikes/times", "NaN time nan at event 1"),
        ({"t": [0.1, -0.2, 0.3]}, "spikes/times", "negative time -0.2 at event 1"),
        ({"t": [0.1, np.inf, 0.3]}, "spikes/times", "infinite time inf at event 1"),
        ({"t": [0.1, 0.2], "u": [1, 2, 3]}, "spikes/units", "3 units but spikes/times has 2 times"),
    ],
)
def test_bad_sample_is_an_error_naming_file_key_and_sample(tmp_path, rng, change, key, fragment):
    times, units, labels = _bad_sample(rng, **change)
    path = write_h5(tmp_path / "bad.h5", times, units, labels, times_dtype=np.float32, units_dtype=np.int32)
    with pytest.raises(SHDFormatError) as err:
        read_shd(path)
    message = str(err.value)
    assert str(path) in message and key in message and "sample 3" in message and fragment in message, message
    with SHDFile(path) as f:  # the other samples are fine: reading around the bad one works
        assert len(f.read(np.array([0, 1, 2, 4]))) == 4


@pytest.mark.parametrize("label, fragment", [(20, "label 20 outside [0, 20)"), (-1, "label -1")])
def test_label_out_of_range(tmp_path, rng, label, fragment):
    times, units, labels = random_samples(5, rng)
    labels = labels.astype(np.int16)
    labels[2] = label
    path = write_h5(tmp_path / "l.h5", times, units, labels, keys=KEYS)
    with pytest.raises(SHDFormatError, match=re.escape("labels: sample 2: " + fragment)) as err:
        read_shd(path)
    assert str(path) in str(err.value)


def test_label_range_follows_class_names(tmp_path, rng):
    times, units, labels = random_samples(5, rng)
    path = write_h5(tmp_path / "k.h5", times, units, labels % 3, keys=("a", "b"))
    with pytest.raises(SHDFormatError, match=r"labels: sample 2: label 2 outside \[0, 2\)"):
        read_shd(path)


@pytest.mark.parametrize("missing", ["spikes/times", "spikes/units", "labels"])
def test_missing_key(tmp_path, rng, missing):
    times, units, labels = random_samples(4, rng)
    path = write_h5(tmp_path / "m.h5", times, units, labels, skip=(missing,))
    with pytest.raises(SHDFormatError, match=f"{missing}: missing key") as err:
        read_shd(path)
    assert str(path) in str(err.value)


def test_length_mismatch_between_keys(tmp_path, rng):
    times, units, labels = random_samples(4, rng)
    path = write_h5(tmp_path / "n.h5", times, units, labels[:3])
    with pytest.raises(SHDFormatError, match="labels: 3 entries but spikes/times has 4 samples"):
        read_shd(path)
    path = write_h5(tmp_path / "o.h5", times, units[:3], labels)
    with pytest.raises(SHDFormatError, match="spikes/units: 3 samples but spikes/times has 4"):
        read_shd(path)


def test_not_variable_length(tmp_path):
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        f["spikes/times"] = np.zeros(3)
    with pytest.raises(SHDFormatError, match="spikes/times: expected variable-length"):
        read_shd(path)


def test_missing_file_directory_and_not_hdf5(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5: no such file"):
        read_shd(tmp_path / "nope.h5")
    with pytest.raises(SHDFormatError, match="is a directory"):
        read_shd(tmp_path)
    text = tmp_path / "shd_train.h5"
    text.write_text("not an HDF5 file\n")
    with pytest.raises(SHDFormatError, match="shd_train.h5: not a readable HDF5 file"):
        read_shd(text)


def test_missing_shd_directory_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_dataset(f"shd:{tmp_path / 'absent'}", "train")
    with pytest.raises(FileNotFoundError, match="shd_test.h5: missing"):
        load_dataset(f"shd:{tmp_path}", "test")


# --- preprocessing ------------------------------------------------------------------------------


def test_trim_and_rescale_count_and_range():
    t = np.linspace(0.1, 0.9, 100)[::-1].copy()  # unsorted on purpose
    u = np.arange(100)[::-1].copy()
    t2, u2 = trim_and_rescale(t, u, 0.05, 2.0)
    assert t2.size == 90  # floor(5) dropped at each end
    assert t2[0] == 0.0 and t2[-1] < 2.0 and t2[-1] == pytest.approx(2.0, abs=1e-6)
    assert np.all(np.diff(t2) >= 0)
    np.testing.assert_array_equal(u2, np.arange(5, 95))  # the middle events, in time order
    np.testing.assert_allclose(np.diff(t2), np.diff(t2)[0])  # linear: equal spacing stays equal
    assert np.float32(t2[-1]) < np.float32(2.0)  # still below T in float32
    assert trim_and_rescale(t[:19], u[:19], 0.05, 1.0)[0].size == 19  # floor(0.95) = 0
    t3, _ = trim_and_rescale(np.full(4, 0.3), np.arange(4), 0.0, 1.0)
    np.testing.assert_array_equal(t3, 0.0)
    assert trim_and_rescale(np.zeros(0), np.zeros(0, int), 0.05, 1.0)[0].size == 0


def test_cap_count_is_seeded_and_reports_removed():
    t, u = np.sort(np.random.default_rng(0).uniform(0, 1, 50)), np.arange(50)
    a = cap_count(t, u, 20, np.random.default_rng([7, 3]))
    b = cap_count(t, u, 20, np.random.default_rng([7, 3]))
    c = cap_count(t, u, 20, np.random.default_rng([8, 3]))
    assert a[2] == 30 and a[0].size == 20
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    np.testing.assert_array_equal(a[0], t[a[1]])  # a subset of the events, order kept
    assert cap_count(t, u, 50, np.random.default_rng(0))[2] == 0
    assert cap_count(t, u, None, np.random.default_rng(0))[2] == 0


def test_pooling_and_crop():
    u = np.array([0, 6, 7, 13, 699])
    np.testing.assert_array_equal(pool_units(u, 7), [0, 0, 1, 1, 99])
    assert pooled_channels(700, 7) == 100 and pooled_channels(700, 3) == 234
    np.testing.assert_array_equal(pool_units(u, 1), u)
    _, u2 = crop_times(np.array([0.0, 0.1, 0.5, 0.6]), np.arange(4), 0.1, 0.6)
    np.testing.assert_array_equal(u2, [1, 2])


def test_preprocess_pipeline(tmp_path, rng):
    times, units, labels = random_samples(12, rng, max_events=200)
    raw = read_shd(write_h5(tmp_path / "x.h5", times, units, labels))
    opts = Preprocessing(T=3.0, drop_fraction=0.05, k_in=40, pool=7, seed=1)
    spikes, removed, trimmed = preprocess(raw, opts)
    counts = np.array([t.size for t in raw.times])
    kept = counts - 2 * np.floor(0.05 * counts).astype(int)
    assert trimmed == int((counts - kept).sum())
    assert removed == int(np.maximum(kept - 40, 0).sum())
    assert spikes.n_units == 100 and spikes.times.shape == (12, 40)
    np.testing.assert_array_equal(np.asarray(spikes.counts), np.minimum(kept, 40))
    real = np.isfinite(np.asarray(spikes.times))
    assert np.asarray(spikes.times)[real].min() >= 0 and np.asarray(spikes.times)[real].max() < 3.0
    assert np.asarray(spikes.units)[real].max() < 100
    again, _, _ = preprocess(raw, opts)
    np.testing.assert_array_equal(np.asarray(again.times), np.asarray(spikes.times))
    other, _, _ = preprocess(raw, Preprocessing(T=3.0, k_in=40, pool=7, seed=2))
    assert not np.array_equal(np.asarray(other.units), np.asarray(spikes.units))


@pytest.mark.parametrize(
    "bad", [{"T": 0.0}, {"drop_fraction": 0.5}, {"k_in": 0}, {"pool": 0}, {"crop": (0.5, 0.2)}, {"seed": -1}]
)
def test_preprocessing_options_are_validated(bad):
    with pytest.raises(ValueError):
        Preprocessing(**bad)


# --- load_dataset, subsets, validation split, batches -------------------------------------------


def test_sparse_data_is_padded_to_its_longest_sample_not_to_the_cap(tmp_path):
    """A latency code of at most 42 events per sample is padded to 64 (the next power of two), not to the
    default cap of 1000 events; every event is kept, and both splits share the width."""
    data = write_latency_shd(tmp_path, n_train=50, n_test=20, spikes=(16, 42))
    train, test = (load_dataset(f"shd:{data}", split, k_in=1000, drop_fraction=0.0) for split in ("train", "test"))
    assert train.spikes.times.shape == (50, 64) and test.spikes.times.shape == (20, 64)
    counts = np.isfinite(np.asarray(train.spikes.times)).sum(1)
    assert counts.min() >= 16 and counts.max() <= 42 and train.removed_spikes == 0
    raw = read_shd(data / "shd_train.h5")
    np.testing.assert_array_equal(counts, [t.size for t in raw.times])


def test_load_dataset_shd_dir(shd_dir):
    ds = load_dataset(f"shd:{shd_dir}", "train", T=2.0, k_in=30, seed=0)
    assert len(ds) == 60 and ds.n_classes == 20 and ds.n_channels == 700 and ds.class_names == KEYS
    assert ds.spikes.times.shape == (60, 30) and ds.name == "shd/train"
    assert ds.removed_spikes > 0 and ds.preprocessing["k_in"] == 30
    json.dumps(ds.preprocessing)  # provenance is JSON-serialisable
    np.testing.assert_array_equal(ds.speakers, np.arange(60) % 3)
    with pytest.raises(ValueError, match="split_validation"):
        load_dataset(f"shd:{shd_dir}", "validation")


def test_subset_is_stratified_and_matches_full_load(shd_dir):
    full = load_dataset(f"shd:{shd_dir}", "train", k_in=30, seed=5)
    sub = load_dataset(f"shd:{shd_dir}", "train", k_in=30, seed=5, n_samples=20)
    np.testing.assert_array_equal(np.bincount(sub.labels, minlength=20), 1)
    again = load_dataset(f"shd:{shd_dir}", "train", k_in=30, seed=5, n_samples=20)
    np.testing.assert_array_equal(sub.sample_ids, again.sample_ids)
    # per-sample seeding: a sample is capped the same way whether or not the others are loaded
    np.testing.assert_array_equal(np.asarray(sub.spikes.times), np.asarray(full.spikes.times)[sub.sample_ids])


def test_split_validation(shd_dir):
    ds = load_dataset(f"shd:{shd_dir}", "train", k_in=30)
    rest, val = split_validation(ds, 0.25, seed=3)
    assert len(val) == 15 and len(rest) == 45
    assert set(val.sample_ids).isdisjoint(rest.sample_ids)
    assert sorted([*val.sample_ids, *rest.sample_ids]) == list(range(60))
    assert np.bincount(val.labels, minlength=20).max() - np.bincount(val.labels, minlength=20).min() <= 1
    np.testing.assert_array_equal(split_validation(ds, 0.25, seed=3)[1].sample_ids, val.sample_ids)
    with pytest.raises(ValueError):
        split_validation(ds, 1.0, seed=0)


def test_iterate_batches_covers_every_sample_once(shd_dir):
    ds = load_dataset(f"shd:{shd_dir}", "test", k_in=30)  # 40 samples
    batches = list(iterate_batches(ds, 16, seed=0))
    assert [len(labels) for _, labels in batches] == [16, 16, 8]
    assert all(s.times.shape == (len(l), 30) for s, l in batches)
    seen = np.concatenate([np.asarray(s.times)[:, 0] for s, _ in batches])
    np.testing.assert_array_equal(np.sort(seen), np.sort(np.asarray(ds.spikes.times)[:, 0]))
    assert [len(l) for _, l in iterate_batches(ds, 16, seed=0, drop_last=True)] == [16, 16]
    ordered = next(iterate_batches(ds, 40, seed=0, shuffle=False))[1]
    np.testing.assert_array_equal(np.asarray(ordered), ds.labels)


def test_parse_data_source():
    assert parse_data_source("synthetic").kind == "synthetic"
    assert parse_data_source("shd:/x/y").path.as_posix() == "/x/y"
    for bad in ("shd", "shd:", "SHD:/x", "mnist", ""):
        with pytest.raises(ValueError, match="synthetic|directory"):
            parse_data_source(bad)


def test_data_info_command_json(shd_dir, capsys):
    from spikeode.cli import main

    assert main(["data-info", "--data", f"shd:{shd_dir}", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert set(stats) == {"train", "test"}
    train = stats["train"]
    assert train["n_samples"] == 60 and train["n_classes"] == 20 and train["n_channels"] == 700
    assert set(train["spikes_per_sample"]) == {"mean", "min", "max"}
    assert 0 < train["duration_s"]["max"] <= 1 and train["time_units"] == "s"
    assert 0 < train["active_channels"] <= 700
    assert main(["data-info", "--data", f"shd:{shd_dir}"]) == 0
    assert "spikes/sample" in capsys.readouterr().out
