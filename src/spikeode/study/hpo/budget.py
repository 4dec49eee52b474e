"""The trial budget: every trial of a study counts toward ``n_trials``, whatever its fate.

Two models searched with the same budget get the same number of trials, and a rerun of a finished study
starts none. Workers race for the last slot through the trial numbers the storage assigns atomically.
"""

from __future__ import annotations

import optuna

OVER_BUDGET = "over_budget"
BUDGET_RULE = ("the study's trials, in every state (complete, pruned, failed; running ones of live workers too), "
               "count toward --trials; a running trial of a dead worker is failed and counts; a trial a worker "
               "starts after the budget is used up (a race between workers) is failed unrun, marked "
               "'over_budget', and neither counts nor appears in hpo.nc; a rerun of a finished study starts none")


class OverBudget(Exception):
    """The trial lost the race for the last budget slot to another worker; it fails without running."""


def counts(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether ``trial`` counts toward the budget: all do but those refused as over budget."""
    return not trial.user_attrs.get(OVER_BUDGET, False)


def trials_used(study: optuna.Study) -> int:
    """The trials that count toward the budget (``BUDGET_RULE``)."""
    return sum(counts(t) for t in study.get_trials(deepcopy=False))


def claim_budget_slot(study: optuna.Study, trial: optuna.Trial, budget: int) -> None:
    """Raise ``OverBudget`` if ``budget`` counted trials precede ``trial``.

    Trial numbers are assigned atomically by the storage, so of two workers that both saw one free slot,
    the one with the higher number sees the other's trial here and gives its slot up.
    """
    before = sum(t.number < trial.number and counts(t) for t in study.get_trials(deepcopy=False))
    if before >= budget:
        trial.set_user_attr(OVER_BUDGET, True)
        raise OverBudget(f"the budget of {budget} trials was used up by other workers; trial {trial.number} "
                         f"not run")
