"""``spikeode bench``'s report: a run whose samples hit a flag is named, never timed silently."""

from spikeode.bench import flagged_warnings


def test_flagged_runs_are_named():
    rows = [{"workload": "shd", "integrator": "closed_form", "mode": "fwd", "batch": 32, "flagged_samples": 0},
            {"workload": "shd-lif", "integrator": "diffrax", "mode": "grad", "batch": 32, "flagged_samples": 5},
            {"workload": "shd", "integrator": "diffrax", "mode": "fwd", "error": "timed out"}]
    (line,) = flagged_warnings(rows)
    assert line.startswith("warning: shd-lif diffrax grad: 5 of 32 samples flagged") and "truncated" in line
