"""Cases of Math-Verify's own test suite, as JSONL, for checking rlvr against them.

Downloads the `math-verify` sdist (PyPI) into a cache, reads its `tests/*.py` with `ast` (no test
is run, nothing is imported) and writes one line per parametrized case that goes through the
suite's `compare_strings` helper:

    {"file", "test", "gold", "pred", "expected", "match_types", "precision", "strict",
     "allow_set_relation_comp"}

`expected` is the suite's expected verdict (1/0 or True/False); the other fields are the settings
the test passes (its defaults otherwise: latex+expr, precision 6, strict, no set/relation
comparison). Usage: python3 mathverify_suite.py OUT.jsonl [--version 0.9.0] [--pip PIP]
"""

import argparse
import ast
import json
import os
import pathlib
import subprocess
import sys
import tarfile

DEFAULTS = {"match_types": ["latex", "expr"], "precision": 6, "strict": True,
            "allow_set_relation_comp": False}


def fetch(version, pip, cache):
    cache.mkdir(parents=True, exist_ok=True)
    tgz = cache / f"math_verify-{version}.tar.gz"
    if not tgz.exists():
        subprocess.run([pip, "download", f"math-verify=={version}", "--no-binary", ":all:",
                        "--no-deps", "-q", "-d", str(cache)], check=True)
    src = cache / f"math_verify-{version}"
    if not src.exists():
        with tarfile.open(tgz) as t:
            t.extractall(cache)
    return src / "tests"


def parametrize(fn):
    for d in fn.decorator_list:
        if isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "parametrize":
            names = [n.strip() for n in ast.literal_eval(d.args[0]).split(",")]
            try:
                rows = ast.literal_eval(d.args[1])
            except ValueError:
                return None
            return names, rows
    return None


def compare_call(fn):
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "compare_strings":
            return node
    return None


def cases(tests):
    for path in sorted(tests.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for fn in tree.body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            p, call = parametrize(fn), compare_call(fn)
            if p is None or call is None:
                continue
            names, rows = p
            for row in rows:
                params = dict(zip(names, row if isinstance(row, tuple) else (row,)))
                case = dict(DEFAULTS)
                for kw in call.keywords:
                    if isinstance(kw.value, ast.Name):
                        case[kw.arg] = params[kw.value.id]
                    else:
                        case[kw.arg] = ast.literal_eval(kw.value)
                case.update(file=path.name, test=fn.name, gold=params["gold"],
                            pred=params["pred"], expected=bool(params["expected"]))
                yield case


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--version", default=os.environ.get("MATH_VERIFY_VERSION", "0.9.0"))
    ap.add_argument("--pip", default="pip")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/rlvr-mathverify-src"))
    a = ap.parse_args()
    tests = fetch(a.version, a.pip, pathlib.Path(a.cache))
    n = 0
    with open(a.out, "w") as f:
        for c in cases(tests):
            f.write(json.dumps(c) + "\n")
            n += 1
    print(f"{n} cases from math-verify {a.version} tests", file=sys.stderr)


if __name__ == "__main__":
    main()
