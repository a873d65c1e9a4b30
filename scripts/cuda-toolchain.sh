#!/usr/bin/env bash
# The CUDA 13.0 toolchain for building rlvr's `cuda` feature on a machine without a GPU or a
# CUDA install, cached outside the clone:
#   eval "$(bash scripts/cuda-toolchain.sh)"
#   cargo build --release -p rlvr-cli --features cuda
#
# 1. nvcc and the headers from NVIDIA's PyPI wheels, PINNED to CUDA 13.0 (nvcc >= 13.1 emits
#    PTX 9.1, which the lent machines' driver 580 rejects): ../shared/notes/gpu.md.
# 2. Link stubs for the libraries cudarc links by soname (libcuda.so.1, libnvrtc.so.13,
#    libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libnccl.so.2): every function cudarc
#    declares, each returning an error code (cuInit: CUDA_ERROR_NO_DEVICE), so a cuda-featured
#    binary links here and, with the stubs on LD_LIBRARY_PATH, runs on CPU: `Device::new_cuda`
#    fails cleanly and CUDA tests skip. libcudart.so.13 (which candle-kernels' compiled kernels
#    need, with versioned internal symbols) is the wheel's real one: it loads without a GPU.
#    On a real machine the driver's and the wheels' libraries come first on LD_LIBRARY_PATH
#    instead (scripts/device-check.sh).
#
# Prints only `export` lines on stdout (progress on stderr). Cache: $RLVR_CUDA_ROOT, default
# $HOME/.cache/rlvr-cuda/13.0. Needs python3 with pip (downloads from PyPI) and cc.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT="${RLVR_CUDA_ROOT:-$HOME/.cache/rlvr-cuda/13.0}"
CU="$ROOT/nvidia/cu13"
WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
)
log() { echo "cuda-toolchain: $*" >&2; }

install_wheels() {
  local tmp
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/rlvr-cuda-wheels.XXXXXX")"
  log "downloading ${WHEELS[*]}"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "${WHEELS[@]}" >&2
  mkdir -p "$ROOT"
  python3 - "$tmp" "$ROOT" <<'EOF'
import pathlib, sys, zipfile
src, dst = map(pathlib.Path, sys.argv[1:])
for whl in sorted(src.glob("*.whl")):
    with zipfile.ZipFile(whl) as z:
        z.extractall(dst)
EOF
  rm -rf "$tmp"
  chmod +x "$CU"/bin/* "$CU"/nvvm/bin/* 2>/dev/null || true
  [ -e "$CU/lib/libcudart.so" ] || ln -s libcudart.so.13 "$CU/lib/libcudart.so"
  "$CU/bin/nvcc" --version | grep -q "release 13.0" || { log "nvcc is not 13.0"; exit 1; }
  touch "$ROOT/.wheels-complete"
}

# The cudarc sources the stubs are generated from (the version in Cargo.lock).
cudarc_src() {
  local version
  version="$(awk '/^name = "cudarc"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)"
  [ -n "$version" ] || { log "cudarc is not in Cargo.lock"; exit 1; }
  local dir
  dir="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$version" 2>/dev/null | head -1)"
  if [ -z "$dir" ]; then
    cargo fetch -q >&2
    dir="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$version" | head -1)"
  fi
  echo "$dir"
}

make_stubs() {
  local src="$1" out="$CU/lib/stubs"
  mkdir -p "$out"
  python3 - "$src" "$out" <<'EOF'
import pathlib, re, subprocess, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
# module of cudarc -> (soname, error code every stub returns)
LIBS = {
    "driver": ("libcuda.so.1", 100),        # CUDA_ERROR_NO_DEVICE
    "nvrtc": ("libnvrtc.so.13", 7),         # NVRTC_ERROR_BUILTIN_OPERATION_FAILURE
    "cublas": ("libcublas.so.13", 1),       # CUBLAS_STATUS_NOT_INITIALIZED
    "cublaslt": ("libcublasLt.so.13", 1),
    "curand": ("libcurand.so.10", 203),     # CURAND_STATUS_INITIALIZATION_FAILED
    "nccl": ("libnccl.so.2", 1),            # ncclUnhandledCudaError
}
MSG = "static const char MSG[] = \"rlvr link stub: no CUDA library on this machine\";\n"
# functions whose result is a string, or that hand one out: they must not return an int
SPECIAL = {
    "cuGetErrorString": "int cuGetErrorString(int e, const char **s) { (void)e; *s = MSG; return 0; }",
    "cuGetErrorName": "int cuGetErrorName(int e, const char **s) { (void)e; *s = MSG; return 0; }",
    "nvrtcGetErrorString": "const char *nvrtcGetErrorString(int e) { (void)e; return MSG; }",
    "cublasGetStatusString": "const char *cublasGetStatusString(int e) { (void)e; return MSG; }",
    "cublasGetStatusName": "const char *cublasGetStatusName(int e) { (void)e; return MSG; }",
    "cublasLtGetStatusString": "const char *cublasLtGetStatusString(int e) { (void)e; return MSG; }",
    "cublasLtGetStatusName": "const char *cublasLtGetStatusName(int e) { (void)e; return MSG; }",
    "cudaGetErrorString": "const char *cudaGetErrorString(int e) { (void)e; return MSG; }",
    "cudaGetErrorName": "const char *cudaGetErrorName(int e) { (void)e; return MSG; }",
    "ncclGetErrorString": "const char *ncclGetErrorString(int e) { (void)e; return MSG; }",
    "ncclGetLastError": "const char *ncclGetLastError(void *c) { (void)c; return MSG; }",
}
for mod, (soname, code) in LIBS.items():
    text = (src / "src" / mod / "sys" / "mod.rs").read_text()
    names = sorted(set(re.findall(r"^\s+fn (\w+)\(", text, re.M)))
    body = [MSG]
    for n in names:
        body.append(SPECIAL.get(n, f"int {n}(void) {{ return {code}; }}"))
    c = out / f"{mod}.c"
    c.write_text("\n".join(body) + "\n")
    so = out / soname
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-w", f"-Wl,-soname,{soname}",
                    "-o", str(so), str(c)], check=True)
    c.unlink()
    link = out / (soname.split(".so")[0] + ".so")
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(soname)
    print(f"cuda-toolchain: {soname}: {len(names)} stub functions", file=sys.stderr)
EOF
}

if [ ! -f "$ROOT/.wheels-complete" ]; then
  install_wheels
fi
SRC="$(cudarc_src)"
STAMP="$CU/lib/stubs/.from-$(basename "$SRC")-v2"
if [ ! -f "$STAMP" ]; then
  log "generating link stubs from $SRC"
  rm -rf "$CU/lib/stubs"
  make_stubs "$SRC"
  touch "$STAMP"
fi

cat <<EOF
export CUDA_HOME="$CU"
export PATH="$CU/bin:\$PATH"
export CUDA_COMPUTE_CAP="\${CUDA_COMPUTE_CAP:-90}"
export CUDARC_CUDA_VERSION=13000
export CUDAFORGE_THREADS="\${CUDAFORGE_THREADS:-$(nproc)}"
export LD_LIBRARY_PATH="$CU/lib/stubs:$CU/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
EOF
