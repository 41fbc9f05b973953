#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what is missing, starts the real services the tests talk to
# on 127.0.0.1 (Redis, the ClickHouse engine, PostgreSQL, a Kubernetes control plane; Prometheus is started by the
# tests that need it), runs every test, including the end-to-end suite against the real API server, and stops the services.
# The control plane is built from the Go module proxy on the first run (about 25 minutes on 2 cores) and cached
# under ~/.cache/perf-operator/. With KUBECONFIG set, the end-to-end suite runs against that cluster instead.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/support/install.sh
tests/gitops/run.sh # Argo CD health check, Flux health expressions, examples/gitops; no services

state="$(mktemp -d /tmp/perf-operator-tests.XXXXXX)"
# PostgreSQL's own directory: as root the cluster runs as an unprivileged user, who cannot enter $state (0700).
pg_state="$(mktemp -d /tmp/perf-operator-pg.XXXXXX)"
redis_pid=""
control_plane=""
cleanup() {
    [[ -n "$redis_pid" ]] && kill "$redis_pid" 2>/dev/null || true
    [[ -n "$control_plane" ]] && tests/support/control-plane.sh stop "$control_plane" || true
    CHDB_STATE_DIR="$state/chdb" tests/support/start-clickhouse.sh stop >/dev/null 2>&1 || true
    POSTGRES_STATE_DIR="$pg_state" tests/support/start-postgres.sh stop >/dev/null 2>&1 || true
    rm -rf "$state" "$pg_state"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Redis: a private instance, no persistence.
redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$state" >"$state/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$redis_port" ping >/dev/null || { echo "redis-server did not start:" >&2; cat "$state/redis.log" >&2; exit 1; }
export REDIS_URL="redis://127.0.0.1:$redis_port"
export REDIS_SERVER_BIN="$(command -v redis-server)"

# ClickHouse: the real engine (chdb-core) behind the HTTP adapter, unless CLICKHOUSE_URL points at a real server.
if [[ -z "${CLICKHOUSE_URL:-}" ]]; then
    ch_env="$(CHDB_STATE_DIR="$state/chdb" tests/support/start-clickhouse.sh start)" \
        || { echo "the ClickHouse engine did not start (see above)" >&2; exit 1; }
    eval "$ch_env"
fi
export CLICKHOUSE_URL

# PostgreSQL: a throwaway cluster (max_connections=37, TLS from a CA made for it), stopped by its PID at exit.
pg_env="$(POSTGRES_STATE_DIR="$pg_state" tests/support/start-postgres.sh start)" \
    || { echo "PostgreSQL did not start (see above)" >&2; exit 1; }
eval "$pg_env"

export PROMETHEUS_BIN="${PROMETHEUS_BIN:-$(command -v prometheus || echo /usr/bin/prometheus)}"
# Flagger's load tester, built once per machine from the Go module proxy (the canary hook tests call it).
LOADTESTER_BIN="$(tests/support/build-loadtester.sh)" || { echo "building Flagger's load tester failed (see above)" >&2; exit 1; }
export LOADTESTER_BIN
# Envoy's rate-limit service and its config checker (built once per machine), and Envoy Gateway's
# BackendTrafficPolicy CRD (copied once from its module): the rate-limit enforcement tests run and apply them.
PERF_RATELIMIT_DIR="$(tests/support/build-ratelimit.sh)" || { echo "building Envoy's rate-limit service failed (see above)" >&2; exit 1; }
PERF_ENVOY_GATEWAY_CRD="$(tests/support/fetch-envoy-gateway-crds.sh)" || { echo "fetching Envoy Gateway's CRDs failed (see above)" >&2; exit 1; }
export PERF_RATELIMIT_DIR PERF_ENVOY_GATEWAY_CRD
# distribution's OCI registry (built once per machine): the tests serve it with TLS and htpasswd auth, and push and
# pull through it.
PERF_REGISTRY_BIN="$(tests/support/build-registry.sh)" || { echo "building distribution's registry failed (see above)" >&2; exit 1; }
export PERF_REGISTRY_BIN

# The PostgreSQL URL carries the test role's password: shown without it.
echo "services: REDIS_URL=$REDIS_URL CLICKHOUSE_URL=$CLICKHOUSE_URL POSTGRES_URL=${POSTGRES_URL%%:*}://***@${POSTGRES_URL#*@}" \
    "PROMETHEUS_BIN=$PROMETHEUS_BIN LOADTESTER_BIN=$LOADTESTER_BIN" >&2
cargo test --workspace --locked

# The end-to-end suite: against a user's cluster when KUBECONFIG is set, otherwise against the control plane
# started here. Either way it runs; a control plane that cannot be built or started fails the run.
if [[ -n "${KUBECONFIG:-}" ]]; then
    echo "KUBECONFIG is set: running the end-to-end suite against that cluster" >&2
    PERF_CP_BIN="$(tests/support/build-control-plane.sh)" || { echo "building helm failed (see above)" >&2; exit 1; }
    export PERF_CP_BIN
else
    control_plane="$state/control-plane"
    # Assigned first: `eval "$(cmd)"` alone would hide a failed start behind eval's own success.
    cp_env="$(tests/support/control-plane.sh start "$control_plane")" \
        || { echo "the Kubernetes control plane did not start (its log is above)" >&2; exit 1; }
    eval "$cp_env"
fi
cargo build -p perf-operator --locked
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export PERF_OPERATOR_BIN="$target_dir/debug/perf-operator"
# The Python client and the sample app (clients/python/tests): the contract the operator writes checked against the
# schema, Redis and Prometheus for real, the operator's generated queries judging the sample app.
python3 -m pytest -q -p no:cacheprovider clients/python/tests
e2e_env="$(tests/e2e/setup.sh "$state/e2e" "$PERF_CP_BIN/helm")" \
    || { echo "preparing the cluster for the end-to-end suite failed (see above)" >&2; exit 1; }
eval "$e2e_env"
# Selected as part of the workspace (only the end-to-end tests are #[ignore]d): `-p perf-e2e` alone would resolve
# features differently and build the dependencies a second time.
cargo test --workspace --locked -- --ignored --test-threads=2
# Least privilege, proven on what the run just did: every verb the chart grants was used, none was refused.
if [[ -n "${PERF_AUDIT_LOG:-}" ]]; then
    python3 tests/support/rbac-audit.py "$PERF_AUDIT_LOG" perf-operator
else
    echo "no audit log of this cluster (KUBECONFIG set): the RBAC audit is skipped" >&2
fi
