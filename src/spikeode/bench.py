"""Throughput, compile time and peak memory of the event engine on standard workloads.

A *workload* fixes the network (700 inputs -> hidden -> 20 outputs), the neuron model, the
input statistics (uniform channels and times over ``[0, T)``, fixed seed) and a fixed-seed weight
initialisation with realistic activity. Each *run* (workload x integrator x mode x dtype x size)
executes in a fresh subprocess so that its peak resident memory (``ru_maxrss``) and its compile
time are not contaminated by other runs.

Loss: cross-entropy on the negative first output spike times (a silent output counts as ``T``),
``mean_b -log_softmax(-t_out[b])[label_b]`` with fixed random labels. ``fwd`` times the loss,
``grad`` times ``value_and_grad`` of it with respect to every weight and neuron parameter.
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence

__all__ = ["WORKLOADS", "RunConfig", "Workload", "flagged_warnings", "format_table", "make_problem",
           "run_in_subprocess", "run_local"]

INTEGRATORS = ("closed_form", "diffrax")
MODES = ("fwd", "grad")
#: Reference sizes at which a workload's weight scales are tuned (see ``Workload.weight_scales``).
REF_INPUT_SPIKES, REF_HIDDEN = 2000, 128


@dataclasses.dataclass(frozen=True)
class Workload:
    """A benchmark problem; ``weight_*`` are Gaussian ``(mean, std)`` per layer at the reference sizes.

    ``neuron`` is ``"qif"`` (spikegd's theta neuron, delta synapses), ``"lif"`` (exponential
    synapses, ``tau_mem = 2 tau_syn``: the ratio with the quadratic closed form used by spikegd) or
    ``"qif-exp"`` (QIF with the same exponential synapse, ``beta = 1``: its closed form).
    """

    name: str
    neuron: str
    weight_mean: tuple[float, float]
    weight_std: tuple[float, float]
    n_in: int = 700
    n_out: int = 20
    T: float = 2.0
    n_slots: tuple[int, int] = (4, 2)
    seed: int = 0

    def weight_scales(self, input_spikes: int, hidden: int) -> tuple[list[float], list[float]]:
        """Weights scaled so each neuron gets the same mean drive at any input count / hidden width.

        A hidden neuron receives ``input_spikes`` jumps, an output neuron ~``hidden`` spike trains:
        scaling mean and std by ``REF/size`` keeps the activity per neuron roughly constant, so a
        scaling table measures the cost of events and width, not of a changing spike count.
        """
        a, b = REF_INPUT_SPIKES / input_spikes, REF_HIDDEN / hidden
        mean = [self.weight_mean[0] * a, self.weight_mean[1] * b]
        std = [self.weight_std[0] * a, self.weight_std[1] * b]
        return mean, std


WORKLOADS: dict[str, Workload] = {
    # ~2.8 hidden spikes per neuron, every output spikes once (spikegd's MNIST neuron, theta0 = Theta/2).
    "shd": Workload("shd", "qif", weight_mean=(0.03, 0.02), weight_std=(0.03, 0.05)),
    # Outputs spike ~1.5 times (5% silent), within their 2 slots: at an output mean of 0.03 they spiked 2.7
    # times and every sample overflowed (flagged), so the loop timed truncated trains.
    "shd-lif": Workload("shd-lif", "lif", weight_mean=(0.006, 0.02), weight_std=(0.006, 0.05)),
    # The fair pair's QIF: the same exponential synapse as shd-lif (tau_syn = tau/2, beta = 1), closed form.
    "shd-qif-exp": Workload("shd-qif-exp", "qif-exp", weight_mean=(0.05, 0.08), weight_std=(0.006, 0.05)),
    # Yin-Yang-like (run with --input-spikes 5 --hidden 120): 5 input channels, 3 outputs, 4 slots per
    # neuron; the scan is then almost all hidden-neuron spikes, not inputs. Weights at the reference sizes
    # (x400 for the hidden layer at 5 inputs): the yinyang recipe's hidden mean 1.5.
    "yy-lif": Workload("yy-lif", "lif", weight_mean=(1.5 / 400, 0.15), weight_std=(0.45 / 400, 0.09),
                       n_in=5, n_out=3, n_slots=(4, 4)),
    "yy-qif-exp": Workload("yy-qif-exp", "qif-exp", weight_mean=(1.5 / 400, 0.15), weight_std=(0.45 / 400, 0.09),
                           n_in=5, n_out=3, n_slots=(4, 4)),
}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One measured run (everything a fresh process needs to rebuild the problem)."""

    workload: str = "shd"
    integrator: str = "closed_form"
    mode: str = "fwd"
    dtype: str = "float32"
    batch: int = 32
    input_spikes: int = 2000
    hidden: int = 128
    repeats: int = 5
    gradient: str = "autodiff"


def make_neuron(workload: Workload):
    """The workload's neuron model (parameters become trainable arrays in ``FeedForward``)."""
    from spikeode.neurons import LIF, QIF

    if workload.neuron == "qif":
        # spikegd: tau dV/dt = V(V - 1) + 5/4, tau = 6/pi (period 6), phase Theta/2 at t = 0 (V' = 1/2).
        return QIF(tau=6.0 / math.pi, I0=1.0, theta0=0.0)
    if workload.neuron == "lif":
        return LIF(tau_mem=1.0, tau_syn=0.5, I0=0.0, v_th=1.0, v_reset=0.0)
    if workload.neuron == "qif-exp":
        return QIF(tau=1.0, I0=-0.25, tau_syn="matched")
    raise ValueError(f"unknown neuron {workload.neuron!r}")


def make_inputs(workload: Workload, batch: int, input_spikes: int, dtype):
    """Uniform channels and times over ``[0, T)``, sorted per sample (numpy, fixed seed)."""
    import numpy as np

    rng = np.random.default_rng(workload.seed)
    times = np.sort(rng.uniform(0.0, workload.T, (batch, input_spikes)), axis=1).astype(dtype)
    units = rng.integers(0, workload.n_in, (batch, input_spikes)).astype(np.int32)
    labels = rng.integers(0, workload.n_out, batch).astype(np.int32)
    return times, units, labels


def make_problem(cfg: RunConfig):
    """``(net, spikes, labels, T)`` of a run: the same arrays for every integrator and for the peers."""
    import jax
    import jax.numpy as jnp

    from spikeode.engine.network import FeedForward
    from spikeode.spikes import Spikes

    wl = WORKLOADS[cfg.workload]
    dtype = jnp.dtype(cfg.dtype)
    mean, std = wl.weight_scales(cfg.input_spikes, cfg.hidden)
    net = FeedForward(
        make_neuron(wl),
        (wl.n_in, cfg.hidden, wl.n_out),
        key=jax.random.PRNGKey(wl.seed),
        weight_mean=mean,
        weight_std=std,
        n_slots=wl.n_slots,
        dtype=dtype,
    )
    times, units, labels = make_inputs(wl, cfg.batch, cfg.input_spikes, dtype)
    spikes = Spikes(jnp.asarray(times), jnp.asarray(units), wl.n_in)
    return net, spikes, jnp.asarray(labels), wl.T


def make_loss(integrator, T, gradient: str = "autodiff"):
    """``loss(net, spikes, labels) -> (loss, (activity, t_out))``: the training loss (``spikeode.training.loss``)
    without pseudospikes (silent outputs at ``T``), temperature 1 and no gamma term; activity counts as
    auxiliary output."""
    import jax.numpy as jnp

    from spikeode.engine.network import simulate
    from spikeode.training.loss import Objective, sample_loss
    from spikeode.training.readout import first_spike_times

    objective = Objective(T=T, pseudospikes=False)

    def loss(net, spikes, labels):
        trace = simulate(net, spikes, T, integrator=integrator, gradient=gradient)
        activity = {
            "hidden_spikes_per_neuron": jnp.mean(trace.layers[0].counts.astype(jnp.float32)),
            "output_spikes_per_neuron": jnp.mean(trace.output.counts.astype(jnp.float32)),
            "silent_output_fraction": jnp.mean((trace.output.counts == 0).astype(jnp.float32)),
            "events_used": trace.events_used.max(axis=0),
            "flagged_samples": jnp.sum(trace.exhausted | trace.overflow | trace.failed),
        }
        t_out = first_spike_times(net, trace, T, pseudospikes=False)
        return jnp.mean(sample_loss(objective, net, trace, labels).loss), (activity, t_out)

    return loss


def make_step(cfg: RunConfig):
    """The jitted function a run times: the loss (``fwd``) or its value and gradient (``grad``)."""
    import equinox as eqx

    net, spikes, labels, T = make_problem(cfg)
    loss = make_loss(cfg.integrator, T, cfg.gradient)  # diffrax picks float32/float64 tolerances from the state
    if cfg.mode == "fwd":
        fn = eqx.filter_jit(loss)
    elif cfg.mode == "grad":
        fn = eqx.filter_jit(eqx.filter_value_and_grad(loss, has_aux=True))
    else:
        raise ValueError(f"mode must be one of {MODES}, got {cfg.mode!r}")
    return fn, (net, spikes, labels)


def time_calls(fn, args, repeats: int) -> tuple[float, float, object]:
    """``(first_call_s, steady_s, result)``; steady = median of ``repeats`` further calls."""
    import jax

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), out


def run_local(cfg: RunConfig) -> dict:
    """Measure one run in this process (use ``run_in_subprocess`` for a clean peak-RSS figure)."""
    import jax

    from spikeode.precision import ensure_precision

    ensure_precision(cfg.dtype)
    fn, args = make_step(cfg)
    first, steady, out = time_calls(fn, args, cfg.repeats)
    (_, (activity, _)) = out if cfg.mode == "fwd" else out[0]
    result = dataclasses.asdict(cfg)
    result.update(
        samples_per_s=cfg.batch / steady,
        input_events_per_s=cfg.batch * cfg.input_spikes / steady,
        step_s=steady,
        compile_s=max(first - steady, 0.0),
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        xla_temp_mib=xla_temp_mib(fn, args),
        device=str(jax.devices()[0].device_kind),
        backend=jax.default_backend(),
    )
    result.update({k: _to_python(v) for k, v in activity.items()})
    return result


def xla_temp_mib(fn, args) -> float:
    """XLA's working memory of the compiled program (everything it allocates besides arguments and
    outputs: for ``grad``, what the forward keeps for the backward pass plus scratch), in MiB.
    Measured after the timed calls (it compiles once more), so ``peak_rss_mib`` does not include it."""
    try:
        stats = fn.lower(*args).compile().compiled.memory_analysis()
        return stats.temp_size_in_bytes / 2**20
    except Exception:  # noqa: BLE001 -- a backend without memory statistics
        return float("nan")


def _to_python(value):
    import numpy as np

    arr = np.asarray(value)
    return arr.item() if arr.ndim == 0 else arr.tolist()


def run_in_subprocess(cfg: RunConfig, *, timeout: float | None = None) -> dict:
    """Run ``cfg`` in a fresh Python process; returns its result dict (or one with ``error``)."""
    cmd = [sys.executable, "-m", "spikeode.bench", json.dumps(dataclasses.asdict(cfg))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**dataclasses.asdict(cfg), "error": f"timed out after {timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {**dataclasses.asdict(cfg), "error": f"exit {proc.returncode}: {tail[0]}"}
    return json.loads(lines[-1])


def expand_runs(
    workloads: Sequence[str],
    integrators: Sequence[str],
    modes: Sequence[str],
    *,
    dtype: str = "float32",
    batch: int = 32,
    input_spikes: Sequence[int] = (2000,),
    hidden: Sequence[int] = (128,),
    repeats: int = 5,
    gradient: str = "autodiff",
) -> list[RunConfig]:
    """Every combination of the given options, as run configurations."""
    for name in workloads:
        if name not in WORKLOADS:
            raise ValueError(f"unknown workload {name!r}: use one of {sorted(WORKLOADS)}")
    return [
        RunConfig(w, i, m, dtype, batch, n_in, h, repeats, gradient)
        for w in workloads
        for i in integrators
        for n_in in input_spikes
        for h in hidden
        for m in modes
    ]


COLUMNS = (
    ("workload", "{}"),
    ("integrator", "{}"),
    ("gradient", "{}"),
    ("mode", "{}"),
    ("dtype", "{}"),
    ("batch", "{}"),
    ("input_spikes", "{}"),
    ("hidden", "{}"),
    ("samples_per_s", "{:.1f}"),
    ("input_events_per_s", "{:.3g}"),
    ("compile_s", "{:.2f}"),
    ("peak_rss_mib", "{:.0f}"),
    ("xla_temp_mib", "{:.1f}"),
    ("hidden_spikes_per_neuron", "{:.2f}"),
    ("output_spikes_per_neuron", "{:.2f}"),
    ("flagged_samples", "{}"),
)


def flagged_warnings(rows: Iterable[dict]) -> list[str]:
    """One line per run whose samples hit a flag: their timings are of truncated or failed simulations."""
    return [f"warning: {r['workload']} {r['integrator']} {r['mode']}: {r['flagged_samples']} of {r['batch']} samples "
            "flagged (event budget exhausted, spike slots overflowed or a solve failed); its timing is of "
            "truncated simulations" for r in rows if r.get("flagged_samples", 0) > 0]


def format_table(rows: Iterable[dict]) -> str:
    """A plain-text table of results (errors shown in place of the numbers)."""
    rows = list(rows)
    header = [name for name, _ in COLUMNS]
    body = []
    for r in rows:
        if "error" in r:
            body.append([str(r.get(n, "")) for n in header[:8]] + [f"ERROR: {r['error']}"])
            continue
        body.append([fmt.format(r[name]) if name in r else "" for name, fmt in COLUMNS])
    widths = [max(len(h), *(len(b[i]) for b in body if i < len(b))) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def _child_main(argv: list[str]) -> int:
    """``python -m spikeode.bench '<RunConfig JSON>'``: measure one run, print one JSON line."""
    cfg = RunConfig(**json.loads(argv[0]))
    print(json.dumps(run_local(cfg)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
