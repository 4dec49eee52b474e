"""``spikeode train``: train a network with exact gradients; history in DIR/run.nc, checkpoint in DIR."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spikeode.training.config import TrainConfig, default_config, read_config_file


def _json_object(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {text!r}")
    return value


_json_object.__name__ = "JSON object"  # argparse names the type in its error message


def _sequence_of(kind: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        return tuple(kind(part) for part in text.split(","))

    parse.__name__ = f"comma-separated {kind.__name__} list"
    return parse


def _parser_of(annotation: Any) -> Callable[[str], Any]:
    """The command-line parser of a field type: ``int``, ``float``, ``str``, ``X | None`` (as ``X``),
    ``tuple[X, ...]`` (comma-separated, e.g. ``128,64``) and ``dict`` (a JSON object)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is tuple:
        return _sequence_of(args[0])
    if args:  # X | None
        return _parser_of(args[0])
    if annotation is dict:
        return _json_object
    if annotation in (int, float, str):
        return annotation
    raise TypeError(f"no command-line parser for the configuration type {annotation!r}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def config_flags() -> dict[str, dict]:
    """Per TrainConfig field: its flag and ``add_argument`` options (help, type or action, choices).

    The help is the field's ``metadata["help"]``, followed by its choices where the text does not name them.
    A boolean field that is on by default gets ``--no-<name>`` (switches it off), one that is off gets
    ``--<name>`` (switches it on); every other field takes a value. All default to ``None``: "not given",
    so the recipe and the config file decide.
    """
    hints = typing.get_type_hints(TrainConfig)
    flags = {}
    for f in dataclasses.fields(TrainConfig):
        text = f.metadata["help"]
        if hints[f.name] is bool:
            flag = _flag(f"no_{f.name}" if f.default else f.name)
            flags[f.name] = dict(flag=flag, action="store_const", const=not f.default, default=None,
                                 help=f"switch off: {text}" if f.default else text)
            continue
        choices = f.metadata.get("choices")
        if choices and not all(choice in text for choice in choices):
            text = f"{text}: {' | '.join(choices)}"
        flags[f.name] = dict(flag=_flag(f.name), type=_parser_of(hints[f.name]), default=None, help=text,
                             metavar=f.name.upper(), **({"choices": choices} if choices else {}))
    return flags


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``TrainConfig`` field (shared by ``train`` and ``hpo``) and ``--config FILE``."""
    group = parser.add_argument_group("training configuration (default: the recipe of --data and --neuron)")
    for key, options in config_flags().items():
        options = dict(options)
        group.add_argument(options.pop("flag"), dest=key, **options)
    group.add_argument("--config", type=Path, default=None,
                       help="JSON or TOML file with the configuration's keys (flags override it)")


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration values given explicitly as flags."""
    return {key: getattr(args, key) for key in config_flags() if getattr(args, key) is not None}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Recipe of (data, neuron) < config file < explicit flags."""
    values = read_config_file(args.config) if args.config else {}
    values.update(flag_values(args))
    return default_config(values.pop("data", "synthetic"), values.pop("neuron", "qif"), **values)


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a spiking network with exact gradients", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="run directory (run.nc, checkpoint.eqx)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out after its last finished epoch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from spikeode.training import train  # it switches JAX to float64 itself when the config asks for it

    if (args.out / "checkpoint.json").exists() and not args.resume:
        raise ValueError(f"{args.out} already holds a run; pass --resume to continue it or choose another --out")
    print(f"spikeode train: {json.dumps(config.to_dict())}")
    ds = train(config, args.out, progress=not args.quiet)
    last = ds.isel(epoch=-1)
    print(f"final test accuracy {float(last.test_accuracy):.4f} (real spikes; with pseudospikes "
          f"{float(last.test_accuracy_pseudo):.4f}; outputs silent on {float(last.output_silent_sample_fraction):.0%} "
          f"of samples); history in {args.out / 'run.nc'}")
    return 0
