#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed (the browser tests drive it through playwright-core; Playwright's
# own browser downloads are not used). Prints the browser's path on stdout.
#
#   infra/chromium.sh            install `chromium` with apt when /usr/bin/chromium is missing, print its path
#   STOMPEDE_CHROMIUM=/path      use that browser instead (nothing is installed)
set -euo pipefail

log() { printf 'chromium.sh: %s\n' "$*" >&2; }

if [[ -n ${STOMPEDE_CHROMIUM:-} ]]; then
  [[ -x $STOMPEDE_CHROMIUM ]] || { log "STOMPEDE_CHROMIUM=$STOMPEDE_CHROMIUM is not an executable"; exit 1; }
  echo "$STOMPEDE_CHROMIUM"
  exit 0
fi

BROWSER=/usr/bin/chromium
if [[ ! -x $BROWSER ]]; then
  as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo -n "$@"
    else log "need root to install chromium (or set STOMPEDE_CHROMIUM): $*"; exit 1
    fi
  }
  log "installing Debian's chromium (first run on this machine only)"
  # Lock timeout: another apt run on the machine (say, infra/services.sh) is waited for, not failed on.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium >/dev/null
  [[ -x $BROWSER ]] || { log "apt installed chromium, but $BROWSER is not there"; exit 1; }
fi
echo "$BROWSER"
