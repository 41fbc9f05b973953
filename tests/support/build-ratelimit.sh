#!/usr/bin/env bash
# Builds Envoy's rate-limit service (src/service_cmd of github.com/envoyproxy/ratelimit) and its config checker
# (src/config_check_cmd), pinned in tests/support/ratelimit/go.mod at the commit Envoy Gateway v1.9.1 pins, from the
# Go module proxy, once per machine and version, into ~/.cache/perf-operator/ratelimit-<version>/ (PERF_CACHE_DIR
# overrides). Prints the directory on stdout; it holds `ratelimit` and `config_check`.
#
# Cold: about 60 s of build and 250 MB of module cache on 2 cores; afterwards it only checks the files.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(awk '$1 == "github.com/envoyproxy/ratelimit" {print $2}' "$here/ratelimit/go.mod")"
[[ -n "$version" ]] || { echo "cannot read the rate-limit service's version from tests/support/ratelimit/go.mod" >&2; exit 1; }
dir="${PERF_CACHE_DIR:-$HOME/.cache/perf-operator}/ratelimit-$version"
if [[ ! -x "$dir/ratelimit" || ! -x "$dir/config_check" ]]; then
    echo "building Envoy's rate-limit service $version (first run on this machine; cached in $dir)" >&2
    mkdir -p "$dir"
    for pair in ratelimit:service_cmd config_check:config_check_cmd; do
        (cd "$here/ratelimit" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$dir/${pair%%:*}.tmp" \
            "github.com/envoyproxy/ratelimit/src/${pair#*:}") || { echo "building ${pair#*:} failed (see above)" >&2; exit 1; }
        mv "$dir/${pair%%:*}.tmp" "$dir/${pair%%:*}"
    done
fi
echo "$dir"
