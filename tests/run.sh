#!/usr/bin/env bash
# tests/run.sh [SUITE...]: runs every tests/SUITE/t_*.sh (all suites by
# default) and ends with "N passed, N failed, N skipped". Exits non-zero on
# any failure, including a test script that dies without reporting.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ROOT
SUITES=${*:-unit lab classify health e2e}
T_RESULTS=$(mktemp /tmp/vnode-results.XXXXXX)
export T_RESULTS
crashed=0
for suite in $SUITES; do
	[ -d "$ROOT/tests/$suite" ] || continue
	for t in "$ROOT"/tests/"$suite"/t_*.sh; do
		[ -e "$t" ] || continue
		echo "== $suite/$(basename "$t" .sh)"
		start=$(date +%s)
		T_SUITE=$suite T_FILE=$(basename "$t" .sh) bash "$t"
		rc=$?
		echo "   ($(( $(date +%s) - start ))s)"
		if [ $rc -ne 0 ]; then
			printf 'fail\t%s/%s: script exited %d\t\n' "$suite" "$(basename "$t" .sh)" $rc >>"$T_RESULTS"
			echo "  FAIL  script exited $rc"
			crashed=$((crashed + 1))
		fi
	done
done
passed=$(grep -c '^pass' "$T_RESULTS")
failed=$(grep -c '^fail' "$T_RESULTS")
skipped=$(grep -c '^skip' "$T_RESULTS")
if [ "$failed" -gt 0 ] || [ "$skipped" -gt 0 ]; then
	echo
	grep -E '^(fail|skip)' "$T_RESULTS" | sed 's/^/  /'
fi
rm -f "$T_RESULTS"
echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
