#!/usr/bin/env bash
# The main job on a fresh machine: start moto on loopback, then run the mooring daemon on
# the example manifests against it (after seeding the hand-set secrets and certificates). /status and /healthz answer on 127.0.0.1:8080.
# Ctrl-C stops both.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mooring/target}"
cargo build --bin mooring
endpoint="$(scripts/moto.sh start)"
trap 'scripts/moto.sh stop' EXIT
# Dummy credentials: the emulator accepts anything; never real ones here.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ENDPOINT_URL="$endpoint"
# What people set by hand in a real account (required secrets, the schedules' API key,
# ACM certificates); mooring only checks that they exist.
.venv/bin/python scripts/seed-emulator.py "$endpoint" >&2
echo "moto at $AWS_ENDPOINT_URL; daemon status at http://${MOORING_LISTEN:-127.0.0.1:8080}/status" >&2
"$CARGO_TARGET_DIR/debug/mooring" run manifests/examples --interval "${MOORING_INTERVAL:-30s}" "$@"
