#!/usr/bin/env bash
# Build CPython 3.11 for wasm32-wasi from Debian's own source package with Debian's clang-14,
# for the rlvr WASM sandbox (issue 4). Everything is built and kept OUTSIDE the repository.
#
# Usage: sandbox/wasm/build-cpython.sh [--force] [--verify] [--no-verify] [--help]
#   (no flag)    build only if the outputs are missing, then verify the fresh build
#   --force      rebuild even if the outputs exist
#   --verify     (re)run the verification against the existing outputs (builds first if missing)
#   --no-verify  skip the wasmtime verification after a build (the stdlib is then shipped
#                as a zip without having been checked)
#
# Environment:
#   RLVR_SANDBOX_CACHE   cache dir (default: $HOME/.cache/rlvr-sandbox)
#   RLVR_WASM_JOBS       make -j value (default: nproc)
#   RLVR_KEEP_BUILD=1    keep the build tree ($CACHE/wasm-build) after a successful build
#
# Outputs (in $RLVR_SANDBOX_CACHE/wasm/):
#   python.wasm              CPython interpreter, .debug* custom sections stripped
#   lib/python311.zip        trimmed stdlib, legacy .pyc (compileall -b), zip STORED
#                            (or lib/python3.11/ unpacked if zipimport of the stdlib fails)
#   VERSION, manifest.json   versions, sha256 of python.wasm, sizes, build date and time
# The guest sees the stdlib when $OUT/lib is preopened (read-only) at /usr/local/lib and
# PYTHONHOME=/usr/local is set; run `python.wasm -B -s -u -` with the program on stdin.
#
# Needs root for apt-get when the build packages are missing, and network access to the
# Debian archive (apt) and PyPI (only for verification: pip install wasmtime into a venv
# under the cache dir).
set -euo pipefail

SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"
CACHE="${RLVR_SANDBOX_CACHE:-$HOME/.cache/rlvr-sandbox}"
OUT="$CACHE/wasm"
WORK="$CACHE/wasm-build"
VENV="$CACHE/venv-wasmtime"
JOBS="${RLVR_WASM_JOBS:-$(nproc)}"
HOST_PY=/usr/bin/python3.11
PKGS=(clang-14 lld-14 llvm-14 wasi-libc libclang-rt-14-dev-wasm32 dpkg-dev make xz-utils
      python3.11 python3.11-venv ca-certificates)
# Stdlib parts never useful in the sandbox (and tests are most of the size).
TRIM_DIRS=(test idlelib tkinter turtledemo ensurepip lib2to3/tests unittest/test
           ctypes/test distutils/tests sqlite3/test tkinter/test site-packages
           __phello__ config-3.11-wasm32-wasi lib-dynload)

FORCE=0; VERIFY=auto
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --verify) VERIFY=always ;;
    --no-verify) VERIFY=never ;;
    -h|--help) sed -n '2,/^set -euo/p' "$SCRIPT_PATH" | sed '$d'; exit 0 ;;
    *) echo "build-cpython.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf '[build-cpython] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Runs a step with its output in $LOG; on failure prints the log tail and exits non-zero.
LOG=""
step() {
  local name="$1"; shift
  log "$name ..."
  local t0=$SECONDS
  if ! "$@" >>"$LOG" 2>&1; then
    log "FAILED: $name (last 60 lines of $LOG follow)"
    tail -n 60 "$LOG" >&2 || true
    exit 1
  fi
  log "$name done in $((SECONDS - t0)) s"
}

outputs_present() {
  [[ -f "$OUT/python.wasm" && -f "$OUT/manifest.json" && -f "$OUT/VERSION" ]] &&
    { [[ -f "$OUT/lib/python311.zip" ]] || [[ -f "$OUT/lib/python3.11/os.pyc" || -f "$OUT/lib/python3.11/os.py" ]]; }
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.build-cpython.lock"
if ! flock -n 9; then
  log "another build holds $CACHE/.build-cpython.lock; waiting for it"
  flock 9
fi

# ---------------------------------------------------------------- verification (wasmtime-py)
ensure_wasmtime() {
  if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import wasmtime' 2>/dev/null; then
    return 0
  fi
  log "installing the wasmtime Python package (PyPI) into $VENV"
  rm -rf "$VENV"
  "$HOST_PY" -m venv "$VENV" >>"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; return 1; }
  "$VENV/bin/pip" install --disable-pip-version-check -q 'wasmtime>=20' >>"$LOG" 2>&1 ||
    { tail -n 30 "$LOG" >&2; return 1; }
}

# verify DIR: runs the smoke programs against DIR/python.wasm with DIR/lib preopened.
verify_dir() {
  local dir="$1"
  "$VENV/bin/python" - "$dir" <<'PY'
import os, sys, tempfile, time
import wasmtime
from wasmtime import Config, Engine, Linker, Module, Store, WasiConfig, ExitTrap

out = sys.argv[1]
lib = os.path.join(out, "lib")
t0 = time.time()
engine = Engine(Config())
module = Module.from_file(engine, os.path.join(out, "python.wasm"))
from importlib.metadata import version
print(f"  wasmtime-py {version('wasmtime')}: "
      f"module compiled in {time.time() - t0:.1f} s", flush=True)
linker = Linker(engine)
linker.define_wasi()

def run(code):
    with tempfile.TemporaryDirectory() as td:
        src, so, se = (os.path.join(td, n) for n in ("in.py", "out", "err"))
        with open(src, "w") as f:
            f.write(code)
        wc = WasiConfig()
        wc.argv = ["python", "-B", "-s", "-u", "-"]
        wc.env = [("PYTHONHOME", "/usr/local")]
        wc.stdin_file, wc.stdout_file, wc.stderr_file = src, so, se
        wc.preopen_dir(lib, "/usr/local/lib", False)  # fs_mutable=False: read-only
        store = Store(engine)
        store.set_wasi(wc)
        t = time.time()
        inst = linker.instantiate(store, module)
        code_ = 0
        try:
            inst.exports(store)["_start"](store)
        except ExitTrap as e:
            code_ = e.code
        dt = time.time() - t
        return code_, open(so).read(), open(se).read(), dt

checks = [
    ("sum", "print(sum(range(10)))",
     lambda c, o, e: c == 0 and o.strip() == "45"),
    ("stdlib imports",
     "import json, re, math, collections, itertools, functools, fractions, decimal, statistics\n"
     "import sys; assert 'python311.zip' in json.__file__ or 'python3.11' in json.__file__\n"
     "print('ok', json.__file__)",
     lambda c, o, e: c == 0 and o.startswith("ok")),
    ("socket blocked",
     "import socket\n"
     "try:\n"
     "    socket.create_connection(('1.1.1.1', 80), timeout=2)\n"
     "    print('CONNECTED')\n"
     "except BaseException as ex:\n"
     "    print('blocked:', type(ex).__name__, ex)\n",
     lambda c, o, e: "CONNECTED" not in o and ("blocked" in o or c != 0)),
    ("host file not visible",
     "try:\n    open('/etc/passwd').read(); print('READ')\n"
     "except OSError as ex:\n    print('blocked:', type(ex).__name__)\n",
     lambda c, o, e: "READ" not in o),
    ("stdlib read-only",
     "try:\n    open('/usr/local/lib/x', 'w'); print('WROTE')\n"
     "except OSError as ex:\n    print('blocked:', type(ex).__name__)\n",
     lambda c, o, e: "WROTE" not in o),
]
failed = 0; stdlib_failed = False
for name, code, ok in checks:
    c, o, e, dt = run(code)
    good = ok(c, o, e)
    failed += not good
    stdlib_failed |= (not good and name == "stdlib imports")
    tail = (o.strip() or e.strip().splitlines()[-1:] or [""])
    tail = tail if isinstance(tail, str) else tail[0]
    print(f"  [{'PASS' if good else 'FAIL'}] {name}: exit={c} {dt*1000:.0f} ms: {tail[:150]}",
          flush=True)
    if not good:
        print("    stderr:", e[-2000:], flush=True)
# exit 3: the stdlib could not be imported (the caller may try another layout); 1: other failure
sys.exit(3 if stdlib_failed else 1 if failed else 0)
PY
}

if [[ "$FORCE" == 0 ]] && outputs_present; then
  log "up to date: $OUT (use --force to rebuild)"
  if [[ "$VERIFY" == always ]]; then
    LOG="$CACHE/verify-wasm.log"; : >"$LOG"
    ensure_wasmtime || die "could not install wasmtime-py for verification"
    log "verifying $OUT"
    verify_dir "$OUT" || die "verification FAILED for $OUT"
    log "verification passed"
  fi
  echo "$OUT"
  exit 0
fi

# ---------------------------------------------------------------- build
T_START=$SECONDS
rm -rf "$WORK"
mkdir -p "$WORK"
LOG="$WORK/build.log"; : >"$LOG"
log "building CPython for wasm32-wasi in $WORK (log: $LOG)"

# 1. Build dependencies from Debian.
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing packages: ${missing[*]} (run as root or: apt-get install -y ${missing[*]})"
  install_pkgs() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" ||
      { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }
  }
  step "apt-get install ${missing[*]}" install_pkgs
fi
for t in clang-14 wasm-ld-14 llvm-ar-14 llvm-ranlib-14 llvm-objcopy-14 "$HOST_PY"; do
  command -v "$t" >/dev/null || die "$t not found after installing ${PKGS[*]}"
done
[[ -f /usr/lib/wasm32-wasi/libc.a ]] || die "wasi-libc missing (/usr/lib/wasm32-wasi/libc.a)"

# 2. Debian source package, fetched through a private apt config (/etc/apt stays untouched).
APTDIR="$WORK/apt"
mkdir -p "$APTDIR/sources.list.d" "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$WORK/src"
cat >"$APTDIR/sources.list.d/debian-src.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
APT_OPTS=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$APTDIR/sources.list.d"
          -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache"
          -o APT::Sandbox::User=root -o Acquire::Retries=2)
step "apt-get update (private deb-src lists)" apt-get "${APT_OPTS[@]}" update
fetch_source() {
  # Newest version first; a mirror may lack the newest (e.g. a security upload), so fall back.
  local versions v
  versions=$(apt-cache "${APT_OPTS[@]}" madison python3.11 | awk -F'|' '/Sources/ {gsub(/ /,"",$2); print $2}' |
             sort -u | sort -r -V)
  [[ -n "$versions" ]] || { echo "no python3.11 source package in the lists"; return 1; }
  for v in $versions; do
    echo "trying python3.11=$v"
    if (cd "$WORK/src" && apt-get "${APT_OPTS[@]}" source --download-only "python3.11=$v"); then
      echo "$v" >"$WORK/src/debian-version"; return 0
    fi
    rm -f "$WORK/src"/python3.11_*
  done
  return 1
}
step "apt-get source --download-only python3.11" fetch_source
DEB_VERSION=$(cat "$WORK/src/debian-version")
step "dpkg-source -x (applies Debian's patches)" \
  dpkg-source -x "$WORK/src/python3.11_${DEB_VERSION#*:}.dsc" "$WORK/src/cpython"
SRC="$WORK/src/cpython"
CPY_VERSION=$(sed -n 's/^#define PY_VERSION[[:space:]]*"\(.*\)".*/\1/p' "$SRC/Include/patchlevel.h")
log "source: Debian python3.11 $DEB_VERSION (CPython $CPY_VERSION)"

# 3. A fake WASI SDK: wrappers around Debian's clang-14, which finds /usr/{include,lib}/wasm32-wasi.
SDK="$WORK/wasi-sdk/bin"; mkdir -p "$SDK"
for w in clang clang++; do
  printf '#!/bin/sh\nexec %s --target=wasm32-wasi "$@"\n' "$([[ $w == clang ]] && echo clang-14 || echo clang++-14)" >"$SDK/$w"
done
printf '#!/bin/sh\nexec clang-14 --target=wasm32-wasi -E "$@"\n' >"$SDK/clang-cpp"
chmod +x "$SDK"/clang "$SDK"/clang++ "$SDK"/clang-cpp
ln -sf "$(command -v wasm-ld-14)" "$SDK/wasm-ld"
ln -sf "$(command -v llvm-ar-14)" "$SDK/llvm-ar"
ln -sf "$(command -v llvm-ranlib-14)" "$SDK/ranlib"
ln -sf "$(command -v llvm-ranlib-14)" "$SDK/llvm-ranlib"

# 4. configure + make + make install (out of tree, builddir/wasi).
BUILD="$SRC/builddir/wasi"; STAGE="$WORK/stage"
mkdir -p "$BUILD" "$STAGE"
touch "$SRC/Modules/Setup.local"
export PATH="$SDK:$PATH"
export CC="$SDK/clang" CPP="$SDK/clang-cpp" CXX="$SDK/clang++" LDSHARED="$SDK/clang"
export AR="$SDK/llvm-ar" RANLIB="$SDK/ranlib" PKG_CONFIG_PATH="" PKG_CONFIG_LIBDIR=""
export CONFIG_SITE="$SRC/Tools/wasm/config.site-wasm32-wasi"
do_configure() {
  cd "$BUILD" && ../../configure --host=wasm32-unknown-wasi --build="$(../../config.guess)" \
    --with-build-python="$HOST_PY" --prefix=/usr/local --disable-test-modules \
    --without-ensurepip --disable-ipv6
}
T_BUILD=$SECONDS
step "configure" do_configure
step "make -j$JOBS (several minutes)" make -C "$BUILD" -j"$JOBS"
# Debian's patched libinstall expects _sysconfigdata_$(ABIFLAGS)_$(MULTIARCH).py, but the
# cross build generates _sysconfigdata_$(ABIFLAGS)_$(MACHDEP)_$(MULTIARCH).py
# (_PYTHON_SYSCONFIGDATA_NAME in PYTHON_FOR_BUILD). Provide the name install wants.
fix_sysconfigdata() {
  local pbd abi multi machdep want have
  pbd="$BUILD/$(cat "$BUILD/pybuilddir.txt")"
  abi=$(sed -n 's/^ABIFLAGS=[[:space:]]*//p' "$BUILD/Makefile" | tr -d '[:space:]')
  multi=$(sed -n 's/^MULTIARCH=[[:space:]]*//p' "$BUILD/Makefile" | tr -d '[:space:]')
  machdep=$(sed -n 's/^MACHDEP=[[:space:]]*//p' "$BUILD/Makefile" | tr -d '[:space:]')
  want="$pbd/_sysconfigdata_${abi}_${multi}.py"
  have="$pbd/_sysconfigdata_${abi}_${machdep}_${multi}.py"
  if [[ ! -f "$want" && -f "$have" ]]; then
    log "providing $(basename "$want") (copy of $(basename "$have")) for Debian's libinstall"
    cp "$have" "$want"
  fi
}
fix_sysconfigdata
step "make install DESTDIR=$STAGE" make -C "$BUILD" install DESTDIR="$STAGE"
BUILD_SECONDS=$((SECONDS - T_BUILD))
[[ -f "$BUILD/python.wasm" ]] || die "no python.wasm after make (see $LOG)"
grep -E '^(The necessary bits|Failed to build|Following modules built successfully)' -A3 "$LOG" >&2 || true

# 5. Assemble the new output in a temp dir, then swap it in atomically-ish.
NEW="$WORK/out"; rm -rf "$NEW"; mkdir -p "$NEW/lib"
RAW_SIZE=$(stat -c %s "$BUILD/python.wasm")
step "strip debug sections (llvm-objcopy-14 --strip-debug)" \
  llvm-objcopy-14 --strip-debug "$BUILD/python.wasm" "$NEW/python.wasm"

STDLIB="$WORK/stdlib"; rm -rf "$STDLIB"
cp -a "$STAGE/usr/local/lib/python3.11" "$STDLIB"
for d in "${TRIM_DIRS[@]}"; do rm -rf "${STDLIB:?}/$d"; done
find "$STDLIB" -name __pycache__ -type d -prune -exec rm -rf {} +
find "$STDLIB" -xtype l -delete   # dangling links
step "compileall -b (host $HOST_PY)" "$HOST_PY" -m compileall -b -q -j0 \
  -x 'bad_coding|badsyntax|lib2to3/tests/data' "$STDLIB"
# Ship only the bytecode for modules that compiled (smaller, faster import); keep data files.
find "$STDLIB" -name '*.py' -exec sh -c 'for f; do [ -f "${f}c" ] && rm -f "$f"; done' sh {} +
make_zip() {
  "$HOST_PY" - "$STDLIB" "$NEW/lib/python311.zip" <<'PY'
import os, sys, zipfile
root, dest = sys.argv[1], sys.argv[2]
names = []
for d, dirs, files in os.walk(root):
    dirs.sort()
    for f in sorted(files):
        p = os.path.join(d, f)
        names.append((os.path.relpath(p, root), p))
with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as z:
    for arc, p in names:
        zi = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))  # reproducible
        zi.compress_type = zipfile.ZIP_STORED
        zi.external_attr = 0o644 << 16
        with open(p, "rb") as f:
            z.writestr(zi, f.read())
print(f"{len(names)} files")
PY
}
step "zip the stdlib (STORED)" make_zip
STDLIB_FORMAT=zip

# 6. Verify the result (and fall back to an unpacked stdlib if zipimport does not work).
VERIFIED=false
if [[ "$VERIFY" != never ]]; then
  ensure_wasmtime || die "could not install wasmtime-py for verification (use --no-verify to skip)"
  log "verifying with wasmtime-py (stdlib as zip)"
  rc=0; verify_dir "$NEW" 2>&1 | tee -a "$LOG" >&2 || rc=${PIPESTATUS[0]}
  if [[ $rc == 0 ]]; then
    VERIFIED=true
  elif [[ $rc != 3 ]]; then
    die "verification FAILED (log: $LOG)"
  else
    log "importing the stdlib from the zip failed; trying an unpacked lib/python3.11 tree"
    rm -f "$NEW/lib/python311.zip"; cp -a "$STDLIB" "$NEW/lib/python3.11"
    STDLIB_FORMAT=dir
    if verify_dir "$NEW" 2>&1 | tee -a "$LOG" >&2; then
      VERIFIED=true
    else
      die "verification FAILED with both stdlib layouts (log: $LOG)"
    fi
  fi
fi

# 7. Manifest.
WASM_SHA=$(sha256sum "$NEW/python.wasm" | cut -d' ' -f1)
WASM_SIZE=$(stat -c %s "$NEW/python.wasm")
LIB_SIZE=$(du -sb "$NEW/lib" | cut -f1)
TOTAL_SECONDS=$((SECONDS - T_START))
CLANG_VERSION=$(clang-14 --version | head -1)
WASI_LIBC_VERSION=$(dpkg-query -W -f='${Version}' wasi-libc)
"$HOST_PY" - "$NEW" <<PY
import json, os, sys, datetime
m = {
  "cpython_version": "$CPY_VERSION",
  "debian_source_package": "python3.11",
  "debian_source_version": "$DEB_VERSION",
  "target": "wasm32-wasi (wasi_snapshot_preview1)",
  "compiler": "$CLANG_VERSION",
  "wasi_libc": "$WASI_LIBC_VERSION",
  "python_wasm": "python.wasm",
  "python_wasm_sha256": "$WASM_SHA",
  "python_wasm_bytes": $WASM_SIZE,
  "python_wasm_unstripped_bytes": $RAW_SIZE,
  "stdlib_format": "$STDLIB_FORMAT",
  "stdlib_path": "lib/python311.zip" if "$STDLIB_FORMAT" == "zip" else "lib/python3.11",
  "stdlib_bytes": $LIB_SIZE,
  "guest_layout": {"preopen": {"lib": "/usr/local/lib"}, "env": {"PYTHONHOME": "/usr/local"},
                   "argv": ["python", "-B", "-s", "-u", "-"]},
  "verified": $( [[ $VERIFIED == true ]] && echo True || echo False ),
  "build_seconds": $BUILD_SECONDS,
  "total_seconds": $TOTAL_SECONDS,
  "build_date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
}
json.dump(m, open(os.path.join(sys.argv[1], "manifest.json"), "w"), indent=2)
open(os.path.join(sys.argv[1], "VERSION"), "w").write(
    f"CPython {m['cpython_version']} wasm32-wasi (Debian python3.11 {m['debian_source_version']})\n")
PY

rm -rf "$OUT.old"
[[ -e "$OUT" ]] && mv "$OUT" "$OUT.old"
mv "$NEW" "$OUT"
rm -rf "$OUT.old"
cp "$LOG" "$CACHE/build-cpython.log"
if [[ "${RLVR_KEEP_BUILD:-0}" != 1 ]]; then rm -rf "$WORK"; fi

log "built in $TOTAL_SECONDS s (configure+make+install: $BUILD_SECONDS s); python.wasm $WASM_SIZE bytes" \
    "(unstripped $RAW_SIZE), stdlib ($STDLIB_FORMAT) $LIB_SIZE bytes, verified=$VERIFIED"
echo "$OUT"
