"""The grid's state and its Dataset: point and edge arrays, resume from a file, and the netCDF variables.

Internally every array is laid out ``(alpha, beta, sample, ...)`` (edges: ``(edge, alpha, beta, sample,
...)``), whatever the kind; the Dataset drops the axes a kind does not have (``beta`` except for ``2d``,
``sample`` except for ``sample``) and orders them ``(edge, sample, alpha, beta, ...)``. Unfinished points
are NaN and ``row_finished`` flags the alpha rows whose points and edges are written, so a file is its
own resume state.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from spikeode.io.netcdf import variable
from spikeode.study import diagnostics
from spikeode.study.landscape.config import LandscapeConfig
from spikeode.study.landscape.edges import empty_edges

__all__ = ["EDGE_VARIABLES", "POINT_VARIABLES", "GridState"]

#: point variables: name -> (extra dims, long_name, units, description)
POINT_VARIABLES = {
    "loss": ((), "loss", "1", ("mean loss over the batch (the training loss of the run's configuration); "
             "for the sample kind the loss of the single sample")),
    "accuracy": ((), "accuracy", "1", "fraction of samples classified correctly (earliest output, unique)"),
    "grad_alpha": ((), "dL/dalpha", "1", ("gradient of the loss projected on the alpha direction (directional "
                   "derivative dL/dalpha)")),
    "grad_beta": ((), "dL/dbeta", "1", "gradient of the loss projected on the beta direction (dL/dbeta)"),
    "grad_norm": ((), "gradient norm", "1", "Euclidean norm of the full gradient of the loss w.r.t. all weights"),
    "n_spikes": (("layer",), "spikes per sample", "1", ("spikes in [0, T] of the layer, summed over its neurons, "
                 "mean over the batch's samples")),
    "silent_fraction": (("layer",), "silent fraction", "1", ("fraction of the layer's neurons that fire no spike "
                        "in [0, T] on any sample of the batch")),
    "problems": ((), "simulation problems", "1", ("samples with an exhausted event budget, slot overflow or "
                 "failed solve (0 for a clean point)")),
}
#: edge variables: name -> (extra dims, long_name, units, description)
EDGE_VARIABLES = {
    "spike_appearances": (("layer",), "spike appearances", "1",
                          ("from this point to its neighbour along `edge`: sum over neurons of max(n_B - n_A, 0), "
                          "n the neuron's recorded spikes (spikes beyond its slots are not recorded: see "
                          "`problems`) (summed over the batch's samples)")),
    "spike_disappearances": (("layer",), "spike disappearances", "1",
                             ("from this point to its neighbour along `edge`: sum over neurons of max(n_A - n_B, 0) "
                             "(summed over the batch's samples)")),
    "order_changes": (("layer",), "spike order changes", "1",
                      ("Kendall distance between this point and its neighbour along `edge`: number of pairs of "
                      "spikes present at both points (k-th spike of a neuron matched to its k-th spike, "
                      "k < min(n_A, n_B)) whose temporal order flips (summed over the batch's samples)")),
    "loss_jump": ((), "|loss change| to the neighbour", "1", ("|L_B - L_A| along the edge from this point to its "
                  "neighbour along `edge`")),
    "fd_slope": ((), "finite-difference slope", "1", "(L_B - L_A) / h along the edge"),
    "grad_slope": ((), "mean gradient slope", "1", "(g_A + g_B) / 2, g the loss derivative along the edge's axis"),
    "is_jump": ((), "loss jump flag", "1", "1 where |L_B - L_A| > jump_factor * max(|g_A h|, |g_B h|) + jump_eps"),
    "grad_cosine": ((), "cosine of neighbouring gradients", "1",
                    "cosine similarity of the full weight gradients at this point and its neighbour"),
}
#: stored edge quantities the summary metrics and a resume need: file name -> key of ``GridState.edges``
_INTERNAL_EDGE_VARIABLES = {"loss_change": "dL", "slope_start": "slope_a", "slope_end": "slope_b"}
_INTERNAL_LONG_NAMES = {"dL": "signed loss change L_B - L_A", "slope_a": "g_A h", "slope_b": "g_B h"}
#: edge variables holding the per-layer spike diagnostics: file name -> key of ``GridState.edges``
_LAYER_EDGE_VARIABLES = {"spike_appearances": "appearances", "spike_disappearances": "disappearances",
                         "order_changes": "order_changes"}
_GRID_DIMS = ("alpha", "beta", "sample")


def _internal(ds: xr.Dataset, name: str, dims: tuple[str, ...]) -> np.ndarray:
    """``ds[name]`` in the internal layout ``dims`` (axes the kind dropped restored with length 1)."""
    da = ds[name]
    for d in dims:
        if d not in da.dims:
            da = da.expand_dims(d)
    return da.transpose(*dims).values


class GridState:
    """The grid's arrays in the internal layout ``(alpha, beta, sample, ...)`` (``edge`` first for edges)."""

    def __init__(self, lc: LandscapeConfig, alpha, beta, S: int, L: int, n_max: int, s_max: int):
        self.lc, self.alpha, self.beta = lc, alpha, beta
        na, nb = len(alpha), len(beta)
        D = lc.n_dirs
        self.points = {
            "loss": np.full((na, nb, S), np.nan), "accuracy": np.full((na, nb, S), np.nan),
            "grad_proj": np.full((na, nb, S, D), np.nan), "grad_norm": np.full((na, nb, S), np.nan),
            "n_spikes": np.full((na, nb, S, L), np.nan), "silent_fraction": np.full((na, nb, S, L), np.nan),
            "problems": np.full((na, nb, S), np.nan),
        }
        if lc.kind == "sample":
            self.points["spike_times"] = np.full((na, nb, S, L, n_max, s_max), np.nan)
        self.edges = empty_edges((D, na, nb, S), L)
        self.row_finished = np.zeros(na, np.int8)
        self.events: dict[str, xr.Variable] | None = None  # sample kind: located events, once all rows are done

    def merge(self, r0: int, r1: int, chunk: dict) -> None:
        """Take the outputs of the chunk of rows ``[r0, r1)`` (``evaluate_chunk``)."""
        for k, v in chunk.items():
            if k == "edges":
                for e, ev in v.items():
                    self.edges[e][:, r0:r1] = ev
            else:
                self.points[k][r0:r1] = v
        self.row_finished[r0:r1] = 1

    def load(self, ds: xr.Dataset) -> None:
        """Take the finished rows (and the located events) of an existing file."""
        done = ds["row_finished"].values.astype(bool)
        self.row_finished[done] = 1
        get = lambda name, extra=(): _internal(ds, name, _GRID_DIMS + extra)
        p = self.points
        for name in ("loss", "accuracy", "grad_norm", "problems"):
            p[name][done] = get(name)[done]
        p["grad_proj"][done, ..., 0] = get("grad_alpha")[done]
        if self.lc.n_dirs == 2:
            p["grad_proj"][done, ..., 1] = get("grad_beta")[done]
        for name in ("n_spikes", "silent_fraction"):
            p[name][done] = get(name, ("layer",))[done]
        if "spike_times" in p:
            p["spike_times"][done] = get("spike_times", ("layer", "neuron", "slot"))[done]
        edims = ("edge",) + _GRID_DIMS
        e = self.edges
        for name, key in _LAYER_EDGE_VARIABLES.items():
            e[key][:, done] = _internal(ds, name, edims + ("layer",))[:, done]
        for name, key in _INTERNAL_EDGE_VARIABLES.items():
            e[key][:, done] = _internal(ds, name, edims)[:, done]
        e["cosine"][:, done] = _internal(ds, "grad_cosine", edims)[:, done]
        if "event_kind" in ds:
            self.events = {name: ds[name].variable for name in ds.data_vars if name.startswith("event")}

    # ------------------------------------------------------------------------------------------- the Dataset

    def _out(self, lead: tuple[str, ...], arr: np.ndarray, extra: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
        """Dims and values of an internal array in the file's layout ``(edge, sample, alpha, beta, extra)``."""
        two_d, per_sample = self.lc.kind == "2d", self.lc.kind == "sample"
        dims = lead + _GRID_DIMS + extra
        keep = [d for d in dims if not ((d == "beta" and not two_d) or (d == "sample" and not per_sample))]
        arr = np.squeeze(arr, axis=tuple(i for i, d in enumerate(dims) if d not in keep))
        order = [d for d in ("edge", "sample", "alpha", "beta") if d in keep] + list(extra)
        return tuple(order), np.transpose(arr, [keep.index(d) for d in order])

    def _point_variables(self) -> dict[str, xr.Variable]:
        per_sample = self.lc.kind == "sample"
        p = self.points
        fields = {"loss": p["loss"], "accuracy": p["accuracy"], "grad_alpha": p["grad_proj"][..., 0],
                  "grad_norm": p["grad_norm"], "n_spikes": p["n_spikes"], "silent_fraction": p["silent_fraction"],
                  "problems": p["problems"]}
        if self.lc.kind == "2d":
            fields["grad_beta"] = p["grad_proj"][..., 1]
        data = {}
        for name, arr in fields.items():
            extra, long_name, units, desc = POINT_VARIABLES[name]
            if per_sample:
                desc = desc.replace("mean over the batch's samples", "of the sample").replace(
                    "on any sample of the batch", "on the sample")
            dims, values = self._out((), arr, extra)
            data[name] = variable(dims, values, long_name, units, description=desc)
        if per_sample:
            dims, values = self._out((), p["spike_times"], ("layer", "neuron", "slot"))
            data["spike_times"] = variable(dims, values, "spike times", "1", description=(
                "spike times of every neuron of every layer, ascending per neuron; +inf: unused slot; "
                "NaN: unfinished point or padding (layers narrower than `neuron`/`slot`)"))
        return data

    def _steps(self) -> np.ndarray:
        """The grid step ``h`` per edge axis, shaped to broadcast against ``(edge, alpha, beta, sample)``."""
        h = np.array([self.alpha[1] - self.alpha[0]] + ([self.beta[1] - self.beta[0]] if self.lc.kind == "2d" else []))
        return h[:, None, None, None]

    def _edge_variables(self) -> dict[str, xr.Variable]:
        lc, e, hb = self.lc, self.edges, self._steps()
        jumps = diagnostics.is_jump(e["dL"], e["slope_a"], e["slope_b"], factor=lc.jump_factor, eps=lc.jump_eps)
        fields = {
            "spike_appearances": e["appearances"], "spike_disappearances": e["disappearances"],
            "order_changes": e["order_changes"], "loss_jump": np.abs(e["dL"]), "fd_slope": e["dL"] / hb,
            "grad_slope": 0.5 * (e["slope_a"] + e["slope_b"]) / hb, "is_jump": jumps, "grad_cosine": e["cosine"],
        }
        data = {}
        for name, arr in fields.items():
            extra, long_name, units, desc = EDGE_VARIABLES[name]
            if lc.kind == "sample":
                desc = desc.replace(" (summed over the batch's samples)", "")
            dims, values = self._out(("edge",), arr, extra)
            data[name] = variable(dims, values, long_name, units, description=desc + "; NaN at the grid's last "
                                  "point along `edge` and for unfinished points")
        for name, key in _INTERNAL_EDGE_VARIABLES.items():
            dims, values = self._out(("edge",), e[key], ())
            data[name] = variable(dims, values, _INTERNAL_LONG_NAMES[key], "1",
                                  description="along the edge from this point to its neighbour along `edge` "
                                  "(kept for resume and the summary metrics); NaN at the last point")
        return data

    def _summary_variables(self) -> dict[str, xr.Variable]:
        lc, e = self.lc, self.edges
        n_lines = (len(self.alpha) + len(self.beta)) if lc.kind == "2d" else 1
        n_lines *= e["dL"].shape[3] if lc.kind == "sample" else 1
        summary = diagnostics.summary_metrics(e["dL"], e["slope_a"], e["slope_b"], self._steps(), e["cosine"],
                                              n_lines=n_lines, factor=lc.jump_factor, eps=lc.jump_eps)
        data = {}
        for name, value in summary.items():
            long_name, desc = diagnostics.SUMMARY_DESCRIPTIONS[name]
            data[name] = variable((), value, long_name, "1", description=desc + " (NaN edges excluded)")
        return data

    @staticmethod
    def _direction_variables(directions) -> dict[str, xr.Variable]:
        data = {}
        for k, d in enumerate(directions):
            ax = ("alpha", "beta")[k]
            for l, arr in enumerate(d):
                data[f"direction_{ax}_w{l}"] = variable(
                    (f"post{l}", f"pre{l}"), arr, f"{ax} direction, layer {l} weights", "1",
                    description=f"the {ax} direction's component on weights[{l}] ([post, pre]); see the module docstring")
        return data

    def _coords(self, layer_names: list[str], sample_ids) -> dict:
        lc = self.lc
        coords = {
            "alpha": ("alpha", self.alpha, {"long_name": "alpha", "units": "1"}),
            "layer": ("layer", layer_names, {"long_name": "spiking layer"}),
            "edge": ("edge", ["alpha", "beta"][: lc.n_dirs], {"long_name": "axis of the edge to the next point"}),
        }
        if lc.kind == "2d":
            coords["beta"] = ("beta", self.beta, {"long_name": "beta", "units": "1"})
        if lc.kind == "sample":
            st = self.points["spike_times"]
            coords["sample"] = ("sample", np.asarray(sample_ids), {"long_name": "sample index in the training subset"})
            coords["neuron"] = ("neuron", np.arange(st.shape[-2]), {"long_name": "neuron"})
            coords["slot"] = ("slot", np.arange(st.shape[-1]), {"long_name": "spike slot"})
        return coords

    def dataset(self, attrs: dict, layer_names: list[str], directions, sample_ids) -> xr.Dataset:
        """The landscape file: point, edge and summary variables, ``row_finished``, the directions, events."""
        data = {**self._point_variables(), **self._edge_variables(), **self._summary_variables()}
        data["row_finished"] = variable(("alpha",), self.row_finished, "alpha row finished", "1",
                                        description="1 where every point of the alpha row and its edges are written")
        data.update(self._direction_variables(directions))
        data.update(self.events or {})
        ds = xr.Dataset(data, coords=self._coords(layer_names, sample_ids))
        ds.attrs.update(attrs)
        return ds
