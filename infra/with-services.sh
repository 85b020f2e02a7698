#!/usr/bin/env bash
# Runs a command with the test services up:  infra/with-services.sh npx mocha
#
# Starts Redis, Kafka, the MongoDB-protocol server and the Redis Cluster (infra/services.sh start), exports the variables in
# .services/env (STOMPEDE_TEST_REDIS_URL, STOMPEDE_TEST_KAFKA_BROKERS, STOMPEDE_TEST_MONGO_URL, ...), runs the
# command, and always stops the services again, exiting with the command's exit code.
# Services that were already running before (say, from `make services`) are used and left running.
#
#   STOMPEDE_SKIP_SERVICES=1   just run the command (services managed elsewhere, or none wanted)
#   STOMPEDE_SERVICES="redis kafka"   start only these (default: redis kafka mongo redis-cluster)
set -euo pipefail

if [[ ${STOMPEDE_SKIP_SERVICES:-} == 1 ]]; then
  exec "$@"
fi
(($#)) || { echo "usage: infra/with-services.sh COMMAND [ARG...]" >&2; exit 2; }

INFRA=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$INFRA/.." && pwd)
SERVICES=${STOMPEDE_SERVICES:-redis kafka mongo redis-cluster}

read -r -a wanted <<<"$SERVICES"
ours=()
for name in "${wanted[@]}"; do
  "$INFRA/services.sh" is-running "$name" || ours+=("$name")
done

# shellcheck disable=SC2317 # reached through the traps below
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((${#ours[@]})); then
    "$INFRA/services.sh" stop "${ours[@]}" || echo "with-services.sh: stopping ${ours[*]} failed" >&2
  fi
  exit "$rc"
}
# EXIT covers normal ends and failures (set -e); INT/TERM exit through it too, with the usual codes.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$INFRA/services.sh" start "${wanted[@]}"

# .services/env is plain KEY=value lines; `set -a` exports each one.
set -a
# shellcheck source=/dev/null
. "$ROOT/.services/env"
set +a

set +e
"$@"
rc=$?
set -e
exit "$rc"
