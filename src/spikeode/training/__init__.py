"""Training: configuration and recipes, the model, the loss, the optimiser, checkpoints, run history, the loop.

Import from here (``from spikeode.training import TrainConfig, train``); the modules below are internal:

- ``config``: :class:`TrainConfig` (its fields carry the CLI's help), recipes, per-layer values, data key;
- ``model``: :class:`SpikingClassifier`, :func:`build_model`;
- ``loss``: :func:`sample_loss`, the one classification loss;
- ``optim``: :func:`make_optimizer`, :func:`trainable_filter`;
- ``checkpoint``: saving and loading a run directory's checkpoints;
- ``history``: the ``run.nc`` Dataset, one row per epoch;
- ``loop``: :func:`load_data`, :func:`make_loss_fn`, :func:`training_step`, :func:`evaluate`, :func:`train`.

Names are imported on first use (PEP 562), so ``spikeode.training.config`` (and the CLI's parser built
from it) loads without JAX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spikeode._lazy import lazy_names

#: public name -> module that defines it
_LAZY: dict[str, str] = {
    **dict.fromkeys(("TrainConfig", "OPTIMIZERS", "RECIPES", "PAIR_NEURON_PARAMS", "NEURON_RECIPES", "PER_LAYER",
                     "DATA_FIELDS", "EXECUTION_FIELDS", "default_config", "per_layer", "spiking_layer_names",
                     "effective_config", "accuracy_variable", "data_key", "read_config_file", "changed_keys"), ".config"),
    **dict.fromkeys(("SpikingClassifier", "build_model"), ".model"),
    **dict.fromkeys(("Objective", "SampleLoss", "sample_loss"), ".loss"),
    **dict.fromkeys(("make_optimizer", "trainable_filter"), ".optim"),
    **dict.fromkeys(("save_checkpoint", "load_checkpoint", "resume_checkpoint", "load_model", "epoch_model_path"),
                    ".checkpoint"),
    **dict.fromkeys(("HISTORY_VARIABLES", "CALIBRATION_VARIABLES", "epoch_line", "epoch_row", "history_dataset",
                     "read_rows"), ".history"),
    **dict.fromkeys(("load_data", "resolve_gradient", "make_loss_fn", "training_step", "evaluate", "train"),
                    ".loop"),
}

__all__ = list(_LAZY)

if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from spikeode.training.checkpoint import (
        epoch_model_path,
        load_checkpoint,
        load_model,
        resume_checkpoint,
        save_checkpoint,
    )
    from spikeode.training.config import (
        DATA_FIELDS,
        EXECUTION_FIELDS,
        NEURON_RECIPES,
        OPTIMIZERS,
        PAIR_NEURON_PARAMS,
        PER_LAYER,
        RECIPES,
        TrainConfig,
        accuracy_variable,
        changed_keys,
        data_key,
        default_config,
        effective_config,
        per_layer,
        read_config_file,
        spiking_layer_names,
    )
    from spikeode.training.history import (
        CALIBRATION_VARIABLES,
        HISTORY_VARIABLES,
        epoch_line,
        epoch_row,
        history_dataset,
        read_rows,
    )
    from spikeode.training.loop import (
        evaluate,
        load_data,
        make_loss_fn,
        resolve_gradient,
        train,
        training_step,
    )
    from spikeode.training.loss import Objective, SampleLoss, sample_loss
    from spikeode.training.model import SpikingClassifier, build_model
    from spikeode.training.optim import make_optimizer, trainable_filter


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
