#!/usr/bin/env bash
# Builds the pinned Kubernetes control plane (kube-apiserver, kube-controller-manager, etcd) and helm from the Go
# module proxy, once per machine and version, into ~/.cache/perf-operator/ (PERF_CACHE_DIR overrides). Prints the
# directory holding the binaries on stdout; progress and build times go to stderr.
#
# Cold on 2 cores: about 20-25 minutes and 4 GB of module and build cache; afterwards it only checks the files.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# The versions are the ones the committed go.mod files pin (one awk, no pipe: an early exit would SIGPIPE it).
required() { awk -v m="$1" '!/=>/ && !/^\/\// && !found {for (i = 1; i < NF; i++) if ($i == m) {print $(i + 1); found = 1}}' "$2"; }
k8s_version="$(required k8s.io/kubernetes "$here/control-plane/go.mod")"
helm_version="$(required helm.sh/helm/v3 "$here/helm/go.mod")"
[[ -n "$k8s_version" && -n "$helm_version" ]] || { echo "cannot read the pinned versions from the go.mod files" >&2; exit 1; }
cache="${PERF_CACHE_DIR:-$HOME/.cache/perf-operator}"
bin="$cache/kubernetes-$k8s_version-helm-$helm_version/bin"
mkdir -p "$bin"

# Upstream's release flags: static, reproducible paths, and a /version that reports the real release.
ldflags() {
    local v="$1" major minor
    major="$(echo "${v#v}" | cut -d. -f1)"; minor="$(echo "${v#v}" | cut -d. -f2)"
    echo "-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$v"
}

build() {
    local module_dir="$1" package="$2" flags="$3" name started
    name="$(basename "$package")"
    [[ -x "$bin/$name" ]] && return 0
    started=$(date +%s)
    echo "building $name (first run on this machine; cached in $bin afterwards)" >&2
    (cd "$module_dir" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$flags" -o "$bin/$name.tmp" "$package") \
        || { echo "building $name failed (see above)" >&2; exit 1; }
    mv "$bin/$name.tmp" "$bin/$name"
    echo "built $name in $(( $(date +%s) - started )) s" >&2
}

build "$here/control-plane" ./etcd ""
build "$here/control-plane" ./kube-apiserver "$(ldflags "$k8s_version")"
build "$here/control-plane" ./kube-controller-manager "$(ldflags "$k8s_version")"
build "$here/helm" helm.sh/helm/v3/cmd/helm "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
echo "$bin"
