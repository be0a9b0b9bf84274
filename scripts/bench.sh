#!/usr/bin/env bash
# Runs every benchmark of the workspace, prints one table, writes artifacts/bench.json.
#
#   bash scripts/bench.sh              # all benchmarks
#   bash scripts/bench.sh bench_exec   # only those whose name contains "bench_exec"
#
# A benchmark is any `crates/<package>/examples/bench_*.rs`. Each is built in release mode and
# run as `cargo run --release -p <package> --example <name> -- <OUT.json>`: it prints its own
# table and writes its figures to OUT.json (artifacts/bench/<name>.json). This script then
# merges them into artifacts/bench.json and prints every figure as `bench  metric  value`.
# They run on the local provider and through the App Platform emulator (each benchmark says
# which); nothing touches the network but loopback. Figures depend on the machine: compare
# runs made on the same one.
set -euo pipefail
cd "$(dirname "$0")/.."

filter="${1:-}"
out_dir="artifacts/bench"
mkdir -p "$out_dir"
export CARGO_TERM_COLOR=never

echo "building release binaries (the CLI and the doctl stand-in)"
cargo build --release -q -p sandbox-cli -p appplatform-emulator --bins

ran=()
failed=()
for source in crates/*/examples/bench_*.rs; do
  [ -e "$source" ] || continue
  package="$(basename "$(dirname "$(dirname "$source")")")"
  name="$(basename "$source" .rs)"
  if [ -n "$filter" ] && [[ "$name" != *"$filter"* ]]; then
    continue
  fi
  echo
  echo "=== $package/$name"
  if cargo run --release -q -p "$package" --example "$name" -- "$out_dir/$name.json"; then
    ran+=("$name")
  else
    echo "!!! $name failed"
    failed+=("$name")
  fi
done

echo
python3 - "$out_dir" "${ran[@]}" <<'PY'
import json, os, platform, sys, time

out_dir, names = sys.argv[1], sys.argv[2:]
benches = {}
for name in names:
    path = os.path.join(out_dir, name + ".json")
    try:
        with open(path) as f:
            benches[name] = json.load(f)
    except (OSError, ValueError) as e:
        print(f"(no figures from {name}: {e})")

def leaves(value, prefix=""):
    """Every number in a JSON value, with a readable path; lists of rows use their label."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            label = str(i)
            if isinstance(item, dict):
                label = str(item.get("target") or item.get("kind") or item.get("name") or i)
            yield from leaves(item, f"{prefix}[{label}]")

rows = [(bench, metric, value) for bench, data in benches.items() for metric, value in leaves(data)]
if rows:
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    print(f"{'BENCH':<{w1}}  {'METRIC':<{w2}}  VALUE")
    for bench, metric, value in rows:
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        print(f"{bench:<{w1}}  {metric:<{w2}}  {shown}")

report = {
    "generated_unix": int(time.time()),
    "machine": {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python_platform": platform.platform(),
    },
    "benches": benches,
}
with open("artifacts/bench.json", "w") as f:
    json.dump(report, f, indent=2)
print("\nwrote artifacts/bench.json")
PY

if [ "${#failed[@]}" -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
