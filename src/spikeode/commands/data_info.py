"""``spikeode data-info --data SOURCE [--json]``: raw statistics of each split, before preprocessing.

Durations are the last spike time per sample: seconds for SHD-format data (``synthetic``,
``shd:DIR``), dimensionless engine units for ``yinyang`` (field ``time_units``).
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "data-info",
        help="statistics of a data source per split (samples, classes, spikes, durations)",
        description=__doc__,
    )
    p.add_argument("--data", default="synthetic", help="synthetic[:standard|easy|easier] (built-in, default) | yinyang | shd:DIR")
    p.add_argument("--json", action="store_true", help='print one JSON object {"train": {...}, ...}')
    p.add_argument(
        "--cache-dir",
        default=None,
        help="synthetic data cache (default $SPIKEODE_CACHE or ~/.cache/spikeode)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spikeode.data import data_statistics, parse_data_source

    source = parse_data_source(args.data)
    stats = {split: data_statistics(source, split, cache_dir=args.cache_dir) for split in source.splits}
    print(json.dumps(stats, indent=1) if args.json else format_table(str(source), stats))
    return 0


def format_table(title: str, stats: dict[str, dict]) -> str:
    """A plain-text table: one row per quantity, one column per split."""

    def trio(d: dict, fmt: str) -> str:
        return f"{d['mean']:{fmt}} [{d['min']:{fmt}}, {d['max']:{fmt}}]"

    rows = [
        ("samples", lambda s: str(s["n_samples"])),
        ("classes", lambda s: str(s["n_classes"])),
        ("channels (active)", lambda s: f"{s['n_channels']} ({s['active_channels']})"),
        ("speakers", lambda s: "-" if s["n_speakers"] is None else str(s["n_speakers"])),
        ("spikes/sample mean [min, max]", lambda s: trio(s["spikes_per_sample"], ".0f")),
        ("duration mean [min, max]", lambda s: trio(s["duration_s"], ".3f") + f" {s['time_units']}"),
        ("samples per class min-max", lambda s: f"{min(s['class_counts'])}-{max(s['class_counts'])}"),
    ]
    splits = list(stats)
    cells = [[name] + [fn(stats[sp]) for sp in splits] for name, fn in rows]
    header = [f"data: {title}"] + splits
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, cells)])
