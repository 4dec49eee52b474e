"""Where a study keeps its files: the layout a study defines and passes to the report (stored in study.json).

The report reads nothing by a name of its own: every path comes from a :class:`StudyLayout`, whose patterns
are relative to the study directory and use the fields ``{model}``, ``{seed}`` and ``{plane}``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StudyLayout", "read_layout"]

_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class StudyLayout:
    """A study's folder layout and the models it compares.

    Attributes:
        title: heading of ``summary.md``.
        pair: what was compared, in words (``summary.nc`` attribute ``pair``, before each winner's
            neuron parameters).
        models: ``(reference, candidate)``; every claim is a candidate - reference difference.
        run: a retrained run's directory (``{model}``, ``{seed}``), holding ``run.nc``.
        hpo: a model's search results (``{model}``).
        best: a model's winning configuration, JSON (``{model}``).
        gradstats: the gradient statistics of every run.
        first_plane: random landscape plane 0 of a model (``{model}``).
        plane: random landscape plane ``k >= 1`` (``{model}``, ``{plane}``).
        gradient_plane: the gradient plane around a seed's winner (``{model}``, ``{seed}``).
        samples: a model's single-sample scans (``{model}``).
    """

    title: str
    pair: str
    models: tuple[str, str]
    run: str
    hpo: str
    best: str
    gradstats: str
    first_plane: str
    plane: str
    gradient_plane: str
    samples: str

    def __post_init__(self):
        object.__setattr__(self, "models", tuple(self.models))
        if len(self.models) != 2 or self.models[0] == self.models[1]:
            raise ValueError(f"a layout compares two distinct models (reference, candidate), got {self.models}")

    @property
    def reference(self) -> str:
        return self.models[0]

    @property
    def candidate(self) -> str:
        return self.models[1]

    def path(self, study_dir: str | Path, name: str, **fields) -> Path:
        """The file (or directory) ``name`` (a pattern attribute) with its fields filled in."""
        return Path(study_dir) / getattr(self, name).format(**fields)

    def find(self, study_dir: str | Path, name: str, **fields) -> list[tuple[int, Path]]:
        """``(value, path)`` of every existing file of pattern ``name`` whose one unfilled integer field
        varies, sorted by value (e.g. ``find(d, "run", model="lif")`` lists the seeds of LIF)."""
        pattern = getattr(self, name)
        free = [f for f in _FIELD.findall(pattern) if f not in fields]
        if len(free) != 1:
            raise ValueError(f"pattern {pattern!r} needs exactly one field left open, got {free}")
        filled = pattern.replace("{" + free[0] + "}", "\0").format(**fields)
        regex = re.compile(re.escape(filled).replace("\0", r"(\d+)") + "$")
        found = []
        for path in Path(study_dir).glob(filled.replace("\0", "*")):
            match = regex.match(path.relative_to(study_dir).as_posix())
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def random_planes(self, study_dir: str | Path, model: str) -> list[Path]:
        """A model's random-plane files: plane 0, then planes 1, 2, ... (those that exist)."""
        first = self.path(study_dir, "first_plane", model=model)
        return ([first] if first.exists() else []) + [p for _, p in self.find(study_dir, "plane", model=model)]

    def gradient_planes(self, study_dir: str | Path, model: str) -> dict[int, Path]:
        """A model's gradient-plane files by seed."""
        return dict(self.find(study_dir, "gradient_plane", model=model))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> StudyLayout:
        known = {f.name for f in dataclasses.fields(cls)}
        missing, unknown = sorted(known - set(values)), sorted(set(values) - known)
        if missing or unknown:
            raise ValueError(f"not a study layout: missing keys {missing}, unknown keys {unknown}")
        return cls(**values)


def read_layout(study_dir: str | Path) -> StudyLayout:
    """The layout a study stored in ``study_dir/study.json`` (key ``layout``)."""
    path = Path(study_dir) / "study.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: not a study directory")
    stored = json.loads(path.read_text())
    if "layout" not in stored:
        raise ValueError(f"{path} holds no layout (written before studies stored theirs): pass the study's "
                         "layout to make_report (studies/lif_vs_qif.py: study_layout)")
    return StudyLayout.from_dict(stored["layout"])
