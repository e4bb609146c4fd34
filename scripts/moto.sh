#!/usr/bin/env bash
# The local AWS stand-in: moto's server mode, from PyPI, in a git-ignored virtualenv.
#
#   scripts/moto.sh install      create .venv and install moto[server] (idempotent)
#   scripts/moto.sh start        start moto on a free loopback port; prints the endpoint URL
#   scripts/moto.sh stop         stop the server started by `start`
#
# The integration tests start their own server from the same virtualenv; `start` is for
# running the daemon by hand (scripts/dev.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
state="$root/.moto"
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"

install() {
  if [ -x "$venv/bin/moto_server" ] && "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    return 0
  fi
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "moto[server]==$MOTO_VERSION"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
  install
  mkdir -p "$state"
  local port
  port="$(free_port)"
  # Deployments never progress in moto; this makes new services report their tasks running.
  MOTO_ECS_SERVICE_RUNNING="${MOTO_ECS_SERVICE_RUNNING:-2}" \
    nohup "$root/scripts/moto-server" -H 127.0.0.1 -p "$port" >"$state/moto.log" 2>&1 &
  echo $! >"$state/pid"
  echo "http://127.0.0.1:$port" >"$state/endpoint"
  for _ in $(seq 1 100); do
    if curl -sf -o /dev/null "http://127.0.0.1:$port/moto-api/"; then
      cat "$state/endpoint"
      return 0
    fi
    sleep 0.1
  done
  echo "moto did not start; see $state/moto.log" >&2
  return 1
}

stop() {
  if [ -f "$state/pid" ]; then
    kill "$(cat "$state/pid")" 2>/dev/null || true
    rm -f "$state/pid" "$state/endpoint"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
