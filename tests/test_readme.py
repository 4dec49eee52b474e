"""The README's examples run as written: its Python blocks are executed, its shell commands parsed.

Every ```python block runs in one fresh interpreter, in order (later blocks may use names of earlier ones).
Every ``spikeode ...`` command of a ```bash block is parsed by the real command-line parser (flags, values
and choices are checked; running them would train for minutes); ``python studies/X.py`` commands are parsed
by that script's ``build_parser()``. The first two lines (install + main study, install + tests) are what CI runs.
"""

from __future__ import annotations

import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, flags=re.M | re.S)


def _commands(block: str) -> list[list[str]]:
    """The shell commands of a block: continuation lines joined, split at ``&&``, ``;`` and ``|``."""
    text = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"&&|;|\|", line):
            words = shlex.split(part.split(">")[0])
            if words:
                commands.append(words)
    return commands


def test_the_readme_has_examples():
    kinds = [kind for kind, _ in BLOCKS]
    assert kinds.count("python") >= 3 and kinds.count("bash") >= 3


def test_python_blocks_run_as_written(tmp_path):
    code = "\n\n".join(body for kind, body in BLOCKS if kind == "python")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_shell_commands_parse():
    from spikeode.cli import build_parser

    parser = build_parser()
    seen = {"spikeode": 0, "studies": 0}
    for kind, body in BLOCKS:
        if kind != "bash":
            continue
        for words in _commands(body):
            if words[0] == "spikeode":
                try:
                    parser.parse_args(words[1:])
                except SystemExit as exit_:
                    pytest.fail(f"README command does not parse ({exit_.code}): {shlex.join(words)}")
                seen["spikeode"] += 1
            elif words[0] == "python" and words[1].startswith("studies/"):
                script = ROOT / words[1]
                assert script.exists(), f"README names a missing script: {words[1]}"
                study_parser = runpy.run_path(str(script), run_name="readme")["build_parser"]()
                try:
                    study_parser.parse_args(words[2:])
                except SystemExit as exit_:
                    pytest.fail(f"README command does not parse ({exit_.code}): {shlex.join(words)}")
                seen["studies"] += 1
    assert seen["spikeode"] >= 8 and seen["studies"] >= 1
