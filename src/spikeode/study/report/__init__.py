"""A study's report: ``summary.nc``, the figures and ``summary.md``, from the study's files alone.

The study passes its :class:`StudyLayout` (where its files are, which models it compares), or stores it in
``study.json`` for ``spikeode report DIR``. Each part is optional: a missing one is skipped and named.

- ``claims``: the seed's claims, each a number with a 95 % interval and a verdict (``spikeode.study.stats``);
- ``summary``: one Dataset with the learning curves, landscape, scan and HPO metrics and the claims;
- ``markdown``: ``summary.md``, opening with the claims table;
- ``figures``: HPO progress, landscapes and single-sample scans.
"""

from __future__ import annotations

from pathlib import Path

from spikeode.io.netcdf import read_dataset, write_dataset
from spikeode.io.plotting import plot_gradstats, plot_learning_curves
from spikeode.study.report.claims import claims_dataset, collect_runs, sample_event_fractions, study_claims
from spikeode.study.report.figures import plot_hpo, plot_landscapes, plot_samples
from spikeode.study.report.layout import StudyLayout, read_layout
from spikeode.study.report.markdown import claims_markdown, summary_markdown
from spikeode.study.report.summary import summary_dataset

__all__ = ["StudyLayout", "claims_dataset", "claims_markdown", "collect_runs", "make_report", "read_layout",
           "sample_event_fractions", "study_claims", "summary_dataset"]


def make_report(study_dir: str | Path, layout: StudyLayout | None = None) -> list[Path]:
    """Write ``summary.nc``, every figure and ``summary.md`` into ``study_dir``; returns the files written.

    ``layout`` defaults to the one stored in ``study_dir/study.json`` (:func:`read_layout`).
    """
    study_dir = Path(study_dir)
    layout = read_layout(study_dir) if layout is None else layout
    claims = study_claims(study_dir, layout)
    summary = summary_dataset(study_dir, layout, claims)
    written = [write_dataset(summary, study_dir / "summary.nc")]
    runs = collect_runs(study_dir, layout)
    written.append(plot_learning_curves({m: list(per.values()) for m, per in sorted(runs.items())},
                                        study_dir / "learning_curves.png"))
    for plot, name in ((plot_hpo, "hpo.png"), (plot_landscapes, "landscapes.png"), (plot_samples, "samples.png")):
        path = plot(study_dir, layout, study_dir / name)
        if path is None:
            print(f"report: no input for {name}, skipped")
        else:
            written.append(path)
    gradstats = layout.path(study_dir, "gradstats")
    if gradstats.exists():
        written.append(plot_gradstats(read_dataset(gradstats), study_dir / "gradstats.png"))
    md = study_dir / "summary.md"
    md.write_text(summary_markdown(summary, claims, study_dir, layout))
    written.append(md)
    return written
