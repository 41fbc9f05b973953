#!/usr/bin/env bash
# Installs what the test suite needs, skipping what is already there: Debian's redis-server, prometheus and
# postgresql (for its binaries: the tests start a private cluster, tests/support/start-postgres.sh), lua5.4 (the
# Argo CD health check's tests) and hey (load in the canary webhook tests), and PyPI's pyyaml, chdb-core (the real
# ClickHouse engine behind tests/support/chdb_http.py), locust (load in the canary webhook tests) and the Python
# client (clients/python) with its pinned test requirements. The WASM
# policies need no install: their built components are committed
# (policies/build.sh adds its own target when rebuilding them).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
log() { echo "install: $*" >&2; }
sudo_() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v prometheus >/dev/null || [[ -x /usr/bin/prometheus ]] || missing+=(prometheus)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# The control plane's and the test PostgreSQL's certificates, and readiness checks.
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v lua5.4 >/dev/null || missing+=(lua5.4)
# The canary hook tests' load: Flagger's load tester runs it, as its users' hooks do.
command -v hey >/dev/null || missing+=(hey)
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    sudo_ apt-get update -qq
    # The Debian packages start their own services; the tests start private instances instead.
    sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    for svc in redis-server prometheus; do
        command -v systemctl >/dev/null && sudo_ systemctl disable --now "$svc" >/dev/null 2>&1 || true
        sudo_ pkill -x "$svc" >/dev/null 2>&1 || true
    done
    # PostgreSQL's package creates and may start a `main` cluster on 5432: stopped through its own tool, by cluster.
    command -v systemctl >/dev/null && sudo_ systemctl disable --now postgresql >/dev/null 2>&1 || true
    if command -v pg_lsclusters >/dev/null; then
        pg_lsclusters -h 2>/dev/null | while read -r version cluster _; do
            sudo_ pg_ctlcluster "$version" "$cluster" stop >/dev/null 2>&1 || true
        done
    fi
fi

python="${PYTHON:-python3}"
# PyYAML: tests/gitops/run.sh reads the GitOps examples with it.
if ! "$python" -c 'import yaml' 2>/dev/null; then
    log "pip install pyyaml"
    "$python" -m pip install --quiet "pyyaml==${PYYAML_VERSION:-6.0.3}" >&2
fi
# Locust: the canary webhook tests run it headless through Flagger's load tester, as its users' rollout hooks do.
if ! "$python" -c 'import locust' 2>/dev/null; then
    log "pip install locust"
    "$python" -m pip install --quiet "locust==${LOCUST_VERSION:-2.47.0}" >&2
fi
# The Python client (clients/python), its tests and the sample app they run: pinned in requirements-test.txt.
client_deps="perf_client, fastapi, uvicorn, httpx, asyncpg, clickhouse_connect, pytest, mypy"
if ! "$python" -c "import $client_deps" 2>/dev/null; then
    log "pip install clients/python and its test requirements"
    "$python" -m pip install --quiet -r "$root/clients/python/requirements-test.txt" -e "$root/clients/python" >&2
fi
if ! "$python" -c 'import chdb' 2>/dev/null; then
    log "pip install chdb-core"
    "$python" -m pip install --quiet "chdb-core==${CHDB_CORE_VERSION:-26.9.0}" >&2
fi

# The control plane and helm are built from the Go module proxy (tests/support/build-control-plane.sh); kubectl
# drives the cluster as a user would. Both come with the machine: say so plainly when they do not.
command -v go >/dev/null || { log "Go is missing: the control plane is built with it (Go 1.26, see README)"; exit 1; }
command -v kubectl >/dev/null || { log "kubectl is missing: the end-to-end suite uses it"; exit 1; }

log "ready"
