"""Compilation's share of each stage of the quick study (issue 17), with a cold and a warm compilation cache.

    python benchmarks/compile_share.py                   # -> benchmarks/results/compile_share.md
    python benchmarks/compile_share.py --preset tiny     # the test suite's study, in a minute or two

Runs ``studies/lif_vs_qif.py --preset PRESET`` twice, each into a fresh output directory, with one
compilation cache that starts empty: the first run compiles every program (a new user's first study), the
second loads them (any later study of the same shapes, e.g. more seeds or a resumed run). Each stage's
wall time and the seconds its process spent tracing, lowering and compiling or loading programs
(``spikeode.compile_time``) come from the study's ``stage_times.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import spikeode

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "compile_share.md"


def run_study(preset: str, out: Path, cache: Path) -> list[dict]:
    env = {**os.environ, "SPIKEODE_COMPILATION_CACHE": str(cache)}
    command = [sys.executable, str(ROOT / "studies" / "lif_vs_qif.py"), "--preset", preset, "--out", str(out)]
    subprocess.run(command, env=env, cwd=ROOT, check=True)
    return [json.loads(line) for line in (out / "stage_times.jsonl").read_text().splitlines()]


def table(runs: dict[str, list[dict]]) -> list[str]:
    names = list(runs)
    head = "| stage | " + " | ".join(f"{n}: wall s | {n}: compiling s (share) | {n}: of it loading s" for n in names)
    lines = [head + " |", "|---" * (1 + 3 * len(names)) + "|"]
    for i, row in enumerate(runs[names[0]]):
        cells = [row["stage"]]
        for n in names:
            r = runs[n][i]
            cells += [f"{r['seconds']:.0f}", f"{r['compile_seconds']:.0f} ({r['compile_share']:.0%})",
                      f"{r['loaded_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", choices=("quick", "tiny"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "jax-cache"
        runs = {name: run_study(args.preset, Path(tmp) / name, cache) for name in ("cold", "warm")}
    lines = [f"# Compilation's share of the {args.preset} study's stages",
             "",
             f"`python benchmarks/compile_share.py --preset {args.preset}`; spikeode {spikeode.__version__}, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs. "
             "Cold: an empty compilation cache; warm: the same cache after the cold run (a new output directory).",
             "Compiling: tracing, lowering and XLA compilation or loading a cached program, in the study's own "
             "process (the units run in it).",
             "", *table(runs), ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
