"""The search driver: open or resume a study, then run trials until its budget is used, one line per trial.

The first trial of a new study is the base configuration itself (the recipe, ``baseline``), so a search
never ends below its starting point; the sampler proposes the rest. The budget (``n_trials``) is the
study's total, shared by every worker (``budget.BUDGET_RULE``). After every trial ``hpo.nc`` is rewritten
and stale trials of dead workers are failed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from spikeode.study.hpo.budget import BUDGET_RULE, OVER_BUDGET, OverBudget, claim_budget_slot, trials_used
from spikeode.study.hpo.liveness import fail_stale_trials
from spikeode.study.hpo.objective import DIRECTION, make_objective
from spikeode.study.hpo.results import format_params, write_study
from spikeode.study.hpo.sampler import TrialSeededSampler, make_pruner, pruner_settings
from spikeode.study.hpo.space import base_params, space_json, validate_space
from spikeode.study.hpo.storage import is_rdb_url, open_storage, redact
from spikeode.training import TrainConfig, changed_keys


def open_study(storage, study_name: str, space: Mapping, base: TrainConfig, *,
               sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create the study, or load it and check it was made with the same space and fixed settings.

    Raises:
        ValueError: the study exists with another search space or other fixed settings.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_name, direction=DIRECTION, load_if_exists=True,
                                sampler=sampler or TrialSeededSampler(), pruner=pruner or make_pruner())
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ValueError(f"study {study_name!r} exists and does not maximise; choose another --study-name")
    mine = {"search_space": space_json(space), "fixed_config": json.dumps(base.to_dict(), sort_keys=True)}
    recorded = study.user_attrs
    for key, value in mine.items():
        if key not in recorded:
            study.set_user_attr(key, value)
    attrs = study.user_attrs  # re-read: a concurrent creator may have written first
    if attrs["search_space"] != mine["search_space"]:
        diff = changed_keys(json.loads(attrs["search_space"]), space)
        raise ValueError(f"study {study_name!r} exists with another search space (differing: {diff}); use its space "
                         f"or another --study-name")
    if attrs["fixed_config"] != mine["fixed_config"]:
        diff = changed_keys(json.loads(attrs["fixed_config"]), json.loads(mine["fixed_config"]))
        raise ValueError(f"study {study_name!r} exists with other fixed training settings (differing: {diff}); "
                         f"pass the same flags or another --study-name")
    return study


def _claim_runs_dir(runs_dir: Path, study_name: str, storage: str) -> None:
    """``runs_dir/study.json`` names the study whose trial directories it holds; another study is refused."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    marker = runs_dir / "study.json"
    if marker.exists():
        theirs = json.loads(marker.read_text())
        if theirs.get("study_name") != study_name:
            raise ValueError(f"runs directory {runs_dir} holds trials of study {theirs.get('study_name')!r}; "
                             f"pass another --runs-dir")
        return
    tmp = runs_dir / f".study.json.{os.getpid()}"
    tmp.write_text(json.dumps({"study_name": study_name, "storage": redact(storage)}))
    os.replace(tmp, marker)


def _trial_line(study: optuna.Study, trial: FrozenTrial) -> str:
    """One line per finished trial: state, value, best so far, test accuracy, duration, parameters."""
    if trial.user_attrs.get(OVER_BUDGET):
        return f"trial {trial.number} not run: the budget was used up by other workers"
    try:
        best = study.best_trial
        best_text = f"{best.value:.4f} (trial {best.number})"
    except ValueError:
        best_text = "none yet"
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    test = trial.user_attrs.get("test_accuracy")
    test_text = "-" if test is None else f"{test:.4f}"
    return (f"trial {trial.number} {trial.state.name.lower()}: value {value} | best {best_text} | test {test_text} "
            f"| {trial.duration.total_seconds() if trial.duration else float('nan'):.1f} s | "
            f"{format_params(trial.params)}")


def _result_attrs(sampler: TrialSeededSampler, pruner: str, pruner_startup_trials: int, storage: str,
                  n_trials: int, baseline: bool, grace_period: int) -> dict:
    """What ``hpo.nc`` records about the search beyond its trials: sampler, pruner, storage, budget, rules."""
    heartbeat = "via Optuna RDB heartbeat" if is_rdb_url(storage) else "via heartbeat user attr"
    return {"sampler_json": json.dumps(sampler.settings()),
            "pruner_json": json.dumps(pruner_settings(pruner, pruner_startup_trials)),
            "storage": redact(storage),
            "trial_budget": n_trials,
            "baseline_first": int(baseline),
            "budget_rule": BUDGET_RULE,
            "stale_trial_rule": f"RUNNING trial failed when its worker pid is gone (same host and boot) or, "
                                f"{heartbeat}, silent for more than {grace_period} s"}


def run_search(base: TrainConfig, space: Mapping, *, storage: str | Path, study_name: str, n_trials: int,
               out: str | Path, runs_dir: str | Path | None = None, seed: int = 0, sampler_startup_trials: int = 10,
               pruner: str = "median", pruner_startup_trials: int = 3, heartbeat_interval: int = 60,
               grace_period: int = 240, progress: bool = False, baseline: bool = True,
               echo: Callable[[str], None] = print) -> optuna.Study:
    """Validate, open the study, fail stale trials, then run trials until the study holds ``n_trials``.

    With ``baseline`` the first trial of a new study is ``base`` itself (its values of the searched names,
    :func:`~spikeode.study.hpo.space.base_params`), then the sampler takes over.

    ``n_trials`` is the study's whole budget, shared by every worker (see ``BUDGET_RULE``): a rerun of a
    finished study starts no trial. Everything that can be wrong with the input (space, storage, study)
    raises before the first trial.
    """
    if not base.validation_fraction > 0:
        raise ValueError("hyperparameter search needs a validation split: set validation_fraction > 0 "
                         "(--validation-fraction); the test split is never used to choose")
    if n_trials < 0:
        raise ValueError(f"--trials must be >= 0, got {n_trials}")
    space = validate_space(space, base)
    out = Path(out)
    runs_dir = Path(runs_dir) if runs_dir is not None else out.parent / f"{out.stem}_runs"
    rdb = is_rdb_url(storage)  # an RDB storage has Optuna's heartbeat; a journal file gets ours
    store = open_storage(storage, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    sampler = TrialSeededSampler(seed, sampler_startup_trials)
    study = open_study(store, study_name, space, base, sampler=sampler,
                       pruner=make_pruner(pruner, pruner_startup_trials))
    _claim_runs_dir(runs_dir, study_name, str(storage))
    extra = _result_attrs(sampler, pruner, pruner_startup_trials, str(storage), n_trials, baseline, grace_period)
    for number in fail_stale_trials(study, store, grace_period, use_heartbeat=not rdb):
        echo(f"trial {number}: marked FAIL (its worker is gone)")
    objective = make_objective(base, space, runs_dir, heartbeat_interval=None if rdb else heartbeat_interval,
                               progress=progress)

    def within_budget(trial: optuna.Trial) -> float:
        claim_budget_slot(study, trial, n_trials)
        return objective(trial)

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        write_study(study, out, space=space, base=base, extra_attrs=extra)
        echo(_trial_line(study, trial))

    def stale_check_and_budget(study: optuna.Study, trial: FrozenTrial) -> None:
        fail_stale_trials(study, store, grace_period, use_heartbeat=not rdb)
        if trials_used(study) >= n_trials:
            study.stop()

    used = trials_used(study)
    if baseline and not study.trials and n_trials > 0:
        # The recipe itself is trial 0 (the same for every model searched with the same base): a search
        # never ends below its starting point, whatever the budget. Names outside their range are sampled.
        study.enqueue_trial(base_params(base, space), user_attrs={"baseline": 1}, skip_if_exists=True)
    if used < n_trials:
        study.optimize(within_budget, callbacks=[after_trial, stale_check_and_budget], catch=(OverBudget,),
                       gc_after_trial=True)
    else:
        echo(f"study {study_name!r}: {used} of {n_trials} budgeted trials used, none started")
    write_study(study, out, space=space, base=base, extra_attrs=extra)
    return study
