#!/usr/bin/env bash
# The main job on a fresh machine: start moto on loopback, then run one mooring daemon per
# example stack against it (after seeding the hand-set secrets and certificates):
# salon-booking with /status on 127.0.0.1:8080, small-api on 127.0.0.1:8081, webapp on
# 127.0.0.1:8082. Three stacks in one account, as in real life: each only ever touches its
# own resources.
# Ctrl-C stops the daemons and moto.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mooring/target}"
cargo build --bin mooring
endpoint="$(scripts/moto.sh start)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/moto.sh stop
}
trap cleanup EXIT INT TERM
# Dummy credentials: the emulator accepts anything; never real ones here.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ENDPOINT_URL="$endpoint"
# What people set by hand in a real account (required secrets, the schedules' API key,
# ACM certificates); mooring only checks that they exist.
.venv/bin/python scripts/seed-emulator.py "$endpoint" >&2
port=8080
for stack in salon-booking small-api webapp; do
  echo "moto at $AWS_ENDPOINT_URL; $stack: http://127.0.0.1:$port/status" >&2
  "$CARGO_TARGET_DIR/debug/mooring" run "manifests/examples/$stack" \
    --listen "127.0.0.1:$port" --interval "${MOORING_INTERVAL:-30s}" "$@" &
  pids+=("$!")
  port=$((port + 1))
done
# Stop everything when any daemon exits.
wait -n "${pids[@]}"
