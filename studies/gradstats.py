"""Gradient statistics over training, LIF vs QIF (issue 8).

Trains LIF and QIF with the same budget (synthetic data, ``--epochs`` x ``--train-samples``) over
``--seeds`` seeds (runs resume / are skipped when already finished), computes the gradient statistics of
``spikeode.study.gradstats`` at the start, middle and end of training (the per-epoch snapshots
``epochs/epoch_NNNN.eqx``), combines them into OUT/gradstats.nc, plots OUT/gradstats.png, prints the
table, and times the statistics of one checkpoint against 20 training steps (both compiled, same process).

    python studies/gradstats.py --out results/gradstats --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import spikeode

spikeode.use_fast_cpu_defaults()  # first, before any JAX computation: faster CPU code for event loops


def train_runs(out: Path, neurons, seeds, epochs: int, train_samples: int, test_samples: int) -> list[Path]:
    from spikeode.training import default_config, load_checkpoint, train

    dirs = []
    for seed in seeds:
        for neuron in neurons:
            config = default_config("synthetic", neuron, epochs=epochs, train_samples=train_samples,
                                    test_samples=test_samples, seed=seed)
            run_dir = out / "runs" / f"{neuron}_s{seed}"
            done = (run_dir / "checkpoint.json").exists() and load_checkpoint(run_dir, config)[2] == epochs
            if not done:
                train(config, run_dir, progress=False)
            dirs.append(run_dir)
    return dirs


def time_training_steps(run_dir: Path, n_steps: int = 20) -> float:
    """Seconds of ``n_steps`` compiled training steps (:func:`spikeode.training.training_step`, the step of
    ``spikeode train``) on the run's data, after one step that compiles."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from spikeode.data import iterate_batches
    from spikeode.training import load_data, load_model, trainable_filter, training_step
    from spikeode.training.loop import loss_hyperparameters

    model, config = load_model(run_dir, 0)
    train_set = load_data(config)[0]
    spec = trainable_filter(model, config)
    optimizer, step = training_step(config, steps_per_epoch=10)
    opt_state = optimizer.init(eqx.filter(model, spec))
    hyper = loss_hyperparameters(config)
    batches, k = [], 0
    while len(batches) < n_steps + 1:
        batches += list(iterate_batches(train_set, config.batch_size, seed=k, drop_last=True))
        k += 1
    for i, (spikes, labels) in enumerate(batches[:n_steps + 1]):
        if i == 1:
            t0 = time.perf_counter()
        model, opt_state, metrics, _, _ = step(model, opt_state, spikes, labels, jnp.ones(labels.shape, bool),
                                               hyper, spec)
        jax.block_until_ready(metrics)
    return time.perf_counter() - t0


def table(ds) -> str:
    """Mean ± std over seeds per neuron model and epoch (whole weight vector; step scale 1)."""
    rows = [("snr", {"layer": "all"}), ("snr_debiased", {"layer": "all"}), ("cosine", {"layer": "all"}),
            ("cosine", {"layer": "hidden1"}), ("cosine", {"layer": "output"}),
            ("zero_grad_fraction", {"layer": "all", "pseudospikes": 1}),
            ("zero_grad_fraction", {"layer": "all", "pseudospikes": 0}),
            ("zero_grad_fraction", {"layer": "output", "pseudospikes": 0}),
            ("zero_grad_fraction_all", {"layer": "hidden1", "pseudospikes": 1}),
            ("predictiveness_ratio", {"step_scale": 1.0}), ("predictiveness_ratio", {"step_scale": 0.5}),
            ("ascent_fraction", {"step_scale": 1.0}), ("ascent_fraction", {"step_scale": 2.0}),
            ("grad_change_relative", {"layer": "all", "step_scale": 1.0}),
            ("fd_slope_ratio", {}), ("fd_sign_agreement", {}), ("loss", {})]
    epochs = ds.epoch.values.tolist()
    models = ds.neuron_model.values.tolist()
    head = "| statistic | " + " | ".join(f"{m.upper()} ep {e}" for m in models for e in epochs) + " |"
    lines = [head, "|" + "---|" * (1 + len(models) * len(epochs))]
    for name, sel in rows:
        da = ds[name].sel({k: v for k, v in sel.items() if k in ds[name].dims})
        cells = []
        for m in models:
            cur = da.sel(neuron_model=m)
            mu, sd = cur.mean("seed"), cur.std("seed")
            cells += [f"{float(mu.sel(epoch=e)):.3g} ± {float(sd.sel(epoch=e)):.2g}" for e in epochs]
        label = name + (" (" + ", ".join(f"{k}={v}" for k, v in sel.items()) + ")" if sel else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/gradstats"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--neurons", nargs="+", default=["lif", "qif"])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-samples", type=int, default=300)
    p.add_argument("--test-samples", type=int, default=64)
    p.add_argument("--batches", type=int, default=16)
    p.add_argument("--no-timing", action="store_true")
    args = p.parse_args()

    from spikeode.io.netcdf import write_dataset
    from spikeode.io.plotting import plot_gradstats
    from spikeode.study.gradstats import checkpoint_gradstats, draw_minibatches, run_gradstats
    from spikeode.training import load_data, load_model

    args.out.mkdir(parents=True, exist_ok=True)
    dirs = train_runs(args.out, args.neurons, args.seeds, args.epochs, args.train_samples, args.test_samples)
    t0 = time.perf_counter()
    ds = run_gradstats(dirs, n_batches=args.batches, epochs="first,middle,last")
    print(f"statistics of {len(dirs)} runs x {ds.sizes['epoch']} epochs: {time.perf_counter() - t0:.0f} s")
    write_dataset(ds, args.out / "gradstats.nc")
    plot_gradstats(ds, args.out / "gradstats.png")
    text = table(ds)
    print(text)
    (args.out / "table.md").write_text(text + "\n")

    if not args.no_timing:
        timing = {}
        for run_dir in dirs[: len(args.neurons)]:
            model, config = load_model(run_dir)
            batches = draw_minibatches(load_data(config)[0], config.batch_size, args.batches, 0)
            t1 = time.perf_counter()
            res = checkpoint_gradstats(model, config, batches)  # programs already compiled above
            stats_s = time.perf_counter() - t1
            steps_s = time_training_steps(run_dir, 20)
            timing[config.neuron] = {"stats_one_checkpoint_s": stats_s, "train_20_steps_s": steps_s,
                                     "ratio": stats_s / steps_s,
                                     "minibatch_gradients": res["timing"]["gradients"],
                                     "minibatch_losses": res["timing"]["losses"]}
            print(f"{config.neuron}: statistics of one checkpoint ({args.batches} minibatches, "
                  f"{res['timing']['gradients']} minibatch gradients, {res['timing']['losses']} losses) {stats_s:.1f} s vs 20 "
                  f"training steps {steps_s:.1f} s (x{stats_s / steps_s:.1f})")
        (args.out / "timing.json").write_text(json.dumps(timing, indent=1))


if __name__ == "__main__":
    main()
