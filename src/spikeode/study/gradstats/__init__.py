"""Gradient statistics of a trained run, per checkpoint, and collected across runs (issue 8).

With the parameters of one checkpoint held fixed, ``B`` minibatches of the training split are drawn
(seeded: ``iterate_batches(train, b, seed=1_000_003 * seed + k, drop_last=True)`` for ``k = 0, 1, ...``
until ``B`` full batches exist; ``b`` is the run's batch size, or the split size if smaller). On
minibatch ``i`` the minibatch loss ``L_i`` is the run's training loss (``spikeode.training.make_loss_fn``)
and ``g_i = grad L_i(theta)`` its gradient with respect to the trainable weights (``net.weights``, the
recurrent weights and the voltage readout's weights when present; neuron parameters are held fixed).

Definitions: :data:`DEFINITIONS` (each variable's ``description`` attribute repeats its own; combined
Datasets carry all of them as attribute ``definitions``).

Cost per checkpoint: ``B + 2 probes`` minibatch gradients (at theta, with pseudospikes switched, after
the ``s = 1`` step) and ``len(step_scales) probes`` minibatch losses (forward passes only: the other
scales, and ``theta - delta(1)``), in groups of ``probes`` minibatches (the last group padded) through one
compiled gradient program, for both pseudospike settings, and one forward program per loss key
(``jax.lax.map`` over a group, ``chunk`` minibatches vmapped at once). With ``B = 16`` and 4 probes that
is 24 gradients and 12 losses: measured at 1.07x the time of 20 training steps of the same run
(synthetic QIF run, float32, batch 32, steady state).

Across runs, ``combine_gradstats`` puts per-checkpoint Datasets on dims
``(neuron_model, seed, epoch, layer[, step_scale])``; combinations with no checkpoint are NaN.

Modules: ``definitions`` (``DEFINITIONS``, ``VARIABLES``), ``statistics`` (NumPy statistics),
``program`` (the compiled gradient program), ``checkpoint`` (one checkpoint), ``dataset`` (Datasets and
their combination), ``runs`` (run and epoch selection, :func:`run_gradstats`). The figure is
``spikeode.io.plotting.plot_gradstats`` (also importable from here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spikeode.study.gradstats.checkpoint import checkpoint_gradstats, draw_minibatches
from spikeode.study.gradstats.dataset import checkpoint_dataset, combine_gradstats
from spikeode.study.gradstats.definitions import DEFAULT_PROBES, DEFAULT_STEP_SCALES, DEFINITIONS, VARIABLES
from spikeode.study.gradstats.runs import expand_runs, run_gradstats, select_epochs
from spikeode.study.gradstats.statistics import (
    gradient_statistics,
    layer_statistics,
    predictiveness_statistics,
)

if TYPE_CHECKING:
    from spikeode.io.plotting import plot_gradstats

__all__ = [
    "DEFAULT_PROBES",
    "DEFAULT_STEP_SCALES",
    "DEFINITIONS",
    "VARIABLES",
    "checkpoint_dataset",
    "checkpoint_gradstats",
    "combine_gradstats",
    "draw_minibatches",
    "expand_runs",
    "gradient_statistics",
    "layer_statistics",
    "plot_gradstats",
    "predictiveness_statistics",
    "run_gradstats",
    "select_epochs",
]


def __getattr__(name: str):
    """``plot_gradstats`` on first use: importing matplotlib (and selecting its backend) waits until a figure
    is wanted."""
    if name == "plot_gradstats":
        from spikeode.io.plotting import plot_gradstats

        return plot_gradstats
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
