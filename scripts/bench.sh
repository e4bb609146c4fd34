#!/usr/bin/env bash
# Benchmark: how mooring scales with the number of services, against moto on loopback.
# Prints, for N services (default 40, in 2 clusters): validate time on a large set, the
# wall time and peak memory of apply (create from nothing) and of a steady-state plan, the
# AWS calls the steady plan made (it must make no writes), and the steady plan's time when
# 30 % of all requests are throttled (through the fault proxy of tests/faults.rs, with the
# default rate limit), against its time without throttling; and with `--events-queue` and a
# 10-minute interval, the time from an out-of-band change to its correction.
#
#   scripts/bench.sh [N]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
n="${1:-50}"
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
daemon=""
# Under `set -e` a failed last command of the trap (kill of a daemon that already exited)
# would turn a finished benchmark into exit 1.
trap '{ [ -z "$daemon" ] || kill "$daemon" 2>/dev/null || true; }; scripts/moto.sh stop; [ -n "${MOORING_BENCH_KEEP:-}" ] || rm -rf "$work"' EXIT

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
    # Ten services per file: a set is at most 1,000 files.
    printf -- '---\n' >>"$1/svc-$((i / 10)).yaml"
    cat >>"$1/svc-$((i / 10)).yaml" <<YAML
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

# One steady daemon pass over the N services: the calls between two passes, from /metrics.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
"$bin" run "$work/set" --interval 3s --listen "127.0.0.1:$port" >"$work/daemon.log" 2>&1 &
daemon=$!
python3 - "$port" "$n" <<'PY'
import json, math, re, sys, time, urllib.request
port, n = sys.argv[1], int(sys.argv[2])
def get(path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read().decode()
def calls():
    out = {}
    for line in get("/metrics").splitlines():
        m = re.match(r'mooring_aws_calls_total\{service="([^"]+)",operation="([^"]+)",outcome="([^"]+)"\} (\d+)', line)
        if m and m.group(3) != "throttled":
            key = f"{m.group(1)}.{m.group(2)}"
            out[key] = out.get(key, 0) + int(m.group(4))
    return out
def passes():
    try:
        return json.loads(get("/status"))["passes"]
    except Exception:
        return -1
deadline = time.time() + 120
while passes() < 2 and time.time() < deadline:
    time.sleep(0.05)
# The pass count goes up just before the pass's calls are added to /metrics: read the
# counters a moment after it moves. A /status that did not answer in time is not a pass.
p = passes(); time.sleep(0.3); before = calls()
while passes() <= p and time.time() < deadline:
    time.sleep(0.02)
time.sleep(0.3)
after = calls()
delta = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
per_cluster = [math.ceil(n / 2), n // 2]
minimum = {
    "ECS.DescribeClusters": 1,                                   # 100 clusters per call
    "ECS.DescribeServices": sum(math.ceil(c / 10) for c in per_cluster),  # 10 per call
    # One path, 1 parameter: its listing, and the listing filtered by the set's managed
    # tags (DescribeParameters returns no tags; this spares a ListTagsForResource each).
    "SSM.DescribeParameters": 2,
    "SSM.GetParameters": 1,                                      # 10 names per call
    "EC2.DescribeVpcs": 1,                                       # the default VPC
    "EC2.DescribeSubnets": 1,                                    # one lookup shared by all
    "EC2.DescribeSecurityGroups": 1,                             # one lookup shared by all
}
total, low = sum(delta.values()), sum(minimum.values())
read = re.compile(r".*[.](Describe|List|Get)")
writes = sum(v for k, v in delta.items() if not read.match(k))
print(f"steady daemon pass ({n} services): {total} AWS calls, batching minimum {low} (ratio {total / low:.2f}), writes: {writes}")
for op in sorted(set(delta) | set(minimum)):
    print(f"  {op:45} {delta.get(op, 0):4}   minimum {minimum.get(op, 0)}")
PY
kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true

# Drift seen from change events: the daemon polls every 10 minutes and reads the queue
# `mooring events-setup` made; a service is scaled by hand and its CloudTrail-shaped event
# put on the default bus (as the trail would). The time from the change to its correction,
# 5 times. The event re-checks every Service (N of them), not just the one touched.
queue="$("$bin" events-setup --name mooring-bench-events)"
"$bin" run "$work/set" --interval 10m --events-queue "$queue" --listen "127.0.0.1:$port" >"$work/events.log" 2>&1 &
daemon=$!
.venv/bin/python - "$port" "$n" "$endpoint" <<'PY'
import json, statistics, sys, time, urllib.request
import boto3
port, n, endpoint = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def status():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
            return json.loads(r.read())
    except Exception:
        return {}
deadline = time.time() + 300
while not (status().get("passes", 0) >= 1 and all(r["state"] == "in_sync" for r in status().get("resources", [{"state": ""}]))):
    assert time.time() < deadline, "the first pass did not finish"
    time.sleep(0.1)
ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1")
events = boto3.client("events", endpoint_url=endpoint, region_name="us-east-1")
times = []
for i in range(5):
    ecs.update_service(cluster="bench-b", service="svc-1", desiredCount=5 + i)
    changed = time.monotonic()
    detail = {"eventSource": "ecs.amazonaws.com", "eventName": "UpdateService", "readOnly": False,
              "userAgent": "aws-cli/2.15", "requestParameters": {"cluster": "bench-b", "service": "svc-1"}}
    out = events.put_events(Entries=[{"Source": "aws.ecs", "DetailType": "AWS API Call via CloudTrail",
                                      "Detail": json.dumps(detail)}])
    assert out["FailedEntryCount"] == 0, out
    while ecs.describe_services(cluster="bench-b", services=["svc-1"])["services"][0]["desiredCount"] != 1:
        assert time.monotonic() - changed < 120, f"not corrected: {status().get('changeEvents')}"
        time.sleep(0.05)
    times.append(time.monotonic() - changed)
    time.sleep(1)
print(f"out-of-band change to correction with --events-queue and --interval 10m ({n} services): "
      f"median {statistics.median(times):.2f} s, max {max(times):.2f} s over {len(times)}")
PY
kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true

# A steady plan of the salon-booking example (a fresh process: it reads the task definition
# and the account once, which a daemon keeps).
.venv/bin/python scripts/seed-emulator.py "$endpoint" >/dev/null
"$bin" apply manifests/examples/salon-booking >/dev/null
"$bin" plan manifests/examples/salon-booking --output json >"$work/salon.json" || true
python3 - "$work/salon.json" <<'PY'
import json, math, sys
report = json.load(open(sys.argv[1]))
calls = report.get("awsCalls", {})
kinds = {}
for r in report["resources"]:
    kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
changes = sum(1 for r in report["resources"] if r["action"] != "none")
k = lambda name: kinds.get(name, 0)
# What the AWS APIs allow for this stack (one cluster, one parameter set of 50 values and
# 6 required secrets, one service, target group and load balancer, Redis, 4 schedules,
# 2 alarms).
minimum = {
    "ECS.DescribeClusters": 1,
    "ECS.DescribeServices": 1,
    "ECS.DescribeTaskDefinition": k("Service"),          # the revision each service runs
    "STS.GetCallerIdentity": 1,                          # the account, for secret ARNs
    # Names and types, 50 per page; then the 50 managed ones filtered by their tags.
    "SSM.DescribeParameters": math.ceil(56 / 50) + math.ceil(50 / 50),
    "SSM.GetParameters": math.ceil(50 / 10),             # managed values, 10 per call
    "EC2.DescribeVpcs": 1,
    "EC2.DescribeSubnets": 1,
    "EC2.DescribeSecurityGroups": 2,                     # mooring's groups, one lookup
    "Elastic Load Balancing v2.DescribeTargetGroups": 1,
    "Elastic Load Balancing v2.DescribeLoadBalancers": 1,
    "Elastic Load Balancing v2.DescribeTags": 1,         # 20 ARNs per call
    "Elastic Load Balancing v2.DescribeListeners": k("LoadBalancer"),
    "ACM.ListCertificates": 1,
    "ElastiCache.DescribeReplicationGroups": 1,
    "ElastiCache.DescribeCacheClusters": 1,
    "ElastiCache.DescribeCacheSubnetGroups": 1 if k("CacheSubnetGroup") else 0,
    "ElastiCache.ListTagsForResource": k("ReplicationGroup") + k("CacheSubnetGroup"),
    "Application Auto Scaling.DescribeScalableTargets": 1,
    "Application Auto Scaling.DescribeScalingPolicies": 1,
    "Secrets Manager.DescribeSecret": k("Connection"),
    "EventBridge.DescribeConnection": k("Connection"),
    "EventBridge.DescribeApiDestination": k("ApiDestination"),
    "EventBridge.ListRules": 1,
    "EventBridge.ListTargetsByRule": k("Rule"),
    "EventBridge.ListTagsForResource": k("Rule"),
    "ECR.DescribeRepositories": 1 if k("Repository") else 0,  # every repository, shared with services
    "ECR.ListTagsForResource": k("Repository"),
    "ECR.GetLifecyclePolicy": k("Repository"),
    "CloudWatch.DescribeAlarms": math.ceil(k("Alarm") / 100),  # 100 alarm names per call
    "CloudWatch.ListTagsForResource": k("Alarm"),        # CloudWatch has no batch tag read
}
minimum.update({op: 1 for op in calls if op not in minimum})  # a new kind's read: one each
total, low = sum(calls.values()), sum(minimum.values())
# moto pages DescribeParameters by 10 (AWS by 50): the calls AWS would answer in fewer pages.
moto_pages = calls.get("SSM.DescribeParameters", 0) - minimum["SSM.DescribeParameters"]
print(f"steady plan of salon-booking: {changes} resources with changes, {total} AWS calls on moto "
      f"({total - max(moto_pages, 0)} as AWS pages DescribeParameters), batching minimum {low}")
for op in sorted(set(calls) | set(minimum)):
    print(f"  {op:50} {calls.get(op, 0):4}   minimum {minimum.get(op, 0)}")
# What each kind adds to a steady pass (a read several kinds share counts for the first).
by_kind = report.get("awsCallsByKind", {})
print("steady plan of salon-booking, AWS calls per kind (resources):")
for kind in sorted(by_kind, key=lambda k: -by_kind[k]):
    if k(kind):
        print(f"  {kind:20} {by_kind[kind]:4}   ({k(kind)})")
PY

# A steady plan of the webapp example: two services behind one ALB whose HTTPS listener
# declares its rules (one DescribeRules per such listener).
"$bin" apply manifests/examples/webapp >/dev/null
"$bin" plan manifests/examples/webapp --output json >"$work/webapp.json" || true
python3 - "$work/webapp.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
calls = report.get("awsCalls", {})
changes = sum(1 for r in report["resources"] if r["action"] != "none")
print(f"steady plan of webapp: {changes} resources with changes, {sum(calls.values())} AWS calls, "
      f"of which DescribeRules {calls.get('Elastic Load Balancing v2.DescribeRules', 0)} (listeners with rules: 1)")
for op in sorted(calls):
    print(f"  {op:50} {calls[op]:4}")
by_kind = report.get("awsCallsByKind", {})
print("steady plan of webapp, AWS calls per kind:")
for kind in sorted(by_kind, key=lambda k: -by_kind[k]):
    print(f"  {kind:20} {by_kind[kind]:4}")
PY

# Throttling: the same set through the fault proxy, medians of 3 plans at 0 % and 30 %.
release=()
[ "$profile" = release ] && release=(--release)
MOORING_BENCH_DIR="$work/set" cargo test "${release[@]}" --quiet --test faults -- \
  --ignored --exact throttled_plan_benchmark --nocapture 2>&1 | grep '^throttled plan' ||
  { echo "throttled plan benchmark failed" >&2; exit 1; }
