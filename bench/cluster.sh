#!/usr/bin/env bash
# Cross-node benchmark: for each cluster route (redis, kafka) three Stompede nodes on this machine, the
# publisher on node 1 and the subscribers on nodes 2 and 3 (chat: every room spread over the three nodes);
# single-node figures (local route, one node, same scenarios) next to them; and `receipts` (SEND with a
# RECEIPT each, windowed) on one node per route. Prints one Markdown table; JSON per run, logs and table.md go
# to bench/results/cluster-<timestamp>/.
#
#   bench/cluster.sh                                  # one run, 15 s measured per scenario
#   RUNS=3 DURATION_S=10 bench/cluster.sh             # medians of 3 runs
#   ROUTES=kafka SCENARIOS=chat bench/cluster.sh      # one route, one scenario (plus the local baseline)
#   SCENARIOS=failover LOCAL=0 RECEIPTS_ON= bench/cluster.sh   # kill -9 failover of the kafka route only
#
# Settings (environment): RUNS (1), DURATION_S (15), WARMUP_S (3), SCENARIOS ("fanout pairs chat"; queue works
# too), ROUTES ("redis kafka"), RECEIPTS_ON ("local redis kafka": one-node `receipts` runs; "" for none),
# LOCAL (1: the single-node local-route baseline; 0 to skip), TRANSPORT (tcp | ws, default tcp),
# BASE_PORT (62100: node N listens on BASE_PORT+10N+3, WebSocket BASE_PORT+10N+4, ops BASE_PORT+10N+5), EXTRA (more run.js flags),
# KAFKA_HISTORY (mongo; "memory" leaves out --mongo, to tell the history store's share of the latency), KAFKA_JVM_OPTS (if set, Kafka is restarted with these JVM flags for the run and restarted with its usual
# flags afterwards; unset: Kafka is used as it is running), KILLS (10: kills of the `failover` scenario),
# FAILOVER_NODE_ARGS (more node flags for it, e.g. "--kafka-session-timeout-ms 3000"), SERVICES_ENV (a file of
# STOMPEDE_TEST_* lines, e.g. another checkout's .services/env: use those running services, start none).
#
# `failover` is not a load scenario: bench/failover.ts starts its own three kafka-route nodes (Redis fan-out,
# MongoDB history), kills one with SIGKILL KILLS times (restarting it in between) while receipted SENDs flow over
# 10 destinations, and reports kill → first delivery on every survivor (p50/p99/max), and any lost, duplicated or
# reordered message.
#
# Starts the test services with infra/services.sh if they are not running (and stops at the end only those it
# started); starts and stops its own nodes, each with a unique --cluster-name and, on the kafka route, unique
# Kafka topics, so that nothing is shared with other users of the services.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-1}
DURATION_S=${DURATION_S:-15}
WARMUP_S=${WARMUP_S:-3}
SCENARIOS=${SCENARIOS:-"fanout pairs chat"}
ROUTES=${ROUTES-"redis kafka"}
RECEIPTS_ON=${RECEIPTS_ON-"local redis kafka"}
LOCAL=${LOCAL:-1}
TRANSPORT=${TRANSPORT:-tcp}
BASE_PORT=${BASE_PORT:-62100}
EXTRA=${EXTRA:-}
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:-}
KILLS=${KILLS:-10}
FAILOVER_NODE_ARGS=${FAILOVER_NODE_ARGS:-}
SERVICES_ENV=${SERVICES_ENV:-}
FAILOVER=0
if [[ " $SCENARIOS " == *" failover "* ]]; then
  FAILOVER=1
  SCENARIOS=$(echo " $SCENARIOS " | sed 's/ failover / /' | xargs)
  # Only failover asked for: no load scenario on any route.
  [[ -n $SCENARIOS ]] || ROUTES=""
fi
# Upper bound for one run.js call (it has its own hard limit too).
RUN_TIMEOUT_S=$((WARMUP_S + DURATION_S + 5 + 150))

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
tcp_port() { echo $((BASE_PORT + 10 * $1 + 3)); }
ws_port() { echo $((BASE_PORT + 10 * $1 + 4)); }
# Each node its own ops listener (/readyz, /metrics): the default 15692 would let only one start.
ops_port() { echo $((BASE_PORT + 10 * $1 + 5)); }
url_of() {
  if [[ $TRANSPORT == ws ]]; then echo "ws://127.0.0.1:$(ws_port "$1")/ws"; else echo "tcp://127.0.0.1:$(tcp_port "$1")"; fi
}

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [[ ! -f dist/bench/run.js || ! -f dist/bench/cluster-report.js || ! -f dist/bench/failover.js || bench/failover.ts -nt dist/bench/failover.js || bench/run.ts -nt dist/bench/run.js || bench/scenarios.ts -nt dist/bench/scenarios.js || bench/client.ts -nt dist/bench/client.js || bench/cluster-report.ts -nt dist/bench/cluster-report.js ]]; then
  log "compiling (npx tsc -p .)"
  npx tsc -p . || log "tsc reported errors (continuing with what it emitted)"
fi
[[ -f dist/bin/stompede.js ]] || { log "dist/bin/stompede.js not found; build first"; exit 1; }

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=bench/results/cluster-$STAMP
mkdir -p "$OUT"
log "results in $OUT"

# ------------------------------------------------------------------------------------------------ services
STARTED_SERVICES=()
KAFKA_RESTARTED=0
NODE_PIDS=()

stop_nodes() {
  local pid
  for pid in "${NODE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${NODE_PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  NODE_PIDS=()
}

cleanup() {
  stop_nodes
  if [[ $KAFKA_RESTARTED -eq 1 ]]; then
    log "restarting kafka with its usual JVM flags"
    env -u STOMPEDE_KAFKA_JVM_OPTS infra/services.sh restart kafka >&2 || log "warning: kafka restart failed"
  fi
  if [[ ${#STARTED_SERVICES[@]} -gt 0 ]]; then
    log "stopping the services this script started: ${STARTED_SERVICES[*]}"
    infra/services.sh stop "${STARTED_SERVICES[@]}" >&2 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_services=$FAILOVER
for route in $ROUTES $RECEIPTS_ON; do [[ $route == local ]] || need_services=1; done
if [[ $need_services -eq 1 && -n $SERVICES_ENV ]]; then
  set -a
  # shellcheck source=/dev/null # given by the caller
  . "$SERVICES_ENV"
  set +a
  log "services from $SERVICES_ENV: redis $STOMPEDE_TEST_REDIS_URL, kafka $STOMPEDE_TEST_KAFKA_BROKERS, mongo $STOMPEDE_TEST_MONGO_URL"
elif [[ $need_services -eq 1 ]]; then
  for svc in redis kafka mongo; do
    if ! infra/services.sh is-running "$svc" >/dev/null 2>&1; then
      log "starting $svc (infra/services.sh start $svc)"
      infra/services.sh start "$svc" >&2
      STARTED_SERVICES+=("$svc")
    fi
  done
  if [[ -n $KAFKA_JVM_OPTS ]]; then
    log "restarting kafka with STOMPEDE_KAFKA_JVM_OPTS=$KAFKA_JVM_OPTS"
    KAFKA_RESTARTED=1
    STOMPEDE_KAFKA_JVM_OPTS=$KAFKA_JVM_OPTS infra/services.sh restart kafka >&2
  fi
  set -a
  # shellcheck source=/dev/null # written by infra/services.sh at run time
  . .services/env
  set +a
  log "services: redis $STOMPEDE_TEST_REDIS_URL, kafka $STOMPEDE_TEST_KAFKA_BROKERS, mongo $STOMPEDE_TEST_MONGO_URL"
  ps -o args= -p "$(cat "$STOMPEDE_TEST_KAFKA_PID_FILE")" 2>/dev/null | grep -o -- '-X[^ ]*' | tr '\n' ' ' > "$OUT/kafka-jvm-flags.txt" || true
fi

# --------------------------------------------------------------------------------------------------- nodes
# start_nodes ROUTE COUNT NAME: COUNT nodes of one cluster called NAME on ROUTE (local | redis | kafka).
start_nodes() {
  local route=$1 count=$2 name=$3 n
  local -a args
  case "$route" in
    local) args=() ;;
    redis) args=(--redis "$STOMPEDE_TEST_REDIS_URL" --routes '/topic/**=redis,/queue/**=redis') ;;
    kafka)
      # Topics unique to this cluster: a new consumer group must not replay another run's records.
      local topic=${name//[^A-Za-z0-9]/_}
      args=(--redis "$STOMPEDE_TEST_REDIS_URL" --kafka "$STOMPEDE_TEST_KAFKA_BROKERS"
        --routes "/topic/**=kafka:$topic.t,/queue/**=kafka:$topic.q")
      # KAFKA_HISTORY=memory (diagnosis only): no --mongo, so topic history is in memory, not in MongoDB.
      [[ ${KAFKA_HISTORY:-mongo} == memory ]] || args+=(--mongo "$STOMPEDE_TEST_MONGO_URL") ;;
    *) log "unknown route $route"; return 1 ;;
  esac
  for n in $(seq 1 "$count"); do
    if port_open "$(tcp_port "$n")" || port_open "$(ws_port "$n")" || port_open "$(ops_port "$n")"; then
      log "port $(tcp_port "$n"), $(ws_port "$n") or $(ops_port "$n") is in use (set BASE_PORT)"
      return 1
    fi
  done
  for n in $(seq 1 "$count"); do
    node dist/bin/stompede.js --node-id "$name-n$n" --cluster-name "$name" \
      --port "$(tcp_port "$n")" --ws-port "$(ws_port "$n")" --ops-port "$(ops_port "$n")" --shutdown-drain-ms 0 \
      --log-level warn "${args[@]}" \
      > "$OUT/$name-n$n.log" 2>&1 &
    NODE_PIDS+=($!)
  done
  local deadline=$((SECONDS + 90))
  for n in $(seq 1 "$count"); do
    until curl -sf -o /dev/null "http://127.0.0.1:$(ops_port "$n")/readyz"; do
      local pid=${NODE_PIDS[$((n - 1))]}
      if ! kill -0 "$pid" 2>/dev/null || ((SECONDS > deadline)); then
        log "$name node $n did not become ready; last lines of $OUT/$name-n$n.log:"
        tail -n 20 "$OUT/$name-n$n.log" >&2 || true
        return 1
      fi
      sleep 0.2
    done
  done
}

# Other engineers' tests share the services and may restart or kill Kafka (or Redis): retry a failed start
# after the services are back.
start_nodes_retry() {
  local attempt
  for attempt in 1 2 3; do
    if start_nodes "$@"; then return 0; fi
    stop_nodes
    log "start of $3 failed (attempt $attempt); waiting for the services"
    for _ in $(seq 1 60); do
      if infra/services.sh status >/dev/null 2>&1; then break; fi
      sleep 1
    done
    sleep 5
  done
  return 1
}

service_pids() { # service_pids LABEL: pids of the services that route uses, to notice a restart by someone else
  local f files=()
  case "$1" in
    local*) return 0 ;;
    redis*) files=(.services/redis/redis.pid) ;;
    *) files=(.services/redis/redis.pid .services/kafka/kafka.pid .services/mongo/mongo.pid) ;;
  esac
  for f in "${files[@]}"; do
    [[ -f $f ]] && cat "$f"
  done | tr '\n' ' '
}

urls_of() { # urls_of COUNT → comma-separated targets of nodes 1..COUNT
  local n out=()
  for n in $(seq 1 "$1"); do out+=("$(url_of "$n")"); done
  (IFS=,; echo "${out[*]}")
}

FAILED=0
# bench LABEL SCENARIO NODES NAME: one run.js call against nodes 1..NODES.
bench() {
  local label=$1 scenario=$2 count=$3 name=$4
  local pids services_before
  pids=$(IFS=,; echo "${NODE_PIDS[*]:0:$count}")
  services_before=$(service_pids "$label")
  log "$name: $scenario on $count node(s)"
  # shellcheck disable=SC2086
  if ! timeout "$RUN_TIMEOUT_S" node dist/bench/run.js --scenario "$scenario" --target "$(urls_of "$count")" \
    --label "$label" --broker-pid "$pids" --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" \
    --json "$OUT/$name-$scenario.json" $EXTRA > "$OUT/$name-$scenario.row" 2> "$OUT/$name-$scenario.log"; then
    FAILED=$((FAILED + 1))
    rm -f "$OUT/$name-$scenario.json"
    log "FAILED: $name $scenario (see $OUT/$name-$scenario.log)"
    tail -n 5 "$OUT/$name-$scenario.log" >&2 || true
  else
    cat "$OUT/$name-$scenario.row" >&2
  fi
  if [[ $(service_pids "$label") != "$services_before" ]]; then
    log "a service was restarted by someone else during $name $scenario: result discarded (.json.discarded)"
    mv "$OUT/$name-$scenario.json" "$OUT/$name-$scenario.json.discarded" 2>/dev/null || true
    FAILED=$((FAILED + 1))
  fi
  local pid
  for pid in "${NODE_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { log "node pid $pid died; see $OUT/$name-n*.log"; return 1; }
  done
  sleep 1
}

# Short discarded runs first: JIT warm-up of the nodes and, on kafka, a consumer group that has stopped
# rebalancing (three nodes joining one group move partitions around for several seconds). Up to 5 tries of 2 s
# until one delivers everything without a stall.
probe() {
  local count=$1 name=$2 try
  for try in 1 2 3 4 5; do
    if timeout 60 node dist/bench/run.js --scenario pairs --target "$(urls_of "$count")" --duration-s 2 --warmup-s 1 \
      --drain-s 5 --json "$OUT/$name-probe.json.probe" > "$OUT/$name-probe.row" 2> "$OUT/$name-probe.log" &&
      node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.exit(r.lost === 0 && r.stalls === 0 && r.errors === 0 ? 0 : 1)' "$OUT/$name-probe.json.probe"; then
      return 0
    fi
    log "$name: probe $try not clean yet ($(cut -c1-160 "$OUT/$name-probe.row" 2>/dev/null))"
  done
  log "warning: $name never ran a clean probe; measuring anyway"
}

for run in $(seq 1 "$RUNS"); do
  setups=()
  [[ $LOCAL == 1 ]] && setups+=(local)
  for route in $ROUTES; do setups+=("$route"); done
  for route in $RECEIPTS_ON; do setups+=("$route-receipts"); done
  for setup in "${setups[@]}"; do
    case "$setup" in
      local) route=local; count=1; scenarios="$SCENARIOS"
        [[ " $RECEIPTS_ON " == *" local "* ]] && scenarios="$scenarios receipts" ;;
      local-receipts) continue ;; # run with the local baseline above (or alone, below)
      *-receipts) route=${setup%-receipts}; count=1; scenarios=receipts ;;
      *) route=$setup; count=3; scenarios="$SCENARIOS" ;;
    esac
    label="$route ×$count"
    name="b$STAMP-r$run-$route-x$count"
    name=${name//-/_}
    start_nodes_retry "$route" "$count" "$name" || { FAILED=$((FAILED + 1)); stop_nodes; continue; }
    probe "$count" "$name"
    for scenario in $scenarios; do bench "$label" "$scenario" "$count" "$name" || break; done
    stop_nodes
  done
  if [[ $LOCAL != 1 && " $RECEIPTS_ON " == *" local "* ]]; then
    name="b${STAMP}_r${run}_local_x1"
    start_nodes_retry local 1 "$name" && probe 1 "$name" && bench "local ×1" receipts 1 "$name" || FAILED=$((FAILED + 1))
    stop_nodes
  fi
done

if [[ $FAILOVER -eq 1 ]]; then
  for run in $(seq 1 "$RUNS"); do
    log "failover: $KILLS kills of a kafka-route node (run $run)"
    if ! timeout $((KILLS * 60 + 120)) node dist/bench/failover.js --kills "$KILLS" --node-args="$FAILOVER_NODE_ARGS" \
      --json "$OUT/failover-r$run.json.failover" > "$OUT/failover-r$run.row" 2> "$OUT/failover-r$run.log"; then
      FAILED=$((FAILED + 1))
      log "FAILED: failover run $run (see $OUT/failover-r$run.log)"
      tail -n 5 "$OUT/failover-r$run.log" >&2 || true
    fi
    cat "$OUT/failover-r$run.row" >&2 || true
  done
  cat "$OUT"/failover-r*.row > "$OUT/failover.md" 2>/dev/null || true
fi

shopt -s nullglob
jsons=("$OUT"/*.json)
if [[ ${#jsons[@]} -gt 0 ]]; then
  node dist/bench/cluster-report.js "${jsons[@]}" | tee "$OUT/table.md"
fi
log "table: $OUT/table.md ($FAILED failed runs)"
[[ $FAILED -eq 0 ]]
