#!/usr/bin/env bash
# The full exactness report (`spikeode check`, float64, every variant) of each built-in model, timed.
# The test suite runs the same rows on the variants no other test compares (tests/test_neurons.py,
# CHECK_VARIANTS, which names where the others are covered); this script runs every variant.
#
#   benchmarks/check_all.sh               # lif qif eif
#   benchmarks/check_all.sh qif           # one model (or a user's package.module:Class)
#   SPIKEODE_COMPILATION_CACHE=0 benchmarks/check_all.sh   # without the persistent compilation cache
#
# Exit status: non-zero if any row of any model is beyond its tolerance.
set -euo pipefail
python="${PYTHON:-python}"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(lif qif eif)
status=0
for model in "${models[@]}"; do
    echo "== spikeode check --neuron $model"
    start=$SECONDS
    "$python" -m spikeode.cli check --neuron "$model" || status=1
    echo "== $model: $((SECONDS - start)) s"
done
exit "$status"
