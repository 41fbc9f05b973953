#!/usr/bin/env bash
# The convergence benchmark against a real API server (tests/e2e/benches/converge.rs): starts the control plane
# as tests/run.sh does, installs the CRDs and the chart, and prints the table and the 2000/500 ratios.
# PERF_BENCH_SIZES=500,2000 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
state="$(mktemp -d /tmp/perf-operator-bench.XXXXXX)"
trap 'tests/support/control-plane.sh stop "$state/control-plane"; rm -rf "$state"' EXIT
cp_env="$(tests/support/control-plane.sh start "$state/control-plane")"
eval "$cp_env"
cargo build --release -p perf-operator --locked
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export PERF_OPERATOR_BIN="$target_dir/release/perf-operator"
e2e_env="$(tests/e2e/setup.sh "$state/e2e" "$PERF_CP_BIN/helm")"
eval "$e2e_env"
cargo bench -p perf-e2e --bench converge --locked
