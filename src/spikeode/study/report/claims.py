"""The seed's claims computed from a study directory's files: numbers, 95 % intervals and verdicts.

Candidate - reference differences (``StudyLayout.models``) are unpaired: the models' seeds, planes and
samples are independent draws (``spikeode.study.stats``). The rows:

- ``accuracy``: final test accuracy counting real spikes only, over the retrained seeds (Welch t);
  claimed > 0.
- ``jump_fraction_<kind>``, ``jump_variation_share_<kind>``: over the random filter-normalised planes,
  and on their own over the gradient planes (one per seed) (Welch t); claimed < 0 (the reference more
  fragmented).
- ``gradient_snr``, ``gradient_cosine`` (whole weight vector), ``gradient_fd_sign_agreement``: gradient
  statistics at the last analysed epoch, over seeds (Welch t); claimed > 0.
- ``mid_trial``: fraction of spike (dis)appearances along the single-sample scans that happen before the
  trial end (exact event locations, ``spikeode.study.scan_events``), over samples (percentile bootstrap);
  claimed < 0. ``order_preceded``: the reference's fraction of (dis)appearances that an order swap
  precedes, minus the chance of a swap in such a window before a random location (percentile bootstrap);
  claimed > 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from spikeode.io.netcdf import read_dataset, variable
from spikeode.io.plotting import real_accuracy
from spikeode.study.report.layout import StudyLayout
from spikeode.study.stats import MIN_N, Claim, difference_interval, mean_interval

__all__ = ["claims_dataset", "collect_runs", "landscape_metrics", "sample_event_fractions", "study_claims"]


def collect_runs(study_dir: Path, layout: StudyLayout) -> dict[str, dict[int, xr.Dataset]]:
    """``{model: {seed: run.nc Dataset}}`` of the retrained runs that have a ``run.nc``."""
    runs: dict[str, dict[int, xr.Dataset]] = {}
    for model in layout.models:
        for seed, run in layout.find(study_dir, "run", model=model):
            if (run / "run.nc").exists():
                runs.setdefault(model, {})[seed] = read_dataset(run / "run.nc")
    return runs


def landscape_metrics(ds: xr.Dataset) -> dict[str, float]:
    """The scalar summary metrics a landscape file stores (0-d variables)."""
    return {name: float(ds[name]) for name in ds.data_vars if ds[name].ndim == 0}


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


def _difference(layout: StudyLayout, name: str, what: str, values: dict[str, np.ndarray], claimed: str,
                method: str = "welch_t") -> Claim:
    """Candidate - reference ``values`` as a claim named ``name``."""
    ref, cand = layout.reference, layout.candidate
    interval = difference_interval(values.get(cand, []), values.get(ref, []), method=method)
    return Claim(name, interval, claimed, 0.0, (cand, ref), f"{cand.upper()} - {ref.upper()} {what}")


def _accuracy_claims(layout: StudyLayout, runs: dict[str, dict[int, xr.Dataset]]) -> list[Claim]:
    finals = {m: np.array([float(real_accuracy(ds)[-1]) for ds in per.values()]) for m, per in runs.items()}
    return [_difference(layout, "accuracy", "test accuracy after an equal HPO budget (real spikes only, final "
                        "epoch of the retrained winners), over seeds", finals, "greater")]


def _fragmentation_claims(study_dir: Path, layout: StudyLayout) -> list[Claim]:
    claims = []
    for kind, finder, over in (
            ("random", layout.random_planes, "random filter-normalised planes around seed 0's winner"),
            ("gradient", lambda d, m: list(layout.gradient_planes(d, m).values()),
             "gradient planes (alpha: descent direction), one per seed's winner")):
        metrics = {m: [landscape_metrics(read_dataset(p)) for p in finder(study_dir, m)] for m in layout.models}
        if not any(metrics.values()):
            continue
        for key, what in (("jump_fraction", "jump fraction (share of grid edges whose loss jumps)"),
                          ("jump_variation_share", "jump share of the loss variation")):
            values = {m: np.array([x[key] for x in per]) for m, per in metrics.items()}
            claims.append(_difference(layout, f"{key}_{kind}", f"{what}, over {over}", values, "less"))
    return claims


def _gradient_claims(study_dir: Path, layout: StudyLayout) -> list[Claim]:
    path = layout.path(study_dir, "gradstats")
    if not path.exists():
        return []
    ds = read_dataset(path).isel(epoch=-1)
    claims = []
    for key, what in (("snr", "gradient signal-to-noise ratio (whole weight vector)"),
                      ("cosine", "mean pairwise cosine of minibatch gradients (whole weight vector)"),
                      ("fd_sign_agreement", ("finite-difference agreement (share of minibatches whose loss "
                       "decreases along -g)"))):
        da = ds[key].sel(layer="all") if "layer" in ds[key].dims else ds[key]
        values = {str(m): da.sel(neuron_model=m).values for m in ds.neuron_model.values}
        claims.append(_difference(layout, f"gradient_{key}", f"{what} at epoch {int(ds.epoch)}, over seeds",
                                  values, "greater"))
    return claims


def _single_sample_claims(study_dir: Path, layout: StudyLayout) -> list[Claim]:
    paths = {m: layout.path(study_dir, "samples", model=m) for m in layout.models}
    scans = {m: read_dataset(p) for m, p in paths.items() if p.exists()}
    missing = [m for m, ds in scans.items() if "event_kind" not in ds]
    if missing:
        print(f"report: the scans of {missing} hold no located events; single-sample claims skipped")
    fractions = {m: sample_event_fractions(ds) for m, ds in scans.items() if m not in missing}
    if not fractions:
        return []
    claims = [_difference(layout, "mid_trial", "fraction of spike (dis)appearances along single-sample scans that "
                          "happen before the trial end (exact event locations), over samples",
                          {m: f["mid_trial"] for m, f in fractions.items()}, "less", method="percentile")]
    ref = layout.reference
    if ref in fractions:
        interval = mean_interval(fractions[ref]["order_preceded_excess"], method="percentile")
        claims.append(Claim("order_preceded", interval, "greater", 0.0, (ref,),
                            f"{ref.upper()} fraction of spike (dis)appearances that an order swap precedes, minus "
                            "its chance level (a swap in the window before a random location), over samples"))
    return claims


def study_claims(study_dir: str | Path, layout: StudyLayout) -> list[Claim]:
    """The seed's claims (module docstring) from a study directory's files; parts without files are left out."""
    study_dir = Path(study_dir)
    return (_accuracy_claims(layout, collect_runs(study_dir, layout)) + _fragmentation_claims(study_dir, layout)
            + _gradient_claims(study_dir, layout) + _single_sample_claims(study_dir, layout))


def claims_dataset(claims: list[Claim], models: tuple[str, ...]) -> xr.Dataset:
    """The claims on a ``claim`` dimension (CF-style variables; ``claim_n_<model>`` = 0 where a group is absent)."""
    n = {g: [dict(zip(c.groups, c.interval.n)).get(g, 0) for c in claims] for g in models}

    def text(values, long_name, **attrs):
        return variable(("claim",), np.array(values, dtype=object), long_name, **attrs)

    data = {
        "claim_estimate": variable(("claim",), [c.interval.estimate for c in claims],
                                   "point estimate of the claim's quantity (see claim_description)"),
        "claim_ci_low": variable(("claim",), [c.interval.low for c in claims],
                                 "lower end of the 95% confidence interval"),
        "claim_ci_high": variable(("claim",), [c.interval.high for c in claims],
                                  "upper end of the 95% confidence interval"),
        "claim_reference": variable(("claim",), [c.reference for c in claims], "value the claim is compared with"),
        "claim_direction": text([c.claimed for c in claims], "claimed side of the reference (greater or less)"),
        "claim_method": text([c.interval.method for c in claims], "confidence interval method (spikeode.study.stats)"),
        "claim_verdict": text([c.verdict for c in claims], "verdict",
                              rule="holds: the interval excludes the reference on the claimed side; does not hold: "
                              "it excludes it on the other side; inconclusive at this budget: otherwise, or fewer "
                              f"than {MIN_N} values in a group"),
        "claim_description": text([c.description for c in claims], "what the claim's quantity is"),
        **{f"claim_n_{g}": variable(("claim",), np.asarray(n[g], dtype=np.int32),
                                    f"values of the {g.upper()} group (seeds, planes or samples)") for g in models},
    }
    claim = variable(("claim",), [c.name for c in claims], "claim of the seed study")
    return xr.Dataset(data, coords={"claim": claim})
