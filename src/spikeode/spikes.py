"""Padded spike trains: the input format of the engine and the output of the data loaders.

A batch of spike trains is stored as two arrays of equal shape ``(*batch, events)``:
``times`` sorted ascending per sample and padded with ``+inf`` at the end, and ``units`` (the
channel of each event, ``0`` where padded). Padding is never an event: the engine ignores ``+inf``.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

__all__ = ["Spikes", "spikes_from_lists", "validate_spikes", "check_padded_events"]


class Spikes(eqx.Module):
    """Padded, time-sorted input events of ``n_units`` channels.

    Attributes:
        times: event times, ascending per sample, ``+inf`` padding at the end.
        units: channel index of each event in ``[0, n_units)``; ``0`` for padding.
        n_units: number of input channels (static).
    """

    times: Float[Array, "*batch events"]
    units: Int[Array, "*batch events"]
    n_units: int = eqx.field(static=True)

    @property
    def counts(self) -> Int[Array, "*batch"]:
        """Number of real (finite) events per sample."""
        return jnp.sum(jnp.isfinite(self.times), axis=-1)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.times.shape[:-1])

    @property
    def max_events(self) -> int:
        return int(self.times.shape[-1])

    def __getitem__(self, index) -> Spikes:
        """Index or slice the batch axes (never the event axis)."""
        if not self.batch_shape:
            raise IndexError("Spikes of a single sample has no batch axis to index")
        return Spikes(self.times[index], self.units[index], self.n_units)

    def astype(self, dtype) -> Spikes:
        return Spikes(jnp.asarray(self.times, dtype), self.units, self.n_units)


def spikes_from_lists(
    times: Sequence[np.ndarray],
    units: Sequence[np.ndarray],
    n_units: int,
    *,
    max_events: int | None = None,
    dtype=np.float64,
) -> Spikes:
    """Build a padded batch from per-sample event lists (sorted here, stably by time).

    Args:
        times: one 1-D array of event times per sample (any order, finite, ``>= 0``).
        units: one 1-D integer array of channels per sample, same lengths as ``times``.
        n_units: number of channels; every unit must lie in ``[0, n_units)``.
        max_events: padded length; default the longest sample. A sample with more events is an
            error (nothing is silently truncated: cap the count in preprocessing instead).
        dtype: floating dtype of ``times``.

    Raises:
        ValueError: naming the sample index and the offending value.
    """
    if len(times) != len(units):
        raise ValueError(f"times has {len(times)} samples but units has {len(units)}")
    lengths = [len(np.atleast_1d(t)) for t in times]
    width = max(lengths, default=0) if max_events is None else int(max_events)
    out_t = np.full((len(times), width), np.inf, dtype=dtype)
    out_u = np.zeros((len(times), width), dtype=np.int32)
    for i, (t, u) in enumerate(zip(times, units)):
        t = np.asarray(t, dtype=np.float64).ravel()
        u = np.asarray(u).ravel()
        _check_sample(t, u, n_units, i)
        if len(t) > width:
            raise ValueError(
                f"sample {i} has {len(t)} events but max_events={width}; cap the spike count in "
                "preprocessing (e.g. cap_spikes) instead of truncating"
            )
        order = np.argsort(t, kind="stable")
        out_t[i, : len(t)] = t[order]
        out_u[i, : len(t)] = u[order]
    return Spikes(jnp.asarray(out_t), jnp.asarray(out_u), int(n_units))


def _check_sample(t: np.ndarray, u: np.ndarray, n_units: int, index: int) -> None:
    if t.shape != u.shape:
        raise ValueError(f"sample {index}: {t.size} times but {u.size} units")
    if np.isnan(t).any():
        raise ValueError(f"sample {index}: NaN spike time at event {int(np.flatnonzero(np.isnan(t))[0])}")
    if not np.isfinite(t).all():
        raise ValueError(f"sample {index}: infinite spike time (padding is added here, not passed in)")
    if (t < 0).any():
        j = int(np.flatnonzero(t < 0)[0])
        raise ValueError(f"sample {index}: negative spike time {t[j]!r} at event {j}")
    if u.size and not np.issubdtype(u.dtype, np.integer):
        if not np.all(np.equal(np.mod(u, 1), 0)):
            raise ValueError(f"sample {index}: non-integer unit index")
    if u.size and (u.min() < 0 or u.max() >= n_units):
        bad = int(u.min()) if u.min() < 0 else int(u.max())
        raise ValueError(f"sample {index}: unit {bad} outside [0, {n_units})")


def check_padded_events(times: np.ndarray, units: np.ndarray, n_units: int, label: str) -> None:
    """One sample's padded events: no NaN, non-negative, ascending (``+inf`` padding last), units in range.

    Raises:
        ValueError: ``"{label}: ..."`` naming the event index and the offending value.
    """
    t = np.asarray(times, dtype=np.float64)
    u = np.asarray(units)
    if np.isnan(t).any():
        raise ValueError(f"{label}: NaN spike time at event {int(np.flatnonzero(np.isnan(t))[0])}")
    if (t < 0).any():
        j = int(np.flatnonzero(t < 0)[0])
        raise ValueError(f"{label}: negative spike time {t[j]!r} at event {j}")
    with np.errstate(invalid="ignore"):
        steps = np.diff(t)
    if (steps < 0).any():
        j = int(np.flatnonzero(steps < 0)[0])
        raise ValueError(f"{label}: times not sorted at event {j + 1} ({t[j]!r} > {t[j + 1]!r})")
    real = np.isfinite(t)
    if real.any() and (u[real].min() < 0 or u[real].max() >= n_units):
        bad = int(u[real].min()) if u[real].min() < 0 else int(u[real].max())
        raise ValueError(f"{label}: unit {bad} outside [0, {n_units})")


def validate_spikes(spikes: Spikes) -> None:
    """Check a padded batch on the host: sorted, no NaN, non-negative, padding only at the end.

    Raises:
        ValueError: naming the sample index and the offending value.
    """
    t = np.asarray(spikes.times, dtype=np.float64)
    u = np.asarray(spikes.units)
    if t.shape != u.shape:
        raise ValueError(f"times shape {t.shape} differs from units shape {u.shape}")
    t2 = t.reshape(-1, t.shape[-1]) if t.ndim else t.reshape(1, 1)
    for i, (ti, ui) in enumerate(zip(t2, u.reshape(t2.shape))):
        check_padded_events(ti, ui, spikes.n_units, f"sample {i}")
