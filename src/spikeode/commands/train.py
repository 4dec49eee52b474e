"""``spikeode train``: train a network with exact gradients; history in DIR/run.nc, checkpoint in DIR."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: flag name -> (TrainConfig key, type, help)
FLAGS = {
    "--neuron": ("neuron", str, "lif | qif | eif | package.module:Class"),
    "--data": ("data", str, "synthetic[:standard|easy|easier] (default) | yinyang | shd:DIR"),
    "--hidden": ("hidden", lambda s: tuple(int(x) for x in s.split(",")), "hidden widths, e.g. 128 or 128,64"),
    "--epochs": ("epochs", int, "training epochs"),
    "--batch-size": ("batch_size", int, "minibatch size"),
    "--optimizer": ("optimizer", str, "adam | adamw | adabelief | sgd | rmsprop"),
    "--lr": ("lr", float, "peak learning rate"),
    "--schedule": ("schedule", str, "constant | cosine | exponential"),
    "--grad-clip": ("grad_clip", float, "global-norm gradient clipping (0: off)"),
    "--T": ("T", float, "trial duration (dimensionless)"),
    "--k-in": ("k_in", int, "cap on input spikes per sample (SHD-format data)"),
    "--pool": ("pool", int, "channel pooling factor (SHD-format data)"),
    "--temperature": ("temperature", float, "softmax temperature of the first-spike loss"),
    "--gamma": ("gamma", float, "weight of the gamma (exp(t_label/T) - 1) term"),
    "--readout": ("readout", str, "first_spike | max_voltage"),
    "--integrator": ("integrator", str, "auto | closed_form | diffrax"),
    "--gradient": ("gradient", str, "auto (default: the event adjoint on the diffrax path, autodiff on the closed form) "
                   "| autodiff | adjoint (same values; the adjoint's memory is independent of solver steps)"),
    "--init": ("init", str, "calibrated (default: weights scaled on training data until neurons spike) | recipe"),
    "--calibration-rate": ("calibration_rate", float, "calibrated init: median spikes per hidden neuron per trial"),
    "--calibration-output": ("calibration_output", float,
                             "calibrated init: fraction of (sample, output) pairs with a spike"),
    "--objective": ("objective", str, "real (default: accuracy counts real output spikes only) | pseudo"),
    "--dtype": ("dtype", str, "float32 | float64"),
    "--seed": ("seed", int, "seed of initialisation, batch order and data subsets"),
    "--train-samples": ("train_samples", int, "seeded training subset (smoke runs)"),
    "--test-samples": ("test_samples", int, "seeded test subset"),
    "--validation-fraction": ("validation_fraction", float, "share of train carved out for validation"),
}


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """The training flags shared by ``train``, ``hpo`` and ``landscape``."""
    for flag, (_, typ, text) in FLAGS.items():
        parser.add_argument(flag, type=typ, default=None, help=text)
    parser.add_argument("--no-pseudospikes", action="store_true", help="switch pseudospikes off")
    parser.add_argument("--train-neuron", action="store_true", help="also train the neuron parameters")
    parser.add_argument("--neuron-params", type=json.loads, default=None, help='JSON, e.g. \'{"tau": 1.0, "I0": -0.05}\'')
    parser.add_argument("--config", type=Path, default=None, help="JSON or TOML file with the same keys as the flags")


def config_from_args(args: argparse.Namespace):
    """Recipe of (data, neuron) < config file < explicit flags."""
    from spikeode.training.loop import default_config

    values = _read_config_file(args.config) if args.config else {}
    for flag, (key, _, _) in FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            values[key] = value
    if args.no_pseudospikes:
        values["pseudospikes"] = False
    if args.train_neuron:
        values["train_neuron"] = True
    if args.neuron_params is not None:
        values["neuron_params"] = args.neuron_params
    if values.get("grad_clip") == 0:
        values["grad_clip"] = None
    data = values.pop("data", "synthetic")
    neuron = values.pop("neuron", "qif")
    return default_config(data, neuron, **values)


def _read_config_file(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        return dict(tomllib.loads(text))
    try:
        return dict(json.loads(text))
    except json.JSONDecodeError as err:
        raise ValueError(f"config file {path} is not valid JSON: {err}") from err


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a spiking network with exact gradients", description=__doc__)
    add_config_flags(p)
    p.add_argument("--out", type=Path, required=True, help="run directory (run.nc, checkpoint.eqx)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out after its last finished epoch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from spikeode.training.loop import train  # it switches JAX to float64 itself when the config asks for it

    if (args.out / "checkpoint.json").exists() and not args.resume:
        raise ValueError(f"{args.out} already holds a run; pass --resume to continue it or choose another --out")
    print(f"spikeode train: {json.dumps(config.to_dict())}")
    ds = train(config, args.out, progress=not args.quiet)
    last = ds.isel(epoch=-1)
    print(f"final test accuracy {float(last.test_accuracy):.4f} (real spikes; with pseudospikes "
          f"{float(last.test_accuracy_pseudo):.4f}; outputs silent on {float(last.output_silent_sample_fraction):.0%} "
          f"of samples); history in {args.out / 'run.nc'}")
    return 0
