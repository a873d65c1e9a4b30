#!/usr/bin/env bash
# The one-shot check on a lent GPU machine (≈ 6 minutes), after scripts/device-prepare.sh:
#   run(command="bash scripts/device-check.sh", carry=[".device"], timeout_s=540)
# Every stage writes under $OUT (default ./device-out) and the run goes on when one fails:
#   1. environment: nvidia-smi, the libraries the binary needs (`ldd -r`);
#   2. `rlvr selftest device --device cuda` on the fixtures (CPU vs CUDA, every kernel module);
#   3. determinism: the same 2 GRPO steps twice on the GPU give the same metrics;
#   4. decode and train throughput and peak memory of a randomly initialised
#      Qwen2.5-0.5B-shaped model in bf16, rlvr and PyTorch on the same GPU (ratios);
#   5. 20 GRPO steps of the built-in task on the GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/device-out}"
mkdir -p "$OUT"
PY="${RLVR_TORCH_PY:-/opt/torch/.venv/bin/python}"
log() { echo "== $(date +%T) $*" | tee -a "$OUT/summary.txt"; }

work="$(mktemp -d)"
"$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
  .device/rlvr.xz "$work/rlvr" && chmod +x "$work/rlvr"
RLVR="$work/rlvr"
SP="$("$PY" -c 'import site; print(site.getsitepackages()[0])')"
LD_LIBRARY_PATH="$(find "$SP/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH RLVR_LOG=warn RLVR_CACHE="$work/cache"
export RLVR_SHARED="$PWD/.device"

log "1. environment"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$OUT/summary.txt"
ldd -r "$RLVR" > "$OUT/ldd.txt" 2>&1
grep -E 'not found|undefined' "$OUT/ldd.txt" | tee -a "$OUT/summary.txt" || log "ldd: every library and symbol resolved"
ldd /bin/true | grep libc | tee -a "$OUT/summary.txt"

# Peak GPU memory of a command, polled by nvidia-smi every 100 ms (MiB).
peak_of() {
  local log="$1"; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$log" &
  local pid=$!
  "$@"; local rc=$?
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  echo "peak GPU memory: $(sort -n "$log" | tail -1) MiB (nvidia-smi)" | tee -a "$OUT/summary.txt"
  return $rc
}

log "2. selftest device"
timeout 120 "$RLVR" selftest device --device cuda --fixture .device/fixtures/* \
  > "$OUT/selftest.txt" 2>&1
echo "rc=$?" >> "$OUT/selftest.txt"
tail -4 "$OUT/selftest.txt" | tee -a "$OUT/summary.txt"

log "3. determinism of two GRPO steps"
for r in a b; do
  timeout 120 "$RLVR" train --device cuda --run-dir "$work/det-$r" --set trainer.steps=2 \
    --set eval.before=false --set eval.after=false > "$OUT/det-$r.json" 2>"$OUT/det-$r.err"
done
"$PY" - "$work/det-a/metrics.jsonl" "$work/det-b/metrics.jsonl" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, sys
rows = [[json.loads(l) for l in open(p)] for p in sys.argv[1:]]
def strip(m): return {k: v for k, v in m.items() if not k.startswith("timing/") and "_s" != k[-2:]}
same = [strip(a) == strip(b) for a, b in zip(*rows)]
print(f"determinism: {sum(same)}/{len(same)} steps identical (timings excluded)")
PYEOF

log "4. Qwen2.5-0.5B shape: rlvr vs PyTorch, bf16"
M="$work/qwen05b"
"$PY" bench/pytorch_bench.py --make-qwen05b "$M" --tokenizer-from .device/fixtures/tiny-qwen2 2>>"$OUT/bench.err"
peak_of "$OUT/rlvr-mem.log" timeout 150 "$RLVR" model bench --model "$M" --device cuda --dtype bf16 \
  --batch 1,64 --new-tokens 128 --train-batch 4 --train-seq 1024 --repeats 2 \
  > "$OUT/rlvr-bench.json" 2>>"$OUT/bench.err"
peak_of "$OUT/torch-mem.log" timeout 150 "$PY" bench/pytorch_bench.py --model "$M" --device cuda --dtype bf16 \
  --batch 1,64 --new-tokens 128 --train-batch 4 --train-seq 1024 --repeats 2 \
  > "$OUT/torch-bench.json" 2>>"$OUT/bench.err"
"$PY" - "$OUT/rlvr-bench.json" "$OUT/torch-bench.json" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, sys
try:
    r, t = (json.load(open(p)) for p in sys.argv[1:])
except Exception as e:
    print(f"bench incomplete: {e}"); sys.exit(0)
print(f"{'measure':<30}{'rlvr':>12}{'pytorch':>12}{'rlvr/pytorch':>14}")
for b, v in r["sample_tok_s"].items():
    p = t["sample_tok_s"][b]
    print(f"{'greedy tok/s, batch ' + b:<30}{v:>12.0f}{p:>12.0f}{v / p:>13.2f}x")
rv, pv = r["train_step_ms"], t["train_step_ms"]
print(f"{'train step 4x1024, ms':<30}{rv:>12.1f}{pv:>12.1f}{rv / pv:>13.2f}x (time ratio)")
print(f"pytorch peak allocated: {t.get('train_peak_allocated_gib')} GiB")
PYEOF

log "5. 20 GRPO steps of the built-in task on the GPU"
timeout 200 "$RLVR" train --device cuda --run-dir "$work/grpo20" --set trainer.steps=20 \
  > "$OUT/grpo20.json" 2>"$OUT/grpo20.err"
"$PY" - "$OUT/grpo20.json" "$work/grpo20/metrics.jsonl" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, sys
try:
    s = json.load(open(sys.argv[1]))
    m = [json.loads(l) for l in open(sys.argv[2])]
except Exception as e:
    print(f"grpo20 incomplete: {e}"); sys.exit(0)
print("heldout before/after:", s.get("eval_before", {}).get("accuracy"), s.get("eval_after", {}).get("accuracy"))
print("step s (median):", sorted(x["timing/step_s"] for x in m)[len(m) // 2], "steps:", len(m))
PYEOF
cp "$work/grpo20/metrics.jsonl" "$OUT/grpo20-metrics.jsonl" 2>/dev/null
log "done"
