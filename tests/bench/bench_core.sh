#!/usr/bin/env bash
# Core agent benchmarks in the namespace lab, beside the seed's recipe:
# time from start to rules enforced, time to repair a deleted rule / route,
# resident memory, wakeups per second when nothing changes.
set -u
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
T_SUITE=bench T_FILE=core
. "$ROOT/tests/lab/lab.sh"
NLBENCH=$ROOT/build/nlbench
N=${BENCH_N:-15}
LAST_PRIO=49	# the last rule the agent installs (IPv6, P+9) marks "enforced"

lab_up >/dev/null || { echo "lab did not come up" >&2; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
vn() { ip netns exec "$LAB_ID-vnode" "$@"; }

SEED=$ROOT/tests/bench/seed_recipe.sh

# 1. start to enforced
for i in $(seq $N); do
	vn "$VNODED" --cleanup >/dev/null 2>&1
	vn "$NLBENCH" start $LAST_PRIO 6 -- env -i "$VNODED" --health-listen none 2>/dev/null |
		sed -n 's/^start_us=\([0-9]*\) pid=\([0-9]*\).*/\1 \2/p' >"$LAB_TMP/start"
	read -r us pid <"$LAB_TMP/start"
	echo "$us" >>"$LAB_TMP/start_vnode"
	kill "$pid" 2>/dev/null; sleep 0.1
done
for i in $(seq $N); do
	vn sh "$SEED" undo >/dev/null 2>&1
	vn "$NLBENCH" wait-exit -- sh "$SEED" 2>/dev/null |
		sed -n 's/^start_us=\([0-9]*\).*/\1/p' >>"$LAB_TMP/start_seed"
done
vn sh "$SEED" undo >/dev/null 2>&1
sv=$(median <"$LAB_TMP/start_vnode"); ss=$(median <"$LAB_TMP/start_seed")
echo "RESULT start_to_enforced_ms vnode=$(awk "BEGIN{printf \"%.1f\", $sv/1000}") baseline=$(awk "BEGIN{printf \"%.1f\", $ss/1000}")ms unit=ms ratio=$(awk "BEGIN{printf \"%.2f\", $sv/$ss}") note=median_of_${N};target_<=20ms;seed_recipe_run_as_a_script"

# 2. repairs, 3. memory, 4. idle wakeups: one long-running agent
vn "$VNODED" --cleanup >/dev/null 2>&1
agent_start >/dev/null 2>&1 || { echo "agent did not start" >&2; exit 1; }
rss0=$(awk '/VmRSS/ {print $2}' /proc/$(pgrep -P "$AGENT_PID" vnoded || echo "$AGENT_PID")/status 2>/dev/null)
apid=$(pgrep -f "^$VNODED" | head -1)
rss0=$(awk '/VmRSS/ {print $2}' /proc/$apid/status)
r=$(vn "$NLBENCH" repair-rule $LAST_PRIO 200)
echo "$r" >&2
echo "RESULT repair_rule_us vnode=$(sed -n 's/.*median_us=\([0-9]*\).*/\1/p' <<<"$r") baseline=never unit=us note=p90_$(sed -n 's/.*p90_us=\([0-9]*\).*/\1/p' <<<"$r")us;200_deletions;target_median_<=1000us"
r=$(vn "$NLBENCH" repair-route 53 200)
echo "$r" >&2
echo "RESULT repair_route_us vnode=$(sed -n 's/.*median_us=\([0-9]*\).*/\1/p' <<<"$r") baseline=never unit=us note=p90_$(sed -n 's/.*p90_us=\([0-9]*\).*/\1/p' <<<"$r")us;200_deletions_of_table_53_default"
rss1=$(awk '/VmRSS/ {print $2}' /proc/$apid/status)
echo "RESULT rss_kib vnode=$rss1 baseline=no_resident_process unit=KiB note=after_start_${rss0}KiB;after_400_repairs_${rss1}KiB;target_<=4096KiB"
agent_stop
# idle: exit-address checks off (with them on: one wakeup per check, by
# default every 5 minutes, sooner while a source fails)
agent_start --exit-ip-url none --lan-ip-url none >/dev/null 2>&1 || { echo "agent did not start" >&2; exit 1; }
apid=$(pgrep -f "^$VNODED" | head -1)
cs() { awk '/ctxt_switches/ {s+=$2} END {print s}' /proc/$apid/status; }
sleep 1; c0=$(cs); sleep 10; c1=$(cs)
echo "RESULT idle_wakeups_per_s vnode=$(awk "BEGIN{printf \"%.1f\", ($c1-$c0)/10}") baseline=no_resident_process unit=/s note=context_switches_over_10s_idle;exit-address_checks_off;target_0"
agent_stop
