"""Studies on trained networks: search (``hpo``), landscapes and scans (``landscape``, ``scan_events``,
``diagnostics``), gradient statistics (``gradstats``), confidence intervals (``stats``), the report
(``report``), running a study's units (``pipeline``) and the process's compiled programs (``caches``)."""
