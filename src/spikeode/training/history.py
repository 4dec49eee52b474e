"""The run history: run.nc's variables, one row per epoch, and the Dataset written after every epoch.

``run.nc`` has dims ``epoch`` (0 = the initialisation) and ``layer`` (the spiking layers). Accuracies
count real output spikes (``test_accuracy``); ``test_accuracy_pseudo`` also counts the pseudospikes of
silent outputs. The attribute ``objective`` names the headline accuracy (:func:`accuracy_variable`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from spikeode.io.netcdf import provenance_attrs, variable
from spikeode.training.calibrate import HIDDEN_STATISTIC, OUTPUT_STATISTIC
from spikeode.training.config import TrainConfig, accuracy_variable, spiking_layer_names

__all__ = ["HISTORY_VARIABLES", "CALIBRATION_VARIABLES", "SILENT_WARNING_FRACTION", "epoch_row", "epoch_line",
           "history_dataset", "read_rows"]

HISTORY_VARIABLES = {
    # name: (dims, long_name, units)
    "train_loss": (("epoch",), "training loss (mean over the epoch's minibatches)", "1"),
    "train_accuracy": (("epoch",), "training accuracy (real output spikes only)", "1"),
    "train_accuracy_pseudo": (("epoch",), "training accuracy (real spikes and pseudospikes of silent outputs)", "1"),
    "test_loss": (("epoch",), "test loss", "1"),
    "test_accuracy": (("epoch",), "test accuracy (real output spikes only)", "1"),
    "test_accuracy_pseudo": (("epoch",), "test accuracy (real spikes and pseudospikes of silent outputs)", "1"),
    "output_silent_sample_fraction": (("epoch",), "fraction of test samples with no real output spike", "1"),
    "validation_loss": (("epoch",), "validation loss", "1"),
    "validation_accuracy": (("epoch",), "validation accuracy (real output spikes only)", "1"),
    "validation_accuracy_pseudo": (("epoch",), "validation accuracy (real spikes and pseudospikes of silent outputs)",
                                   "1"),
    "silent_fraction": (("epoch", "layer"), "fraction of neurons silent on the whole test split", "1"),
    "spikes_per_neuron": (("epoch", "layer"), "mean spikes per neuron per test sample", "1"),
    "grad_norm": (("epoch",), "mean global gradient norm over the epoch's steps", "1"),
    "budget_overflows": (("epoch",), "samples with an exhausted event budget, slot overflow or failed solve", "1"),
    "wall_time": (("epoch",), "wall-clock time of the epoch (training and evaluation)", "s"),
}

#: Outputs count as mostly silent when more test samples than this have no real output spike.
SILENT_WARNING_FRACTION = 0.5

CALIBRATION_VARIABLES = {
    # LayerCalibration field: (run.nc name, long_name)
    "scale": ("calibration_scale", "factor applied to the layer's weight shape by calibrated initialisation"),
    "weight_mean": ("calibration_weight_mean", "mean of the layer's weights after calibration"),
    "weight_std": ("calibration_weight_std", "standard deviation of the layer's weights after calibration"),
    "target": ("calibration_target", "activity calibrated initialisation aimed at"),
    "activity": ("calibration_activity", "activity reached on the calibration batch"),
}
CALIBRATION_STATISTICS = f"hidden layers: {HIDDEN_STATISTIC}; output layer: {OUTPUT_STATISTIC}"


def history_dataset(rows: Sequence[dict], config: TrainConfig, info: dict) -> xr.Dataset:
    """The run.nc Dataset of ``rows`` (one per epoch, from :func:`epoch_row`): dims ``epoch`` and ``layer``.

    ``info``: ``gradient_used``, and optionally ``calibration`` (records per layer), ``notice`` and
    ``microbatch`` (samples per microbatch of the training step).
    """
    layer_names = spiking_layer_names(config)
    epochs = [r["epoch"] for r in rows]
    data = {}
    for name, (dims, long_name, units) in HISTORY_VARIABLES.items():
        values = [r.get(name, np.nan if len(dims) == 1 else [np.nan] * len(layer_names)) for r in rows]
        data[name] = variable(dims, np.asarray(values, dtype=np.float64), long_name, units)
    calibration = info.get("calibration")
    if calibration:
        for key, (name, long_name) in CALIBRATION_VARIABLES.items():
            data[name] = variable(("layer",), np.asarray([c[key] for c in calibration], np.float64), long_name, "1")
        for name in ("calibration_target", "calibration_activity"):
            data[name].attrs["comment"] = CALIBRATION_STATISTICS
    ds = xr.Dataset(data, coords={"epoch": ("epoch", np.asarray(epochs), {"long_name": "epoch", "units": "1"}),
                                  "layer": ("layer", layer_names, {"long_name": "spiking layer"})})
    ds.attrs.update(provenance_attrs(f"spikeode training run ({config.neuron} on {config.data})",
                                     config.to_dict(), config.seed))
    silent = rows[-1]["output_silent_sample_fraction"]
    ds.attrs.update({
        "neuron_model": config.neuron,
        "objective": accuracy_variable(config, "test"),
        "init": config.init,
        "gradient_used": info["gradient_used"],
        "outputs_mostly_silent": int(silent > SILENT_WARNING_FRACTION),
        **({"calibration_samples": calibration[0]["samples"]} if calibration else {}),
        **({"notice": info["notice"]} if info.get("notice") else {}),
        **({"microbatch": int(info["microbatch"])} if info.get("microbatch") else {}),
    })
    return ds


def read_rows(ds: xr.Dataset) -> list[dict]:
    """The rows of a history Dataset, as :func:`epoch_row` made them (the inverse of :func:`history_dataset`)."""
    rows = []
    for i, epoch in enumerate(ds["epoch"].values):
        row = {"epoch": int(epoch)}
        for name, (dims, _, _) in HISTORY_VARIABLES.items():
            value = ds[name].values[i]
            row[name] = value.tolist() if len(dims) > 1 else float(value)
        rows.append(row)
    return rows


def epoch_line(row: dict) -> str:
    """One epoch's summary: the headline accuracy counts real spikes, pseudospikes beside it."""
    return (f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.3f} | "
            f"test acc {row['test_accuracy']:.3f} (with pseudospikes {row['test_accuracy_pseudo']:.3f}) | "
            f"outputs silent on {row['output_silent_sample_fraction']:.0%} of samples | "
            f"silent neurons {np.round(row['silent_fraction'], 2).tolist()} | {row['wall_time']:.1f} s")


def epoch_row(epoch: int, train: dict, test: dict, validation: dict | None, gnorms: Sequence[float],
              wall: float) -> dict:
    """One epoch's history entry from summaries (``spikeode.training.evaluate``'s keys) of the training steps
    (at epoch 0: an evaluation of the training split), the test split and the validation split (or ``None``)."""
    row = {
        "epoch": epoch,
        "train_loss": train["loss"],
        "train_accuracy": train["accuracy"],
        "train_accuracy_pseudo": train["accuracy_pseudo"],
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "test_accuracy_pseudo": test["accuracy_pseudo"],
        "output_silent_sample_fraction": test["output_silent_sample_fraction"],
        "silent_fraction": test["silent_fraction"],
        "spikes_per_neuron": test["spikes_per_neuron"],
        "grad_norm": float(np.mean(gnorms)) if len(gnorms) else np.nan,
        "budget_overflows": train["problems"] + test["problems"],
        "wall_time": wall,
    }
    if validation is not None:
        row.update({f"validation_{key}": validation[key] for key in ("loss", "accuracy", "accuracy_pseudo")})
    return row
