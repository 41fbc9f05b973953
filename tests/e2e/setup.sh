#!/usr/bin/env bash
# Prepares the cluster of KUBECONFIG for the end-to-end suite, as a user would: the CRDs with kubectl, the Gateway
# API CRDs (standard channel, pinned), the chart with helm (its ServiceAccount and RBAC are the operator's
# identity in every test), and a kubeconfig for that ServiceAccount from the TokenRequest API.
#
#   setup.sh STATE_DIR HELM_BIN    prints `export NAME=value` lines for the suite (PERF_OPERATOR_KUBECONFIG, ...)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
state="$1"
helm="$2"
gateway_api_version="v1.4.1"
# The Prometheus Operator's CRDs (PrometheusRule for the SLO alerts), fetched here and installed by the test that
# needs them: the other tests run on a cluster without them, as most first installs are.
prometheus_operator_version="v0.82.0"
release=perf-operator

die() { echo "e2e setup: $*" >&2; exit 1; }
[[ -n "${KUBECONFIG:-}" ]] || die "KUBECONFIG is not set"
mkdir -p "$state"

kubectl apply --server-side --force-conflicts -f "$root/crds/" >&2 || die "kubectl apply -f crds/ was refused"
kubectl wait --for=condition=Established --timeout=60s crd/performanceprofiles.perf.operator.dev >&2 \
    || die "the PerformanceProfile CRD was not established"

gateway_dir="$(go mod download -json "sigs.k8s.io/gateway-api@$gateway_api_version" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')" \
    || die "could not fetch sigs.k8s.io/gateway-api@$gateway_api_version from the Go module proxy"
kubectl apply --server-side --force-conflicts -f "$gateway_dir/config/crd/standard/" >&2 \
    || die "the Gateway API CRDs were refused"
kubectl wait --for=condition=Established --timeout=60s crd/httproutes.gateway.networking.k8s.io >&2

prometheus_operator_dir="$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$prometheus_operator_version" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')" \
    || die "could not fetch github.com/prometheus-operator/prometheus-operator@$prometheus_operator_version from the Go module proxy"
[[ -f "$prometheus_operator_dir/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" ]] \
    || die "no PrometheusRule CRD in $prometheus_operator_dir"

# The chart, installed the way the README says (upgraded when a reused control plane has it: its RBAC is the
# checkout's). Without a kubelet its pods stay Pending; the tests run the operator as local processes with the
# ServiceAccount's identity instead.
if ! "$helm" status "$release" -n "$release" >/dev/null 2>&1; then
    "$helm" install "$release" "$root/charts/perf-operator" -n "$release" --create-namespace >&2 \
        || die "helm install failed"
else
    "$helm" upgrade "$release" "$root/charts/perf-operator" -n "$release" >&2 || die "helm upgrade failed"
fi

token="$(kubectl create token "$release" -n "$release" --duration 6h)" \
    || die "no token for the chart's ServiceAccount (TokenRequest API)"
kubectl config view --raw --minify --flatten >"$state/operator.kubeconfig"
kubectl --kubeconfig "$state/operator.kubeconfig" config set-credentials "$release" --token "$token" >/dev/null
kubectl --kubeconfig "$state/operator.kubeconfig" config set-context --current --user "$release" >/dev/null
KUBECONFIG="$state/operator.kubeconfig" kubectl auth whoami -o jsonpath='{.status.userInfo.username}' \
    | grep -qx "system:serviceaccount:$release:$release" || die "the operator kubeconfig does not authenticate as the ServiceAccount"

echo "export PERF_OPERATOR_KUBECONFIG=$state/operator.kubeconfig"
echo "export PERF_HELM_BIN=$helm"
echo "export PERF_GATEWAY_API_DIR=$gateway_dir"
echo "export PERF_PROMETHEUS_OPERATOR_CRDS=$prometheus_operator_dir/example/prometheus-operator-crd"
