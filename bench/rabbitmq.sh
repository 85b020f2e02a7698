#!/usr/bin/env bash
# A throwaway RabbitMQ (Debian's rabbitmq-server) for benchmark comparisons, isolated under /tmp.
#
#   bench/rabbitmq.sh start    install if missing, start, wait until STOMP and Web-STOMP accept connections
#   bench/rabbitmq.sh stop     stop the node started here (nothing else)
#   bench/rabbitmq.sh status   print the node's pid and ports, exit 1 if it is not running
#   bench/rabbitmq.sh pid      print the pid of the Erlang VM (beam.smp), for `run.js --broker-pid`
#
# Listeners (all 127.0.0.1 only):  STOMP tcp://127.0.0.1:61713   Web-STOMP ws://127.0.0.1:15774/ws
#                                  AMQP 5772 (unused, moved off 5672)   Erlang distribution 25772
# Login guest/guest (RabbitMQ only allows guest from loopback, which is all we use).
# Override the ports with RMQ_STOMP_PORT, RMQ_WS_PORT, RMQ_AMQP_PORT, RMQ_DIST_PORT; the state dir with RMQ_DIR.
set -euo pipefail

RMQ_DIR=${RMQ_DIR:-/tmp/stompede-bench-rmq}
RMQ_STOMP_PORT=${RMQ_STOMP_PORT:-61713}
RMQ_WS_PORT=${RMQ_WS_PORT:-15774}
RMQ_AMQP_PORT=${RMQ_AMQP_PORT:-5772}
RMQ_DIST_PORT=${RMQ_DIST_PORT:-25772}
RMQ_NODE=${RMQ_NODE:-stompbench@localhost}
RMQ_BIN=/usr/lib/rabbitmq/bin

# Every rabbitmq-server / rabbitmqctl call needs the same environment (HOME holds .erlang.cookie).
export HOME="$RMQ_DIR" \
  RABBITMQ_NODENAME="$RMQ_NODE" \
  RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf" \
  RABBITMQ_ENABLED_PLUGINS="rabbitmq_stomp,rabbitmq_web_stomp" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins" \
  RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia" \
  RABBITMQ_LOG_BASE="$RMQ_DIR/log" \
  RABBITMQ_PID_FILE="$RMQ_DIR/pid" \
  RABBITMQ_DIST_PORT="$RMQ_DIST_PORT" \
  RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"

log() { printf 'rabbitmq.sh: %s\n' "$*" >&2; }

ctl() { "$RMQ_BIN/rabbitmqctl" -n "$RMQ_NODE" "$@"; }

vm_pid() {
  [[ -s "$RMQ_DIR/pid" ]] || return 1
  local pid
  pid=$(tr -d '[:space:]' < "$RMQ_DIR/pid")
  [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
  # The pid file is only trusted if that process really is our node's Erlang VM (started with HOME=$RMQ_DIR).
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "-home $RMQ_DIR " || return 1
  printf '%s\n' "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install_if_missing() {
  if [[ -x "$RMQ_BIN/rabbitmq-server" ]]; then return; fi
  log "installing rabbitmq-server with apt-get"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server
}

# apt may have started the packaged service (node rabbit@<host>, ports 5672/61613/15674); it is not ours
# to benchmark and it would compete for the CPU, so stop it through its own service script.
stop_system_instance() {
  if pgrep -u rabbitmq -x beam.smp >/dev/null 2>&1; then
    log "stopping the system rabbitmq-server service started by apt"
    if command -v invoke-rc.d >/dev/null; then invoke-rc.d rabbitmq-server stop || true; fi
    if command -v systemctl >/dev/null && systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
      systemctl stop rabbitmq-server || true
    fi
  fi
}

write_config() {
  mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
  cat > "$RMQ_DIR/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$RMQ_AMQP_PORT
loopback_users.guest = true
# The benchmark must measure throughput, not RabbitMQ's memory alarm on a small box.
vm_memory_high_watermark.relative = 0.6
disk_free_limit.absolute = 50MB

stomp.listeners.tcp.1 = 127.0.0.1:$RMQ_STOMP_PORT
stomp.default_user = guest
stomp.default_pass = guest
stomp.implicit_connect = false
stomp.tcp_listen_options.backlog = 4096
stomp.tcp_listen_options.nodelay = true

web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = $RMQ_WS_PORT
web_stomp.tcp.backlog = 4096
web_stomp.ws_path = /ws
web_stomp.ws_frame = text
web_stomp.max_connections = infinity
web_stomp.ws_opts.max_frame_size = 1048576
EOF
  # rabbitmq-plugins would otherwise write /etc/rabbitmq/enabled_plugins.
  printf '[rabbitmq_stomp,rabbitmq_web_stomp].\n' > "$RMQ_DIR/enabled_plugins"
  printf '[].\n' > "$RMQ_DIR/advanced.config"
}

# RabbitMQ sizes its socket budget from the file limit (1024 gives ~830 sockets). Ask for 65536 and settle
# for the hard limit if the container does not allow more.
raise_fd_limit() {
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  log "file limit for the node: $(ulimit -n)"
}

start() {
  if pid=$(vm_pid); then
    log "already running (pid $pid)"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || { log "run as root (the Debian wrapper would su to the rabbitmq user)"; exit 1; }
  install_if_missing
  stop_system_instance
  for p in "$RMQ_STOMP_PORT" "$RMQ_WS_PORT" "$RMQ_AMQP_PORT"; do
    if port_open "$p"; then log "port $p is already in use"; exit 1; fi
  done
  write_config
  raise_fd_limit
  log "starting $RMQ_NODE (state in $RMQ_DIR)"
  "$RMQ_BIN/rabbitmq-server" -detached
  # `wait` polls for the pid file the VM writes and then for the rabbit app; await_startup alone fails
  # while the node has not yet registered with epmd.
  ctl wait --timeout 120 "$RMQ_DIR/pid" >/dev/null
  for _ in $(seq 1 100); do
    if port_open "$RMQ_STOMP_PORT" && port_open "$RMQ_WS_PORT"; then break; fi
    sleep 0.2
  done
  port_open "$RMQ_STOMP_PORT" || { log "STOMP port $RMQ_STOMP_PORT did not open; see $RMQ_DIR/log"; exit 1; }
  port_open "$RMQ_WS_PORT" || { log "Web-STOMP port $RMQ_WS_PORT did not open; see $RMQ_DIR/log"; exit 1; }
  status
}

stop() {
  if ! pid=$(vm_pid); then
    log "not running"
    return 0
  fi
  log "stopping $RMQ_NODE (pid $pid)"
  ctl stop "$RMQ_DIR/pid" >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    [[ -d "/proc/$pid" ]] || break
    sleep 0.2
  done
  if [[ -d "/proc/$pid" ]]; then
    log "node did not stop in 20 s, sending SIGKILL to $pid"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$RMQ_DIR/pid"
}

status() {
  local pid
  if ! pid=$(vm_pid); then
    echo "rabbitmq: not running"
    return 1
  fi
  echo "rabbitmq: pid $pid  stomp tcp://127.0.0.1:$RMQ_STOMP_PORT  web-stomp ws://127.0.0.1:$RMQ_WS_PORT/ws" \
    " fd-limit $(awk '/Max open files/ {print $4}' "/proc/$pid/limits")"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  pid) vm_pid || { log "not running"; exit 1; } ;;
  *) echo "usage: $0 start|stop|status|pid" >&2; exit 2 ;;
esac
