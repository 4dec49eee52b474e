"""Yin-Yang: the published class rule, sizes and balance; the latency code; loading."""

from __future__ import annotations

import numpy as np
import pytest

from spikeode.data import load_dataset, yinyang_class
from spikeode.data.yinyang import SPLITS, encode_latency, sample_points, yinyang_spikes


@pytest.fixture(scope="module")
def splits():
    return {name: yinyang_spikes(name) for name in SPLITS}


# Labels as in the published code: 1 where its ``is_yin`` criterion holds (the upper half, the
# ring around the left eye), 0 elsewhere in the disc, 2 inside the two eyes.
@pytest.mark.parametrize(
    "x, y, expected",
    [
        (0.25, 0.5, 2),  # left eye
        (0.75, 0.5, 2),  # right eye
        (0.25, 0.65, 1),  # ring around the left eye
        (0.75, 0.65, 0),  # ring around the right eye
        (0.5, 0.9, 1),  # top
        (0.5, 0.1, 0),  # bottom
        (0.5, 0.45, 0),  # centre, just below the middle, outside both rings
        (0.5, 0.55, 1),  # centre, just above the middle
    ],
)
def test_class_rule_at_known_points(x, y, expected):
    assert int(yinyang_class(x, y)) == expected


def test_class_areas_match_the_geometry():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1, (200_000, 2))
    xy = xy[np.hypot(xy[:, 0] - 0.5, xy[:, 1] - 0.5) <= 0.5]
    share = np.bincount(yinyang_class(xy[:, 0], xy[:, 1]), minlength=3) / len(xy)
    dots = 2 * 0.1**2 / 0.5**2  # two small circles over the big one: 0.08
    np.testing.assert_allclose(share, [(1 - dots) / 2, (1 - dots) / 2, dots], atol=0.005)


def test_published_sizes_balance_and_rule(splits):
    sizes = {name: SPLITS[name][0] for name in SPLITS}
    assert sizes == {"train": 5000, "validation": 1000, "test": 1000}
    for name, (spikes, labels, points) in splits.items():
        n = sizes[name]
        assert spikes.times.shape == (n, 5) and spikes.n_units == 5 and labels.shape == (n,)
        # goal class uniform per sample: each class n/3 within 4 standard deviations
        assert np.all(np.abs(np.bincount(labels, minlength=3) - n / 3) < 4 * np.sqrt(n * 2 / 9))
        assert np.all(np.hypot(points[:, 0] - 0.5, points[:, 1] - 0.5) <= 0.5)
        np.testing.assert_array_equal(yinyang_class(points[:, 0], points[:, 1]), labels)
    assert not np.array_equal(splits["validation"][2], splits["test"][2])


def test_sampling_is_seeded():
    a, b = sample_points(50, 7), sample_points(50, 7)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], sample_points(50, 8)[0])


def test_latency_encoding(splits):
    spikes, _, points = splits["test"]
    times, units = np.asarray(spikes.times), np.asarray(spikes.units)
    assert np.all(np.diff(times, axis=1) >= 0)  # sorted per sample
    np.testing.assert_array_equal(np.sort(units, axis=1), np.tile(np.arange(5), (len(units), 1)))
    by_channel = np.take_along_axis(times, np.argsort(units, axis=1), axis=1)
    x, y = points[:, 0], points[:, 1]
    expected = 0.1 + np.stack([x, y, 1 - x, 1 - y], axis=1) * 0.9  # t_early + v (t_late - t_early)
    np.testing.assert_allclose(by_channel[:, :4], expected, rtol=1e-12)
    np.testing.assert_array_equal(by_channel[:, 4], 0.0)  # bias spike
    custom = encode_latency(points[:3], t_early=0.5, t_late=1.5, t_bias=0.2)
    np.testing.assert_allclose(custom[:, 0], 0.5 + x[:3])
    np.testing.assert_array_equal(custom[:, 4], 0.2)
    with pytest.raises(ValueError):
        encode_latency(points, t_early=1.0, t_late=1.0)


def test_load_dataset_yinyang():
    ds = load_dataset("yinyang", "validation", T=2.0)
    assert len(ds) == 1000 and ds.n_classes == 3 and ds.n_channels == 5
    assert ds.class_names == ("yin", "yang", "dot") and ds.speakers is None and ds.T == 2.0
    assert ds.preprocessing["t_late"] == 1.0 and ds.removed_spikes == 0
    sub = load_dataset("yinyang", "test", n_samples=30, seed=1)
    assert np.all(np.abs(np.bincount(sub.labels) - 10) <= 1)  # stratified (class shares ±1)
    with pytest.raises(ValueError, match="SHD-format data only"):
        load_dataset("yinyang", "train", pool=2)
    with pytest.raises(ValueError, match="t_late < T"):
        load_dataset("yinyang", "train", T=1.0)
    with pytest.raises(ValueError, match="split"):
        load_dataset("yinyang", "dev")
