"""Training: configuration and recipes, the model, the loss, checkpoints, run history and the loop.

Import from here (``from spikeode.training import TrainConfig, train``); the modules below are internal.
"""

from spikeode.training.loop import (
    RECIPES,
    SpikingClassifier,
    TrainConfig,
    accuracy_variable,
    build_model,
    default_config,
    effective_config,
    epoch_model_path,
    evaluate,
    load_checkpoint,
    load_data,
    load_model,
    make_loss_fn,
    resolve_gradient,
    train,
)
from spikeode.training.loss import Objective, SampleLoss, sample_loss

__all__ = ["RECIPES", "SpikingClassifier", "TrainConfig", "accuracy_variable", "build_model", "default_config",
           "effective_config", "epoch_model_path", "evaluate", "load_checkpoint", "load_data", "load_model",
           "make_loss_fn", "resolve_gradient", "train", "Objective", "SampleLoss", "sample_loss"]
