#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`: install Debian's docker.io if dockerd is
# missing, and start dockerd without systemd (nohup, in its own session) if none is running.
# Reusable from .ci/run and from build-image.sh. Idempotent: does nothing if the engine is up.
#
# Usage: sandbox/docker/start-dockerd.sh [--no-install]
#
# Environment:
#   RLVR_DOCKERD_LOG       dockerd log file (default: /var/log/rlvr-dockerd.log)
#   RLVR_DOCKERD_TIMEOUT   seconds to wait for `docker info` (default: 30)
#   DOCKER                 docker CLI to use (default: the first `docker` on PATH)
#
# Exit status: 0 when the engine answers; 1 (with the dockerd log tail) otherwise.
set -euo pipefail

LOG_FILE="${RLVR_DOCKERD_LOG:-/var/log/rlvr-dockerd.log}"
TIMEOUT="${RLVR_DOCKERD_TIMEOUT:-30}"
INSTALL=1
for arg in "$@"; do
  case "$arg" in
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "start-dockerd.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[start-dockerd] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

engine_up() { "${DOCKER:-docker}" info >/dev/null 2>&1; }

if command -v "${DOCKER:-docker}" >/dev/null 2>&1 && engine_up; then
  log "engine already running ($("${DOCKER:-docker}" version -f '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v "${DOCKER:-docker}" >/dev/null 2>&1; then
  [[ "$INSTALL" == 1 ]] || die "dockerd is not installed (and --no-install was given)"
  [[ $(id -u) == 0 ]] || die "dockerd is not installed; run as root or: apt-get install -y docker.io"
  log "installing Debian's docker.io"
  t0=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  # Never let the package start services (there is no systemd here anyway).
  if ! apt-get install -y --no-install-recommends docker.io >/tmp/rlvr-apt-docker.log 2>&1; then
    apt-get update >>/tmp/rlvr-apt-docker.log 2>&1 || true
    apt-get install -y --no-install-recommends docker.io >>/tmp/rlvr-apt-docker.log 2>&1 ||
      { tail -n 30 /tmp/rlvr-apt-docker.log >&2; die "apt-get install docker.io failed"; }
  fi
  log "docker.io installed in $((SECONDS - t0)) s"
  command -v dockerd >/dev/null || die "dockerd still not found after installing docker.io"
fi

[[ $(id -u) == 0 ]] || die "no engine answers and starting dockerd needs root"

# A previous dockerd may have died and left its pid file (dockerd then refuses to start).
if [[ -f /var/run/docker.pid ]]; then
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    log "dockerd (pid $pid) is running but not answering yet; waiting for it"
  else
    log "removing stale /var/run/docker.pid"
    rm -f /var/run/docker.pid
    pid=""
  fi
else
  pid=""
fi

if [[ -z "$pid" ]]; then
  mkdir -p "$(dirname "$LOG_FILE")"
  log "starting dockerd (log: $LOG_FILE)"
  # setsid + nohup: the daemon outlives this script and its terminal/CI step.
  setsid nohup dockerd >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
fi

t0=$SECONDS
while ! engine_up; do
  if ! kill -0 "$pid" 2>/dev/null && ! pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd exited; last 40 lines of $LOG_FILE:"
    tail -n 40 "$LOG_FILE" >&2 || true
    exit 1
  fi
  if ((SECONDS - t0 >= TIMEOUT)); then
    log "engine did not answer within ${TIMEOUT} s; last 40 lines of $LOG_FILE:"
    tail -n 40 "$LOG_FILE" >&2 || true
    exit 1
  fi
  sleep 0.5
done
log "engine ready after $((SECONDS - t0)) s: $("${DOCKER:-docker}" version -f 'server {{.Server.Version}} (API {{.Server.APIVersion}}), client {{.Client.Version}}' 2>/dev/null)"
