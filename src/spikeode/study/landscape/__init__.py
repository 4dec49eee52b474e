"""Loss and gradient landscapes around a trained checkpoint, with spike-order diagnostics.

``L(W* + alpha delta + beta eta)`` on a grid (Li et al. 2018), where ``W*`` are the network weights of a
checkpoint (neuron parameters stay fixed) and ``delta``, ``eta`` are directions in weight space
(``directions``):

- ``random`` (default): seeded Gaussian directions with *filter normalisation per neuron*: for every
  layer ``l`` and neuron ``n`` the direction's incoming-weight row ``d_l[n, :]`` is rescaled to the norm
  of the neuron's incoming weights ``||W*_l[n, :]||``. Direction ``k`` (0: alpha, 1: beta) of layer ``l``
  is ``numpy.random.default_rng([seed, k, l]).standard_normal(W_l.shape)`` before rescaling, so the seed
  re-derives it exactly; the file stores the directions too.
- ``gradient`` (alpha only): ``-g``, the descent direction of the loss on the landscape's samples at
  ``W*``, filter-normalised per neuron like the random directions; beta stays random.
- ``checkpoint:DIR`` (alpha only): ``W_DIR - W*`` (``alpha = 1`` reaches the other checkpoint).

Kinds: ``2d`` (alpha x beta over a batch: the first ``train_samples`` of the seeded training subset),
``1d`` (alpha over that batch), ``sample`` (alpha, each sample of ``samples`` separately, with the full
spike-time arrays of every layer, and the exact locations of its spike events: once every row is done,
each spike appearance, disappearance and order change between neighbouring points is located to
``EVENT_TOL * span`` by refining the grid interval with a forward-only program, and stored on an
``event`` dimension; see ``spikeode.study.scan_events``, whose ``event_statistics`` summarises them).

Computation: the grid's alpha rows are split into chunks; a chunk (``evaluate``) evaluates its points in
vmapped batches of ``point_batch`` parameter offsets with ONE compiled program (``program``:
``value_and_grad`` of the loss), plus a *halo*, the first row of the next chunk, so that every edge
starting in the chunk (to the next alpha row and to the next beta column) gets its diagnostics
(``edges``, ``spikeode.study.diagnostics``) inside the chunk. Chunks are independent: they run in
process or on a Dask cluster (``driver``), and after each one the whole file (``dataset``) is rewritten
atomically (unfinished points NaN, ``row_finished`` flags); a rerun with the same configuration skips
finished chunks (resume). Event location runs in process after the last chunk and is written once; a
rerun of a file that has its events does not locate them again.

Modules: ``config`` (:class:`LandscapeConfig`), ``directions``, ``program`` (the compiled programs),
``edges`` (edge diagnostics of a chunk), ``evaluate`` (work units), ``dataset`` (grid state <-> Dataset),
``driver`` (:func:`compute_landscape`).
"""

from spikeode.study.landscape.config import EVENT_TOL, KINDS, LandscapeConfig
from spikeode.study.landscape.dataset import EDGE_VARIABLES, POINT_VARIABLES
from spikeode.study.landscape.directions import filter_normalise, make_directions, random_direction
from spikeode.study.landscape.driver import compute_landscape
from spikeode.study.landscape.evaluate import evaluate_chunk

__all__ = [
    "EDGE_VARIABLES",
    "EVENT_TOL",
    "KINDS",
    "POINT_VARIABLES",
    "LandscapeConfig",
    "compute_landscape",
    "evaluate_chunk",
    "filter_normalise",
    "make_directions",
    "random_direction",
]
