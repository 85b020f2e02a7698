#!/usr/bin/env bash
# Runs every scenario against Stompede and RabbitMQ in the same run, back to back, and prints one Markdown
# table with absolute figures and Stompede/RabbitMQ ratios. Results (JSON per run, logs, table.md) go to
# bench/results/<timestamp>/.
#
#   bench/compare.sh                                  # all scenarios, tcp and ws, 1 run each
#   RUNS=3 bench/compare.sh                           # medians of 3 runs
#   SCENARIOS="fanout pairs" TRANSPORTS=tcp DURATION_S=10 bench/compare.sh
#   BROKERS=rabbitmq bench/compare.sh                 # one broker only
#
# Starts RabbitMQ with bench/rabbitmq.sh (and stops it at the end if it started it), and starts
# `node dist/bin/stompede.js --port 61813 --ws-port 15874` if dist/bin/stompede.js exists.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-1}
SCENARIOS=${SCENARIOS:-"fanout pairs chat queue conns"}
TRANSPORTS=${TRANSPORTS:-"tcp ws"}
DURATION_S=${DURATION_S:-15}
WARMUP_S=${WARMUP_S:-3}
BROKERS=${BROKERS:-"stompede rabbitmq"}
STOMPEDE_PORT=${STOMPEDE_PORT:-61813}
STOMPEDE_WS_PORT=${STOMPEDE_WS_PORT:-15874}
RMQ_STOMP_PORT=${RMQ_STOMP_PORT:-61713}
RMQ_WS_PORT=${RMQ_WS_PORT:-15774}
# Extra flags for every run.js call, e.g. EXTRA="--conns 5000".
EXTRA=${EXTRA:-}

log() { printf 'compare.sh: %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# 10,000 client sockets in this process for `conns`: ask for 65536, settle for the hard limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [[ $(ulimit -n) -lt 10100 ]]; then log "warning: ulimit -n is $(ulimit -n); conns needs more than 10000"; fi

if [[ ! -f dist/bench/run.js || bench/run.ts -nt dist/bench/run.js || bench/scenarios.ts -nt dist/bench/scenarios.js || bench/client.ts -nt dist/bench/client.js ]]; then
  log "compiling (npx tsc -p .)"
  npx tsc -p . || log "tsc reported errors (continuing with what it emitted)"
fi

OUT=bench/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
log "results in $OUT"

RMQ_WAS_RUNNING=0
if bench/rabbitmq.sh status >/dev/null 2>&1; then RMQ_WAS_RUNNING=1; fi
STOMPEDE_PID=
STOMPEDE_STARTS=0
declare -A TCP_URL WS_URL PID
ACTIVE=()

stop_stompede() {
  if [[ -n "$STOMPEDE_PID" ]] && kill -0 "$STOMPEDE_PID" 2>/dev/null; then
    kill -TERM "$STOMPEDE_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$STOMPEDE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$STOMPEDE_PID" 2>/dev/null || true
    wait "$STOMPEDE_PID" 2>/dev/null || true
  fi
  STOMPEDE_PID=
}

# Starts our own Stompede process; fails if the ports are taken (someone else's broker must not be measured).
start_stompede() {
  if port_open "$STOMPEDE_PORT" || port_open "$STOMPEDE_WS_PORT"; then
    log "port $STOMPEDE_PORT or $STOMPEDE_WS_PORT is already in use (set STOMPEDE_PORT / STOMPEDE_WS_PORT)"
    return 1
  fi
  STOMPEDE_STARTS=$((STOMPEDE_STARTS + 1))
  # No ops listener (nothing here reads it; the default 15692 may be taken) and no SIGTERM drain.
  node dist/bin/stompede.js --port "$STOMPEDE_PORT" --ws-port "$STOMPEDE_WS_PORT" --ops-port -1 --shutdown-drain-ms 0 \
    > "$OUT/stompede-$STOMPEDE_STARTS.log" 2>&1 &
  STOMPEDE_PID=$!
  for _ in $(seq 1 100); do
    if port_open "$STOMPEDE_PORT" && port_open "$STOMPEDE_WS_PORT"; then break; fi
    kill -0 "$STOMPEDE_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! kill -0 "$STOMPEDE_PID" 2>/dev/null || ! port_open "$STOMPEDE_PORT" || ! port_open "$STOMPEDE_WS_PORT"; then
    log "Stompede did not start on $STOMPEDE_PORT and $STOMPEDE_WS_PORT; see $OUT/stompede-$STOMPEDE_STARTS.log"
    tail -n 20 "$OUT/stompede-$STOMPEDE_STARTS.log" >&2 || true
    stop_stompede
    return 1
  fi
  PID[stompede]=$STOMPEDE_PID
}

start_rabbitmq() {
  bench/rabbitmq.sh status >/dev/null 2>&1 || bench/rabbitmq.sh start >&2
  PID[rabbitmq]=$(bench/rabbitmq.sh pid)
}

# `conns` reads the broker's RSS before and after: a broker that already grew its heap in earlier scenarios
# would look cheaper per connection than a fresh one, so every broker is restarted before `conns`.
restart() {
  case "$1" in
    stompede) stop_stompede; start_stompede ;;
    rabbitmq) bench/rabbitmq.sh stop >&2; start_rabbitmq ;;
  esac
}

cleanup() {
  stop_stompede
  # Leave RabbitMQ as we found it: running if it was running before, stopped otherwise.
  if [[ $RMQ_WAS_RUNNING -eq 0 && " ${ACTIVE[*]} " == *" rabbitmq "* ]]; then bench/rabbitmq.sh stop || true; fi
}
trap cleanup EXIT

for broker in $BROKERS; do
  case "$broker" in
    rabbitmq)
      start_rabbitmq
      TCP_URL[rabbitmq]=tcp://127.0.0.1:$RMQ_STOMP_PORT
      WS_URL[rabbitmq]=ws://127.0.0.1:$RMQ_WS_PORT/ws
      ACTIVE+=(rabbitmq)
      ;;
    stompede)
      if [[ ! -f dist/bin/stompede.js ]]; then
        log "dist/bin/stompede.js not found: skipping Stompede"
        continue
      fi
      start_stompede || continue
      TCP_URL[stompede]=tcp://127.0.0.1:$STOMPEDE_PORT
      WS_URL[stompede]=ws://127.0.0.1:$STOMPEDE_WS_PORT/ws
      ACTIVE+=(stompede)
      ;;
    *) log "unknown broker $broker (use stompede, rabbitmq)"; exit 2 ;;
  esac
done
[[ ${#ACTIVE[@]} -gt 0 ]] || { log "no broker to benchmark"; exit 1; }
log "brokers: ${ACTIVE[*]}"

FAILED=0
for run in $(seq 1 "$RUNS"); do
  for scenario in $SCENARIOS; do
    for transport in $TRANSPORTS; do
      # Alternate which broker goes first, so that drift in the machine's load does not favour one.
      order=("${ACTIVE[@]}")
      if (( run % 2 == 0 )); then mapfile -t order < <(printf '%s\n' "${ACTIVE[@]}" | tac); fi
      for broker in "${order[@]}"; do
        if [[ $scenario == conns ]]; then restart "$broker" || { FAILED=$((FAILED + 1)); continue; }; fi
        if [[ $transport == ws ]]; then target=${WS_URL[$broker]}; else target=${TCP_URL[$broker]}; fi
        name=$broker-$scenario-$transport-$run
        log "run $run/$RUNS: $broker $scenario $transport"
        # shellcheck disable=SC2086
        if ! node dist/bench/run.js --scenario "$scenario" --target "$target" --label "$broker" \
          --login guest --passcode guest --broker-pid "${PID[$broker]}" \
          --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" --json "$OUT/$name.json" $EXTRA \
          > "$OUT/$name.row" 2> "$OUT/$name.log"; then
          FAILED=$((FAILED + 1))
          log "FAILED: $broker $scenario $transport (see $OUT/$name.log)"
          tail -n 5 "$OUT/$name.log" >&2 || true
        else
          cat "$OUT/$name.row" >&2
        fi
        if ! kill -0 "${PID[$broker]}" 2>/dev/null; then
          log "$broker (pid ${PID[$broker]}) is no longer running"
          exit 1
        fi
        sleep 2
      done
    done
  done
done

labels=stompede,rabbitmq
if [[ ${#ACTIVE[@]} -eq 1 ]]; then labels=${ACTIVE[0]}; fi
shopt -s nullglob
jsons=("$OUT"/*.json)
if [[ ${#jsons[@]} -gt 0 ]]; then
  node dist/bench/report.js --labels "$labels" "${jsons[@]}" | tee "$OUT/table.md"
fi
log "table: $OUT/table.md ($FAILED failed runs)"
[[ $FAILED -eq 0 ]]
