"""Builds (gold, response, label) pairs from ../shared/datasets for the verifier benchmark.

Easy pairs (`"set": "easy"`): label = True for the gold written as is or rewritten
equivalently, False for another problem's different gold. Then the hard pairs of
`hard_pairs.jsonl` (`"set": "hard"`, with their `family`; label = the label they were built
with). Written to stdout as JSONL.
"""
import json
import os
import random
import re
import sys

shared = os.environ.get("RLVR_SHARED") or os.path.join(os.path.dirname(__file__), "../../../shared")
rng = random.Random(0)


def rows(name):
    with open(os.path.join(shared, "datasets", name, "test.jsonl")) as f:
        return [json.loads(l) for l in f if l.strip()]


def rewrite(g):
    """A cheap equivalent rewriting (or the gold itself)."""
    if "\\dfrac" in g:
        return g.replace("\\dfrac", "\\frac")
    if "\\frac" in g:
        return g.replace("\\frac", "\\dfrac")
    m = re.fullmatch(r"-?\d+", g)
    if m:
        return g + ".0"
    thousands = re.fullmatch(r"\d{1,3}(,\d{3})+", g)
    if "," in g and "\\!" not in g and "\\in" not in g and not thousands and not g.startswith(("(", "[", "\\")):
        return ", ".join(reversed([p.strip() for p in g.split(",")]))
    return g.replace(" ", "")


pairs = []
golds = []
for ds in ["math500", "aime24", "aime25", "amc23"]:
    golds += [str(r["answer"]) for r in rows(ds)]
gsm = [r["answer"].split("####")[-1].strip() for r in rows("gsm8k")][:300]
golds += gsm
for k, g in enumerate(golds):
    pairs.append((g, f"Therefore the final answer is $\\boxed{{{g}}}$.", True))
    pairs.append((g, f"So we get $\\boxed{{{rewrite(g)}}}$.", True))
    other = golds[(k + 1 + rng.randrange(len(golds) - 1)) % len(golds)]
    if other.replace(" ", "") != g.replace(" ", ""):
        pairs.append((g, f"The result is $\\boxed{{{other}}}$.", False))
# the hand-written tricky pairs of crates/rlvr-verify/tests/pairs.rs
table = os.path.join(os.path.dirname(__file__), "../../crates/rlvr-verify/tests/pairs.rs")
row = re.compile(r'^\s*\("((?:[^"\\]|\\.)*)",\s*"((?:[^"\\]|\\.)*)",\s*(true|false)\),')
for line in open(table):
    m = row.match(line)
    if m:
        unesc = lambda x: x.replace("\\\\", "\x00").replace('\\"', '"').replace("\x00", "\\")
        pairs.append((unesc(m[1]), f"The answer is $\\boxed{{{unesc(m[2])}}}$.", m[3] == "true"))
for g, r, lab in pairs:
    print(json.dumps({"gold": g, "response": r, "label": lab, "set": "easy"}))
# the hard pairs (families of number formats, relations, structures, extraction, non-answers),
# labelled by construction; Math-Verify's verdicts are in the file too but are recomputed here
hard = os.path.join(os.path.dirname(__file__), "hard_pairs.jsonl")
n_hard = 0
for line in open(hard):
    h = json.loads(line)
    print(json.dumps({"gold": h["gold"], "response": h["response"], "label": h["intended"],
                      "set": "hard", "family": h["family"]}))
    n_hard += 1
print(f"{len(pairs)} easy pairs, {n_hard} hard pairs", file=sys.stderr)
