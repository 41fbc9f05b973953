#!/usr/bin/env bash
# Prints the path of crane (go-containerregistry), built once per machine and version from the Go module proxy into
# ${PERF_CACHE_DIR:-~/.cache/perf-operator}/crane-<version>/ (pinned in tests/support/crane/go.mod). Used by
# image/build.sh and examples/sample-app/build.sh, which assemble images without a Docker engine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "crane: $*" >&2; exit 1; }
version="$(awk '$1 == "github.com/google/go-containerregistry" {print $2}' "$root/tests/support/crane/go.mod")"
[[ -n "$version" ]] || die "cannot read crane's version from tests/support/crane/go.mod"
crane="${PERF_CACHE_DIR:-$HOME/.cache/perf-operator}/crane-$version/crane"
if [[ ! -x "$crane" ]]; then
    echo "crane: building $version from the Go module proxy (cached in $(dirname "$crane"))" >&2
    mkdir -p "$(dirname "$crane")"
    (cd "$root/tests/support/crane" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w" -o "$crane.tmp" \
        github.com/google/go-containerregistry/cmd/crane) || die "building crane failed (see above)"
    mv "$crane.tmp" "$crane"
fi
echo "$crane"
