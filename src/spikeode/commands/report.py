"""``spikeode report DIR``: regenerate every figure, ``summary.nc`` and ``summary.md`` of a study from its files.

The study's layout (where its files are, which models it compares) is read from ``DIR/study.json``, where
the study stored it (``spikeode.study.report.StudyLayout``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="figures and summary of a study directory", description=__doc__)
    p.add_argument("directory", type=Path, help="output directory of a study (e.g. studies/lif_vs_qif.py)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spikeode.study.report import make_report

    if not args.directory.is_dir():
        raise FileNotFoundError(f"{args.directory} is not a directory")
    for path in make_report(args.directory):
        print(f"wrote {path}")
    return 0
