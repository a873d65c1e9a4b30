#!/usr/bin/env bash
# Reads the output of `cargo test --no-fail-fast` and prints the time of each test binary
# (slowest first; those over 20 s) and a one-line summary of the binaries that failed.
# A binary that printed no `test result` line (it crashed or was killed) counts as failed.
# Usage: .ci/test-summary.sh TEST_LOG
set -euo pipefail
log="${1:?usage: test-summary.sh TEST_LOG}"
awk '
  function close_bin() {
    if (bin != "" && !done) { failed[++nf] = bin " (no result: crashed or killed)" }
    bin = ""; done = 0
  }
  /^ *Running / {
    close_bin()
    bin = $2; if ($2 ~ /^unittests$/) { bin = $3 }
    # "(…/deps/NAME-HASH)": keep the crate-qualified name for unit tests
    if (match($0, /deps\/[^)]*-[0-9a-f]+\)/)) {
      d = substr($0, RSTART + 5, RLENGTH - 6); sub(/-[0-9a-f]+$/, "", d)
      bin = bin " [" d "]"
    }
    next
  }
  /^ *Doc-tests / { close_bin(); bin = "doc-tests " $2; next }
  /to rerun pass `/ {
    spec = $0; sub(/.*to rerun pass `/, "", spec); sub(/`.*/, "", spec)
    # cargo names the failed binary right after its output: prefer its `-p CRATE --test NAME`
    if (done && nf > 0 && failed[nf] == bin) { failed[nf] = spec }
    else if (bin != "" && !done) { failed[++nf] = spec " (no result: crashed or killed)"; done = 1 }
    next
  }
  /^test result: / {
    secs = $0; sub(/.*finished in /, "", secs); sub(/s$/, "", secs)
    times[++nt] = sprintf("%8.1f s  %s", secs + 0, bin)
    if ($3 != "ok.") { failed[++nf] = bin }
    done = 1; next
  }
  END {
    close_bin()
    print "== test binaries over 20 s (slowest first)"
    n = 0
    for (i = 1; i <= nt; i++) { split(times[i], f, " "); if (f[1] + 0 >= 20) { slow[++n] = times[i] } }
    # insertion sort, descending by seconds
    for (i = 2; i <= n; i++) { v = slow[i]; split(v, a, " "); j = i - 1
      while (j > 0) { split(slow[j], b, " "); if (b[1] + 0 >= a[1] + 0) break; slow[j + 1] = slow[j]; j-- }
      slow[j + 1] = v }
    for (i = 1; i <= n; i++) print slow[i]
    printf "== test binaries: %d ran, ", nt
    if (nf == 0) { print "none failed" }
    else { s = failed[1]; for (i = 2; i <= nf; i++) s = s "; " failed[i]; print nf " FAILED: " s }
  }
' "$log"
