#!/usr/bin/env bash
# Benchmark: how mooring scales with the number of services, against moto on loopback.
# Prints, for N services (default 40, in 2 clusters): validate time on a large set, the
# wall time and peak memory of apply (create from nothing) and of a steady-state plan, the
# AWS calls the steady plan made (it must make no writes), and the steady plan's time when
# 30 % of all requests are throttled (through the fault proxy of tests/faults.rs, with the
# default rate limit), against its time without throttling.
#
#   scripts/bench.sh [N]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
n="${1:-40}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mooring/target}"
# MOORING_PROFILE=debug measures the test build instead (no release build needed).
profile="${MOORING_PROFILE:-release}"
if [ "$profile" = release ]; then
  cargo build --release --quiet --bin mooring
else
  cargo build --quiet --bin mooring
fi
bin="$CARGO_TARGET_DIR/$profile/mooring"
echo "binary: $profile build"
work="$(mktemp -d)"
trap 'scripts/moto.sh stop; rm -rf "$work"' EXIT

gen() { # gen DIR COUNT
  mkdir -p "$1"
  printf 'apiVersion: mooring.dev/v1alpha1\nkind: Stack\nmetadata: {name: bench}\n' >"$1/stack.yaml"
  for c in a b; do
    printf 'apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: bench-%s}\nspec: {}\n' "$c" >"$1/cluster-$c.yaml"
  done
  # The services' secret comes from a managed parameter (secrets from outside the
  # manifests must exist, and the emulator starts empty).
  printf 'apiVersion: mooring.dev/v1alpha1\nkind: ParameterSet\nmetadata: {name: bench}\nspec:\n  path: /bench\n  parameters: {db/host: db.internal}\n' >"$1/parameters.yaml"
  for i in $(seq 1 "$2"); do
    c=$([ $((i % 2)) -eq 0 ] && echo a || echo b)
    cat >"$1/svc-$i.yaml" <<YAML
apiVersion: mooring.dev/v1alpha1
kind: Service
metadata: {name: svc-$i}
spec:
  cluster: bench-$c
  desiredCount: 1
  network:
    subnets: {lookup: {vpc: default}}
    securityGroups: {lookup: {vpc: default, names: [default]}}
  taskDefinition:
    cpu: 256
    memory: 512
    executionRoleArn: arn:aws:iam::123456789012:role/exec
    container:
      image: nginx:1.27
      port: 8080
      environment: {SERVICE: svc-$i, LOG_LEVEL: info}
      secrets: {DB_HOST: {ssmParameter: /bench/db/host}}
      healthCheck: {httpPath: /health}
      logs: {group: /ecs/svc-$i}
YAML
  done
}

measure() { # measure LABEL CMD...  -> prints wall seconds and peak RSS
  local label="$1"; shift
  local t0 t1 rss
  t0=$(date +%s.%N)
  local rc=0
  /usr/bin/time -f '%M' -o "$work/rss" "$@" >"$work/out.json" 2>"$work/err" || rc=$?
  # plan exits 2 when there are changes; anything else non-zero is a failure.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
    echo "$label failed (exit $rc):" >&2
    cat "$work/err" "$work/out.json" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  rss=$(tail -1 "$work/rss")
  printf '%-34s %8.3f s   peak RSS %6d KiB\n' "$label" "$(echo "$t1 - $t0" | bc)" "$rss"
}

gen "$work/big" 1000
measure "validate (1000 services)" "$bin" validate "$work/big"

gen "$work/set" "$n"
endpoint="$(MOTO_ECS_SERVICE_RUNNING=1 scripts/moto.sh start)"
export AWS_ENDPOINT_URL="$endpoint" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export RUST_LOG=error
# mooring's own speed, not the default 50 requests/s limit (set MOORING_AWS_RATE_LIMIT to
# measure with a limit).
export MOORING_AWS_RATE_LIMIT="${MOORING_AWS_RATE_LIMIT:-0}"
measure "apply from nothing ($n services)" "$bin" apply "$work/set" --output json
measure "steady plan ($n services)" "$bin" plan "$work/set" --output json
python3 - "$work/out.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
changes = sum(1 for r in report["resources"] if r["action"] != "none")
calls = report.get("awsCalls", {})
print(f"steady plan: {changes} resources with changes, {sum(calls.values())} AWS calls:")
for op, count in sorted(calls.items()):
    print(f"  {op:40} {count}")
PY

# Throttling: the same set through the fault proxy, medians of 3 plans at 0 % and 30 %.
release=()
[ "$profile" = release ] && release=(--release)
MOORING_BENCH_DIR="$work/set" cargo test "${release[@]}" --quiet --test faults -- \
  --ignored --exact throttled_plan_benchmark --nocapture 2>&1 | grep '^throttled plan' ||
  { echo "throttled plan benchmark failed" >&2; exit 1; }
