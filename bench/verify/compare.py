"""Side-by-side figures: throughput of both, the ratio, agreement (overall, on the easy and the
hard pairs apart, per hard family), rlvr's latency."""
import json
import sys

pairs = [json.loads(l) for l in open(sys.argv[1])]
mv = [json.loads(l) for l in open(sys.argv[2])]
rl = [json.loads(l) for l in open(sys.argv[3])]
mv_sum = json.loads(sys.argv[4])
rl_sum = json.loads(sys.argv[5])
assert len(pairs) == len(mv) == len(rl)
n = len(pairs)
agree = sum(a["correct"] == b["correct"] for a, b in zip(mv, rl))
mv_right = [k for k in range(n) if mv[k]["correct"] == pairs[k]["label"]]
agree_mv_right = sum(rl[k]["correct"] == mv[k]["correct"] for k in mv_right)
rl_right = sum(rl[k]["correct"] == pairs[k]["label"] for k in range(n))
print(f"pairs: {n} ({sum(p['label'] for p in pairs)} equal, {sum(not p['label'] for p in pairs)} unequal)")
print(f"Math-Verify: {mv_sum['pairs_per_s']:.1f} pairs/s, right on {len(mv_right)}/{n} ({100*len(mv_right)/n:.1f}%)")
print(f"rlvr math:   {rl_sum['pairs_per_s']:.0f} pairs/s, right on {rl_right}/{n} ({100*rl_right/n:.1f}%); "
      f"latency p50 {rl_sum['p50_us']:.1f} us, p99 {rl_sum['p99_us']:.1f} us, max {rl_sum['max_us']:.1f} us")
print(f"throughput ratio rlvr / Math-Verify: {rl_sum['pairs_per_s'] / mv_sum['pairs_per_s']:.0f}x")
print(f"agreement: {agree}/{n} ({100*agree/n:.2f}%) overall; "
      f"{agree_mv_right}/{len(mv_right)} ({100*agree_mv_right/max(1,len(mv_right)):.2f}%) where Math-Verify is right")
# agreement per set (easy: gold rewritings; hard: the families), and per hard family
groups = {}
for k, p in enumerate(pairs):
    keys = [p.get("set", "easy")]
    if p.get("family"):
        keys.append(f"  hard/{p['family']}")
    for key in keys:
        g = groups.setdefault(key, [0, 0, 0, 0])
        g[0] += 1
        g[1] += mv[k]["correct"] == rl[k]["correct"]
        right = mv[k]["correct"] == p["label"]
        g[2] += right
        g[3] += right and mv[k]["correct"] == rl[k]["correct"]
for key in sorted(groups, key=lambda x: (x.strip().split("/")[0] != "easy", x.strip())):
    t, a, r, ar = groups[key]
    print(f"{key}: agreement {a}/{t} ({100*a/t:.2f}%); {ar}/{r} ({100*ar/max(1,r):.2f}%) where Math-Verify is right")
dis = [k for k in range(n) if mv[k]["correct"] != rl[k]["correct"]]
for k in dis[:40]:
    print(f"  disagree (label {pairs[k]['label']}, Math-Verify {mv[k]['correct']}, rlvr {rl[k]['correct']}): "
          f"gold {pairs[k]['gold']!r} vs {pairs[k]['response']!r}")
if len(dis) > 40:
    print(f"  ... {len(dis) - 40} more")
wrong = [k for k in range(n) if rl[k]["correct"] != pairs[k]["label"]]
for k in wrong[:40]:
    print(f"  rlvr differs from the label {pairs[k]['label']} (Math-Verify {mv[k]['correct']}, rlvr status {rl[k]['status']}): "
          f"gold {pairs[k]['gold']!r} vs {pairs[k]['response']!r}")
