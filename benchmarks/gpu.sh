#!/usr/bin/env bash
# The `shd` workload benchmarks on whatever accelerator JAX sees (GPU if jax[cuda] is installed, else CPU):
# closed form and diffrax, batch 32 and 256, forward and forward+gradient, one JSON object per run.
#   bash benchmarks/gpu.sh [OUT.jsonl]        (default: benchmarks/results/gpu_<platform>.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
platform="$(python -c 'import jax; print(jax.default_backend())')"
out="${1:-benchmarks/results/gpu_${platform}.jsonl}"
echo "JAX backend: ${platform} ($(python -c 'import jax; print(jax.devices()[0].device_kind)')) -> ${out}" >&2
: > "${out}"
for batch in 32 256; do
    for workload in shd shd-qif-exp; do
        spikeode bench --workload "${workload}" --integrator both --mode both --batch "${batch}" \
            --timeout 1200 --json | tee -a "${out}"
    done
done
