#!/usr/bin/env bash
# Starts / stops the test PostgreSQL: a throwaway cluster from Debian's `postgresql` binaries (initdb + postgres from
# /usr/lib/postgresql/<version>/bin), in its own directory, on a free 127.0.0.1 port, with TLS from a CA made here.
# No service manager, no root-owned service: as root it runs as the `postgres` user (or `nobody`), since initdb
# refuses root.
#
#   eval "$(POSTGRES_STATE_DIR=/tmp/pg tests/support/start-postgres.sh start)"
#       exports POSTGRES_URL=postgres://perf_app:<password>@127.0.0.1:<port>/postgres (an ordinary role, no
#       privilege: what the operator needs) and POSTGRES_CA_FILE (the CA that signed the server's certificate)
#   POSTGRES_STATE_DIR=/tmp/pg tests/support/start-postgres.sh stop     # by the PID in postmaster.pid
#
# The server runs with max_connections=37 and superuser_reserved_connections=3, so a test can tell a live reading
# from a default. Env: POSTGRES_STATE_DIR (required: data, log, certificates), POSTGRES_PORT (default: a free
# port), PG_BIN (default: the newest /usr/lib/postgresql/*/bin).
set -euo pipefail

state="${POSTGRES_STATE_DIR:?POSTGRES_STATE_DIR must name a directory for the cluster}"
log() { echo "start-postgres: $*" >&2; }

bin_dir() {
    if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$found" && -x "$found/initdb" ]] || { log "no /usr/lib/postgresql/*/bin/initdb: apt-get install postgresql (tests/support/install.sh does)"; return 1; }
    echo "$found"
}

# Runs a command as the cluster's owner: ourselves, or an unprivileged user when we are root.
owner() {
    if [[ $(id -u) -ne 0 ]]; then id -un; elif id postgres >/dev/null 2>&1; then echo postgres; else echo nobody; fi
}
as_owner() {
    if [[ $(id -u) -ne 0 ]]; then "$@"; else setpriv --reuid="$(owner)" --regid="$(id -g "$(owner)")" --init-groups -- "$@"; fi
}

stop() {
    local pidfile="$state/data/postmaster.pid"
    if [[ -f "$pidfile" ]]; then
        local pid
        pid="$(head -n 1 "$pidfile")"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill -INT "$pid"   # fast shutdown: sessions are ended, nothing to keep
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            log "stopped pid $pid"
        fi
    fi
    rm -rf "$state/data"
}

certificates() {
    local dir="$1"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=perf-operator test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/ext"
    openssl x509 -req -days 2 -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -extfile "$dir/ext" -out "$dir/server.crt" 2>/dev/null
    chmod 600 "$dir/server.key"
}

start() {
    local bin port user password app_password
    bin="$(bin_dir)"
    stop
    mkdir -p "$state/tls"
    port="${POSTGRES_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
    password="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    app_password="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    certificates "$state/tls"
    printf '%s\n' "$password" >"$state/superuser-password"
    user="$(owner)"
    chown -R "$user" "$state"
    chmod 700 "$state"
    as_owner "$bin/initdb" -D "$state/data" -U postgres --pwfile="$state/superuser-password" -E UTF8 \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$state/initdb.log" 2>&1 \
        || { log "initdb failed:"; cat "$state/initdb.log" >&2; return 1; }
    as_owner "$bin/postgres" -D "$state/data" -c listen_addresses=127.0.0.1 -c port="$port" \
        -c unix_socket_directories="$state" -c max_connections=37 -c superuser_reserved_connections=3 \
        -c ssl=on -c ssl_cert_file="$state/tls/server.crt" -c ssl_key_file="$state/tls/server.key" \
        -c fsync=off -c shared_buffers=16MB >"$state/log" 2>&1 </dev/null &
    for _ in $(seq 1 300); do
        "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
        if [[ ! -f "$state/data/postmaster.pid" ]] && ! jobs -r | grep -q .; then
            log "postgres exited:"; cat "$state/log" >&2; return 1
        fi
        sleep 0.1
    done
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" || { log "postgres did not answer within 30 s:"; cat "$state/log" >&2; stop; return 1; }
    # An ordinary role, as an app's or the operator's would be: no superuser, no pg_monitor.
    PGPASSWORD="$password" "$bin/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE perf_app LOGIN PASSWORD '$app_password'" >&2
    log "ready at 127.0.0.1:$port, pid $(head -n 1 "$state/data/postmaster.pid") (log: $state/log)"
    echo "export POSTGRES_URL=postgres://perf_app:$app_password@127.0.0.1:$port/postgres"
    echo "export POSTGRES_CA_FILE=$state/tls/ca.crt"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
