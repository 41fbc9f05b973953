#!/usr/bin/env bash
# Builds distribution's OCI registry (github.com/distribution/distribution/v3, pinned in tests/support/registry/go.mod,
# with only the filesystem and in-memory drivers and htpasswd auth linked in by tests/support/registry/main.go) from
# the Go module proxy, once per machine and version, into ~/.cache/perf-operator/registry-<version>/ (PERF_CACHE_DIR
# overrides). Prints the binary's path on stdout. It runs as `registry serve CONFIG.yml`, and
# `registry htpasswd USER PASSWORD` prints a bcrypt line for its htpasswd file.
#
# Cold: about 90 s of build (86 s of CPU, measured while a Rust build shared the 2 cores) and 275 MB of module cache
# (73 MB downloaded) plus 330 MB of build cache; afterwards it only checks the file. The cache is keyed by the version
# alone: after changing registry/main.go, delete the cached binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(awk '$1 == "github.com/distribution/distribution/v3" {print $2}' "$here/registry/go.mod")"
[[ -n "$version" ]] || { echo "cannot read distribution's version from tests/support/registry/go.mod" >&2; exit 1; }
bin="${PERF_CACHE_DIR:-$HOME/.cache/perf-operator}/registry-$version/registry"
if [[ ! -x "$bin" ]]; then
    echo "building distribution's registry $version (first run on this machine; cached in $(dirname "$bin"))" >&2
    mkdir -p "$(dirname "$bin")"
    (cd "$here/registry" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$bin.tmp" .) \
        || { echo "building the registry failed (see above)" >&2; exit 1; }
    mv "$bin.tmp" "$bin"
fi
echo "$bin"
