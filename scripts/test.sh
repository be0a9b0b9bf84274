#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: system packages, fmt, clippy, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests need (Debian). Skipped when already present.
need=()
for tool in bash python3 node curl tar base64 unshare nsenter; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing system packages for: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bash python3 nodejs curl tar coreutils util-linux
fi

export CARGO_TERM_COLOR=never
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo test --workspace --all-features
