#!/usr/bin/env bash
# Builds the WASM policy components from source:
#   policies/builtin/adaptive-ttl.wasm, policies/builtin/adaptive-rate-limit.wasm  (embedded in the operator)
#   policies/host/tests/fixtures/hostile.wasm                                       (host test fixture)
# The outputs are committed so that a fresh clone builds the operator with plain `cargo build`.
# `policies/build.sh --check` rebuilds and fails if the committed bytes differ from what the source produces.
#
# Guests are built for wasm32-unknown-unknown (not wasm32-wasip2: Rust's std there makes every component import
# wasi:cli/* and wasi:io/*, and the host grants no capability) and wrapped into components by `componentize`
# (wit-component, the library behind `wasm-tools component new`). Deterministic: locked deps, one codegen unit,
# LTO, stripped, paths remapped.
set -euo pipefail

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
"$componentize" "$core/hostile.wasm" "$repo/policies/host/tests/fixtures/hostile.wasm"

cd "$repo"
sha256sum policies/builtin/*.wasm policies/host/tests/fixtures/hostile.wasm
if [[ "${1:-}" == "--check" ]]; then
  # Modified or untracked outputs both mean the committed bytes are not what the source builds.
  outputs=(policies/builtin policies/host/tests/fixtures/hostile.wasm)
  if [[ -n "$(git status --porcelain -- "${outputs[@]}")" ]]; then
    git status --short -- "${outputs[@]}"
    git diff --stat -- "${outputs[@]}"
    echo "policies/build.sh: the committed components differ from the source: run policies/build.sh and commit" >&2
    exit 1
  fi
  echo "policies/build.sh: committed components match the source"
fi
