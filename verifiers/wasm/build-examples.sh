#!/usr/bin/env bash
# Builds the example WASM verifier plugins (examples/*.c) into OUT_DIR
# (default: $RLVR_SANDBOX_CACHE/plugins, else ~/.cache/rlvr-sandbox/plugins).
#
#   verifiers/wasm/build-examples.sh [OUT_DIR]
#   rlvr verify --verifier wasm:$OUT_DIR/exact_match.wasm --input lines.jsonl
#
# Needs Debian's clang-14, lld-14 (wasm-ld), wasi-libc and the wasm32 compiler-rt builtins.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-${RLVR_SANDBOX_CACHE:-$HOME/.cache/rlvr-sandbox}/plugins}"
install_hint="apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32"

missing=()
command -v clang-14 >/dev/null 2>&1 || missing+=("clang-14")
command -v wasm-ld-14 >/dev/null 2>&1 || command -v wasm-ld >/dev/null 2>&1 || missing+=("wasm-ld (lld-14)")
[ -f /usr/include/wasm32-wasi/stdio.h ] || missing+=("wasi-libc headers (/usr/include/wasm32-wasi)")
[ -f /usr/lib/wasm32-wasi/libc.a ] || missing+=("wasi-libc (/usr/lib/wasm32-wasi/libc.a)")
if ! compgen -G "/usr/lib/llvm-14/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null; then
    missing+=("libclang_rt.builtins-wasm32.a (libclang-rt-14-dev-wasm32)")
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "build-examples.sh: missing: ${missing[*]}" >&2
    echo "install them with: $install_hint" >&2
    exit 1
fi

mkdir -p "$out"
for src in "$here"/examples/*.c; do
    name="$(basename "$src" .c)"
    clang-14 --target=wasm32-wasi -O2 -Wall -Wextra -o "$out/$name.wasm" "$src"
    echo "built $out/$name.wasm"
done
