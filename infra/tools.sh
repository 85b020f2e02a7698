#!/usr/bin/env bash
# Preflight of `make test`: every tool some spec needs is on this machine, or the run stops here, naming it.
# A spec that cannot run must fail, never turn pending, so a missing tool is found before mocha starts, not
# after fifteen minutes of it. Missing tools are installed from Debian, the way services.sh and chromium.sh do.
#
#   infra/tools.sh           install what is missing (apt), then check; exit 1 naming every tool still missing
#   infra/tools.sh --check   check only, install nothing
#
# Tools: node >= 20 (never installed here), a JDK >= 17 with javac and Maven (Spring interop, Kafka), Chromium
# (browser specs, through infra/chromium.sh), Python 3 with its venv module (stomp.py interop; stomp.py itself
# comes from PyPI into .cache/venv), redis-server, and Go when the FerretDB stand-in must be built (no mongod on
# PATH and no cached build: services.sh builds it with the go it finds, or with Debian's golang-1.19-go).
set -euo pipefail

INFRA=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$INFRA/.." && pwd)
CHECK_ONLY=0
case ${1:-} in
  --check) CHECK_ONLY=1 ;;
  '') ;;
  *) echo "usage: infra/tools.sh [--check]" >&2; exit 2 ;;
esac

log() { printf 'tools.sh: %s\n' "$*" >&2; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo -n "$@"
  else log "need root to run: $*"; return 1
  fi
}

APT_UPDATED=
# Installs Debian packages; failure is not fatal here: the check after it names what is still missing.
apt_install() {
  ((CHECK_ONLY)) && return 1
  log "installing Debian packages: $*"
  if [[ -z $APT_UPDATED ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq || return 1
    APT_UPDATED=1
  fi
  # Lock timeout: another apt run on the machine (say, services.sh) is waited for, not failed on.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()

java_major() { java -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p'; }

have_node() { command -v node >/dev/null && (($(node -p 'process.versions.node.split(".")[0]') >= 20)); }
have_jdk() { command -v java >/dev/null && command -v javac >/dev/null && [[ -n $(java_major) ]] && (($(java_major) >= 17)); }
have_python() { command -v "${PYTHON:-python3}" >/dev/null && "${PYTHON:-python3}" -c 'import venv, ensurepip' 2>/dev/null; }
have_chromium() {
  if [[ -n ${STOMPEDE_CHROMIUM:-} ]]; then [[ -x $STOMPEDE_CHROMIUM ]]; else [[ -x /usr/bin/chromium ]]; fi
}
# Go is needed only to build the FerretDB stand-in (see services.sh find_go for the version rules).
need_go() {
  [[ ${STOMPEDE_MONGO_IMPL:-} != mongod ]] && ! command -v mongod >/dev/null && [[ ! -x $ROOT/.cache/bin/ferretdb-standin ]]
}
have_go() { command -v go >/dev/null || [[ -x /usr/local/go/bin/go || -x /usr/lib/go-1.19/bin/go ]]; }

have_node || missing+=("node >= 20 (install Node.js 20 or newer)")

# Spring's tests are compiled by Maven, so a JRE is not enough: the JDK brings javac.
have_jdk || apt_install openjdk-17-jdk-headless || true
have_jdk || missing+=("java/javac >= 17 (openjdk-17-jdk-headless)")
command -v mvn >/dev/null || apt_install maven || true
command -v mvn >/dev/null || missing+=("mvn (maven)")

if ! have_chromium && ((!CHECK_ONLY)); then "$INFRA/chromium.sh" >/dev/null || true; fi
have_chromium || missing+=("chromium (Debian's chromium, or STOMPEDE_CHROMIUM=/path)")

have_python || apt_install python3 python3-venv || true
have_python || missing+=("${PYTHON:-python3} with the venv module (python3-venv)")

command -v redis-server >/dev/null || apt_install redis-server || true
command -v redis-server >/dev/null || missing+=("redis-server (redis-server)")

if need_go; then
  have_go || apt_install golang-1.19-go || true
  have_go || missing+=("go (to build the FerretDB stand-in; golang-1.19-go, or mongod on PATH)")
fi

if ((${#missing[@]})); then
  log "required tools missing; every spec that needs one would fail:"
  for tool in "${missing[@]}"; do log "  - $tool"; done
  exit 1
fi
log "all required tools present"
