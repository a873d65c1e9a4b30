#!/usr/bin/env bash
# rlvr vs PyTorch/transformers on the same machine, same shapes, same thread count:
# greedy decoding tok/s (32-token prompt, 256 new tokens, batch 1 and 8) and one
# policy-gradient train step over 8×128 tokens, on the tiny Qwen2 fixture and a random
# 10M-parameter Qwen2. Prints a table with the ratios.
#
#   bash bench/vs_pytorch.sh            # THREADS="1 2" by default; REPEATS=3
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${RLVR_SHARED:-../shared}"
VENV="${RLVR_BENCH_VENV:-$HOME/.cache/rlvr-bench-venv}"
THREADS="${THREADS:-1 2}"
REPEATS="${REPEATS:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rlvr-target}"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch, transformers' 2>/dev/null; then
  echo "== installing torch + transformers into $VENV (PyPI)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch transformers safetensors
fi
PY="$VENV/bin/python"
cargo build -q --release -p rlvr-cli
RLVR="$CARGO_TARGET_DIR/release/rlvr"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" bench/pytorch_bench.py --make-10m "$tmp/qwen2-10m" --tokenizer-from "$SHARED/fixtures/tiny-qwen2" 2>/dev/null

for threads in $THREADS; do
export RAYON_NUM_THREADS="$threads" CANDLE_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads"
for model in "$SHARED/fixtures/tiny-qwen2" "$tmp/qwen2-10m"; do
  RLVR_LOG=warn "$RLVR" model bench --model "$model" --repeats "$REPEATS" > "$tmp/rlvr.json"
  "$PY" bench/pytorch_bench.py --model "$model" --threads "$threads" --repeats "$REPEATS" > "$tmp/torch.json" 2>/dev/null
  "$PY" - "$tmp/rlvr.json" "$tmp/torch.json" "$(basename "$model")" <<'PYEOF'
import json, sys
r, t, name = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
print(f"## {name} ({r['parameters']:,} parameters, {r['threads']} thread(s); torch {t['torch']}, transformers {t['transformers']})")
print(f"{'measure':<28}{'rlvr':>12}{'pytorch':>12}{'rlvr/pytorch':>14}")
for b, v in r["sample_tok_s"].items():
    p = t["sample_tok_s"][b]
    print(f"{'greedy tok/s, batch ' + b:<28}{v:>12.0f}{p:>12.0f}{v / p:>13.2f}x")
rv, pv = r["train_step_ms"], t["train_step_ms"]
print(f"{'train step 8x128, ms':<28}{rv:>12.1f}{pv:>12.1f}{pv / rv:>13.2f}x (speed-up)")
PYEOF
done
done
