"""What a landscape is computed of: :class:`LandscapeConfig`, validated on construction."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from spikeode.study import diagnostics

__all__ = ["EVENT_TOL", "KINDS", "LandscapeConfig"]

KINDS = ("2d", "1d", "sample")
#: exact event locations of the sample kind: final bracket width as a fraction of ``span``
EVENT_TOL = 1e-6


@dataclass(frozen=True)
class LandscapeConfig:
    """What a landscape is computed of (stored as JSON in ``config_json`` together with the run's config).

    Attributes:
        run: run directory with ``checkpoint.json`` / ``checkpoint.eqx``.
        kind: ``2d`` | ``1d`` | ``sample``.
        points: grid points per axis (odd numbers put ``W*`` on the grid).
        span: the grid covers ``[-span, span]`` on each axis.
        seed: seed of the random directions.
        train_samples: size of the seeded training subset (``spikeode train --train-samples N``); the
            batch of the ``2d``/``1d`` kinds is this whole subset, ``samples`` index into it.
        samples: sample indices of the ``sample`` kind.
        direction: ``random`` | ``gradient`` | ``checkpoint:DIR`` (the alpha direction).
        point_batch: parameter offsets per vmapped evaluation (one compiled program for all).
        chunk_rows: alpha rows per chunk (unit of checkpointing and of Dask tasks); default
            ``ceil(points / 4)``.
        jump_factor, jump_eps: the jump criterion (``spikeode.study.diagnostics``).
    """

    run: str
    kind: str = "2d"
    points: int = 21
    span: float = 1.0
    seed: int = 0
    train_samples: int = 256
    samples: tuple[int, ...] = (0,)
    direction: str = "random"
    point_batch: int = 4
    chunk_rows: int | None = None
    jump_factor: float = diagnostics.JUMP_FACTOR
    jump_eps: float = diagnostics.JUMP_EPS

    def __post_init__(self):
        object.__setattr__(self, "run", str(self.run))
        object.__setattr__(self, "samples", tuple(int(s) for s in self.samples))
        if self.kind not in KINDS:
            raise ValueError(f"unknown landscape kind {self.kind!r}: use one of {KINDS}")
        if self.points < 2:
            raise ValueError(f"points must be >= 2, got {self.points}")
        if not self.span > 0:
            raise ValueError(f"span must be positive, got {self.span}")
        if self.point_batch < 1 or self.train_samples < 1:
            raise ValueError("point_batch and train_samples must be >= 1")
        if not (self.direction in ("random", "gradient") or self.direction.startswith("checkpoint:")):
            raise ValueError(f"direction must be random, gradient or checkpoint:DIR, got {self.direction!r}")
        if self.kind == "sample":
            if not self.samples:
                raise ValueError("the sample kind needs at least one sample index")
            bad = [s for s in self.samples if not 0 <= s < self.train_samples]
            if bad:
                raise ValueError(f"sample indices {bad} outside the training subset [0, {self.train_samples})")

    @property
    def n_dirs(self) -> int:
        """Directions (grid axes): 2 for ``2d``, else 1."""
        return 2 if self.kind == "2d" else 1

    @property
    def rows_per_chunk(self) -> int:
        return self.chunk_rows or max(1, math.ceil(self.points / 4))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["samples"] = list(self.samples)
        return d
