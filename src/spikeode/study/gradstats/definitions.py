"""What every gradient statistic means: the definitions text, and each variable's dims and attributes."""

from __future__ import annotations

__all__ = ["DEFAULT_PROBES", "DEFAULT_STEP_SCALES", "DEFINITIONS", "VARIABLES"]

#: What every statistic means (stored as attribute ``definitions``; a constant, not a docstring, so that
#: ``python -OO`` keeps it).
DEFINITIONS = """Layers.  Layer ``l`` is the block ``g_{i,l}`` of the incoming weights of spiking layer ``l`` (named
``hidden1, ..., output`` as in ``run.nc``; ``readout`` for the voltage readout's weights); ``all`` is the
whole trainable vector, every block concatenated.

Per layer, with ``gbar = (1/B) sum_i g_i`` (all norms Euclidean over the layer's entries):
- ``grad_norm``: ``(1/B) sum_i ||g_i||``, the mean minibatch-gradient norm.
- ``grad_variance``: ``V = 1/(B-1) sum_i ||g_i - gbar||^2``, the total (trace) variance of the minibatch
  gradient across minibatches (unbiased).
- ``snr``: ``||gbar||^2 / V``, the plug-in estimate of the signal-to-noise ratio
  ``||E[g]||^2 / E||g - E[g]||^2``. Because ``E||gbar||^2 = ||E g||^2 + V/B``, pure noise gives
  ``snr ~ 1/B``; ``snr_debiased = (||gbar||^2 - V/B) / V`` removes that bias (can be negative).
- ``cosine``: mean pairwise cosine similarity ``2/(B(B-1)) sum_{i<j} <g_i, g_j> / (||g_i|| ||g_j||)``
  (pairs with a zero-norm gradient are left out; NaN if none remains).
- ``zero_grad_fraction`` (dim ``pseudospikes``, 1 = the loss uses pseudospikes for silent outputs,
  0 = a silent output reports ``T`` and passes no gradient): mean over the probe minibatches (below) of
  the fraction of the layer's parameters whose gradient is exactly ``0.0`` (silent pathways);
  ``zero_grad_fraction_all``: fraction of parameters whose gradient is exactly zero on every probe
  minibatch. Both computed with pseudospikes on and off, whatever the run trained with.

Probes.  The statistics below and the zero fractions use the first ``probes`` (default 4) of the ``B``
minibatches, ``i = 1..probes``; the statistics above use all ``B``.

Gradient predictiveness along the update (Santurkar et al. 2018, "How does batch normalization help
optimization?"), per probe minibatch ``i`` and step scale ``s`` (dim ``step_scale``): the step is
``delta_i(s) = -eta * s * c_i * g_i`` with ``eta`` the run's peak learning rate ``lr`` and ``c_i`` set by
``step_kind``: ``sgd``: ``c_i = 1`` (the plain SGD step ``-eta s g``); ``adam``: ``c_i = sqrt(P) / ||g_i||``
(the step along ``-g_i`` as long as an Adam step that moves each of the ``P`` parameters by ``eta``).
``step_kind = auto`` (default) takes ``sgd`` for runs trained with SGD, ``adam`` otherwise.
- ``step_length``: ``(1/B) sum_i ||delta_i(s)||``.
- ``loss_change``: ``(1/B) sum_i [L_i(theta + delta_i) - L_i(theta)]``; ``loss_change_predicted``: the
  first-order prediction ``(1/B) sum_i <g_i, delta_i>`` (negative).
- ``predictiveness_ratio``: median over minibatches of ``[L_i(theta + delta_i) - L_i(theta)] / <g_i, delta_i>``
  (1: the linear model is exact; 0: no decrease; negative: the loss went up).
- ``ascent_fraction``: fraction of minibatches where ``L_i(theta + delta_i) > L_i(theta)``: how often a
  step that the gradient says decreases the loss increases it.
- ``grad_change`` (dims ``layer, step_scale``): ``(1/B) sum_i ||g_{i,l}(theta) - g_{i,l}(theta + delta_i)||``
  (Santurkar's gradient predictiveness; small = predictive); ``grad_change_relative``: the same with each
  term divided by ``||g_{i,l}(theta)||``; ``effective_smoothness``: ``(1/B) sum_i ||g_i(theta) -
  g_i(theta + delta_i)|| / ||delta_i||`` (Santurkar's effective beta-smoothness, whole vector). These
  three need gradients after the step and are measured at ``s = 1`` only (NaN at the other scales).
  (In these sums ``B`` stands for the number of probes.)
Finite-difference agreement at the scale of one step (``s = 1``, ``h_i = ||delta_i(1)||``,
``d_i = -g_i / ||g_i||``):
- ``fd_slope_ratio``: median over minibatches of the central finite-difference slope
  ``[L_i(theta + h_i d_i) - L_i(theta - h_i d_i)] / (2 h_i)`` divided by the gradient's slope
  ``<g_i, d_i> = -||g_i||`` (1: agreement; negative: the finite difference says the loss goes up);
- ``fd_sign_agreement``: fraction of minibatches whose central finite-difference slope is negative
  (agrees in sign with the gradient).
Also ``loss`` (``(1/B) sum_i L_i(theta)``) and ``problems`` (samples with an exhausted event budget,
slot overflow or failed solve, summed over the ``B`` minibatches at ``theta``).
"""

DEFAULT_STEP_SCALES: tuple[float, ...] = (0.5, 1.0, 2.0)
#: Minibatches (of the ``B``) that carry the step-based statistics (see "Cost" in the module docstring).
DEFAULT_PROBES = 4

#: name -> (dims, long_name, units, description). Dims without the run dims (neuron_model, seed, epoch).
VARIABLES: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "grad_norm": (("layer",), "mean minibatch gradient norm", "1",
                  "(1/B) sum_i ||g_i||, g_i the gradient of minibatch i's loss w.r.t. the layer's weights"),
    "grad_variance": (("layer",), "gradient variance across minibatches", "1",
                      "V = 1/(B-1) sum_i ||g_i - gbar||^2 with gbar = (1/B) sum_i g_i (trace of the covariance)"),
    "snr": (("layer",), "gradient signal-to-noise ratio", "1",
            "||gbar||^2 / V, plug-in estimate of ||E g||^2 / E||g - E g||^2 (pure noise gives ~1/B)"),
    "snr_debiased": (("layer",), "gradient signal-to-noise ratio (debiased)", "1",
                     "(||gbar||^2 - V/B) / V: ||gbar||^2 overestimates ||E g||^2 by V/B; can be negative"),
    "cosine": (("layer",), "mean pairwise cosine similarity of minibatch gradients", "1",
               "2/(B(B-1)) sum_{i<j} <g_i,g_j>/(||g_i|| ||g_j||), pairs with a zero gradient left out"),
    "zero_grad_fraction": (("pseudospikes", "layer"), "fraction of parameters with exactly zero gradient", "1",
                           ("mean over the probe minibatches of the fraction of the layer's weights whose minibatch "
                           "gradient is exactly 0.0; pseudospikes=1: silent outputs use pseudospike times, 0: they report T")),
    "zero_grad_fraction_all": (("pseudospikes", "layer"), "fraction of parameters with zero gradient on every minibatch",
                               "1", ("fraction of the layer's weights whose gradient is exactly 0.0 on every probe minibatch "
                               "(silent pathways); pseudospikes as for zero_grad_fraction")),
    "step_length": (("step_scale",), "length of the step along -g", "1",
                    ("(1/B) sum_i ||delta_i(s)||, delta_i(s) = -eta s c_i g_i (c_i = 1 for step_kind sgd, "
                    "sqrt(P)/||g_i|| for adam), eta the run's lr; i over the probe minibatches")),
    "loss_change": (("step_scale",), "loss change after a step along -g", "1",
                    "(1/B) sum_i [L_i(theta + delta_i(s)) - L_i(theta)], on the same minibatch; i over the probe minibatches"),
    "loss_change_predicted": (("step_scale",), "first-order predicted loss change", "1",
                              "(1/B) sum_i <g_i, delta_i(s)> (negative); i over the probe minibatches"),
    "predictiveness_ratio": (("step_scale",), "actual / predicted loss change (median over minibatches)", "1",
                             ("median_i [L_i(theta + delta_i) - L_i(theta)] / <g_i, delta_i>; 1: linear model exact, "
                             "negative: the loss went up; i over the probe minibatches")),
    "ascent_fraction": (("step_scale",), "fraction of descent steps that increase the loss", "1",
                        "fraction of minibatches with L_i(theta + delta_i(s)) > L_i(theta); i over the probe minibatches"),
    "grad_change": (("layer", "step_scale"), "gradient change after a step (gradient predictiveness)", "1",
                    ("(1/B) sum_i ||g_{i,l}(theta) - g_{i,l}(theta + delta_i(s))|| over the probes (Santurkar et al. "
                     "2018); measured at s = 1 only, NaN at other scales")),
    "grad_change_relative": (("layer", "step_scale"), "relative gradient change after a step", "1",
                             "(1/B) sum_i ||g_{i,l}(theta) - g_{i,l}(theta + delta_i(s))|| / ||g_{i,l}(theta)||; s = 1 only"),
    "effective_smoothness": (("step_scale",), "effective beta-smoothness along the step", "1",
                             "(1/B) sum_i ||g_i(theta) - g_i(theta + delta_i)|| / ||delta_i||, whole weight vector; s = 1 only"),
    "fd_slope_ratio": ((), "finite-difference slope / gradient slope along -g at one step (median)", "1",
                       ("median_i [L_i(theta + h_i d_i) - L_i(theta - h_i d_i)] / (2 h_i) / (-||g_i||), "
                       "d_i = -g_i/||g_i||, h_i = ||delta_i(1)||; 1: agreement; i over the probe minibatches")),
    "fd_sign_agreement": ((), "fraction of minibatches whose finite-difference slope along -g is negative", "1",
                          ("fraction of i with L_i(theta + h_i d_i) < L_i(theta - h_i d_i) (central difference at "
                          "the scale of one step agrees in sign with the gradient); i over the probe minibatches")),
    "loss": ((), "training loss at the checkpoint (mean over the B minibatches)", "1", "(1/B) sum_i L_i(theta)"),
    "problems": ((), "samples with an exhausted event budget, slot overflow or failed solve", "1",
                 "summed over the B minibatches at theta"),
}

