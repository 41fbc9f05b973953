#!/usr/bin/env bash
# Installs what the test suite needs, skipping what is already there: Debian's redis-server and prometheus, and
# PyPI's chdb-core (the real ClickHouse engine behind tests/support/chdb_http.py). The WASM policies need no
# install: their built components are committed (policies/build.sh adds its own target when rebuilding them).
set -euo pipefail

log() { echo "install: $*" >&2; }
sudo_() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v prometheus >/dev/null || [[ -x /usr/bin/prometheus ]] || missing+=(prometheus)
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    sudo_ apt-get update -qq
    # The Debian packages start their own services; the tests start private instances instead.
    sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    for svc in redis-server prometheus; do
        command -v systemctl >/dev/null && sudo_ systemctl disable --now "$svc" >/dev/null 2>&1 || true
        sudo_ pkill -x "$svc" >/dev/null 2>&1 || true
    done
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import chdb' 2>/dev/null; then
    log "pip install chdb-core"
    "$python" -m pip install --quiet "chdb-core==${CHDB_CORE_VERSION:-26.9.0}" >&2
fi

log "ready"
