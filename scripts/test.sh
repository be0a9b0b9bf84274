#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: system packages, fmt, clippy, docs,
# packaging, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests need (Debian): the sandboxes' runtimes and tools, runc (the OCI
# runtime that isolates local sandboxes), util-linux, and passt (`pasta`) for the sandboxes'
# private networks. Skipped when present.
need=()
for pair in bash:bash python3:python3 node:nodejs curl:curl tar:tar base64:coreutils \
  setsid:util-linux runc:runc pasta:passt; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

export CARGO_TERM_COLOR=never
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
# Every library layer can be published on its own (the test crates are publish = false).
cargo package --workspace --exclude workspace-tests --exclude sandbox-testkit --no-verify --quiet
# Tests that need local sandboxes fail here instead of skipping.
export SANDBOX_REQUIRE_LOCAL=1
cargo test --workspace --all-features --no-fail-fast
