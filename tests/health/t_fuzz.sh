#!/usr/bin/env bash
# libFuzzer on the request parser (agent/fuzz_http.c), briefly: seeds in
# tests/health/corpus, HTTP tokens in http.dict, ASan and UBSan on. The
# harness also checks the parser's contract (see fuzz_http.c).
# FUZZ_SECONDS=N runs longer.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/hlib.sh"

secs=${FUZZ_SECONDS:-20}
mkdir -p "$TMP/corpus" "$TMP/art"
cp "$H"/corpus/* "$TMP/corpus/"
"$FUZZ" -max_total_time="$secs" -max_len=9000 -dict="$H/http.dict" \
	-artifact_prefix="$TMP/art/" -print_final_stats=1 "$TMP/corpus" >"$TMP/fuzz.log" 2>&1
rc=$?
runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$TMP/fuzz.log")
cov=$(grep -o 'cov: [0-9]*' "$TMP/fuzz.log" | tail -1)
if [ $rc -eq 0 ] && [ -z "$(ls "$TMP/art")" ]; then
	ok "http_parse survives ${secs}s of libFuzzer (${runs:-?} runs, ${cov:-cov ?})"
else
	fail "http_parse survives ${secs}s of libFuzzer" "rc=$rc $(grep -m3 -E 'ERROR|SUMMARY|deadly' "$TMP/fuzz.log" | tr '\n' ' ') artifacts: $(ls "$TMP/art")"
	cp "$TMP"/art/* /tmp/ 2>/dev/null
fi
