#!/usr/bin/env bash
# Copies Envoy Gateway's BackendTrafficPolicy CRD (charts/gateway-helm/charts/crds/crds/generated/ in the module
# github.com/envoyproxy/gateway, pinned in tests/support/envoy-gateway/go.mod and verified by its go.sum) from the Go
# module proxy, once per machine and version, into ~/.cache/perf-operator/envoy-gateway-<version>/ (PERF_CACHE_DIR
# overrides). Prints the CRD file's path on stdout. The enforcement tests apply it to the suite's API server, so the
# operator's policies meet Envoy Gateway's own schema and CEL rules.
#
# Cold: a 7 MB module download, no build; afterwards it only checks the file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(awk '$1 == "require" && $2 == "github.com/envoyproxy/gateway" {print $3}' "$here/envoy-gateway/go.mod")"
[[ -n "$version" ]] || { echo "cannot read Envoy Gateway's version from tests/support/envoy-gateway/go.mod" >&2; exit 1; }
file="${PERF_CACHE_DIR:-$HOME/.cache/perf-operator}/envoy-gateway-$version/backendtrafficpolicies.yaml"
if [[ ! -s "$file" ]]; then
    echo "fetching Envoy Gateway $version's CRDs (first run on this machine; cached in $(dirname "$file"))" >&2
    mkdir -p "$(dirname "$file")"
    dir="$(cd "$here/envoy-gateway" && GOFLAGS=-mod=readonly go mod download -json github.com/envoyproxy/gateway \
        | awk -F'"' '$2 == "Dir" {print $4}')"
    src="$dir/charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_backendtrafficpolicies.yaml"
    [[ -s "$src" ]] || { echo "no BackendTrafficPolicy CRD at $src" >&2; exit 1; }
    cp "$src" "$file.tmp" && mv "$file.tmp" "$file"
fi
echo "$file"
