#!/usr/bin/env bash
# rlvr's math verifier vs Math-Verify (PyPI `math-verify`) on the same pairs, one core each,
# in one run: pairs/s for both, the ratio, agreement, rlvr's latency percentiles.
#
#   bench/verify/run.sh            # uses $RLVR_SHARED or ../shared for the datasets
#
# Math-Verify is installed into $RLVR_MATHVERIFY_VENV (default
# $HOME/.cache/rlvr-mathverify-venv) on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${RLVR_MATHVERIFY_VENV:-$HOME/.cache/rlvr-mathverify-venv}"
mv_version="${MATH_VERIFY_VERSION:-0.9.0}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "math-verify==$mv_version"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 "$here/make_pairs.py" > "$work/pairs.jsonl"
(cd "$root" && cargo build --quiet --release -p rlvr-verify --example verify_bench)
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/verify_bench"
export OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1
mv_sum="$(taskset -c 0 "$venv/bin/python" "$here/mathverify_side.py" "$work/pairs.jsonl" "$work/mv.jsonl")"
rl_sum="$(taskset -c 0 "$bin" "$work/pairs.jsonl" "$work/rlvr.jsonl" 5)"
python3 "$here/compare.py" "$work/pairs.jsonl" "$work/mv.jsonl" "$work/rlvr.jsonl" "$mv_sum" "$rl_sum"
# Math-Verify's own test suite: its cases and expected verdicts (read from its sdist), against
# rlvr with its defaults and with each test's settings mapped to rlvr's.
python3 "$here/mathverify_suite.py" "$work/suite.jsonl" --pip "$venv/bin/pip" --version "$mv_version"
(cd "$root" && cargo build --quiet --release -p rlvr-verify --example mathverify_suite)
"${CARGO_TARGET_DIR:-$root/target}/release/examples/mathverify_suite" "$work/suite.jsonl" | sed -n '/^test /,/^all /p'
