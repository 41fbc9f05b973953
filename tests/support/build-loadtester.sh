#!/usr/bin/env bash
# Builds Flagger's load tester (cmd/loadtester of github.com/fluxcd/flagger, pinned in tests/support/loadtester/go.mod)
# from the Go module proxy, once per machine and version, into ~/.cache/perf-operator/loadtester-<version>/
# (PERF_CACHE_DIR overrides). Prints the binary's path on stdout. The canary hook tests drive it as Flagger does.
#
# Cold: about 15 s of build and 150 MB of module cache on 2 cores; afterwards it only checks the file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(awk '$1 == "github.com/fluxcd/flagger" {print $2}' "$here/loadtester/go.mod")"
[[ -n "$version" ]] || { echo "cannot read Flagger's version from tests/support/loadtester/go.mod" >&2; exit 1; }
bin="${PERF_CACHE_DIR:-$HOME/.cache/perf-operator}/loadtester-$version/loadtester"
if [[ ! -x "$bin" ]]; then
    echo "building Flagger's load tester $version (first run on this machine; cached in $(dirname "$bin"))" >&2
    mkdir -p "$(dirname "$bin")"
    (cd "$here/loadtester" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$bin.tmp" \
        github.com/fluxcd/flagger/cmd/loadtester) || { echo "building the load tester failed (see above)" >&2; exit 1; }
    mv "$bin.tmp" "$bin"
fi
echo "$bin"
