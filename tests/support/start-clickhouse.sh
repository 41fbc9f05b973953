#!/usr/bin/env bash
# Starts / stops the test ClickHouse endpoint: the real engine from PyPI `chdb-core` behind tests/support/chdb_http.py.
#
#   eval "$(tests/support/start-clickhouse.sh start)"   # exports CLICKHOUSE_URL=http://127.0.0.1:<port> and
#                                                      # CLICKHOUSE_QUERY_LOG (every query the adapter received)
#   tests/support/start-clickhouse.sh stop
#
# Env: CLICKHOUSE_PORT (default: a free port), CHDB_STATE_DIR (pid, log and data; default /tmp/perf-operator-chdb),
#      PYTHON (default python3), CHDB_CORE_VERSION (default 26.9.0).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${CHDB_STATE_DIR:-/tmp/perf-operator-chdb}"
python="${PYTHON:-python3}"
version="${CHDB_CORE_VERSION:-26.9.0}"

log() { echo "start-clickhouse: $*" >&2; }

stop() {
    if [[ -f "$state/pid" ]]; then
        local pid
        pid="$(cat "$state/pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            log "stopped pid $pid"
        fi
        rm -f "$state/pid"
    fi
    rm -rf "$state/data"
}

start() {
    if ! "$python" -c 'import chdb' 2>/dev/null; then
        log "installing chdb-core==$version"
        "$python" -m pip install --quiet "chdb-core==$version" >&2
    fi
    stop
    mkdir -p "$state/data"
    local port="${CLICKHOUSE_PORT:-}"
    if [[ -z "$port" ]]; then
        port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    fi
    : >"$state/queries.log"
    nohup "$python" "$here/chdb_http.py" --host 127.0.0.1 --port "$port" --data "$state/data" \
        --query-log "$state/queries.log" \
        >"$state/log" 2>&1 </dev/null &
    echo $! >"$state/pid"
    local url="http://127.0.0.1:$port"
    for _ in $(seq 1 300); do
        if "$python" -c "import sys,urllib.request as u; sys.exit(u.urlopen('$url/?query=SELECT%201').read()!=b'1\n')" \
            2>/dev/null; then
            log "ready at $url (log: $state/log)"
            echo "export CLICKHOUSE_URL=$url"
            echo "export CLICKHOUSE_QUERY_LOG=$state/queries.log"
            return 0
        fi
        if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
            log "adapter exited:"; cat "$state/log" >&2; rm -f "$state/pid"; return 1
        fi
        sleep 0.1
    done
    log "adapter did not answer within 30 s:"; cat "$state/log" >&2
    stop
    return 1
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
