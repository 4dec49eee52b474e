"""``spikeode hpo``: hyperparameter search of one neuron model with Optuna (TPE + median pruning).

Every ``spikeode train`` flag fixes that setting for all trials; the search space (built-in per model, or
``--space FILE``) sets the rest. The objective is the final-epoch accuracy on a validation split carved
from train (``--validation-fraction``, default 0.2); the test accuracy is only recorded.

Storage: a journal file (``--storage study.log``) or a database URL (``sqlite:///study.db``,
``postgresql://user:pw@host/db``). More workers = more ``spikeode hpo`` processes, on any machine, with the
same ``--storage`` and ``--study-name``. A restarted worker continues the study; trials left RUNNING by a
dead worker are marked FAIL. ``--out`` (netCDF, dim ``trial``) is rewritten after every finished trial.

``--trials N`` is the study's whole budget, shared by all workers: each worker starts trials until the study
holds N, counting every trial (complete, pruned, failed, and running ones of live workers). A rerun of a
finished study starts none; raise ``--trials`` to extend it.

    spikeode hpo --neuron lif --trials 20 --storage lif.log --study-name lif --out lif_hpo.nc --epochs 4
    spikeode hpo --best lif --storage lif.log > best.json && spikeode train --config best.json --out best
"""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path

from spikeode.commands.train import add_config_flags, config_from_args, flag_values


def register(subparsers) -> None:
    p = subparsers.add_parser("hpo", help="hyperparameter search per neuron model (Optuna)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(p)
    p.add_argument("--storage", default=None, help="journal file path (default kind) or DB URL (sqlite:///, "
                                                    "postgresql://) shared by all workers")
    p.add_argument("--study-name", default=None, help="study name (required for a search)")
    p.add_argument("--trials", type=int, default=None,
                   help="the study's total trial budget, shared by all workers; every trial counts (complete, "
                        "pruned, failed, running)")
    p.add_argument("--out", type=Path, default=None, help="result file (netCDF), rewritten after every trial")
    p.add_argument("--space", type=Path, default=None, help="search space file (JSON or TOML), replaces the "
                                                            "built-in space of the model")
    p.add_argument("--runs-dir", type=Path, default=None, help="trial run directories trial_<number>/ "
                                                               "(default: <out stem>_runs next to --out)")
    p.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler (per trial: seed, number)")
    p.add_argument("--sampler-startup-trials", type=int, default=10, help="random trials before TPE proposes")
    p.add_argument("--pruner", default="median", choices=["median", "none"], help="pruner on validation accuracy")
    p.add_argument("--pruner-startup-trials", type=int, default=3, help="trials before the pruner acts")
    p.add_argument("--heartbeat", type=int, default=60, help="seconds between heartbeats of a running trial")
    p.add_argument("--grace", type=int, default=240,
                   help="a RUNNING trial without heartbeat for this many seconds is marked FAIL")
    p.add_argument("--best", metavar="STUDY", default=None,
                   help="print the best trial's configuration of STUDY as JSON (for spikeode train --config)")
    p.add_argument("--print-space", action="store_true", help="print the search space as JSON and exit")
    p.add_argument("--progress", action="store_true", help="progress bar of each trial's training")
    p.set_defaults(func=run)


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _fixed_keys(args: argparse.Namespace) -> set[str]:
    """Configuration keys given explicitly as flags: they are fixed for every trial (``validation_fraction``
    is the objective's split, not a hyperparameter)."""
    return set(flag_values(args)) - {"validation_fraction"}


def run(args: argparse.Namespace) -> int:
    from spikeode.study import hpo

    if args.best is not None:
        if args.storage is None:
            raise ValueError("--best needs --storage")
        if not hpo.is_rdb_url(args.storage) and not Path(args.storage).is_file():
            raise FileNotFoundError(f"no journal storage at {args.storage}")
        store = hpo.open_storage(args.storage)
        print(json.dumps(hpo.best_config(store, args.best), indent=1))
        return 0
    if args.validation_fraction is None:
        args.validation_fraction = 0.2
    base = config_from_args(args)
    space = hpo.read_space(args.space) if args.space else hpo.default_space(base.neuron, base.init, base.data)
    if args.print_space:
        print(json.dumps(hpo.validate_space(space, base), indent=1))
        return 0
    missing = [flag for flag, value in (("--storage", args.storage), ("--study-name", args.study_name),
                                        ("--trials", args.trials),
                                        ("--out", args.out)) if value is None]
    if missing:
        raise ValueError(f"a search needs {', '.join(missing)} (or --best STUDY to print a winner)")
    fixed = _fixed_keys(args)
    dropped = sorted(k for k in space if k.split(".")[0] in fixed)
    if dropped:
        space = {k: v for k, v in space.items() if k not in dropped}
        print(f"spikeode hpo: {dropped} fixed by their flags, not searched", flush=True)
    signal.signal(signal.SIGTERM, _terminate)  # a terminated worker fails its trial cleanly
    study = hpo.run_search(base, space, storage=args.storage, study_name=args.study_name, n_trials=args.trials,
                           out=args.out, runs_dir=args.runs_dir, seed=args.sampler_seed,
                           sampler_startup_trials=args.sampler_startup_trials, pruner=args.pruner,
                           pruner_startup_trials=args.pruner_startup_trials, heartbeat_interval=args.heartbeat,
                           grace_period=args.grace, progress=args.progress,
                           echo=lambda line: print(line, flush=True))
    print(f"study {args.study_name!r}: {hpo.trials_used(study)} of {args.trials} budgeted trials used; results in "
          f"{args.out}", flush=True)
    return 0
