"""The main study: LIF vs QIF after an equal hyperparameter search, then why (Wenig, Memmesheimer & Klos).

    python studies/lif_vs_qif.py --quick --out out/lif_vs_qif                # < 10 min, synthetic data
    python studies/lif_vs_qif.py --data shd:/path/to/shd --out out/shd       # the seed's setting
    python studies/lif_vs_qif.py --quick --synapse delta --out out/delta     # the second pair

The pair (``--synapse``): ``exp`` (default) is LIF and QIF with the SAME exponential synapse at each model's
closed-form ratio (LIF tau_mem = 2 tau_syn; QIF tau_syn = tau/2 with I0 = -1/4), the neuron parameters of the
data source's recipe (``spikeode.training.loop.NEURON_RECIPES``); ``delta`` is the theta QIF against LIF, both with
delta synapses (``DELTA_PAIR``). Either way the neuron parameters are fixed for the search, so both models
share the coupling, tau_m, initialisation scheme, readout and the rest of the HPO space.

Stages (each skipped when its files exist for the same configuration; the unfinished one resumes):
  1. hpo        equal Optuna budget per model          -> hpo_<model>.nc (+ hpo_<model>.log journal)
  2. retrain    each winner with several seeds          -> runs/<model>/seed<k>/run.nc (+ checkpoints)
  3. gradstats  gradient statistics over those runs     -> gradstats.nc
  4. landscape  2-D loss/gradient landscapes: ``landscape_planes`` random filter-normalised planes around
                the first seed's winner (plane k: direction seed k; ``landscape_<model>.nc`` for k = 0,
                ``landscape_<model>_plane<k>.nc`` after) and, with ``gradient_planes``, one gradient plane
                (alpha: the descent direction) around every seed's winner
                (``landscape_<model>_gradient_seed<s>.nc``); all planes of a model in one process (one JAX
                start, one compilation per run; the tiny preset skips the gradient planes' extra compilation)
  5. samples    1-D single-sample scans with spike times -> samples_<model>.nc
  6. report     summary.nc, figures (PNG), summary.md (opens with the claims table; `spikeode report OUT`
                redoes it from the files)
The study's configuration is kept in OUT/study.json; re-running with another configuration is refused
with the names of the changed keys.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import spikeode

spikeode.use_fast_cpu_defaults()  # first, before any JAX computation: faster CPU code for event loops

MODELS = ("lif", "qif")
SYNAPSES = ("exp", "delta")
#: The second pair's neuron parameters: LIF with delta synapses against the theta QIF (excitable, I0 < 0).
DELTA_PAIR = {"lif": {"tau_mem": 1.0, "tau_syn": None}, "qif": {"tau": 1.0, "I0": -0.05}}


@dataclass(frozen=True)
class StudyConfig:
    data: str = "synthetic"
    synapse: str = "exp"
    seeds: tuple[int, ...] = (0, 1, 2)
    hpo_trials: int = 20
    hpo_epochs: int = 4
    train_samples: int | None = 1000
    test_samples: int | None = 400
    validation_fraction: float = 0.2
    retrain_epochs: int = 10
    landscape_points: int = 21
    landscape_span: float = 0.5
    landscape_samples: int = 256
    landscape_planes: int = 3
    gradient_planes: bool = True
    scan_points: int = 201
    scan_samples: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)
    gradstats_batches: int = 16
    gradstats_epochs: str = "first,middle,last"
    extra_train_flags: tuple[str, ...] = ()

    def __post_init__(self):
        if self.synapse not in SYNAPSES:
            raise ValueError(f"unknown synapse {self.synapse!r}: use one of {SYNAPSES}")
        if self.landscape_planes < 1:
            raise ValueError(f"landscape_planes must be >= 1, got {self.landscape_planes}")

    @classmethod
    def preset(cls, name: str, data: str = "synthetic", synapse: str = "exp") -> StudyConfig:
        """``full`` (the defaults), ``reference`` (the committed reference results), ``quick`` (every stage and
        file in minutes) or ``tiny`` (the test suite)."""
        if name == "full":
            return cls(data=data, synapse=synapse)
        if name == "quick":
            # Sized to learn something in minutes on synthetic:easier (measured with 600 samples and 8 epochs:
            # real-spike test accuracy 0.52 +- 0.02 LIF, 0.52 +- 0.07 QIF); the recipe is the first HPO trial.
            return cls(data=data, synapse=synapse, seeds=(0, 1, 2), hpo_trials=2, hpo_epochs=2,
                       train_samples=500, test_samples=200, retrain_epochs=6, landscape_points=7,
                       landscape_span=0.5, landscape_samples=32, gradient_planes=False, scan_points=31,
                       scan_samples=(0, 1, 2, 3), gradstats_batches=4,
                       extra_train_flags=("--hidden", "24", "--k-in", "150"))
        if name == "reference":
            # The committed reference results (results/reference_*): sized to finish in <= 90 min on 2 cores
            # with another study beside it; 6 HPO trials per model (the recipe first), 3 seeds, 3 random
            # planes plus every seed's gradient plane, 8 scanned samples.
            extra = () if data == "yinyang" else ("--hidden", "32", "--k-in", "150")
            train, test = (1000, 500) if data == "yinyang" else (1200, 400)
            return cls(data=data, synapse=synapse, seeds=(0, 1, 2), hpo_trials=6, hpo_epochs=3,
                       train_samples=train, test_samples=test, retrain_epochs=12, landscape_points=9,
                       landscape_span=0.5, landscape_samples=64, gradient_planes=True, scan_points=61,
                       scan_samples=tuple(range(8)), gradstats_batches=8, extra_train_flags=extra)
        if name == "tiny":
            return cls(data=data, synapse=synapse, seeds=(0,), hpo_trials=1, hpo_epochs=1, train_samples=32,
                       test_samples=16, retrain_epochs=1, landscape_points=3, landscape_span=0.5,
                       landscape_samples=8, landscape_planes=2, gradient_planes=False, scan_points=5,
                       scan_samples=(0,), gradstats_batches=2, gradstats_epochs="last",
                       extra_train_flags=("--hidden", "4", "--k-in", "60"))
        raise ValueError(f"unknown preset {name!r}: full, reference, quick or tiny")


def pair_neuron_params(cfg: StudyConfig) -> dict[str, dict]:
    """Neuron parameters of each model for the configured pair (fixed during the search)."""
    if cfg.synapse == "delta":
        return DELTA_PAIR
    from spikeode.training.loop import default_config

    return {model: default_config(cfg.data, model).neuron_params for model in MODELS}


def _subprocess(cmd: list, label: str) -> str:
    """Run ``cmd`` (fresh JAX state); fail loudly with its output."""
    print(f"  $ {label}", flush=True)
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`{label}` failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def spikeode(*args: str) -> str:
    """Run a ``spikeode`` subcommand in a subprocess."""
    return _subprocess([sys.executable, "-m", "spikeode.cli", *args], "spikeode " + " ".join(map(str, args)))


def data_flags(cfg: StudyConfig) -> list[str]:
    flags = ["--data", cfg.data]
    if cfg.train_samples:
        flags += ["--train-samples", str(cfg.train_samples)]
    if cfg.test_samples:
        flags += ["--test-samples", str(cfg.test_samples)]
    return flags + list(cfg.extra_train_flags)


def finished_trials(path: Path) -> int:
    """Finished trials recorded in ``path``, whatever their fate: every trial counts toward the budget."""
    if not path.exists():
        return 0
    import xarray as xr

    with xr.open_dataset(path) as ds:
        return int(ds.sizes["trial"])


def stage_hpo(cfg: StudyConfig, out: Path) -> None:
    for model in MODELS:
        nc = out / f"hpo_{model}.nc"
        if finished_trials(nc) >= cfg.hpo_trials:
            print(f"  hpo {model}: {cfg.hpo_trials} trials done, skipped")
            continue
        # --trials is the study's whole budget (spikeode.study.hpo.BUDGET_RULE): a resumed search runs only the rest
        spikeode("hpo", "--neuron", model, "--neuron-params", json.dumps(pair_neuron_params(cfg)[model]),
                 "--trials", cfg.hpo_trials, "--storage", out / f"hpo_{model}.log",
                 "--study-name", f"lif_vs_qif_{model}", "--out", nc, "--epochs", cfg.hpo_epochs,
                 "--validation-fraction", cfg.validation_fraction, "--runs-dir", out / "hpo_runs" / model,
                 *data_flags(cfg))


def stage_retrain(cfg: StudyConfig, out: Path) -> None:
    for model in MODELS:
        best = out / f"best_{model}.json"
        if not best.exists():
            text = spikeode("hpo", "--best", f"lif_vs_qif_{model}", "--storage", out / f"hpo_{model}.log")
            winner = json.loads(text[text.index("{"):])
            winner.update(validation_fraction=0.0, epochs=cfg.retrain_epochs)
            best.write_text(json.dumps(winner, indent=1))
        for seed in cfg.seeds:
            run = out / "runs" / model / f"seed{seed}"
            done = (run / "checkpoint.json").exists() and json.loads((run / "checkpoint.json").read_text())["epoch"] >= cfg.retrain_epochs
            if done:
                print(f"  retrain {model} seed {seed}: done, skipped")
                continue
            spikeode("train", "--config", best, "--seed", seed, "--out", run, "--quiet",
                     *(["--resume"] if (run / "checkpoint.json").exists() else []))


def stage_gradstats(cfg: StudyConfig, out: Path) -> None:
    if (out / "gradstats.nc").exists():
        print("  gradstats: done, skipped")
        return
    runs = [out / "runs" / m / f"seed{s}" for m in MODELS for s in cfg.seeds]
    spikeode("gradstats", "--runs", *runs, "--out", out / "gradstats.nc", "--batches", cfg.gradstats_batches,
             "--epochs", cfg.gradstats_epochs, "--quiet")


def landscape_done(path: Path) -> bool:
    """Whether a landscape file exists with every alpha row finished (the tool resumes unfinished ones)."""
    if not path.exists():
        return False
    import xarray as xr

    with xr.open_dataset(path) as ds:
        return "row_finished" in ds and bool((ds["row_finished"] > 0).all())


def plane_path(out: Path, model: str, k: int) -> Path:
    """Random plane ``k`` (direction seed ``k``) of ``model``; plane 0 keeps the name of a single landscape."""
    return out / (f"landscape_{model}.nc" if k == 0 else f"landscape_{model}_plane{k}.nc")


def gradient_plane_path(out: Path, model: str, seed: int) -> Path:
    return out / f"landscape_{model}_gradient_seed{seed}.nc"


def landscape_jobs(cfg: StudyConfig, out: Path, model: str) -> list[dict]:
    """The ``LandscapeConfig`` fields (+ ``out``) of every unfinished landscape of ``model``."""
    common = dict(kind="2d", points=cfg.landscape_points, span=cfg.landscape_span,
                  train_samples=cfg.landscape_samples)
    run = lambda seed: str(out / "runs" / model / f"seed{seed}")  # noqa: E731
    jobs = [dict(common, run=run(cfg.seeds[0]), seed=k, out=str(plane_path(out, model, k)))
            for k in range(cfg.landscape_planes)]
    jobs += [dict(common, run=run(s), direction="gradient", out=str(gradient_plane_path(out, model, s)))
             for s in (cfg.seeds if cfg.gradient_planes else ())]
    return [job for job in jobs if not landscape_done(Path(job["out"]))]


def run_landscape_jobs(jobs: list[dict]) -> None:
    """Compute landscapes in this process: one JAX start, and one compilation per run configuration."""
    from spikeode.study.landscape import LandscapeConfig, compute_landscape
    from spikeode.precision import ensure_precision

    dtypes = {json.loads((Path(job["run"]) / "checkpoint.json").read_text())["config"].get("dtype") for job in jobs}
    ensure_precision("float64" if "float64" in dtypes else "float32")

    for job in jobs:
        fields = {k: v for k, v in job.items() if k != "out"}
        ds = compute_landscape(LandscapeConfig(**fields), job["out"], progress=False)
        print(f"{job['out']}: jump_fraction {float(ds.jump_fraction):.3f}", flush=True)


def stage_landscape(cfg: StudyConfig, out: Path) -> None:
    for model in MODELS:
        jobs = landscape_jobs(cfg, out, model)
        if not jobs:
            print(f"  landscape {model}: done, skipped")
            continue
        _subprocess([sys.executable, Path(__file__).resolve(), "--landscape-jobs", json.dumps(jobs)],
                    f"landscapes of {model}: {len(jobs)} planes in one process")


def stage_samples(cfg: StudyConfig, out: Path) -> None:
    for model in MODELS:
        path = out / f"samples_{model}.nc"
        if landscape_done(path):
            print(f"  samples {model}: done, skipped")
            continue
        run = out / "runs" / model / f"seed{cfg.seeds[0]}"
        spikeode("landscape", "--run", run, "--span", cfg.landscape_span, "--train-samples", cfg.landscape_samples,
                 "--kind", "sample", "--points", cfg.scan_points, "--samples", ",".join(map(str, cfg.scan_samples)),
                 "--out", path, "--quiet")


def stage_report(cfg: StudyConfig, out: Path) -> None:
    print(spikeode("report", out))


STAGES = [("hpo", stage_hpo), ("retrain", stage_retrain), ("gradstats", stage_gradstats),
          ("landscape", stage_landscape), ("samples", stage_samples), ("report", stage_report)]


def check_study_config(cfg: StudyConfig, out: Path) -> None:
    """Store the configuration, or refuse a different one for an existing output directory."""
    path = out / "study.json"
    current = json.loads(json.dumps(dataclasses.asdict(cfg)))
    if path.exists():
        stored = json.loads(path.read_text())
        changed = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
        if changed:
            raise SystemExit(f"{out} holds a study with another configuration; changed keys: {changed} "
                             "(use another --out, or delete the directory)")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None,
                        help="synthetic[:standard|easy|easier] (spikeode.data.synthetic; default synthetic, and "
                             "synthetic:easier for --quick, whose minutes do not learn the standard set) | "
                             "yinyang | shd:DIR")
    parser.add_argument("--synapse", choices=SYNAPSES, default="exp",
                        help="exp: LIF and QIF with the same exponential synapse (default); delta: theta QIF "
                             "vs delta-synapse LIF")
    parser.add_argument("--landscape-jobs", default=None, help=argparse.SUPPRESS)  # internal: stage 4's worker
    parser.add_argument("--out", type=Path, default=Path("out/lif_vs_qif"))
    parser.add_argument("--quick", action="store_true", help="small budget: every stage and file in < 10 min")
    parser.add_argument("--preset", choices=("full", "reference", "quick", "tiny"), default=None,
                        help="budget preset (--quick = --preset quick; tiny is for the test suite)")
    parser.add_argument("--stop-after", choices=[name for name, _ in STAGES], default=None,
                        help="stop after this stage (the next run resumes from there)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--hpo-trials", type=int, default=None)
    args = parser.parse_args(argv)
    if args.landscape_jobs is not None:
        run_landscape_jobs(json.loads(args.landscape_jobs))
        return 0
    preset = args.preset or ("quick" if args.quick else "full")
    data = args.data or ("synthetic:easier" if preset in ("quick", "reference") else "synthetic")
    cfg = StudyConfig.preset(preset, data, args.synapse)
    if args.seeds:
        cfg = dataclasses.replace(cfg, seeds=tuple(args.seeds))
    if args.hpo_trials:
        cfg = dataclasses.replace(cfg, hpo_trials=args.hpo_trials)
    check_study_config(cfg, args.out)
    t_start = time.perf_counter()
    for i, (name, stage) in enumerate(STAGES, 1):
        t0 = time.perf_counter()
        print(f"[{i}/{len(STAGES)}] {name}", flush=True)
        stage(cfg, args.out)
        print(f"[{i}/{len(STAGES)}] {name} finished in {time.perf_counter() - t0:.0f} s", flush=True)
        if name == args.stop_after:
            print(f"stopped after stage {name}; run the same command again to continue")
            return 0
    print(f"study finished in {time.perf_counter() - t_start:.0f} s: {args.out}/summary.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
