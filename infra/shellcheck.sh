#!/usr/bin/env bash
# Runs ShellCheck over every shell script of the tree (`npm run lint` calls it): *.sh, .ci/run, and any other file
# whose first line names sh or bash. ShellCheck comes from Debian, installed with apt on first use, as
# infra/services.sh does for Redis and Java; without it this fails, naming it, rather than skip the check.
#
#   infra/shellcheck.sh            check all scripts; exit 1 on any finding (every severity, style included)
#   infra/shellcheck.sh FILE...    check only these
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf 'shellcheck.sh: %s\n' "$*" >&2; }

if ! command -v shellcheck >/dev/null; then
  as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo -n "$@"
    else return 1
    fi
  }
  log "installing Debian's shellcheck (first run on this machine only)"
  # Lock timeout: another apt run on the machine (say, infra/services.sh) is waited for, not failed on.
  if as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq shellcheck >/dev/null || true
  fi
  command -v shellcheck >/dev/null || { log "shellcheck is missing and could not be installed (apt-get install shellcheck)"; exit 1; }
fi

scripts=("$@")
if ((${#scripts[@]} == 0)); then
  # Tracked files when this is a git checkout (a Docker build context may not be): never dist/ or caches.
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files)
  else
    mapfile -t files < <(find . -type f -not -path './node_modules/*' -not -path './dist/*' -not -path './.*/*' -printf '%P\n')
    files+=(.ci/run)
  fi
  for f in "${files[@]}"; do
    [[ -f $f ]] || continue
    if [[ $f == *.sh || $f == .ci/run ]] || head -n 1 "$f" | grep -qE '^#!.*[/ ](ba)?sh$'; then scripts+=("$f"); fi
  done
fi
((${#scripts[@]})) || { log "no shell scripts found"; exit 1; }

# -x follows `source`d files that exist; the ones written at run time are marked `# shellcheck source=/dev/null`.
shellcheck -x "${scripts[@]}"
echo "shellcheck: ${#scripts[@]} scripts clean"
