#!/usr/bin/env bash
# Build the local Docker image for the rlvr Docker sandbox (issue 4) from the HOST's python3.11
# (Debian bookworm): no registry is reachable, so nothing is pulled. The rootfs holds
# /usr/bin/python3.11 (+ python3 link), the trimmed stdlib, every shared library ldd lists for
# the binary and lib-dynload/*.so, the dynamic loader, and a minimal /etc/passwd with user 65534.
# It is imported with `docker import` and labelled with a hash of its inputs, so it is rebuilt
# only when those change.
#
# Usage: sandbox/docker/build-image.sh [--force] [--verify] [--help]
#   --force    rebuild even if the image's input hash matches
#   --verify   after building, run the hardening checks (network none, read-only rootfs,
#              non-root, fork bomb under --pids-limit 64, memory hog under --memory 256m)
#
# Environment:
#   RLVR_SANDBOX_IMAGE   image name (default: rlvr-sandbox-python:3.11)
#   RLVR_SANDBOX_CACHE   cache dir for the rootfs staging (default: $HOME/.cache/rlvr-sandbox)
#   DOCKER               docker CLI (default: docker)
#
# Prints the image name on success.
set -euo pipefail

SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"
HERE="$(dirname "$SCRIPT_PATH")"
IMAGE="${RLVR_SANDBOX_IMAGE:-rlvr-sandbox-python:3.11}"
CACHE="${RLVR_SANDBOX_CACHE:-$HOME/.cache/rlvr-sandbox}"
DOCKER="${DOCKER:-docker}"
PY=/usr/bin/python3.11
STDLIB=/usr/lib/python3.11
LABEL=org.rlvr.sandbox.inputs-sha256
TRIM=(test idlelib tkinter turtledemo ensurepip lib2to3/tests unittest/test ctypes/test
      distutils/tests sqlite3/test tkinter/test site-packages dist-packages
      'config-3.11-x86_64-linux-gnu')

FORCE=0; VERIFY=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --verify) VERIFY=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$SCRIPT_PATH" | sed '$d'; exit 0 ;;
    *) echo "build-image.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ -x "$PY" && -d "$STDLIB" ]] || die "$PY / $STDLIB missing: this recipe needs Debian bookworm's python3.11 (apt-get install -y python3.11)"
command -v ldd >/dev/null || die "ldd not found"

T0=$SECONDS
"$HERE/start-dockerd.sh"

mkdir -p "$CACHE"
exec 9>"$CACHE/.build-image.lock"
flock 9

# ---- collect the inputs: binary, stdlib files, shared libraries, loader
libs_of() {  # prints the resolved paths ldd lists for the given ELF files
  ldd "$@" 2>/dev/null | awk '/=> \// {print $3} /^[[:space:]]*\/[^ ]+ \(0x/ {print $1}' | sort -u
}
mapfile -t DYNLOAD < <(find "$STDLIB/lib-dynload" -name '*.so' | sort)
mapfile -t LIBS < <(libs_of "$PY" "${DYNLOAD[@]}")
LOADER=$(readelf -l "$PY" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[[ -n "$LOADER" ]] || LOADER=/lib64/ld-linux-x86-64.so.2
prune=()
for d in "${TRIM[@]}"; do prune+=(-path "$STDLIB/$d" -prune -o); done
mapfile -t STDFILES < <(find "$STDLIB" "${prune[@]}" \( -type f -o -type l \) -print | sort)

INPUTS_HASH=$( {
  sha256sum "$SCRIPT_PATH"
  printf '%s\n' "$IMAGE"
  sha256sum "$PY" "$LOADER" "${LIBS[@]}"
  # stdlib: path, size, mtime (content hashing 3000 files adds ~1 s for no real gain:
  # they only change through a package upgrade, which changes mtimes)
  stat -c '%n %s %Y' "${STDFILES[@]}"
} | sha256sum | cut -c1-64)

current=$("$DOCKER" image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)
if [[ "$FORCE" == 0 && "$current" == "$INPUTS_HASH" ]]; then
  log "image $IMAGE is up to date (inputs $INPUTS_HASH); --force rebuilds"
else
  [[ -n "$current" ]] && log "inputs changed (or --force): rebuilding $IMAGE" || log "building $IMAGE"
  ROOTFS="$CACHE/docker-rootfs"
  rm -rf "$ROOTFS"
  mkdir -p "$ROOTFS"/{usr/bin,usr/lib,usr/lib64,etc,tmp,proc,sys,dev,nonexistent}
  # merged-/usr layout like the host, so ldd's /lib/... paths and the loader path resolve
  ln -s usr/bin "$ROOTFS/bin"; ln -s usr/lib "$ROOTFS/lib"; ln -s usr/lib64 "$ROOTFS/lib64"
  chmod 1777 "$ROOTFS/tmp"
  cp -L "$PY" "$ROOTFS/usr/bin/python3.11"
  ln -s python3.11 "$ROOTFS/usr/bin/python3"
  ln -s python3.11 "$ROOTFS/usr/bin/python"
  for f in "${LIBS[@]}" "$LOADER"; do
    real_dir=$(readlink -f "$(dirname "$f")")     # /lib/x86_64-linux-gnu -> /usr/lib/...
    mkdir -p "$ROOTFS$real_dir"
    cp -L "$f" "$ROOTFS$real_dir/$(basename "$f")"
  done
  printf '%s\n' "${STDFILES[@]#/}" | tar -C / --no-recursion -cf - -T - | tar -xf - -C "$ROOTFS"
  find "$ROOTFS$STDLIB" -xtype l -delete      # e.g. sitecustomize.py -> /etc/python3.11/...
  cat >"$ROOTFS/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
  cat >"$ROOTFS/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
  old_id=$("$DOCKER" image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  t1=$SECONDS
  tar -C "$ROOTFS" --numeric-owner --owner=0 --group=0 -c . |
    "$DOCKER" import \
      -c 'USER 65534:65534' -c 'WORKDIR /tmp' \
      -c 'ENV PATH=/usr/bin:/bin LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1' \
      -c 'CMD ["python3"]' \
      -c "LABEL $LABEL=$INPUTS_HASH" \
      -c "LABEL org.rlvr.sandbox.python=$($PY -c 'import platform; print(platform.python_version())')" \
      - "$IMAGE" >/dev/null
  log "imported $IMAGE in $((SECONDS - t1)) s ($(du -sh "$ROOTFS" | cut -f1) rootfs)"
  new_id=$("$DOCKER" image inspect -f '{{.Id}}' "$IMAGE")
  if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
    "$DOCKER" image rm "$old_id" >/dev/null 2>&1 || true   # fails harmlessly if still in use
  fi
  rm -rf "$ROOTFS"
fi

# ---- smoke test (always): the hardened run the sandbox uses must work
HARDEN=(--network none --read-only --tmpfs /tmp:size=64m --memory 256m --memory-swap 256m
        --pids-limit 64 --cap-drop ALL --security-opt no-new-privileges --init)
out=$("$DOCKER" run --rm "${HARDEN[@]}" "$IMAGE" python3 -c 'import json,re,math,fractions; print(1+1)' 2>&1) ||
  die "smoke run failed: $out"
[[ "$out" == 2 ]] || die "smoke run printed '$out', expected 2"
log "smoke test ok (hardened docker run printed 2)"

if [[ "$VERIFY" == 1 ]]; then
  fails=0
  check() {  # check NAME EXPECTED-REGEX docker-run-args...
    local name="$1" want="$2"; shift 2
    local t=$SECONDS o
    o=$(timeout 60 "$DOCKER" run --rm "${HARDEN[@]}" "$@" 2>&1) || true
    if [[ "$o" =~ $want ]]; then log "  [PASS] $name ($((SECONDS - t)) s): ${o//$'\n'/ | }"
    else log "  [FAIL] $name: got: ${o//$'\n'/ | }"; fails=$((fails + 1)); fi
  }
  log "verification:"
  check "non-root user" '^65534 65534$' "$IMAGE" python3 -c 'import os; print(os.getuid(), os.getgid())'
  check "network none" 'OSError|gaierror|unreachable' "$IMAGE" python3 -c \
    "import socket
try: socket.create_connection(('1.1.1.1', 80), timeout=3); print('CONNECTED')
except OSError as e: print('OSError', e)"
  check "read-only rootfs" 'Read-only file system' "$IMAGE" python3 -c "open('/usr/x','w')"
  check "tmpfs writable" '^ok$' "$IMAGE" python3 -c "open('/tmp/x','w').write('a'); print('ok')"
  # memory hog: no shell in the image, so check the exit status here (137 = OOM-killed)
  t=$SECONDS
  rc=0; "$DOCKER" run --rm "${HARDEN[@]}" "$IMAGE" python3 -c 'b = bytearray(1 << 30); print(len(b))' >/dev/null 2>&1 || rc=$?
  if [[ $rc == 137 || $rc == 1 ]]; then log "  [PASS] 1 GiB allocation under --memory 256m: exit $rc ($((SECONDS - t)) s)"
  else log "  [FAIL] 1 GiB allocation under --memory 256m: exit $rc"; fails=$((fails + 1)); fi
  # fork bomb: run detached for 8 s, watch the container's pid count and the host
  name="rlvr-forkbomb-$$"
  host_procs_before=$(ps -e --no-headers | wc -l)
  "$DOCKER" run -d --name "$name" "${HARDEN[@]}" "$IMAGE" python3 -c '
import os
while True:
    try:
        os.fork()
    except OSError:
        pass' >/dev/null
  max_pids=0
  for _ in $(seq 1 16); do
    sleep 0.5
    p=$("$DOCKER" stats --no-stream --format '{{.PIDs}}' "$name" 2>/dev/null || echo 0)
    ((p > max_pids)) && max_pids=$p
  done
  t=$(date +%s%N); "$PY" -c pass; host_py_ms=$((($(date +%s%N) - t) / 1000000))
  host_procs_during=$(ps -e --no-headers | wc -l)
  "$DOCKER" rm -f "$name" >/dev/null
  sleep 1
  host_procs_after=$(ps -e --no-headers | wc -l)
  if ((max_pids <= 64)); then
    log "  [PASS] fork bomb contained: max $max_pids pids in the container (limit 64); host processes" \
        "$host_procs_before before, $host_procs_during during, $host_procs_after after; host python3 -c pass took ${host_py_ms} ms during the bomb"
  else
    log "  [FAIL] fork bomb: $max_pids pids in the container"; fails=$((fails + 1))
  fi
  ((fails == 0)) || die "$fails verification check(s) failed"
  log "verification passed"
fi

log "done in $((SECONDS - T0)) s; image: $IMAGE ($("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE") bytes)"
echo "$IMAGE"
