#!/usr/bin/env bash
# Builds the WASM policy components from source:
#   policies/builtin/adaptive-ttl.wasm, policies/builtin/adaptive-rate-limit.wasm  (embedded in the operator)
#   policies/host/tests/fixtures/*.wasm                                             (host test fixtures, see the
#                                                                                    README.md beside them)
# The outputs are committed so that a fresh clone builds the operator with plain `cargo build`.
# `policies/build.sh --check` rebuilds and fails if the committed bytes differ from what the source produces.
#
# Guests are built for wasm32-unknown-unknown (not wasm32-wasip2: Rust's std there makes every component import
# wasi:cli/* and wasi:io/*, and the host grants no capability) and wrapped into components by `componentize`
# (wit-component, the library behind `wasm-tools component new`). Deterministic: locked deps, one codegen unit,
# LTO, stripped, paths remapped.
set -euo pipefail

# compile-heavy.wasm: HEAVY_COUNT functions of HEAVY_LOCALS i64 locals and a loop of HEAVY_OPS add operations each,
# sized to sit just inside the host's load bounds (locals and bytes per function, and the compile weight of the whole
# component, see host/src/preflight.rs) so that it must still load: the most expensive compile the bounds allow.
# The host tunes its bounds and these numbers together; `HEAVY_LOCALS=... HEAVY_OPS=... policies/build.sh` tries others.
heavy_locals="${HEAVY_LOCALS:-2000}"
heavy_ops="${HEAVY_OPS:-10500}"
heavy_count="${HEAVY_COUNT:-2}"
# compile-bomb.wasm: far over any sane bound; 49999 i64 locals plus the parameter is the most a function may have
# (wasmparser's limit: more would be refused by validation before the compiler ever sees it).
bomb_locals=49999
bomb_ops=20000
# compile-wide.wasm: 32 functions each inside the per-function bounds (2000 locals, ~120 KiB) and the total code
# bound (4 MiB), but over the compile weight: what took 10.6 s to compile before the weight was bounded.
wide_ops=12000
wide_count=32

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Cargo derives crate hashes, and with them symbol names and their order after LTO, from where path dependencies
# live: the same source built in two checkouts gives different bytes. So the sources are built from one fixed path.
stage=/tmp/perf-operator-policies-build
rm -rf "$stage/src"
mkdir -p "$stage/src/policies"
for part in guests algorithms wit; do
  (cd "$repo/policies" && tar --exclude=target -cf - "$part") | (cd "$stage/src/policies" && tar -xmf -)
done
guests="$stage/src/policies/guests"
target_dir="$stage/target"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"

rustup target add wasm32-unknown-unknown >/dev/null

export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--remap-path-prefix=$stage/src=/perf-operator --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$rustup_home=/rustup"
cargo build --manifest-path "$guests/Cargo.toml" --release --locked --target wasm32-unknown-unknown \
  --target-dir "$target_dir" -p adaptive-ttl -p adaptive-rate-limit -p hostile
cargo build --manifest-path "$guests/Cargo.toml" --release --locked --target-dir "$target_dir" -p componentize

core="$target_dir/wasm32-unknown-unknown/release"
componentize="$target_dir/release/componentize"
mkdir -p "$repo/policies/builtin" "$repo/policies/host/tests/fixtures"
"$componentize" "$core/adaptive_ttl.wasm" "$repo/policies/builtin/adaptive-ttl.wasm"
"$componentize" "$core/adaptive_rate_limit.wasm" "$repo/policies/builtin/adaptive-rate-limit.wasm"

# Host test fixtures: the hostile guest as it is, then altered (see policies/host/tests/fixtures/README.md).
fixtures=policies/host/tests/fixtures
hostile="$core/hostile.wasm"
built=()
fixture() { # fixture NAME [COMPONENTIZE OPTIONS...]: componentize the hostile core module into $fixtures/NAME.wasm
  local name="$1"
  shift
  "$componentize" "$@" "$hostile" "$repo/$fixtures/$name.wasm"
  built+=("$fixtures/$name.wasm")
}
fixture hostile
fixture multi-memory --extra-memory
fixture many-tables --extra-tables 8
fixture compile-bomb --bomb "$bomb_locals,$bomb_ops"
fixture compile-heavy --bomb "$heavy_locals,$heavy_ops,$heavy_count"
fixture compile-wide --bomb "$heavy_locals,$wide_ops,$wide_count"
# Other compile-cost drivers (componentize --shape; host/src/preflight/flow.rs): for each, the largest shape the
# host's load bounds accept, and the next one, refused before compiling. Sized with the bounds in host/src/limits.rs.
fixture shape-frames --shape results,1,7,4096
fixture shape-frames-over --shape results,1,1,4097
fixture shape-frames-bomb --shape results,1,1
fixture shape-typed-blocks --shape blocks,32,1,256
fixture shape-typed-blocks-over --shape blocks,32,1,257
fixture shape-calls --shape calls,31,1,1024
fixture shape-calls-over --shape calls,31,1,1025
fixture shape-type-values-over --shape calls,33,1,1
fixture shape-types --shape types,4000
fixture shape-types-over --shape types,4100
fixture shape-elements --shape elements,9950
fixture shape-elements-over --shape elements,10001
fixture shape-globals --shape globals,990
fixture shape-globals-over --shape globals,1001

# Altered copies of the contract, made here from policy.wit (never committed, so they cannot drift from it).
wit="$stage/src/policies/wit/policy.wit"
variants="$stage/src/wit-variants"
variant() { # variant NAME SED-SCRIPT: policy.wit edited by SED-SCRIPT, into $variants/NAME/policy.wit
  mkdir -p "$variants/$1"
  sed "$2" "$wit" >"$variants/$1/policy.wit"
  if cmp -s "$wit" "$variants/$1/policy.wit"; then
    echo "policies/build.sh: contract variant $1: '$2' changed nothing in policy.wit" >&2
    exit 1
  fi
}
package='^package perf:policy@0\.2\.0;$'
for version in 0.1.0 0.2.1 0.3.0 99.0.0; do
  variant "version-$version" "s/$package/package perf:policy@$version;/"
  fixture "version-$version" --wit "$variants/version-$version" --world cache-policy
done
variant foreign-package "s/$package/package evil:policy@0.2.0;/"
fixture foreign-package --wit "$variants/foreign-package" --world cache-policy
variant extra-export '/^world cache-policy {$/a\    export exfiltrate: func() -> u32;'
fixture extra-export --wit "$variants/extra-export" --world cache-policy --export-extra exfiltrate

cd "$repo"
sha256sum policies/builtin/*.wasm "${built[@]}"
if [[ "${1:-}" == "--check" ]]; then
  # Modified or untracked outputs both mean the committed bytes are not what the source builds.
  outputs=(policies/builtin "${built[@]}")
  if [[ -n "$(git status --porcelain -- "${outputs[@]}")" ]]; then
    git status --short -- "${outputs[@]}"
    git diff --stat -- "${outputs[@]}"
    echo "policies/build.sh: the committed components differ from the source: run policies/build.sh and commit" >&2
    exit 1
  fi
  echo "policies/build.sh: committed components match the source"
fi
