#!/usr/bin/env bash
# Completes a root filesystem the way both images need it and writes it as one reproducible layer:
#   image/layer.sh ROOTFS UID LAYER_TAR
# adds the CA bundle (Prometheus, registries and databases over TLS), /etc/passwd and /etc/group with root and a
# non-root user UID, and a sticky /tmp; then tars ROOTFS with fixed owner, order and time (the last commit's).
# Used by image/build.sh (the operator) and examples/sample-app/build.sh.
set -euo pipefail
rootfs="$1" user="$2" layer="$3"
root="$(cd "$(dirname "$0")/.." && pwd)"
bundle=/etc/ssl/certs/ca-certificates.crt
[[ -f "$bundle" ]] || { echo "layer: no CA bundle at $bundle (package ca-certificates)" >&2; exit 1; }
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp"
install -m 0644 "$bundle" "$rootfs$bundle"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/nonexistent:/sbin/nologin\n' "$user" "$user" >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$user" >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
epoch="$(cd "$root" && git log -1 --format=%ct 2>/dev/null || echo 0)"
tar -C "$rootfs" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -cf "$layer" .
