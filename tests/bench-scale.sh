#!/usr/bin/env bash
# The scale benchmarks against a real API server: starts the control plane and a private Redis as tests/run.sh
# does, installs the CRDs and the chart, builds the release operator, and prints each benchmark's table and ratios.
# PERF_BENCHES picks them (default churn,unrelated,converge):
# - churn (tests/e2e/benches/churn.rs): PERF_CHURN_PROFILES (200), PERF_CHURN_WINDOW_SECONDS (90),
#   PERF_CHURN_RESYNC_SECONDS (20);
# - unrelated (tests/e2e/benches/unrelated.rs): PERF_UNRELATED_OBJECTS (10000), PERF_UNRELATED_PROFILES (100);
# - converge (tests/e2e/benches/converge.rs): PERF_BENCH_SIZES (500,2000);
# - fullscale (tests/e2e/benches/fullscale.rs): PERF_FULL_SIZES (500,2000), PERF_FULL_RESYNC_SECONDS (300);
# - failover (tests/e2e/benches/failover.rs): PERF_FAILOVER_PROFILES (2000), PERF_FAILOVER_RESYNC_SECONDS (300).
# The last two read the live limits of a PostgreSQL this script starts (tests/support/start-postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
state="$(mktemp -d /tmp/perf-operator-bench.XXXXXX)"
# PostgreSQL's own directory: as root the cluster runs as an unprivileged user, who cannot enter $state (0700).
pg_state="$(mktemp -d /tmp/perf-operator-bench-pg.XXXXXX)"
redis_pid=""
cleanup() {
    [[ -n "$redis_pid" ]] && kill "$redis_pid" 2>/dev/null || true
    POSTGRES_STATE_DIR="$pg_state" tests/support/start-postgres.sh stop >/dev/null 2>&1 || true
    tests/support/control-plane.sh stop "$state/control-plane" || true
    rm -rf "$state" "$pg_state"
}
trap cleanup EXIT
tests/support/install.sh
redis_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$state" >"$state/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export REDIS_URL="redis://127.0.0.1:$redis_port"
pg_env="$(POSTGRES_STATE_DIR="$pg_state" tests/support/start-postgres.sh start)"
eval "$pg_env"
cp_env="$(tests/support/control-plane.sh start "$state/control-plane")"
eval "$cp_env"
cargo build --release -p perf-operator --locked
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export PERF_OPERATOR_BIN="$target_dir/release/perf-operator"
e2e_env="$(tests/e2e/setup.sh "$state/e2e" "$PERF_CP_BIN/helm")"
eval "$e2e_env"
IFS=',' read -ra benches <<<"${PERF_BENCHES:-churn,unrelated,converge}"
for bench in "${benches[@]}"; do
    cargo bench -p perf-e2e --bench "$bench" --locked
done
