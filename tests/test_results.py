"""Result files: the CF fixes of ``write_dataset`` (coordinates without _FillValue, 32-bit integers, names,
history appended on rewrite)."""

import netCDF4
import numpy as np
import pytest
import xarray as xr

from spikeode.io import netcdf as results
from spikeode.io.netcdf import history_line, read_dataset, write_dataset


def _dataset():
    return xr.Dataset({"loss": ("epoch", [0.5, np.nan]), "big": ("epoch", np.array([0, 2**40]))},
                      coords={"epoch": np.array([0, 1], np.int64), "alpha": ("alpha", [0.0, 0.5])})


def test_write_dataset_makes_coordinates_integers_and_history_cf_clean(tmp_path):
    ds = _dataset()
    path = write_dataset(ds, tmp_path / "r.nc")
    with netCDF4.Dataset(path) as nc:
        assert "_FillValue" not in nc["alpha"].ncattrs() and "_FillValue" not in nc["epoch"].ncattrs()
        assert "_FillValue" in nc["loss"].ncattrs()  # data keep NaN as missing
        assert nc["epoch"].dtype == np.int32 and nc["big"].dtype == np.int64  # 2**40 does not fit
        assert nc.history == history_line()
    assert ds.epoch.encoding == {} and "history" not in ds.attrs  # the caller's dataset is untouched
    back = read_dataset(path)
    assert np.isnan(back.loss.values[1]) and back.epoch.values.tolist() == [0, 1]
    # a rewrite by this process keeps one line; a later process appends its own
    write_dataset(ds, path)
    assert read_dataset(path).attrs["history"] == history_line()
    old = "2020-01-01T00:00:00+00:00: spikeode train --epochs 1"
    with netCDF4.Dataset(path, "a") as nc:  # as if an earlier process had written it
        nc.history = old
    read_dataset(path)  # a resume reads the file first
    write_dataset(ds, path)
    assert read_dataset(path).attrs["history"].splitlines() == [old, history_line()]


def test_write_dataset_refuses_names_cf_does_not_allow(tmp_path):
    with pytest.raises(ValueError, match="_internal"):
        write_dataset(_dataset().assign(_internal=((), 1.0)), tmp_path / "r.nc")
    assert not (tmp_path / "r.nc").exists()
    assert results._CF_NAME.fullmatch("event_alpha") and not results._CF_NAME.fullmatch("1x")
