#!/usr/bin/env bash
# failures.sh LOG: what failed in a `go test` log, said again at its end.
#
# A failing end-to-end test reports the output of the processes it ran
# (gateway, upstreams), which can run to thousands of lines after the
# failure itself; CI shows a log's tail. This prints each failed test and
# its own messages (at most 12 lines each, 40 a test), without the process dumps.
set -euo pipefail
log=${1:?usage: failures.sh go-test-log}
echo
echo "==== failures (from $log) ===="
awk -v logfile="$log" '
	function out(line) { if (++n <= 40) print line; else skipped++ }
	function flush() { if (skipped) printf "    ... %d more lines of this test in %s\n", skipped, logfile; n = 0; skipped = 0 }
	/^[[:space:]]*--- FAIL: / { flush(); print; keep = 0; next }
	/^(FAIL|panic:|fatal error:)/ { flush(); print; keep = 0; next }
	/^[[:space:]]+[A-Za-z0-9_.-]+_test\.go:[0-9]+: / {
		if ($0 ~ /: --- output of /) { keep = 0; next }
		out($0); keep = 11; next
	}
	/^[[:space:]]*(=== |--- (PASS|SKIP)|ok[[:space:]])/ { keep = 0; next }
	keep > 0 { out($0); keep--; next }
	END { flush() }
' "$log"
