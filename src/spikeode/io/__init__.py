"""Files and figures: netCDF conventions and provenance (``netcdf``), plotting (``plotting``)."""
