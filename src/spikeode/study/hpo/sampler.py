"""Sampler and pruner: a TPE sampler seeded per trial, built from the settings that ``hpo.nc`` records.

Trial ``n`` of a search with seed ``s`` is proposed by a fresh ``TPESampler(seed=s * 1000003 + n,
n_startup_trials=..., **TPE_OPTIONS)``: a proposal depends only on the seed, the trial number and the
finished history, so it is reproducible and concurrent workers do not draw the same random start-up
proposals (as they would with one identically seeded sampler per process).
"""

from __future__ import annotations

import warnings

import optuna
from optuna.trial import FrozenTrial

#: TPE options of every search (``TrialSeededSampler.settings`` records them with the rest).
TPE_OPTIONS = {"multivariate": True, "constant_liar": True}
#: Trial ``n`` of a search with seed ``s`` is proposed with seed ``s * SEED_STRIDE + n``.
SEED_STRIDE = 1_000_003
#: Epochs reported before the median pruner may act (the objective never prunes a finished run).
PRUNER_WARMUP_STEPS = 0


def tpe_sampler(seed: int, n_startup_trials: int = 10) -> optuna.samplers.TPESampler:
    """The TPE sampler of one trial: ``n_startup_trials`` random proposals, then TPE with ``TPE_OPTIONS``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials, **TPE_OPTIONS)


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A TPE sampler made afresh for every trial with seed ``seed * 1000003 + trial number``.

    The first ``n_startup_trials`` trials are random; TPE proposes the rest. :meth:`settings` is what
    ``hpo.nc`` records, and what the TPE sampler of every trial is built from.
    """

    def __init__(self, seed: int = 0, n_startup_trials: int = 10):
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, got {n_startup_trials}")
        self.seed, self.n_startup_trials = int(seed), int(n_startup_trials)
        self._current: tuple[int, optuna.samplers.BaseSampler] | None = None

    def settings(self) -> dict:
        """The sampler's settings as ``hpo.nc`` records them (``sampler_json``)."""
        return {"sampler": "TPESampler", **TPE_OPTIONS, "n_startup_trials": self.n_startup_trials,
                "seed": self.seed, "seeding": "per trial: seed * 1000003 + trial number"}

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        if self._current is None or self._current[0] != trial.number:
            self._current = (trial.number, tpe_sampler(self.seed * SEED_STRIDE + trial.number, self.n_startup_trials))
        return self._current[1]

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self._for(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:  # per-trial seeds: nothing to reseed
        pass


def make_pruner(name: str = "median", startup_trials: int = 3) -> optuna.pruners.BasePruner:
    """``"median"``: Optuna's median pruner on the per-epoch validation accuracy; ``"none"``: never prune."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=PRUNER_WARMUP_STEPS,
                                           interval_steps=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}: use median or none")


def pruner_settings(name: str, startup_trials: int) -> dict:
    """The pruner's settings as ``hpo.nc`` records them (``pruner_json``)."""
    return {"pruner": name, "n_startup_trials": startup_trials, "n_warmup_steps": PRUNER_WARMUP_STEPS,
            "reported": "validation accuracy per epoch"}
