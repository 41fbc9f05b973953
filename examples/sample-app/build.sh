#!/usr/bin/env bash
# Builds the sample app's OCI image without a Docker engine, as image/build.sh builds the operator's: a root
# filesystem assembled here, one layer, crane (image/crane.sh) to make the image, then checks that it runs.
#
#   examples/sample-app/build.sh [OUT_DIR]   writes OUT_DIR/sample-app-<version>.oci.tar (default target/sample-app-image)
#
# The filesystem: Debian's Python 3.11 (the interpreter, its standard library and the shared libraries they and the
# packages link, found with ldd), the app and its packages (cp311 manylinux wheels from PyPI, pinned by
# clients/python/requirements-test.txt, and perf-operator-client built from this repository), the CA bundle and a
# non-root user. examples/sample-app/Dockerfile is the same image for users with Docker (on python:3.11-slim).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
app="$root/examples/sample-app"
out="${1:-$root/target/sample-app-image}"
repository="${SAMPLE_IMAGE_REPOSITORY:-ghcr.io/perf-operator/sample-app}"
python="/usr/bin/python3.11"
user=65532

die() { echo "sample-image: $*" >&2; exit 1; }
log() { echo "sample-image: $*" >&2; }
sudo_() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

if [[ ! -x "$python" ]]; then
    log "apt-get install python3.11 (Debian's interpreter goes into the image)"
    sudo_ apt-get update -qq && sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3.11 >&2
fi
crane="$("$root/image/crane.sh")" || die "no crane (see above)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/clients/python/pyproject.toml" | head -1)"

work="$(mktemp -d /tmp/sample-image.XXXXXX)"
registry_pid=""
cleanup() { [[ -n "$registry_pid" ]] && kill "$registry_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs/app" "$rootfs/etc/perf"

# Packages for the image's interpreter (CPython 3.11 on x86_64 glibc), whatever Python runs this script.
python3 -m pip wheel --quiet --no-deps -w "$work/wheels" "$root/clients/python" >&2 || die "building the client's wheel failed"
python3 -m pip install --quiet --no-compile --no-warn-conflicts --target "$rootfs/app/packages" --only-binary=:all: \
    --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
    -c "$root/clients/python/requirements-test.txt" -r "$app/requirements.txt" "$work"/wheels/*.whl >&2 \
    || die "installing the app's packages failed (see above)"
install -m 0644 "$app/app.py" "$rootfs/app/app.py"

# The interpreter and its standard library, at the paths it looks for them.
install -D -m 0755 "$python" "$rootfs/usr/bin/python3.11"
mkdir -p "$rootfs/usr/lib"
cp -a /usr/lib/python3.11 "$rootfs/usr/lib/"
find "$rootfs" -name __pycache__ -prune -exec rm -rf {} +

# Every shared library the interpreter, the standard library's modules and the packages' modules link, and the loader.
mapfile -t elves < <(find "$rootfs" -type f \( -name '*.so' -o -name '*.so.*' -o -path '*/usr/bin/python3.11' \))
for elf in "${elves[@]}"; do
    ldd "$elf" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
done | sort -u | while read -r lib; do
    [[ -e "$rootfs$lib" ]] || install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
done
[[ -e "$rootfs/lib64/ld-linux-x86-64.so.2" ]] || die "the dynamic loader was not found by ldd"

"$root/image/layer.sh" "$rootfs" "$user" "$work/layer.tar" || die "cannot write the layer"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$crane" registry serve --address "127.0.0.1:$port" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
ref="127.0.0.1:$port/sample-app:$version"
"$crane" append --insecure --oci-empty-base -f "$work/layer.tar" -t "$ref" >/dev/null || die "crane append failed"
rm -f "$work/layer.tar"
"$crane" mutate --insecure "$ref" -t "$ref" --set-platform linux/amd64 \
    --entrypoint /usr/bin/python3.11,-m,uvicorn,app:app,--host,0.0.0.0,--port,8080,--no-access-log \
    --user "$user:$user" --workdir /app \
    -e PYTHONPATH=/app/packages:/app -e PYTHONDONTWRITEBYTECODE=1 -e PYTHONUNBUFFERED=1 -e PERF_CONFIG_DIR=/etc/perf \
    -e SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    -l org.opencontainers.image.title=perf-operator-sample-app -l org.opencontainers.image.version="$version" \
    -l org.opencontainers.image.source=https://github.com/perf-operator/perf-operator >/dev/null || die "crane mutate failed"
mkdir -p "$out"
oci="$out/sample-app-$version.oci.tar"
"$crane" pull --insecure --format oci "$ref" "$work/oci" || die "crane pull failed"
tar -C "$work/oci" --sort=name -cf "$oci" .
rm -rf "$work/oci" "$rootfs"

"$crane" config --insecure "$ref" | python3 -c '
import json, sys
c = json.load(sys.stdin)["config"]
assert c.get("User") == "65532:65532", c.get("User")
assert c.get("Entrypoint", [None])[0] == "/usr/bin/python3.11" and "app:app" in c["Entrypoint"], c.get("Entrypoint")
assert "PYTHONPATH=/app/packages:/app" in c.get("Env", []), c.get("Env")
' || die "the image's config is not what it should be (above)"

# The check: the image's own filesystem runs the app (as root in a chroot, or in a user namespace), which serves
# /healthz and counts a request in /metrics.
mkdir -p "$work/export"
"$crane" export --insecure "$ref" - | tar -C "$work/export" -xf - || die "cannot extract the image's filesystem"
printf '{"version": 1, "slo": {"p99LatencyMs": 150, "errorRatePercent": 0.1}}\n' >"$work/export/etc/perf/perf.json"
app_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
chroot="$(command -v chroot || echo /usr/sbin/chroot)"
run=("$chroot" "$work/export")
if [[ $(id -u) -ne 0 ]]; then
    if sudo -n true 2>/dev/null; then run=(sudo -n "$chroot" "$work/export")
    else run=(unshare --map-root-user "$chroot" "$work/export"); fi
fi
# What the image's config sets (PYTHONPATH, PERF_CONFIG_DIR), set from inside: sudo would drop the variables.
serve="import os, sys; sys.path[:0] = ['/app/packages', '/app']; os.environ['PERF_CONFIG_DIR'] = '/etc/perf'; \
os.chdir('/app'); import uvicorn; uvicorn.run('app:app', host='127.0.0.1', port=$app_port)"
"${run[@]}" /usr/bin/python3.11 -c "$serve" >"$work/app.log" 2>&1 &
app_pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$app_port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
served="$(curl -fsS "http://127.0.0.1:$app_port/api/v1/metrics/m" 2>/dev/null || true)"
exposed="$(curl -fsS "http://127.0.0.1:$app_port/metrics/" 2>/dev/null || true)"
kill "$app_pid" 2>/dev/null || true
wait "$app_pid" 2>/dev/null || true
counted="$(grep '^http_requests_total{' <<<"$exposed" | grep 'code="200"' | grep 'route="other"' || true)"
[[ "$served" == *'"metric":"m"'* && "$counted" == *' 1.0' ]] \
    || { cat "$work/app.log" >&2; die "the image's filesystem does not serve the app (above: its log): '$served' '$counted'"; }
log "ok: $(du -h "$oci" | cut -f1) $oci"
echo "$oci"
