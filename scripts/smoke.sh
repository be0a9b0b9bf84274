#!/usr/bin/env bash
# The smoke suite of the `sandbox` command: create, exec (exit codes, bytes, stdin), files,
# processes, status, delete; every step timed. Results go to artifacts/smoke/smoke-<target>.json.
#
#   bash scripts/smoke.sh              # against the emulator; also DigitalOcean when DIGITALOCEAN_TOKEN is set
#   bash scripts/smoke.sh emulator     # the emulator only (what CI runs, as part of the tests)
#   bash scripts/smoke.sh digitalocean # a real App Platform account only (needs DIGITALOCEAN_TOKEN)
#
# Against DigitalOcean the suite creates one sandbox (a worker in APP_SANDBOX_REGION, default
# atl1) and deletes it at the end; it costs a few cents. Set SANDBOX_DRIVER=doctl to go
# through doctl instead of the API.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:-all}"
export SANDBOX_ARTIFACTS_DIR="${SANDBOX_ARTIFACTS_DIR:-$PWD/artifacts/smoke}"
mkdir -p "$SANDBOX_ARTIFACTS_DIR"

case "$target" in
  emulator) filter="smoke::smoke_emulator" ;;
  digitalocean) filter="smoke::smoke_digitalocean" ;;
  all) filter="smoke::smoke_" ;;
  *) echo "usage: $0 [emulator|digitalocean]" >&2; exit 2 ;;
esac

if [ "$target" != emulator ]; then
  if [ -n "${DIGITALOCEAN_TOKEN:-}" ]; then
    export SANDBOX_SMOKE_DIGITALOCEAN=1
  elif [ "$target" = digitalocean ]; then
    echo "DIGITALOCEAN_TOKEN is not set: the smoke suite against DigitalOcean needs a token" >&2
    exit 4
  else
    echo "DIGITALOCEAN_TOKEN is not set: only the emulator is tested"
  fi
fi

rm -f "$SANDBOX_ARTIFACTS_DIR"/smoke-*.json
status=0
cargo test -p sandbox-cli --test it -- --nocapture "$filter" || status=$?
for f in "$SANDBOX_ARTIFACTS_DIR"/smoke-*.json; do
  [ -e "$f" ] || continue
  python3 - "$f" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print(f"\n{report['target']}: {report['passed']} passed, {report['failed']} failed in {report['seconds']:.1f}s")
for step in report["steps"]:
    mark = "ok  " if step["ok"] else "FAIL"
    print(f"  {mark} {step['name']:<18} {step['seconds']*1000:8.0f} ms  {step['detail']}")
PY
done
exit "$status"
