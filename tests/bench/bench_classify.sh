#!/usr/bin/env bash
# Socket creation inside the classified cgroup (the eBPF program stamps the
# mark and counts) against outside it, on the same host at the same time:
# rounds alternate between the two cgroups, pinned to one CPU, and the
# median of each side is compared. Target: ratio <= 1.05.
#   RESULT socket_create_<kind> vnode=<ns> baseline=<ns> unit=ns ratio=<r>
set -u
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export ROOT
T_SUITE=bench T_FILE=classify
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/classify/lab.sh"
lab_need
lab_up
N=${BENCH_SOCKETS:-200000} ROUNDS=${BENCH_ROUNDS:-9}

start_vnoded "$TMPD/v.log" -- sleep 600 || { echo "vnoded did not start: $(tail -3 "$TMPD/v.log")"; exit 1; }
bpftool cgroup show "$CG_AGENT" | grep -q vnode_classify || { echo "program not attached"; exit 1; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for kind in udp4 tcp6; do
	: >"$TMPD/in" ; : >"$TMPD/out"
	for r in $(seq "$ROUNDS"); do
		in_cg "$CG_AGENT" taskset -c 1 "$SOCKPROBE" bench "$N" "$kind" >>"$TMPD/in"
		in_cg "$CG_OUT" taskset -c 1 "$SOCKPROBE" bench "$N" "$kind" >>"$TMPD/out"
	done
	i=$(median <"$TMPD/in") o=$(median <"$TMPD/out")
	r=$(awk -v i="$i" -v o="$o" 'BEGIN { printf "%.3f", i / o }')
	echo "RESULT socket_create_$kind vnode=$i baseline=$o unit=ns ratio=$r note=socket()+close(),$N/round,median_of_$ROUNDS,target<=1.05"
done
kill -TERM "$VPID"; wait "$VPID" 2>/dev/null
exit 0
