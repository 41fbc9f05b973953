#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for the test suite: etcd, kube-apiserver and
# kube-controller-manager, built from the Go module proxy by build-control-plane.sh (cached per machine).
#
#   control-plane.sh start DIR   starts everything with its state in DIR, waits for /readyz, and prints
#                                `export NAME=value` lines: KUBECONFIG (admin), PERF_AUDIT_LOG, PERF_CP_DIR
#                                (the audit log is never rotated: tests read it from an offset)
#   control-plane.sh stop DIR    stops what `start` started, by PID
#
# No kubelet and no scheduler: pods stay Pending. Tests that need available pods act as the kubelet and set pod
# status themselves. The audit log records every request (metadata only), so tests count writes by user.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

die() { echo "control-plane: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

stop() {
    local dir="$1" pid
    for name in kube-controller-manager kube-apiserver etcd; do
        [[ -f "$dir/$name.pid" ]] || continue
        pid="$(cat "$dir/$name.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/$name.pid"
    done
}

# A CA, a serving certificate for 127.0.0.1/localhost, and the service-account signing key.
certificates() {
    local pki="$1"
    mkdir -p "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=perf-operator-test-ca" \
        -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
        -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' \
        >"$pki/apiserver.ext"
    openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
        -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

kubeconfig() {
    local file="$1" server="$2" ca="$3" token="$4" user="$5"
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: perf-test
  cluster: {server: "$server", certificate-authority: "$ca"}
users:
- name: $user
  user: {token: "$token"}
contexts:
- name: perf-test
  context: {cluster: perf-test, user: $user}
current-context: perf-test
EOF
}

wait_ready() {
    local what="$1" url="$2" token="$3" ca="$4" log="$5" pid="$6"
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || { tail -30 "$log" >&2; die "$what exited while starting (log: $log)"; }
        # The controller manager serves with a self-signed certificate of its own: no CA to check it by.
        curl -sf ${ca:+--cacert "$ca"} ${ca:--k} -H "Authorization: Bearer $token" "$url" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    tail -30 "$log" >&2
    die "$what not ready after 120 s (log: $log)"
}

start() {
    local dir="$1" bin
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    bin="$("$here/build-control-plane.sh")" || die "building the control plane failed"
    certificates "$dir/pki"
    local token etcd_port peer_port api_port kcm_port
    token="$(openssl rand -hex 24)"
    echo "$token,admin,admin-uid,\"system:masters\"" >"$dir/tokens.csv"
    etcd_port="$(free_port)"; peer_port="$(free_port)"; api_port="$(free_port)"; kcm_port="$(free_port)"
    # Every request of the operator and the tests, none of the control plane's own chatter (the controller
    # manager alone would fill the log).
    cat >"$dir/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    users: ["system:kube-controller-manager", "system:apiserver", "system:kube-scheduler"]
  - level: None
    userGroups: ["system:serviceaccounts:kube-system", "system:nodes"]
  - level: Metadata
EOF

    "$bin/etcd" --name default --data-dir "$dir/etcd" --unsafe-no-fsync \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "default=http://127.0.0.1:$peer_port" --listen-metrics-urls "" \
        >"$dir/etcd.log" 2>&1 &
    echo $! >"$dir/etcd.pid"

    "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
        --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
        --client-ca-file "$dir/pki/ca.crt" --token-auth-file "$dir/tokens.csv" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$dir/pki/sa.pub" --service-account-signing-key-file "$dir/pki/sa.key" \
        --service-cluster-ip-range 10.0.0.0/24 --authorization-mode RBAC --allow-privileged=true \
        --audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log" --audit-log-format json \
        --audit-log-mode blocking --audit-log-maxsize 100000 \
        >"$dir/kube-apiserver.log" 2>&1 &
    echo $! >"$dir/kube-apiserver.pid"
    wait_ready kube-apiserver "https://127.0.0.1:$api_port/readyz" "$token" "$dir/pki/ca.crt" \
        "$dir/kube-apiserver.log" "$(cat "$dir/kube-apiserver.pid")"

    kubeconfig "$dir/admin.kubeconfig" "https://127.0.0.1:$api_port" "$dir/pki/ca.crt" "$token" admin
    "$bin/kube-controller-manager" --kubeconfig "$dir/admin.kubeconfig" --leader-elect=false \
        --bind-address 127.0.0.1 --secure-port "$kcm_port" \
        --authentication-kubeconfig "$dir/admin.kubeconfig" --authorization-kubeconfig "$dir/admin.kubeconfig" \
        --service-account-private-key-file "$dir/pki/sa.key" --root-ca-file "$dir/pki/ca.crt" \
        --use-service-account-credentials=false --concurrent-gc-syncs 5 \
        >"$dir/kube-controller-manager.log" 2>&1 &
    echo $! >"$dir/kube-controller-manager.pid"
    wait_ready kube-controller-manager "https://127.0.0.1:$kcm_port/healthz" "$token" "" \
        "$dir/kube-controller-manager.log" "$(cat "$dir/kube-controller-manager.pid")"

    # The default ServiceAccount appears once the controller manager runs: pods need it to be admitted.
    for _ in $(seq 1 300); do
        KUBECONFIG="$dir/admin.kubeconfig" kubectl get serviceaccount default -n default >/dev/null 2>&1 && break
        sleep 0.2
    done
    KUBECONFIG="$dir/admin.kubeconfig" kubectl get serviceaccount default -n default >/dev/null \
        || die "the controller manager did not create the default ServiceAccount (log: $dir/kube-controller-manager.log)"

    echo "export KUBECONFIG=$dir/admin.kubeconfig"
    echo "export PERF_AUDIT_LOG=$dir/audit.log"
    echo "export PERF_CP_DIR=$dir"
    echo "export PERF_CP_BIN=$bin"
}

case "${1:-}" in
    start) [[ -n "${2:-}" ]] || die "usage: $0 start DIR"; start "$2" ;;
    stop) [[ -n "${2:-}" ]] || die "usage: $0 stop DIR"; stop "$2" ;;
    *) die "usage: $0 start|stop DIR" ;;
esac
