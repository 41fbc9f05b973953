#!/usr/bin/env bash
# Builds the operator's OCI image without a Docker engine, then checks it: a static musl binary (cargo) with the CA
# bundle and a non-root user in an otherwise empty (scratch) image, assembled by crane (built once per machine from
# the Go module proxy, pinned in tests/support/crane/go.mod) through a throwaway in-memory registry on 127.0.0.1.
# The same layout as image/Dockerfile, for users with Docker.
#
#   image/build.sh [OUT_DIR]   writes OUT_DIR/perf-operator-<version>.oci.tar (OCI image layout, for skopeo,
#                              crane push, containerd) and OUT_DIR/perf-operator-<version>.docker.tar (docker load)
#
# PERF_IMAGE_PROFILE: cargo profile of the binary (default release; CI uses dev to save a second optimised build).
# PERF_IMAGE_REPOSITORY: image name inside the tarballs (default ghcr.io/perf-operator/perf-operator).
# PERF_IMAGE_STATIC_GLIBC=1: skip musl and link statically against glibc (what happens when rustup cannot add musl).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/target/image}"
profile="${PERF_IMAGE_PROFILE:-release}"
repository="${PERF_IMAGE_REPOSITORY:-ghcr.io/perf-operator/perf-operator}"
triple=x86_64-unknown-linux-musl
[[ "${PERF_IMAGE_STATIC_GLIBC:-}" == 1 ]] && triple=none   # force the fallback below (to test it)
user=65532

die() { echo "image: $*" >&2; exit 1; }
log() { echo "image: $*" >&2; }
sudo_() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# Toolchain: the musl target and a C compiler for it (ring and aws-lc build C code). Where rustup cannot add the
# target, the binary is linked statically against glibc instead (+crt-static on the host's own target): it runs in
# the scratch image all the same, and the checks below still prove it.
if [[ "$triple" == none ]] || { ! rustup target list --installed | grep -qx "$triple" && ! rustup target add "$triple"; }; then
    log "no musl target (rustup could not add it, or PERF_IMAGE_STATIC_GLIBC=1): a static glibc binary instead" \
        "(x86_64-unknown-linux-gnu, +crt-static)"
    triple=x86_64-unknown-linux-gnu
    export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
fi
if [[ "$triple" == *musl ]] && ! command -v musl-gcc >/dev/null; then
    log "apt-get install musl-tools"
    sudo_ apt-get update -qq && sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends musl-tools >&2
fi

# crane, once per machine and version.
crane="$("$root/image/crane.sh")" || die "no crane (see above)"

# The static binary.
version="$(cd "$root" && cargo pkgid -p perf-operator | sed 's/.*[#@]//')"
log "cargo build --profile $profile --target $triple (perf-operator $version)"
(cd "$root" && CC_x86_64_unknown_linux_musl=musl-gcc cargo build --locked -p perf-operator --bin perf-operator \
    --target "$triple" --profile "$profile") || die "cargo build failed (see above)"
target_dir="$(cd "$root" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
case "$profile" in dev) dir=debug ;; *) dir="$profile" ;; esac
binary="$target_dir/$triple/$dir/perf-operator"
[[ -x "$binary" ]] || die "no binary at $binary"
if readelf -l "$binary" | grep -q INTERP; then die "$binary is dynamically linked: a scratch image cannot run it"; fi

# The root filesystem: the binary, the CA bundle (Prometheus, registries and databases over TLS), and the user.
work="$(mktemp -d /tmp/perf-image.XXXXXX)"
registry_pid=""
cleanup() { [[ -n "$registry_pid" ]] && kill "$registry_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs"
install -m 0755 "$binary" "$rootfs/perf-operator"
"$root/image/layer.sh" "$rootfs" "$user" "$work/layer.tar" || die "cannot write the layer"
# Each copy of the binary is 150 MB in the dev profile, and CI's disk is small: keep one at a time.
rm -rf "$rootfs"

# Assembled in a throwaway registry: crane edits images by reference.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$crane" registry serve --address "127.0.0.1:$port" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null || { cat "$work/registry.log" >&2; die "crane's registry did not start"; }
ref="127.0.0.1:$port/perf-operator:$version"
revision="$(cd "$root" && git rev-parse HEAD 2>/dev/null || echo unknown)"
"$crane" append --insecure --oci-empty-base -f "$work/layer.tar" -t "$ref" >/dev/null || die "crane append failed"
"$crane" mutate --insecure "$ref" -t "$ref" --set-platform linux/amd64 \
    --entrypoint /perf-operator --cmd run --user "$user:$user" --workdir / \
    -e SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    -l org.opencontainers.image.title=perf-operator \
    -l org.opencontainers.image.version="$version" \
    -l org.opencontainers.image.revision="$revision" \
    -l org.opencontainers.image.source=https://github.com/perf-operator/perf-operator \
    -l org.opencontainers.image.licenses=Apache-2.0 >/dev/null || die "crane mutate failed"
rm -f "$work/layer.tar"

mkdir -p "$out"
oci="$out/perf-operator-$version.oci.tar"
docker_tar="$out/perf-operator-$version.docker.tar"
"$crane" pull --insecure --format oci "$ref" "$work/oci" || die "crane pull (OCI layout) failed"
tar -C "$work/oci" --sort=name -cf "$oci" .
rm -rf "$work/oci"
"$crane" pull --insecure --format tarball "$ref" "$docker_tar" || die "crane pull (tarball) failed"

# The checks CI relies on: what runs, as whom, with which labels, and that it does run.
"$crane" config --insecure "$ref" >"$work/config.json"
python3 - "$work/config.json" "$user" "$version" <<'PY' || die "the image's config is not what it should be (above)"
import json, sys
config = json.load(open(sys.argv[1]))["config"]
user, version = sys.argv[2], sys.argv[3]
problems = []
if config.get("User") != f"{user}:{user}": problems.append(f"User is {config.get('User')!r}, want {user}:{user} (non-root)")
if config.get("Entrypoint") != ["/perf-operator"]: problems.append(f"Entrypoint is {config.get('Entrypoint')!r}")
if config.get("Cmd") != ["run"]: problems.append(f"Cmd is {config.get('Cmd')!r}")
labels = config.get("Labels") or {}
for key in ["org.opencontainers.image.title", "org.opencontainers.image.source", "org.opencontainers.image.revision"]:
    if not labels.get(key): problems.append(f"label {key} missing")
if labels.get("org.opencontainers.image.version") != version: problems.append(f"version label {labels.get('org.opencontainers.image.version')!r}, want {version}")
for p in problems: print("image config:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
mkdir -p "$work/export"
"$crane" export --insecure "$ref" - | tar -C "$work/export" -xf - || die "cannot extract the image's filesystem"
[[ -x "$work/export/perf-operator" && -f "$work/export/etc/ssl/certs/ca-certificates.crt" ]] \
    || die "the image's filesystem lacks /perf-operator or the CA bundle: $(cd "$work/export" && find . | head)"
got="$("$work/export/perf-operator" --version)" || die "the binary extracted from the image does not run"
[[ "$got" == "perf-operator $version" ]] || die "the image's binary says '$got', want 'perf-operator $version'"

# The kubectl plugin: the same static binary as `kubectl-perf` in an archive, and a krew manifest pointing at it.
plugin="$out/kubectl-perf-$version-linux-amd64.tar.gz"
mkdir -p "$work/plugin"
install -m 0755 "$binary" "$work/plugin/kubectl-perf"
[[ -f "$root/LICENSE" ]] && install -m 0644 "$root/LICENSE" "$work/plugin/LICENSE"
# Reproducible, as the image's layer (image/layer.sh): fixed owner, order and time (the last commit's).
epoch="$(cd "$root" && git log -1 --format=%ct 2>/dev/null || echo 0)"
tar -C "$work/plugin" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -czf "$plugin" .
sha="$(sha256sum "$plugin" | cut -d' ' -f1)"
sed -e "s/@VERSION@/$version/g" -e "s/@SHA256@/$sha/g" "$root/image/krew-perf.yaml.in" >"$out/perf.yaml"
! grep -q '@[A-Z0-9]*@' "$out/perf.yaml" || die "placeholders left in the krew manifest"
grep -q "sha256: \"$sha\"" "$out/perf.yaml" || die "the krew manifest does not carry the archive's sha256"
tar -tzf "$plugin" | grep -qx './kubectl-perf' || die "the plugin archive has no kubectl-perf"
log "ok: $got, user $user, entrypoint /perf-operator run; $(du -h "$oci" | cut -f1) $oci; plugin $plugin"
echo "$oci"
