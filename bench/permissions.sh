#!/usr/bin/env bash
# What permissions cost (issue #8, "Done when"): fanout, pairs and queue against two Stompede nodes, one open and
# one started with a users file whose bench user has 10 permission rules per check, alternating which goes
# first, RUNS times. Prints medians per node and the paired ratio permissions/open per scenario; the acceptance
# bound is a ratio of at least 0.95 for every rate. Results go to bench/results/permissions-<timestamp>/.
#
#   bench/permissions.sh                                   # fanout pairs queue over TCP, 3 runs of 15 s
#   RUNS=1 DURATION_S=3 WARMUP_S=1 bench/permissions.sh    # a quick check that it all works
#   TRANSPORTS="tcp ws" SCENARIOS="fanout pairs queue chat" bench/permissions.sh
#   USERS_FORMAT=legacy bench/permissions.sh               # users file without rules (nodes before permissions)
#   BASELINE=auth bench/permissions.sh                     # baseline node authenticates too (users file, no rules)
#
# BASELINE=open (default) compares against a node without users file: the difference is authentication, the
# `user-id` header stamped on every MESSAGE, and the rules. BASELINE=auth compares against a node whose users file
# gives the same login every right without rules, so the difference is the 10 rules alone.
# Only one node runs at a time, fresh for each measurement; every client logs in as bench/bench on both, so the
# only difference is the users file (authentication and authorization).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-"fanout pairs queue"}
TRANSPORTS=${TRANSPORTS:-tcp}
DURATION_S=${DURATION_S:-15}
WARMUP_S=${WARMUP_S:-3}
USERS_FORMAT=${USERS_FORMAT:-rules}
BASELINE=${BASELINE:-open}
[[ $BASELINE == open || $BASELINE == auth ]] || { echo "permissions.sh: BASELINE must be open or auth" >&2; exit 2; }
OPEN_PORT=${OPEN_PORT:-61823}
OPEN_WS_PORT=${OPEN_WS_PORT:-15884}
PERMS_PORT=${PERMS_PORT:-61833}
PERMS_WS_PORT=${PERMS_WS_PORT:-15894}
# CONNECT handshakes in flight at once. Each login on the permissions node costs one scrypt (~30 ms of a core);
# fanout's 101 clients all at once time out (10 s) on a loaded 2-core machine. Setup is not measured either way.
HANDSHAKES=${HANDSHAKES:-4}
# Extra flags for every run.js call, e.g. EXTRA="--subscribers 50".
EXTRA=${EXTRA:-}

log() { printf 'permissions.sh: %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [[ ! -f dist/bench/run.js || ! -f dist/bench/permissions-users.js || ! -f dist/bin/stompede.js ||
  bench/permissions-users.ts -nt dist/bench/permissions-users.js || bench/run.ts -nt dist/bench/run.js ]]; then
  log "compiling (npx tsc -p .)"
  npx tsc -p . || log "tsc reported errors (continuing with what it emitted)"
fi

OUT=bench/results/permissions-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
log "results in $OUT"
USERS=$OUT/users.json
node dist/bench/permissions-users.js --out "$USERS" --login bench --password bench --format "$USERS_FORMAT"
BASE_FLAGS=()
if [[ $BASELINE == auth ]]; then
  node dist/bench/permissions-users.js --out "$OUT/users-auth.json" --login bench --password bench --format legacy
  BASE_FLAGS=(--users-file "$OUT/users-auth.json")
fi

declare -A PID TCP_URL WS_URL
NODES=("$BASELINE" permissions)

stop_node() {
  local pid=${PID[$1]:-}
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  PID[$1]=
}
stop_all() {
  for node in "${NODES[@]}"; do stop_node "$node"; done
}
trap stop_all EXIT

# start NAME PORT WS_PORT [stompede flags...]: our own node on ports nobody else holds.
start() {
  local name=$1 port=$2 ws_port=$3
  shift 3
  if port_open "$port" || port_open "$ws_port"; then
    log "port $port or $ws_port is in use (set OPEN_PORT/OPEN_WS_PORT/PERMS_PORT/PERMS_WS_PORT)"
    exit 1
  fi
  # No ops listener (nothing here reads it; two nodes would meet on 15692) and no SIGTERM drain.
  node dist/bin/stompede.js --port "$port" --ws-port "$ws_port" --ops-port -1 --shutdown-drain-ms 0 "$@" \
    > "$OUT/stompede-$name.log" 2>&1 &
  PID[$name]=$!
  for _ in $(seq 1 100); do
    if port_open "$port" && port_open "$ws_port"; then break; fi
    kill -0 "${PID[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  if ! port_open "$port" || ! port_open "$ws_port"; then
    log "the $name node did not start; see $OUT/stompede-$name.log"
    tail -n 20 "$OUT/stompede-$name.log" >&2 || true
    exit 1
  fi
  TCP_URL[$name]=tcp://127.0.0.1:$port
  WS_URL[$name]=ws://127.0.0.1:$ws_port/ws
}

# Each measurement gets a node of its own, started for it and stopped after it, so that neither node runs beside
# the other, nor carries what earlier scenarios left in it (history, heap, JIT state): with both nodes up for the
# whole run, their ratio moved by 5-15 % with which one was started first and which scenarios ran before.
start_node() {
  if [[ $1 == permissions ]]; then
    start permissions "$PERMS_PORT" "$PERMS_WS_PORT" --users-file "$USERS"
  else
    start "$BASELINE" "$OPEN_PORT" "$OPEN_WS_PORT" "${BASE_FLAGS[@]}"
  fi
}
log "nodes: $BASELINE and permissions (users file: $USERS_FORMAT), a fresh node for every measurement"

FAILED=0
for run in $(seq 1 "$RUNS"); do
  for scenario in $SCENARIOS; do
    for transport in $TRANSPORTS; do
      # Alternate which node goes first, so drift in the machine's load favours neither.
      order=("$BASELINE" permissions)
      if (( run % 2 == 0 )); then order=(permissions "$BASELINE"); fi
      for node in "${order[@]}"; do
        start_node "$node"
        if [[ $transport == ws ]]; then target=${WS_URL[$node]}; else target=${TCP_URL[$node]}; fi
        name=$node-$scenario-$transport-$run
        log "run $run/$RUNS: $node $scenario $transport"
        # shellcheck disable=SC2086
        if ! node dist/bench/run.js --scenario "$scenario" --target "$target" --label "$node" \
          --login bench --passcode bench --concurrency "$HANDSHAKES" --broker-pid "${PID[$node]}" \
          --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" --json "$OUT/$name.json" $EXTRA \
          > "$OUT/$name.row" 2> "$OUT/$name.log"; then
          FAILED=$((FAILED + 1))
          log "FAILED: $node $scenario $transport (see $OUT/$name.log)"
          tail -n 5 "$OUT/$name.log" >&2 || true
        else
          cat "$OUT/$name.row" >&2
        fi
        if ! kill -0 "${PID[$node]}" 2>/dev/null; then
          log "the $node node (pid ${PID[$node]}) is no longer running"
          exit 1
        fi
        stop_node "$node"
        sleep 1
      done
    done
  done
done

shopt -s nullglob
results=("$OUT"/"$BASELINE"-*.json "$OUT"/permissions-*.json)
if [[ ${#results[@]} -gt 0 ]]; then
  node dist/bench/report.js --labels "permissions,$BASELINE" "${results[@]}" | tee "$OUT/table.md"
fi
log "table: $OUT/table.md (column permissions/$BASELINE: 1.00× is no cost; the bound is 0.95×) ($FAILED failed runs)"
[[ $FAILED -eq 0 ]]
