#!/usr/bin/env bash
# A three-node Stompede chat cluster on this machine, wired to the test services (Redis, Kafka, MongoDB wire):
#
#   infra/cluster.sh start    services up (infra/services.sh), then nodes 1-3 with the default routes
#   infra/cluster.sh stop     nodes down, then the services this script started
#   infra/cluster.sh status   one line per node
#
# Node N listens on TCP 616N3 and WebSocket 156N4 path /ws (N = 1, 2, 3 → 61613/61623/61633 and 15674/15684/15694),
# and serves /metrics, /healthz and /readyz on its own ops port 15682 + 10N (15692/15702/15712): with the default ops
# port (15692) for every node, the second node would not start.
# Pid files and logs live in .cluster/ (node1.pid, node1.log, ...).
set -euo pipefail

INFRA=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$INFRA/.." && pwd)
RUN=$ROOT/.cluster
NODES=(1 2 3)
tcp_port() { echo $((61603 + 10 * $1)); }
ws_port() { echo $((15664 + 10 * $1)); }
ops_port() { echo $((15682 + 10 * $1)); }

log() { printf '%s\n' "$*" >&2; }

start() {
  [[ -f $ROOT/dist/bin/stompede.js ]] || { log "cluster.sh: build first (make build)"; exit 1; }
  mkdir -p "$RUN"
  "$INFRA/services.sh" start
  set -a
  # shellcheck source=/dev/null # written by infra/services.sh at run time
  . "$ROOT/.services/env"
  set +a
  for n in "${NODES[@]}"; do
    local pidfile=$RUN/node$n.pid
    if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "node$n already running (pid $(cat "$pidfile"))"
      continue
    fi
    # setsid: the node outlives this script and the terminal; stop() signals it by pid. No load balancer sits in
    # front of this cluster, so SIGTERM need not drain (stop() allows each node 5 s).
    setsid node "$ROOT/dist/bin/stompede.js" --node-id "node$n" \
      --port "$(tcp_port "$n")" --ws-port "$(ws_port "$n")" --ops-port "$(ops_port "$n")" --shutdown-drain-ms 0 \
      --redis "$STOMPEDE_TEST_REDIS_URL" --kafka "$STOMPEDE_TEST_KAFKA_BROKERS" --mongo "$STOMPEDE_TEST_MONGO_URL" \
      >"$RUN/node$n.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
  done
  for n in "${NODES[@]}"; do
    local deadline=$((SECONDS + 60))
    # Ready: every engine connected and the client listeners open.
    until curl -sf -o /dev/null "http://127.0.0.1:$(ops_port "$n")/readyz"; do
      if ! kill -0 "$(cat "$RUN/node$n.pid")" 2>/dev/null || ((SECONDS > deadline)); then
        log "node$n did not start; last lines of .cluster/node$n.log:"
        tail -n 20 "$RUN/node$n.log" >&2
        exit 1
      fi
      sleep 0.2
    done
  done
  echo "Stompede cluster is up (engines: redis $STOMPEDE_TEST_REDIS_URL, kafka $STOMPEDE_TEST_KAFKA_BROKERS, mongo $STOMPEDE_TEST_MONGO_URL)"
  for n in "${NODES[@]}"; do
    echo "  node$n  stomp tcp://127.0.0.1:$(tcp_port "$n")  websocket ws://127.0.0.1:$(ws_port "$n")/ws  chat page http://127.0.0.1:$(ws_port "$n")/  ops http://127.0.0.1:$(ops_port "$n")  log .cluster/node$n.log"
  done
  echo "Stop it with: make cluster-stop"
}

stop() {
  for n in "${NODES[@]}"; do
    local pidfile=$RUN/node$n.pid
    [[ -f $pidfile ]] || continue
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      echo "stopped node$n"
    fi
    rm -f "$pidfile"
  done
  "$INFRA/services.sh" stop
}

status() {
  for n in "${NODES[@]}"; do
    local pidfile=$RUN/node$n.pid
    if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "node$n running (pid $(cat "$pidfile")) tcp $(tcp_port "$n") ws $(ws_port "$n") ops $(ops_port "$n")"
    else
      echo "node$n stopped"
    fi
  done
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) log "usage: infra/cluster.sh start|stop|status"; exit 2 ;;
esac
