"""The main study: LIF vs QIF after an equal hyperparameter search, then why (Wenig, Memmesheimer & Klos).

    python studies/lif_vs_qif.py --quick --out out/lif_vs_qif                # < 10 min, synthetic data
    python studies/lif_vs_qif.py --data shd:/path/to/shd --out out/shd       # the seed's setting
    python studies/lif_vs_qif.py --quick --synapse delta --out out/delta     # the second pair

The pair (``--synapse``): ``exp`` (default) is LIF and QIF with the SAME exponential synapse at each model's
closed-form ratio (LIF tau_mem = 2 tau_syn; QIF tau_syn = tau/2 with I0 = -1/4), the neuron parameters of the
data source's recipe (``spikeode.training.default_config``); ``delta`` is the theta QIF against LIF, both with
delta synapses (``DELTA_PAIR``). Either way the neuron parameters are fixed for the search, so both models
share the coupling, tau_m, initialisation scheme, readout and the rest of the HPO space.

Stages (each skipped when its files exist for the same configuration; the unfinished one resumes), all in
this process, each printing the equivalent ``spikeode`` command of every unit it runs:
  1. hpo        equal Optuna budget per model          -> hpo_<model>.nc (+ hpo_<model>.log journal)
  2. retrain    each winner with several seeds          -> runs/<model>/seed<k>/run.nc (+ checkpoints)
  3. gradstats  gradient statistics over those runs     -> gradstats.nc
  4. landscape  2-D loss/gradient landscapes: ``landscape_planes`` random filter-normalised planes around
                the first seed's winner (plane k: direction seed k; ``landscape_<model>.nc`` for k = 0,
                ``landscape_<model>_plane<k>.nc`` after) and, with ``gradient_planes``, one gradient plane
                (alpha: the descent direction) around every seed's winner
                (``landscape_<model>_gradient_seed<s>.nc``); planes of one run share one compiled program
  5. samples    1-D single-sample scans with spike times -> samples_<model>.nc
  6. report     summary.nc, figures (PNG), summary.md (opens with the claims table; `spikeode report OUT`
                redoes it from the files)
The study's configuration and file layout are kept in OUT/study.json; re-running with another configuration
is refused with the names of the changed keys.

Past one machine:
  --storage URL            the searches live in a shared database (e.g. postgresql://user:pw@host/db) instead
                           of OUT/hpo_<model>.log: study processes on several machines (each with its own OUT)
                           run trials of the same searches until the equal budget is used, and each waits for
                           the others' trials before it takes the winner; the later stages then give every
                           process the same results.
  --dask-scheduler ADDR    retraining seeds, gradient statistics, landscapes and scans run as tasks of a Dask
                           cluster (workers need spikeode and OUT on a shared filesystem).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import spikeode

spikeode.use_fast_cpu_defaults()  # first, before any JAX computation: faster CPU code for event loops
spikeode.enable_compilation_cache()  # compiled programs kept on disk: a resumed or second process loads them

from spikeode.study.pipeline import Unit, gradstats_unit, landscape_unit, run_units, train_unit  # noqa: E402
from spikeode.study.report import StudyLayout  # noqa: E402

MODELS = ("lif", "qif")
SYNAPSES = ("exp", "delta")
#: The second pair's neuron parameters: LIF with delta synapses against the theta QIF (excitable, I0 < 0).
DELTA_PAIR = {"lif": {"tau_mem": 1.0, "tau_syn": None}, "qif": {"tau": 1.0, "I0": -0.05}}
PAIR_TEXT = {"exp": "same exponential synapse (LIF tau_mem = 2 tau_syn; QIF tau_syn = tau/2, I0 = -1/4)",
             "delta": "delta synapses (theta QIF vs delta-synapse LIF)"}
#: Settings of the search that are not the study's (the ``spikeode hpo`` defaults).
SEARCH = {"seed": 0, "sampler_startup_trials": 10, "pruner": "median", "pruner_startup_trials": 3,
          "heartbeat_interval": 60, "grace_period": 240}
#: Gradient-statistics settings that are not the study's (the ``spikeode gradstats`` defaults).
GRADSTATS = {"seed": 0, "every": None, "step_scales": (0.5, 1.0, 2.0), "step_kind": "auto", "chunk": 4, "probes": 4}


def study_layout(synapse: str) -> StudyLayout:
    """Where this study keeps its files, passed to the report and stored in study.json."""
    return StudyLayout(title="LIF vs QIF", pair=PAIR_TEXT[synapse], models=MODELS, run="runs/{model}/seed{seed}",
                       hpo="hpo_{model}.nc", best="best_{model}.json", gradstats="gradstats.nc",
                       first_plane="landscape_{model}.nc", plane="landscape_{model}_plane{plane}.nc",
                       gradient_plane="landscape_{model}_gradient_seed{seed}.nc", samples="samples_{model}.nc")


@dataclass(frozen=True)
class StudyConfig:
    """The study's budget and setting. ``train_overrides``: ``TrainConfig`` values fixed for every run."""

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
    train_overrides: dict = field(default_factory=dict)

    def __post_init__(self):
        from spikeode.training import TrainConfig

        if self.synapse not in SYNAPSES:
            raise ValueError(f"unknown synapse {self.synapse!r}: use one of {SYNAPSES}")
        if self.landscape_planes < 1:
            raise ValueError(f"landscape_planes must be >= 1, got {self.landscape_planes}")
        unknown = sorted(set(self.train_overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown:
            raise ValueError(f"train_overrides has keys that are not TrainConfig fields: {unknown}")

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
                       scan_samples=(0, 1, 2, 3), gradstats_batches=4, train_overrides={"hidden": (24,), "k_in": 150})
        if name == "reference":
            # The committed reference results (results/reference_*): 11 min (synthetic) and 16 min (Yin-Yang)
            # alone on 2 cores, ~95 min with both and other jobs on them; 6 HPO trials per model (the recipe
            # first), 3 seeds, 3 random planes plus every seed's gradient plane, 8 scanned samples.
            extra = {} if data == "yinyang" else {"hidden": (32,), "k_in": 150}
            train, test = (1000, 500) if data == "yinyang" else (1200, 400)
            return cls(data=data, synapse=synapse, seeds=(0, 1, 2), hpo_trials=6, hpo_epochs=3,
                       train_samples=train, test_samples=test, retrain_epochs=12, landscape_points=9,
                       landscape_span=0.5, landscape_samples=64, gradient_planes=True, scan_points=61,
                       scan_samples=tuple(range(8)), gradstats_batches=8, train_overrides=extra)
        if name == "tiny":
            return cls(data=data, synapse=synapse, seeds=(0,), hpo_trials=1, hpo_epochs=1, train_samples=32,
                       test_samples=16, retrain_epochs=1, landscape_points=3, landscape_span=0.5,
                       landscape_samples=8, landscape_planes=2, gradient_planes=False, scan_points=5,
                       scan_samples=(0,), gradstats_batches=2, gradstats_epochs="last",
                       train_overrides={"hidden": (4,), "k_in": 60})
        raise ValueError(f"unknown preset {name!r}: full, reference, quick or tiny")


def pair_neuron_params(cfg: StudyConfig) -> dict[str, dict]:
    """Neuron parameters of each model for the configured pair (fixed during the search)."""
    if cfg.synapse == "delta":
        return DELTA_PAIR
    from spikeode.training import default_config

    return {model: default_config(cfg.data, model).neuron_params for model in MODELS}


def _flag(key: str, value) -> list[str]:
    """A ``TrainConfig`` value as ``spikeode train`` flags."""
    if isinstance(value, (tuple, list)):
        value = ",".join(map(str, value))
    elif isinstance(value, dict):
        value = json.dumps(value)
    return [f"--{key.replace('_', '-')}", str(value)]


def _show(*args) -> None:
    """Print the equivalent ``spikeode`` command of a unit, so a user can rerun it by hand."""
    print("  $ spikeode " + shlex.join(map(str, args)), flush=True)


@dataclass(frozen=True)
class Study:
    """One study process: the configuration, its output directory and where its work runs."""

    cfg: StudyConfig
    out: Path
    storage: str | None = None
    dask_scheduler: str | None = None

    @property
    def layout(self) -> StudyLayout:
        return study_layout(self.cfg.synapse)

    def path(self, name: str, **fields) -> Path:
        return self.layout.path(self.out, name, **fields)

    def run_dir(self, model: str, seed: int) -> Path:
        return self.path("run", model=model, seed=seed)

    def hpo_storage(self, model: str) -> str:
        return self.storage or str(self.out / f"hpo_{model}.log")

    def search_base(self, model: str):
        """The ``TrainConfig`` every trial of ``model`` starts from, and the keys fixed for the search."""
        from spikeode.training import default_config

        cfg = self.cfg
        fixed = {"neuron_params": pair_neuron_params(cfg)[model], "epochs": cfg.hpo_epochs,
                 **{k: v for k, v in (("train_samples", cfg.train_samples), ("test_samples", cfg.test_samples)) if v},
                 **cfg.train_overrides}
        base = default_config(cfg.data, model, validation_fraction=cfg.validation_fraction, **fixed)
        return base, {"neuron", "data", *fixed}


def finished_trials(path: Path) -> int:
    """Finished trials recorded in ``path``, whatever their fate: every trial counts toward the budget."""
    if not path.exists():
        return 0
    import xarray as xr

    with xr.open_dataset(path) as ds:
        return int(ds.sizes["trial"])


def stage_hpo(study: Study) -> None:
    from spikeode.study import hpo
    from spikeode.study.pipeline import wait_for_budget

    cfg = study.cfg
    for model in MODELS:
        nc = study.path("hpo", model=model)
        if finished_trials(nc) >= cfg.hpo_trials:
            print(f"  hpo {model}: {cfg.hpo_trials} trials done, skipped")
            continue
        base, fixed = study.search_base(model)
        space = hpo.default_space(base.neuron, base.init, base.data)
        space = {k: v for k, v in space.items() if k.split(".")[0] not in fixed}  # as `spikeode hpo` drops them
        storage, name = study.hpo_storage(model), f"lif_vs_qif_{model}"
        kwargs = dict(storage=storage, study_name=name, n_trials=cfg.hpo_trials, out=nc,
                      runs_dir=study.out / "hpo_runs" / model, progress=True, echo=print, **SEARCH)
        flags = [a for k in sorted(fixed - {"neuron", "data"}) for a in _flag(k, getattr(base, k))]
        _show("hpo", "--neuron", model, "--data", cfg.data, *flags, "--validation-fraction", cfg.validation_fraction,
              "--trials", cfg.hpo_trials, "--storage", hpo.redact(storage), "--study-name", name, "--out", nc,
              "--runs-dir", kwargs["runs_dir"])
        # n_trials is the study's whole budget (hpo.BUDGET_RULE): a resumed search runs only the rest
        hpo.run_search(base, space, **kwargs)
        if wait_for_budget(storage, name, cfg.hpo_trials, grace_period=SEARCH["grace_period"]):
            hpo.run_search(base, space, **kwargs)  # starts no trial; rewrites hpo.nc with the others' trials


def stage_retrain(study: Study) -> None:
    from spikeode.study import hpo
    from spikeode.training import TrainConfig

    units = []
    for model in MODELS:
        best = study.path("best", model=model)
        if not best.exists():
            winner = hpo.best_config(hpo.open_storage(study.hpo_storage(model)), f"lif_vs_qif_{model}")
            winner.update(validation_fraction=0.0, epochs=study.cfg.retrain_epochs)
            best.write_text(json.dumps(winner, indent=1))
        winner = json.loads(best.read_text())
        for seed in study.cfg.seeds:
            run = study.run_dir(model, seed)
            meta = run / "checkpoint.json"
            if meta.exists() and json.loads(meta.read_text())["epoch"] >= study.cfg.retrain_epochs:
                print(f"  retrain {model} seed {seed}: done, skipped")
                continue
            _show("train", "--config", best, "--seed", seed, "--out", run, *(["--resume"] if meta.exists() else []))
            config = TrainConfig.from_dict({**winner, "seed": seed})
            units.append(Unit(f"retrain {model} seed {seed}", train_unit, (config, str(run))))
    run_units(units, dask_scheduler=study.dask_scheduler)


def stage_gradstats(study: Study) -> None:
    out = study.path("gradstats")
    if out.exists():
        print("  gradstats: done, skipped")
        return
    runs = [str(study.run_dir(m, s)) for m in MODELS for s in study.cfg.seeds]
    options = dict(n_batches=study.cfg.gradstats_batches, epochs=study.cfg.gradstats_epochs, **GRADSTATS)
    _show("gradstats", "--runs", *runs, "--out", out, "--batches", study.cfg.gradstats_batches,
          "--epochs", study.cfg.gradstats_epochs)
    run_units([Unit("gradstats", gradstats_unit, (runs, str(out), options))], dask_scheduler=study.dask_scheduler)


def landscape_done(path: Path) -> bool:
    """Whether a landscape file exists with every alpha row finished (an unfinished one resumes)."""
    if not path.exists():
        return False
    import xarray as xr

    with xr.open_dataset(path) as ds:
        return "row_finished" in ds and bool((ds["row_finished"] > 0).all())


def landscape_jobs(study: Study, model: str) -> list[tuple]:
    """``(LandscapeConfig, out)`` of every unfinished landscape of ``model``: the random planes around the first
    seed's winner, then (``gradient_planes``) a gradient plane around every seed's winner."""
    from spikeode.study.landscape import LandscapeConfig

    cfg = study.cfg
    common = {"kind": "2d", "points": cfg.landscape_points, "span": cfg.landscape_span,
              "train_samples": cfg.landscape_samples}
    first = str(study.run_dir(model, cfg.seeds[0]))
    jobs = [(LandscapeConfig(run=first, seed=k, **common),
             study.path("first_plane", model=model) if k == 0 else study.path("plane", model=model, plane=k))
            for k in range(cfg.landscape_planes)]
    jobs += [(LandscapeConfig(run=str(study.run_dir(model, s)), direction="gradient", **common),
              study.path("gradient_plane", model=model, seed=s)) for s in (cfg.seeds if cfg.gradient_planes else ())]
    return [(lc, out) for lc, out in jobs if not landscape_done(out)]


def _landscape_unit(label: str, lc, out: Path) -> Unit:
    _show("landscape", "--run", lc.run, "--kind", lc.kind, "--points", lc.points, "--span", lc.span,
          "--train-samples", lc.train_samples, "--seed", lc.seed, "--direction", lc.direction,
          *(["--samples", ",".join(map(str, lc.samples))] if lc.kind == "sample" else []), "--out", out)
    return Unit(label, landscape_unit, (lc, str(out)))


def stage_landscape(study: Study) -> None:
    units = []
    for model in MODELS:
        jobs = landscape_jobs(study, model)
        if not jobs:
            print(f"  landscape {model}: done, skipped")
        units += [_landscape_unit(f"landscape {Path(out).name}", lc, out) for lc, out in jobs]
    run_units(units, dask_scheduler=study.dask_scheduler)


def stage_samples(study: Study) -> None:
    from spikeode.study.landscape import LandscapeConfig

    cfg, units = study.cfg, []
    for model in MODELS:
        out = study.path("samples", model=model)
        if landscape_done(out):
            print(f"  samples {model}: done, skipped")
            continue
        lc = LandscapeConfig(run=str(study.run_dir(model, cfg.seeds[0])), kind="sample", points=cfg.scan_points,
                             span=cfg.landscape_span, train_samples=cfg.landscape_samples, samples=cfg.scan_samples)
        units.append(_landscape_unit(f"samples {model}", lc, out))
    run_units(units, dask_scheduler=study.dask_scheduler)


def stage_report(study: Study) -> None:
    from spikeode.study.report import make_report

    _show("report", study.out)
    for path in make_report(study.out, study.layout):
        print(f"  wrote {path}")


STAGES = [("hpo", stage_hpo), ("retrain", stage_retrain), ("gradstats", stage_gradstats),
          ("landscape", stage_landscape), ("samples", stage_samples), ("report", stage_report)]


def check_study_config(cfg: StudyConfig, out: Path) -> None:
    """Store the configuration and layout, or refuse a different one for an existing output directory."""
    path = out / "study.json"
    current = json.loads(json.dumps({**dataclasses.asdict(cfg), "layout": study_layout(cfg.synapse).to_dict()}))
    if path.exists():
        from spikeode.training import changed_keys

        changed = changed_keys(json.loads(path.read_text()), current)
        if len(changed) > 1 and "layout" in changed:
            changed.remove("layout")  # the layout's words follow the configuration (the pair)
        if changed:
            raise SystemExit(f"{out} holds a study with another configuration; changed keys: {changed} "
                             "(use another --out, or delete the directory)")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None,
                        help="synthetic[:standard|easy|easier] (spikeode.data.synthetic; default synthetic, and "
                             "synthetic:easier for --quick, whose minutes do not learn the standard set) | "
                             "yinyang | shd:DIR")
    parser.add_argument("--synapse", choices=SYNAPSES, default="exp",
                        help="exp: LIF and QIF with the same exponential synapse (default); delta: theta QIF "
                             "vs delta-synapse LIF")
    parser.add_argument("--out", type=Path, default=Path("out/lif_vs_qif"))
    parser.add_argument("--quick", action="store_true", help="small budget: every stage and file in < 10 min")
    parser.add_argument("--preset", choices=("full", "reference", "quick", "tiny"), default=None,
                        help="budget preset (--quick = --preset quick; tiny is for the test suite)")
    parser.add_argument("--stop-after", choices=[name for name, _ in STAGES], default=None,
                        help="stop after this stage (the next run resumes from there)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--hpo-trials", type=int, default=None)
    parser.add_argument("--storage", default=None,
                        help="database URL of the searches, shared by study processes on several machines "
                             "(default: a journal file per model in OUT)")
    parser.add_argument("--dask-scheduler", default=None,
                        help="address of a Dask scheduler: retraining, gradient statistics, landscapes and scans "
                             "run as its tasks (OUT on a filesystem the workers share)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    preset = args.preset or ("quick" if args.quick else "full")
    data = args.data or ("synthetic:easier" if preset in ("quick", "reference") else "synthetic")
    cfg = StudyConfig.preset(preset, data, args.synapse)
    if args.seeds:
        cfg = dataclasses.replace(cfg, seeds=tuple(args.seeds))
    if args.hpo_trials:
        cfg = dataclasses.replace(cfg, hpo_trials=args.hpo_trials)
    check_study_config(cfg, args.out)
    # Every run of the study has one dtype (the search space leaves it alone), and JAX's x64 switch is
    # process-wide: set once here, it serves every stage in this process -- no stage needs a fresh process.
    from spikeode.precision import ensure_precision

    ensure_precision(cfg.train_overrides.get("dtype", "float32"))
    out = args.out.resolve() if args.dask_scheduler else args.out  # Dask workers have their own working directory
    study = Study(cfg, out, storage=args.storage, dask_scheduler=args.dask_scheduler)
    t_start, compiled_start = time.perf_counter(), spikeode.compile_time()  # counting from here
    for i, (name, stage) in enumerate(STAGES, 1):
        t0, compiled = time.perf_counter(), spikeode.compile_time()
        print(f"[{i}/{len(STAGES)}] {name}", flush=True)
        stage(study)
        _stage_finished(study, name, time.perf_counter() - t0, spikeode.compile_time() - compiled,
                        f"[{i}/{len(STAGES)}] ")
        if name == args.stop_after:
            print(f"stopped after stage {name}; run the same command again to continue")
            return 0
    _stage_finished(study, "study", time.perf_counter() - t_start, spikeode.compile_time() - compiled_start)
    print(f"wrote {args.out}/summary.md")
    return 0


def _stage_finished(study: Study, stage: str, seconds: float, compiled: spikeode.CompileTime,
                    prefix: str = "") -> None:
    """Print a stage's wall time and the share this process spent compiling (tracing, lowering, XLA or
    loading cached programs); append both to ``OUT/stage_times.jsonl``."""
    share = compiled.total / max(seconds, 1e-9)
    where = " (units on the Dask cluster: their compilation is not counted)" if study.dask_scheduler else ""
    print(f"{prefix}{stage} finished in {seconds:.0f} s, compiling {compiled.total:.0f} s ({share:.0%}; of it "
          f"{compiled.loaded:.0f} s loading cached programs){where}", flush=True)
    record = {"stage": stage, "seconds": round(seconds, 2), "compile_seconds": round(compiled.total, 2),
              "compile_share": round(share, 3), **{f"{k}_seconds": round(v, 2) for k, v in compiled._asdict().items()},
              "dask": study.dask_scheduler is not None, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with open(study.out / "stage_times.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
