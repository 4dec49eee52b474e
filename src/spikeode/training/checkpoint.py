"""Checkpoints of a run directory: the model and optimiser state after each finished epoch, saved atomically.

A run directory holds ``checkpoint.eqx`` (model and optimiser state after the last finished epoch),
``checkpoint.json`` (that epoch, the configuration, the shapes and the calibration needed to rebuild the
pytree) and ``epochs/epoch_NNNN.eqx`` (the model after every epoch; 0 = the initialisation).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import equinox as eqx
import jax

from spikeode.training.config import EXECUTION_FIELDS, TrainConfig, changed_keys
from spikeode.training.model import SpikingClassifier, build_model
from spikeode.training.optim import make_optimizer, trainable_filter

__all__ = ["save_checkpoint", "load_checkpoint", "resume_checkpoint", "load_model", "epoch_model_path"]


def epoch_model_path(run_dir: str | Path, epoch: int) -> Path:
    """Where the model after ``epoch`` is kept (every epoch, model only; for gradient statistics)."""
    return Path(run_dir) / "epochs" / f"epoch_{epoch:04d}.eqx"


def save_checkpoint(run_dir: Path, model: SpikingClassifier, opt_state, epoch: int, config: TrainConfig,
                    meta: dict) -> None:
    """Write the model of ``epoch``, then ``checkpoint.eqx`` and ``checkpoint.json`` (each by atomic rename).

    ``meta`` needs ``n_inputs``, ``n_classes``, ``steps_per_epoch`` and ``calibration`` (rebuilding the pytree).
    """
    snapshot = epoch_model_path(run_dir, epoch)
    snapshot.parent.mkdir(exist_ok=True)
    eqx.tree_serialise_leaves(snapshot.with_suffix(".tmp"), model)
    os.replace(snapshot.with_suffix(".tmp"), snapshot)
    tmp = run_dir / ".checkpoint.eqx.tmp"
    eqx.tree_serialise_leaves(tmp, (model, opt_state))
    os.replace(tmp, run_dir / "checkpoint.eqx")
    tmp_meta = run_dir / ".checkpoint.json.tmp"
    tmp_meta.write_text(json.dumps({"epoch": epoch, "config": config.to_dict(), **meta}, indent=1))
    os.replace(tmp_meta, run_dir / "checkpoint.json")


def resume_checkpoint(run_dir: str | Path, config: TrainConfig | None = None):
    """``(model, opt_state, meta)`` of the last finished epoch; ``meta`` is ``checkpoint.json`` (read once).

    Raises:
        FileNotFoundError: ``run_dir`` holds no checkpoint.
        ValueError: ``config`` is given and differs from the run's other than in ``EXECUTION_FIELDS`` (the
            differing keys are named).
    """
    run_dir = Path(run_dir)
    meta_path = run_dir / "checkpoint.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"no checkpoint in {run_dir} (expected checkpoint.json and checkpoint.eqx)")
    meta = json.loads(meta_path.read_text())
    stored = TrainConfig.from_dict(meta["config"])
    if config is not None and stored.replace(**{k: getattr(config, k) for k in EXECUTION_FIELDS}) != config:
        raise ValueError(f"{run_dir} holds a run with another configuration; differing keys: "
                         f"{changed_keys(stored.to_dict(), config.to_dict())}")
    like = build_model(stored, meta["n_inputs"], meta["n_classes"], key=jax.random.PRNGKey(0))
    optimizer = make_optimizer(stored, meta["steps_per_epoch"], meta.get("calibration"))
    opt_like = optimizer.init(eqx.filter(like, trainable_filter(like, stored)))
    model, opt_state = eqx.tree_deserialise_leaves(run_dir / "checkpoint.eqx", (like, opt_like))
    return model, opt_state, meta


def load_checkpoint(run_dir: str | Path, config: TrainConfig | None = None):
    """``(model, opt_state, epoch, config)`` of the last finished epoch of a run directory."""
    model, opt_state, meta = resume_checkpoint(run_dir, config)
    return model, opt_state, int(meta["epoch"]), TrainConfig.from_dict(meta["config"])


def load_model(run_dir: str | Path, epoch: int | None = None) -> tuple[SpikingClassifier, TrainConfig]:
    """The model of a run after ``epoch`` (default: the last finished epoch) and the run's config."""
    model, _, last, config = load_checkpoint(run_dir)
    if epoch is None or epoch == last:
        return model, config
    path = epoch_model_path(run_dir, epoch)
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no model for epoch {epoch} (expected {path})")
    return eqx.tree_deserialise_leaves(path, model), config
