"""Math-Verify on the benchmark pairs, one core, timeouts disabled (as in
../shared/notes/baselines.md). Writes one JSON line per pair: {"correct": bool, "ns": int}."""
import json
import sys
import time

from math_verify import parse, verify, LatexExtractionConfig, ExprExtractionConfig

pairs = [json.loads(l) for l in open(sys.argv[1])]
out = open(sys.argv[2], "w")
cfg = [LatexExtractionConfig(), ExprExtractionConfig()]
t_all = time.perf_counter()
for p in pairs:
    t = time.perf_counter()
    try:
        gold = parse("$" + p["gold"] + "$", extraction_config=cfg, parsing_timeout=None)
        pred = parse(p["response"], extraction_config=cfg, parsing_timeout=None)
        ok = bool(verify(gold, pred, timeout_seconds=None))
    except Exception:
        ok = False
    out.write(json.dumps({"correct": ok, "ns": int((time.perf_counter() - t) * 1e9)}) + "\n")
secs = time.perf_counter() - t_all
print(json.dumps({"pairs": len(pairs), "seconds": secs, "pairs_per_s": len(pairs) / secs}))
