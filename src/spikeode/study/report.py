"""``spikeode report DIR``: every figure, ``summary.nc`` and ``summary.md`` of a study, from its netCDF files alone.

Reads what ``studies/lif_vs_qif.py`` writes (each part optional, a missing one is skipped and named):
``runs/<model>/seed<k>/run.nc``, ``hpo_<model>.nc``, ``gradstats.nc``, ``landscape_<model>.nc`` (random
plane 0), ``landscape_<model>_plane<k>.nc`` (random planes k >= 1), ``landscape_<model>_gradient_seed<s>.nc``
(gradient planes), ``samples_<model>.nc``.

``summary.md`` opens with the seed's claims, each as a number with a 95 % confidence interval and a
verdict (``spikeode.study.stats``); ``summary.nc`` holds the same rows on its ``claim`` dimension. The rows
(QIF - LIF differences are unpaired: the models' seeds, planes and samples are independent draws):

- ``accuracy``: QIF - LIF final test accuracy counting real spikes only, over the retrained seeds
  (Welch t); claimed > 0.
- ``jump_fraction``, ``jump_variation_share``: QIF - LIF over the random filter-normalised planes (Welch
  t); claimed < 0 (LIF more fragmented). The same over the gradient planes (one per seed), on its own.
- ``snr``, ``cosine`` (whole weight vector), ``fd_sign_agreement``: QIF - LIF gradient statistics at the
  last analysed epoch, over seeds (Welch t); claimed > 0 (LIF gradients more erratic).
- ``mid_trial``: QIF - LIF fraction of spike (dis)appearances along the single-sample scans that happen
  before the trial end (exact event locations, ``spikeode.study.scan_events``), over samples (percentile
  bootstrap); claimed < 0 (a QIF spike enters and leaves through the trial end). ``order_preceded``: LIF's
  fraction of (dis)appearances that an order swap precedes, minus the chance of a swap in such a window
  before a random location, over samples (percentile bootstrap); claimed > 0 (order changes cause them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from spikeode.io.plotting import axis_label, model_color, plot_learning_curves, plt, real_accuracy, save
from spikeode.io.netcdf import provenance_attrs, read_dataset, variable, write_dataset
from spikeode.study.stats import MIN_N, Claim, Interval, difference_interval, mean_interval

__all__ = ["claims_dataset", "claims_markdown", "collect_runs", "make_report", "study_claims", "summary_dataset"]

MODELS = ("lif", "qif")


def collect_runs(study_dir: Path) -> dict[str, dict[int, xr.Dataset]]:
    """``{model: {seed: run.nc Dataset}}`` of ``runs/<model>/seed<k>/``."""
    runs: dict[str, dict[int, xr.Dataset]] = {}
    for path in sorted(study_dir.glob("runs/*/seed*/run.nc")):
        model, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
        runs.setdefault(model, {})[seed] = read_dataset(path)
    return runs


def _landscape_metrics(ds: xr.Dataset) -> dict[str, float]:
    """The scalar summary metrics a landscape file stores (0-d variables)."""
    return {name: float(ds[name]) for name in ds.data_vars if ds[name].ndim == 0}


#: run.nc curves copied into summary.nc where the runs have them (``test_accuracy``: real spikes only)
CURVES = ("test_accuracy", "test_accuracy_pseudo", "output_silent_sample_fraction", "train_loss", "test_loss",
          "grad_norm")


def _on_grid(runs, models, seeds, epochs, get) -> np.ndarray:
    """``get(run.nc Dataset)`` (one value per epoch) on the (model, seed, epoch) grid, NaN where missing."""
    values = np.full((len(models), len(seeds), len(epochs)), np.nan)
    for i, m in enumerate(models):
        for j, s in enumerate(seeds):
            ds = runs[m].get(s)
            if ds is not None:
                values[i, j, [epochs.index(int(e)) for e in ds.epoch.values]] = get(ds)
    return values


def _plane_variables(study_dir: Path, models: list[str], seeds: list[int]) -> tuple[dict, dict]:
    """Landscape metrics per random plane (``landscape_<metric>`` on ``neuron_model, plane``) and per gradient
    plane (``gradient_plane_<metric>`` on ``neuron_model, seed``); and the ``plane`` coordinate."""
    random = {m: [_landscape_metrics(read_dataset(p)) for p in random_planes(study_dir, m)] for m in models}
    gradient = {m: {int(p.stem.rsplit("seed", 1)[1]): _landscape_metrics(read_dataset(p))
                    for p in gradient_planes(study_dir, m)} for m in models}
    n_planes = max((len(v) for v in random.values()), default=0)
    keys = sorted({k for per in random.values() for x in per for k in x})
    out = {}
    for key in keys:
        arr = np.full((len(models), n_planes), np.nan)
        for i, m in enumerate(models):
            arr[i, :len(random[m])] = [x.get(key, np.nan) for x in random[m]]
        out[f"landscape_{key}"] = variable(("neuron_model", "plane"), arr,
                                           f"{key.replace('_', ' ')} (random plane)")
    for key in sorted({k for per in gradient.values() for x in per.values() for k in x}):
        arr = np.array([[gradient[m].get(s, {}).get(key, np.nan) for s in seeds] for m in models])
        out[f"gradient_plane_{key}"] = variable(("neuron_model", "seed"), arr,
                                                f"{key.replace('_', ' ')} (gradient plane of the seed's winner)")
    coord = variable(("plane",), np.arange(n_planes), "random plane (its direction seed)")
    return out, ({"plane": coord} if n_planes else {})


def _scan_variables(study_dir: Path, models: list[str]) -> tuple[dict, dict]:
    """Per-sample event fractions of the single-sample scans (``sample_event_fractions``) on
    ``neuron_model, scan_sample``; and the ``scan_sample`` coordinate (empty without located events)."""
    scans = {m: read_dataset(study_dir / f"samples_{m}.nc") for m in models
             if (study_dir / f"samples_{m}.nc").exists()}
    scans = {m: ds for m, ds in scans.items() if "event_kind" in ds}
    if not scans:
        return {}, {}
    ids = sorted({int(s) for ds in scans.values() for s in ds["sample"].values})
    out = {}
    for key, long_name in (("mid_trial", "share of spike (dis)appearances before the trial end"),
                           ("order_preceded_excess", "share of spike (dis)appearances an order swap precedes, "
                            "minus its chance level")):
        arr = np.full((len(models), len(ids)), np.nan)
        for i, m in enumerate(models):
            if m in scans:
                cols = [ids.index(int(s)) for s in scans[m]["sample"].values]
                arr[i, cols] = sample_event_fractions(scans[m])[key]
        out[f"scan_{key}"] = variable(("neuron_model", "scan_sample"), arr, f"{long_name} (single-sample scan)")
    return out, {"scan_sample": variable(("scan_sample",), ids, "training sample of the single-sample scan")}


def summary_dataset(study_dir: Path, claims: list[Claim] | None = None) -> xr.Dataset:
    """One Dataset: learning curves on (``neuron_model``, ``seed``, ``epoch``), landscape metrics per plane,
    HPO summaries per model, and the claims (``claims_dataset``; ``study_claims`` when not given) on ``claim``."""
    runs = collect_runs(study_dir)
    if not runs:
        raise FileNotFoundError(f"{study_dir} has no runs/<model>/seed<k>/run.nc")
    models = sorted(runs)
    seeds = sorted({s for per_model in runs.values() for s in per_model})
    epochs = sorted({int(e) for per_model in runs.values() for ds in per_model.values() for e in ds.epoch.values})
    first = next(iter(runs[models[0]].values()))
    dims = ("neuron_model", "seed", "epoch")
    data = {name: variable(dims, _on_grid(runs, models, seeds, epochs, lambda ds, n=name: ds[n].values),
                           first[name].attrs["long_name"], first[name].attrs.get("units", "1"))
            for name in CURVES if name in first}
    data["hidden_silent_fraction"] = variable(dims, _on_grid(runs, models, seeds, epochs,
                                                             lambda ds: ds.silent_fraction.isel(layer=0).values),
                                              "fraction of first-hidden-layer neurons silent on the test split")
    final = np.array([[float(real_accuracy(runs[m][s])[-1]) if s in runs[m] else np.nan for s in seeds]
                      for m in models])
    data["final_test_accuracy"] = variable(("neuron_model", "seed"), final,
                                           "test accuracy after the last epoch (real spikes only)")
    planes, plane_coord = _plane_variables(study_dir, models, seeds)
    data.update(planes)
    scans, scan_coord = _scan_variables(study_dir, models)
    data.update(scans)
    for key, get in (("hpo_best_objective", lambda h: float(np.nanmax(h.objective))),
                     ("hpo_trials", lambda h: float(h.sizes["trial"]))):
        values = [get(read_dataset(study_dir / f"hpo_{m}.nc")) if (study_dir / f"hpo_{m}.nc").exists() else np.nan
                  for m in models]
        if np.isfinite(values).any():
            data[key] = variable(("neuron_model",), values, key.replace("_", " "))
    coords = {"neuron_model": variable(("neuron_model",), models, "neuron model"),
              "seed": variable(("seed",), seeds, "seed of the retrained winner"),
              "epoch": variable(("epoch",), epochs, "training epoch"), **plane_coord, **scan_coord}
    ds = xr.Dataset(data, coords=coords)
    claims = study_claims(study_dir) if claims is None else claims
    ds = xr.merge([ds, claims_dataset(claims)], combine_attrs="override")
    config = _study_config(study_dir)
    ds.attrs.update(provenance_attrs("spikeode study summary: LIF vs QIF", config, None))
    ds.attrs.update(pair=pair_label(study_dir), data_source=data_label(config), confidence_level=0.95)
    return ds


def _study_config(study_dir: Path) -> dict:
    study = study_dir / "study.json"
    return json.loads(study.read_text()) if study.exists() else {}


def data_label(config: dict) -> str:
    """The data source and, for the built-in synthetic set, its difficulty (``synthetic:<difficulty>``)."""
    data = str(config.get("data", "?"))
    kind, _, option = data.partition(":")
    return f"{kind} (difficulty: {option or 'standard'})" if kind == "synthetic" else data


def pair_label(study_dir: Path) -> str:
    """Which pair ran: the synapse setting and each winner's neuron parameters."""
    synapse = _study_config(study_dir).get("synapse", "?")
    what = {"exp": "same exponential synapse (LIF tau_mem = 2 tau_syn; QIF tau_syn = tau/2, I0 = -1/4)",
            "delta": "delta synapses (theta QIF vs delta-synapse LIF)"}.get(synapse, f"synapse {synapse}")
    params = []
    for m in MODELS:
        best = study_dir / f"best_{m}.json"
        if best.exists():
            params.append(f"{m.upper()} {json.dumps(json.loads(best.read_text()).get('neuron_params', {}))}")
    return what + (": " + "; ".join(params) if params else "")


# ----------------------------------------------------------------------------------------------- claims

def random_planes(study_dir: Path, model: str) -> list[Path]:
    """The random-plane landscape files of ``model``: plane 0, then planes 1, 2, ..."""
    first = study_dir / f"landscape_{model}.nc"
    rest = sorted(study_dir.glob(f"landscape_{model}_plane*.nc"),
                  key=lambda p: int(p.stem.rsplit("plane", 1)[1]))
    return ([first] if first.exists() else []) + rest


def gradient_planes(study_dir: Path, model: str) -> list[Path]:
    return sorted(study_dir.glob(f"landscape_{model}_gradient_seed*.nc"))


def _qif_minus_lif(name: str, description: str, values: dict[str, np.ndarray], claimed: str,
                   method: str = "welch_t") -> Claim:
    interval = difference_interval(values.get("qif", []), values.get("lif", []), method=method)
    return Claim(name, interval, claimed, 0.0, ("qif", "lif"), description)


def _accuracy_claims(runs: dict[str, dict[int, xr.Dataset]]) -> list[Claim]:
    finals = {m: np.array([float(real_accuracy(ds)[-1]) for ds in per.values()]) for m, per in runs.items()}
    return [_qif_minus_lif("accuracy", "QIF - LIF test accuracy after an equal HPO budget (real spikes only, final "
                           "epoch of the retrained winners), over seeds", finals, "greater")]


def _fragmentation_claims(study_dir: Path) -> list[Claim]:
    claims = []
    for kind, finder, over in (("random", random_planes, "random filter-normalised planes around seed 0's winner"),
                               ("gradient", gradient_planes, "gradient planes (alpha: descent direction), one "
                                "per seed's winner")):
        metrics = {m: [_landscape_metrics(read_dataset(p)) for p in finder(study_dir, m)] for m in MODELS}
        if not any(metrics.values()):
            continue
        for key, what in (("jump_fraction", "jump fraction (share of grid edges whose loss jumps)"),
                          ("jump_variation_share", "jump share of the loss variation")):
            values = {m: np.array([x[key] for x in per]) for m, per in metrics.items()}
            claims.append(_qif_minus_lif(f"{key}_{kind}", f"QIF - LIF {what}, over {over}", values, "less"))
    return claims


def _gradient_claims(study_dir: Path) -> list[Claim]:
    path = study_dir / "gradstats.nc"
    if not path.exists():
        return []
    ds = read_dataset(path).isel(epoch=-1)
    claims = []
    for key, what in (("snr", "gradient signal-to-noise ratio (whole weight vector)"),
                      ("cosine", "mean pairwise cosine of minibatch gradients (whole weight vector)"),
                      ("fd_sign_agreement", "finite-difference agreement (share of minibatches whose loss "
                       "decreases along -g)")):
        da = ds[key].sel(layer="all") if "layer" in ds[key].dims else ds[key]
        values = {str(m): da.sel(neuron_model=m).values for m in ds.neuron_model.values}
        claims.append(_qif_minus_lif(f"gradient_{key}", f"QIF - LIF {what} at epoch {int(ds.epoch)}, over seeds",
                                     values, "greater"))
    return claims


def sample_event_fractions(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Per sample of a single-sample scan with located events (``spikeode.study.scan_events.event_statistics``):
    ``mid_trial``, the share of its spike (dis)appearances before the trial end; ``order_preceded_excess``,
    the share that an order swap precedes (within the window before) minus the chance of a swap in a
    window at a random location. NaN for a sample without (dis)appearances."""
    from spikeode.study.scan_events import event_statistics

    per = event_statistics(ds)["per_sample"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"mid_trial": per["mid_trial"] / per["changes"],
                "order_preceded_excess": per["order_preceded"] / per["changes"] - per["baseline"]}


def _single_sample_claims(study_dir: Path) -> list[Claim]:
    paths = {m: study_dir / f"samples_{m}.nc" for m in MODELS}
    scans = {m: read_dataset(p) for m, p in paths.items() if p.exists()}
    missing = [m for m, ds in scans.items() if "event_kind" not in ds]
    if missing:
        print(f"report: samples_{{{','.join(missing)}}}.nc hold no located events; single-sample claims skipped")
    fractions = {m: sample_event_fractions(ds) for m, ds in scans.items() if m not in missing}
    if not fractions:
        return []
    claims = [_qif_minus_lif("mid_trial", "QIF - LIF fraction of spike (dis)appearances along single-sample scans "
                             "that happen before the trial end (exact event locations), over samples",
                             {m: f["mid_trial"] for m, f in fractions.items()}, "less", method="percentile")]
    if "lif" in fractions:
        interval = mean_interval(fractions["lif"]["order_preceded_excess"], method="percentile")
        claims.append(Claim("order_preceded", interval, "greater", 0.0, ("lif",),
                            "LIF fraction of spike (dis)appearances that an order swap precedes, minus its chance "
                            "level (a swap in the window before a random location), over samples"))
    return claims


def study_claims(study_dir: str | Path) -> list[Claim]:
    """The seed's claims (module docstring) from a study directory's files; parts without files are left out."""
    study_dir = Path(study_dir)
    return (_accuracy_claims(collect_runs(study_dir)) + _fragmentation_claims(study_dir)
            + _gradient_claims(study_dir) + _single_sample_claims(study_dir))


def claims_dataset(claims: list[Claim]) -> xr.Dataset:
    """The claims on a ``claim`` dimension (CF-style variables; ``n_<group>`` = 0 where a group is absent)."""
    groups = list(MODELS)
    n = {g: [dict(zip(c.groups, c.interval.n)).get(g, 0) for c in claims] for g in groups}
    data = {
        "claim_estimate": variable(("claim",), [c.interval.estimate for c in claims],
                                   "point estimate of the claim's quantity (see claim_description)"),
        "claim_ci_low": variable(("claim",), [c.interval.low for c in claims],
                                 "lower end of the 95% confidence interval"),
        "claim_ci_high": variable(("claim",), [c.interval.high for c in claims],
                                  "upper end of the 95% confidence interval"),
        "claim_reference": variable(("claim",), [c.reference for c in claims], "value the claim is compared with"),
        "claim_direction": variable(("claim",), np.array([c.claimed for c in claims], dtype=object),
                                    "claimed side of the reference (greater or less)"),
        "claim_method": variable(("claim",), np.array([c.interval.method for c in claims], dtype=object),
                                 "confidence interval method (spikeode.study.stats)"),
        "claim_verdict": variable(("claim",), np.array([c.verdict for c in claims], dtype=object), "verdict",
                                  rule="holds: the interval excludes the reference on the claimed side; does not hold: "
                                  "it excludes it on the other side; inconclusive at this budget: otherwise, or fewer "
                                  f"than {MIN_N} values in a group"),
        "claim_description": variable(("claim",), np.array([c.description for c in claims], dtype=object),
                                      "what the claim's quantity is"),
        **{f"claim_n_{g}": variable(("claim",), np.asarray(n[g], dtype=np.int32),
                                    f"values of the {g.upper()} group (seeds, planes or samples)") for g in groups},
    }
    claim = variable(("claim",), [c.name for c in claims], "claim of the seed study")
    return xr.Dataset(data, coords={"claim": claim})


def _fmt(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:+.3g}" if abs(x) < 1e4 else f"{x:+.3e}"


def claims_markdown(claims: list[Claim]) -> list[str]:
    """The claims table: one row per claim with its number, 95 % CI, method, n and verdict."""
    lines = ["| claim | quantity | number | 95% CI | method | n | verdict |", "|---|---|---|---|---|---|---|"]
    for c in claims:
        iv: Interval = c.interval
        n = " / ".join(f"{k} {g.upper()}" for g, k in zip(c.groups, iv.n)) if c.groups else str(iv.n)
        ci = "n/a (n < 2)" if not np.isfinite(iv.low) else f"[{_fmt(iv.low)}, {_fmt(iv.high)}]"
        lines.append(f"| `{c.name}` (claimed {c.assertion}) | {c.description} | {_fmt(iv.estimate)} | {ci} | "
                     f"{iv.method} | {n} | **{c.verdict}** |")
    return lines


def _plot_hpo(study_dir: Path, path: Path) -> Path | None:
    files = {m: study_dir / f"hpo_{m}.nc" for m in MODELS if (study_dir / f"hpo_{m}.nc").exists()}
    if not files:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
    for m, f in files.items():
        h = read_dataset(f)
        values = h.objective.values.astype(float)
        ax.plot(h.trial.values, values, "o", color=model_color(m), alpha=0.5, ms=4)
        ax.plot(h.trial.values, np.fmax.accumulate(np.where(np.isfinite(values), values, -np.inf)),
                "-", color=model_color(m), label=f"{m.upper()} best so far")
        ax.set_ylabel(axis_label(h.objective))
    ax.set_xlabel("trial")
    ax.set_title("hyperparameter search (equal budget)")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return save(fig, path)


def _plot_landscapes(study_dir: Path, path: Path) -> Path | None:
    files = {m: study_dir / f"landscape_{m}.nc" for m in MODELS if (study_dir / f"landscape_{m}.nc").exists()}
    if not files:
        return None
    fig, axes = plt.subplots(2, len(files), figsize=(5.2 * len(files), 8), constrained_layout=True, squeeze=False)
    for col, (m, f) in enumerate(files.items()):
        ds = read_dataset(f)
        for row, name in enumerate(("loss", "grad_norm")):
            ax = axes[row, col]
            da = ds[name]
            if "beta" in da.dims:
                mesh = ax.pcolormesh(ds.alpha, ds.beta, da.transpose("beta", "alpha"), shading="auto", cmap="viridis")
                fig.colorbar(mesh, ax=ax, label=axis_label(da))
                ax.set_ylabel(axis_label(ds.beta))
            else:
                ax.plot(ds.alpha, da, color=model_color(m))
                ax.set_ylabel(axis_label(da))
            ax.set_xlabel(axis_label(ds.alpha))
            ax.set_title(f"{m.upper()}: {da.attrs.get('long_name', name)}", fontsize=10)
    return save(fig, path)


def _plot_samples(study_dir: Path, path: Path) -> Path | None:
    files = {m: study_dir / f"samples_{m}.nc" for m in MODELS if (study_dir / f"samples_{m}.nc").exists()}
    if not files:
        return None
    fig, axes = plt.subplots(2, len(files), figsize=(6 * len(files), 7), constrained_layout=True, squeeze=False,
                             sharex="col")
    for col, (m, f) in enumerate(files.items()):
        full = read_dataset(f)
        ds = full.isel(sample=0)
        events = _sample_events(full, int(ds.sample))
        alpha = ds.alpha.values
        ax = axes[0, col]
        ax.plot(alpha, ds.loss, color=model_color(m), lw=1.2)
        _mark_events(ax, ds, alpha, events)
        ax.set_ylabel(axis_label(ds.loss))
        ax.set_title(f"{m.upper()}: single-sample scan (sample {int(ds.sample)})", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.02), ncols=3)
        ax = axes[1, col]
        times = ds.spike_times.isel(layer=-1)  # output layer: (alpha, neuron, slot)
        for n in range(times.sizes["neuron"]):
            t = times.isel(neuron=n).values
            a = np.broadcast_to(alpha[:, None], t.shape)
            ok = np.isfinite(t)
            ax.plot(a[ok], t[ok], ".", ms=3, color=plt.cm.tab20(n % 20))
        _mark_events(ax, ds, alpha, events, legend=False)
        ax.set_xlabel(axis_label(ds.alpha))
        ax.set_ylabel("output spike times")
    return save(fig, path)


def _sample_events(ds: xr.Dataset, sample: int) -> dict[str, np.ndarray] | None:
    """Exact locations per event kind of one sample's scan (``spikeode.study.scan_events``), None without events."""
    if "event_kind" not in ds:
        return None
    from spikeode.study.scan_events import EVENT_KINDS

    mine = ds.event_sample.values == sample
    return {kind: ds.event_alpha.values[mine & (ds.event_kind.values == i)] for i, kind in enumerate(EVENT_KINDS)}


_EVENT_STYLE = {"appearance": "#2ca02c", "disappearance": "#9467bd", "order_swap": "#ff7f0e"}


def _mark_events(ax, ds: xr.Dataset, alpha: np.ndarray, events: dict[str, np.ndarray] | None,
                 legend: bool = True) -> None:
    """Spike (dis)appearances and order swaps: ticks at their exact locations along the top of the axes when
    the scan has located events, else vertical lines at the grid edges where they happen (any layer)."""
    if events is not None:
        for row, (kind, color) in enumerate(_EVENT_STYLE.items()):
            where = events.get(kind, np.empty(0))
            y0 = 0.97 - 0.04 * row
            ax.vlines(where, y0 - 0.035, y0, transform=ax.get_xaxis_transform(), color=color, lw=1.0,
                      label=f"{kind.replace('_', ' ')} ({len(where)})" if legend and len(where) else None)
        return
    style = {"spike_appearances": ("#2ca02c", "-"), "spike_disappearances": ("#9467bd", "-"),
             "order_changes": ("#ff7f0e", ":")}
    for name, (color, ls) in style.items():
        if name not in ds:
            continue
        da = ds[name]
        if "edge" in da.dims:
            da = da.isel(edge=0)
        if "layer" in da.dims:
            da = da.sum("layer")
        edges = np.flatnonzero(np.nan_to_num(da.values) > 0)
        for k, e in enumerate(edges):
            mid = 0.5 * (alpha[e] + alpha[min(e + 1, len(alpha) - 1)])
            ax.axvline(mid, color=color, ls=ls, lw=0.8, alpha=0.7,
                       label=name.replace("_", " ") if (legend and k == 0) else None)


def _mean_sd(da: xr.DataArray) -> str:
    values = da.values[np.isfinite(da.values)]
    return "n/a" if not values.size else f"{values.mean():.3f} ± {values.std(ddof=1) if values.size > 1 else 0:.3f}"


def _markdown(summary: xr.Dataset, claims: list[Claim], study_dir: Path) -> str:
    config = _study_config(study_dir)
    lines = ["# LIF vs QIF — study summary", "",
             f"**Pair:** {summary.attrs['pair']}.  ",
             f"**Data:** {summary.attrs['data_source']}; HPO budget {config.get('hpo_trials', '?')} trials per model "
             f"({config.get('hpo_epochs', '?')} epochs each); winners retrained with seeds {config.get('seeds', '?')} "
             f"for {config.get('retrain_epochs', '?')} epochs.", "",
             "## The seed's claims", "",
             "Each row: the number, its 95% confidence interval (method named; `spikeode.study.stats`), the group sizes "
             "and the verdict: **holds** when the interval excludes the reference on the claimed side, **does not "
             "hold** when it excludes it on the other side, **inconclusive at this budget** otherwise, and whenever a "
             f"group has fewer than {MIN_N} values.", ""]
    lines += claims_markdown(claims)
    models = list(summary.neuron_model.values)
    lines += ["", "## Per model", "", "| metric | " + " | ".join(m.upper() for m in models) + " |",
              "|---|" + "---|" * len(models)]
    per_model = [(summary.final_test_accuracy, "test accuracy, real spikes (mean ± sd over seeds)")]
    per_model += [(summary[n], f"{summary[n].attrs['long_name']} (mean ± sd over planes)")
                  for n in summary.data_vars if summary[n].dims == ("neuron_model", "plane")]
    per_model += [(summary[n], f"{summary[n].attrs['long_name']} (mean ± sd over seeds)")
                  for n in summary.data_vars if n.startswith("gradient_plane_")]
    per_model += [(summary[n], f"{summary[n].attrs['long_name']} (mean ± sd over samples)")
                  for n in summary.data_vars if summary[n].dims == ("neuron_model", "scan_sample")]
    for da, label in per_model:
        lines.append(f"| {label} | " + " | ".join(_mean_sd(da.sel(neuron_model=m)) for m in models) + " |")
    for name in summary.data_vars:
        if summary[name].dims == ("neuron_model",):
            lines.append(f"| {summary[name].attrs.get('long_name', name)} | " + " | ".join(
                f"{float(v):.4g}" for v in summary[name].values) + " |")
    for m in models:
        best = study_dir / f"best_{m}.json"
        if best.exists():
            params = json.loads(best.read_text())
            keep = {k: params[k] for k in ("lr", "optimizer", "hidden", "neuron_params", "temperature", "gamma",
                                           "init", "weight_mean", "weight_std", "T", "batch_size") if k in params}
            lines += ["", f"Best hyperparameters, {m.upper()}: `{json.dumps(keep)}`"]
    lines += ["", "Figures: " + ", ".join(f"`{p.name}`" for p in sorted(study_dir.glob("*.png")))]
    return "\n".join(lines) + "\n"


def make_report(study_dir: str | Path) -> list[Path]:
    """Write ``summary.nc``, every figure and ``summary.md``; returns the files written."""
    study_dir = Path(study_dir)
    written = []
    claims = study_claims(study_dir)
    summary = summary_dataset(study_dir, claims)
    written.append(write_dataset(summary, study_dir / "summary.nc"))
    runs = collect_runs(study_dir)
    written.append(plot_learning_curves({m: list(per.values()) for m, per in sorted(runs.items())},
                                        study_dir / "learning_curves.png"))
    for maker, name in ((_plot_hpo, "hpo.png"), (_plot_landscapes, "landscapes.png"), (_plot_samples, "samples.png")):
        out = maker(study_dir, study_dir / name)
        if out is None:
            print(f"report: no input for {name}, skipped")
        else:
            written.append(out)
    gradstats = study_dir / "gradstats.nc"
    if gradstats.exists():
        from spikeode.study.gradstats import plot_gradstats

        written.append(plot_gradstats(read_dataset(gradstats), study_dir / "gradstats.png"))
    md = study_dir / "summary.md"
    md.write_text(_markdown(summary, claims, study_dir))
    written.append(md)
    return written
