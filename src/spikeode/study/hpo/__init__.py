"""Hyperparameter search per neuron model with Optuna: the public API of the search.

A search trains one configuration per trial and maximises the validation accuracy of the final epoch
(the test split is never used to choose). The modules, one concern each:

- ``space``: the declarative search-space table (``SEARCH_SPACES``), its validation, and the map between
  hyperparameters and ``TrainConfig`` (``apply_params``, its inverse ``base_params``, ``suggest``);
- ``storage``: a journal file or a database URL shared by every worker (``open_storage``);
- ``sampler``: the per-trial-seeded TPE sampler and the pruner, built from the settings ``hpo.nc`` records;
- ``liveness``: worker identity, the heartbeat of a running trial, failing the trials of dead workers;
- ``objective``: one trial: train, report each epoch to the pruner, return the final validation accuracy;
- ``budget``: every trial counts toward ``n_trials`` (``BUDGET_RULE``);
- ``results``: the result file ``hpo.nc`` (dim ``trial``) and the winner's configuration (``best_config``);
- ``search``: the driver, ``run_search``.

    study = run_search(base, default_space("qif", base.init), storage="qif.log", study_name="qif",
                       n_trials=20, out="qif_hpo.nc")
    config = TrainConfig.from_dict(best_config(open_storage("qif.log"), "qif"))
"""

from spikeode.study.hpo.budget import BUDGET_RULE, OVER_BUDGET, trials_used
from spikeode.study.hpo.liveness import fail_stale_trials, worker_identity
from spikeode.study.hpo.objective import (
    DIRECTION,
    OBJECTIVE,
    DataCache,
    make_objective,
    objective_variable,
)
from spikeode.study.hpo.results import best_config, format_params, study_dataset, write_study
from spikeode.study.hpo.sampler import TPE_OPTIONS, TrialSeededSampler, make_pruner, tpe_sampler
from spikeode.study.hpo.search import open_study, run_search
from spikeode.study.hpo.space import (
    FIXED_KEYS,
    KINDS,
    PER_LAYER,
    SEARCH_SPACES,
    apply_params,
    base_params,
    default_space,
    distributions,
    read_space,
    space_json,
    suggest,
    validate_space,
)
from spikeode.study.hpo.storage import is_rdb_url, open_storage, redact

__all__ = [
    "BUDGET_RULE",
    "DIRECTION",
    "FIXED_KEYS",
    "KINDS",
    "OBJECTIVE",
    "OVER_BUDGET",
    "PER_LAYER",
    "SEARCH_SPACES",
    "TPE_OPTIONS",
    "DataCache",
    "TrialSeededSampler",
    "apply_params",
    "base_params",
    "best_config",
    "default_space",
    "distributions",
    "fail_stale_trials",
    "format_params",
    "is_rdb_url",
    "make_objective",
    "make_pruner",
    "objective_variable",
    "open_storage",
    "open_study",
    "read_space",
    "redact",
    "run_search",
    "space_json",
    "study_dataset",
    "suggest",
    "tpe_sampler",
    "trials_used",
    "validate_space",
    "worker_identity",
    "write_study",
]
