#!/usr/bin/env bash
# Prepares what the lent GPU machine needs, in .device/ (git-ignored; the device tool carries
# it: `run(command="bash scripts/device-check.sh", carry=[".device"])`):
#   .device/rlvr.xz      the release binary built with CUDA (sm_90), stripped, xz-compressed
#                        (must stay under 60 MiB: a call carries 64 MiB at most)
#   .device/fixtures/    the tiny model fixtures with their PyTorch reference.json
# The lent machine has no Rust toolchain and no ../shared (../shared/notes/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rlvr-target}"
SHARED="${RLVR_SHARED:-../shared}"
eval "$(bash scripts/cuda-toolchain.sh)"
export CUDA_COMPUTE_CAP=90
cargo build --release --locked -p rlvr-cli --features cuda
mkdir -p .device
bin="$CARGO_TARGET_DIR/release/rlvr"
cp "$bin" .device/rlvr
strip .device/rlvr
rm -f .device/rlvr.xz
xz -9 -T2 .device/rlvr
size=$(stat -c %s .device/rlvr.xz)
echo "device-prepare: .device/rlvr.xz is $((size / 1024 / 1024)) MiB" >&2
[ "$size" -lt $((60 * 1024 * 1024)) ] || { echo "device-prepare: over 60 MiB" >&2; exit 1; }
rm -rf .device/fixtures
mkdir -p .device/fixtures
for d in "$SHARED"/fixtures/tiny-*; do
  [ -f "$d/reference.json" ] && cp -r "$d" .device/fixtures/
done
# The binary's CUDA dependencies, as the lent machine will resolve them.
readelf -d "$CARGO_TARGET_DIR/release/rlvr" | grep NEEDED >&2
du -sh .device >&2
