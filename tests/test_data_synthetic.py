"""Synthetic SHD: deterministic, exact SHD layout through the real reader, SHD-like, learnable but
not by spike counts alone; the cache is generated once and atomically."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from spikeode.data import ensure_synthetic, load_dataset, read_shd, synthetic
from spikeode.data.synthetic import CLASS_NAMES, HELD_OUT_SPEAKERS, generate_split, write_synthetic


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """A 400 / 200 sample synthetic set (about 0.3 s to generate)."""
    return write_synthetic(tmp_path_factory.mktemp("synthetic"), n_train=400, n_test=200, seed=0)


def test_layout_is_exactly_shd(small_set):
    with h5py.File(small_set / "shd_train.h5") as f:
        assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float16
        assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
        assert f["labels"].dtype == np.uint8 and f["labels"].shape == (400,)
        assert f["extra/speaker"].shape == (400,)
        assert [k.decode() for k in f["extra/keys"][()]] == list(CLASS_NAMES)
        for key in ("gender", "age", "body_height"):
            assert f[f"extra/meta_info/{key}"].shape == (12,)


def test_generator_files_read_back_identically(tmp_path):
    directory = write_synthetic(tmp_path, n_train=25, n_test=15, seed=3)
    for split, n in (("train", 25), ("test", 15)):
        times, units, labels, speakers = generate_split(split, n, seed=3)
        raw = read_shd(directory / f"shd_{split}.h5")
        assert raw.class_names == CLASS_NAMES
        np.testing.assert_array_equal(raw.labels, labels)
        np.testing.assert_array_equal(raw.speakers, speakers)
        for t, u, t0, u0 in zip(raw.times, raw.units, times, units):
            np.testing.assert_array_equal(t, t0.astype(np.float16).astype(np.float64))
            np.testing.assert_array_equal(u, u0)


def test_deterministic_from_seed():
    a, b, c = (generate_split("test", 8, seed=s) for s in (1, 1, 2))
    for x, y in zip(a[0], b[0]):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a[2], b[2])
    assert not all(len(x) == len(y) for x, y in zip(a[0], c[0]))


def test_shd_like_statistics(small_set):
    train, test = read_shd(small_set / "shd_train.h5"), read_shd(small_set / "shd_test.h5")
    counts = np.array([t.size for t in train.times])
    durations = np.array([t.max() for t in train.times])
    assert 2000 < counts.mean() < 5000 and counts.min() > 1000
    assert 0.7 < durations.mean() < 0.95 and durations.min() > 0.45 and durations.max() < 1.3
    np.testing.assert_array_equal(np.bincount(train.labels), 20)  # balanced
    units = np.concatenate(train.units)
    assert np.unique(units).size == 700
    assert not set(HELD_OUT_SPEAKERS) & set(train.speakers.tolist())
    held = np.isin(test.speakers, HELD_OUT_SPEAKERS)
    assert 0.25 < held.mean() < 0.55 and len(set(test.speakers.tolist())) == 12


def _features(raw, time_bins: int, pool: int) -> np.ndarray:
    """log(1 + spike counts) per (time bin of the sample's own duration, pooled channel)."""
    x = np.zeros((len(raw), time_bins, 700 // pool))
    for i, (t, u) in enumerate(zip(raw.times, raw.units)):
        b = np.minimum((t / t.max() * time_bins).astype(int), time_bins - 1)
        np.add.at(x[i], (b, u // pool), 1)
    return np.log1p(x.reshape(len(raw), -1))


def _ridge_accuracy(x_train, y_train, x_test, y_test, lam: float = 100.0) -> float:
    """Test accuracy of a ridge-regression classifier on one-hot targets (standardised features)."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-9
    a = np.c_[(x_train - mu) / sd, np.ones(len(x_train))]
    b = np.c_[(x_test - mu) / sd, np.ones(len(x_test))]
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ np.eye(20)[y_train])
    return float(np.mean(np.argmax(b @ w, axis=1) == y_test))


def test_learnable_but_not_from_counts_alone(small_set):
    train, test = read_shd(small_set / "shd_train.h5"), read_shd(small_set / "shd_test.h5")
    counts = _ridge_accuracy(_features(train, 1, 1), train.labels, _features(test, 1, 1), test.labels)
    binned = _ridge_accuracy(_features(train, 4, 10), train.labels, _features(test, 4, 10), test.labels)
    assert 0.15 < counts < 0.9  # chance is 0.05; per-channel counts do not solve it
    assert binned > counts + 0.15  # the temporal order carries the rest


def test_ensure_synthetic_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEODE_CACHE", str(tmp_path / "cache"))
    path = ensure_synthetic(n_train=20, n_test=10, seed=0)
    assert path.parent == tmp_path / "cache" and path.name == "synthetic-v1-train20-test10-seed0"
    stamp = (path / "shd_train.h5").stat().st_mtime_ns
    assert ensure_synthetic(n_train=20, n_test=10, seed=0) == path
    assert (path / "shd_train.h5").stat().st_mtime_ns == stamp  # reused, not regenerated
    assert ensure_synthetic(n_train=20, n_test=10, seed=1) != path


def test_interrupted_generation_leaves_nothing_reusable(tmp_path, monkeypatch):
    def killed(directory, **kwargs):  # dies half-way through a file
        (directory / "shd_train.h5").write_bytes(b"\x89HDF partial")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(synthetic, "write_synthetic", killed)
        with pytest.raises(KeyboardInterrupt):
            ensure_synthetic(tmp_path, n_train=20, n_test=10)
    assert list(tmp_path.iterdir()) == []  # the temporary folder was removed
    # SIGKILL skips that clean-up: its temporary folder is never mistaken for the data
    leftover = tmp_path / ".synthetic-v1-train20-test10-seed0.tmp-dead"
    leftover.mkdir()
    (leftover / "shd_train.h5").write_bytes(b"\x89HDF partial")
    good = ensure_synthetic(tmp_path, n_train=20, n_test=10)
    assert len(read_shd(good / "shd_train.h5")) == 20


def test_incomplete_cache_folder_is_an_error(tmp_path):
    (tmp_path / "synthetic-v1-train20-test10-seed0").mkdir()
    with pytest.raises(RuntimeError, match="incomplete"):
        ensure_synthetic(tmp_path, n_train=20, n_test=10)


def test_load_synthetic_source(tmp_path, monkeypatch):
    small = ensure_synthetic(tmp_path, n_train=20, n_test=10)
    monkeypatch.setattr("spikeode.data.source.ensure_synthetic", lambda cache_dir, difficulty: small)
    ds = load_dataset("synthetic", "test", T=2.0, k_in=500, seed=0)
    assert len(ds) == 10 and ds.n_channels == 700 and ds.class_names == CLASS_NAMES
    assert ds.spikes.times.shape == (10, 500) and ds.removed_spikes > 0
    assert ds.preprocessing["generator"]["version"] == synthetic.GENERATOR_VERSION


def test_difficulty_scales_the_variation_only(tmp_path):
    """``easy`` keeps the words and the draw of labels and speakers and halves the spread between utterances
    (here: of the word's duration within a class); ``synthetic:D`` parses, round-trips and names its cache."""
    from spikeode.data import parse_data_source

    std, easy = (generate_split("train", 80, seed=3, difficulty=d) for d in ("standard", "easy"))
    np.testing.assert_array_equal(std[2], easy[2])
    np.testing.assert_array_equal(std[3], easy[3])
    spread = [np.mean([np.std([t.max() for t, y in zip(s[0], s[2]) if y == c]) for c in range(20)])
              for s in (std, easy)]
    assert spread[1] < 0.75 * spread[0]
    assert str(parse_data_source("synthetic:easy")) == "synthetic:easy"
    assert parse_data_source("synthetic").difficulty == "standard"
    with pytest.raises(ValueError, match="unknown synthetic difficulty"):
        parse_data_source("synthetic:trivial")
    assert ensure_synthetic(tmp_path, n_train=2, n_test=2, difficulty="easy").name.endswith("-seed0-easy")
