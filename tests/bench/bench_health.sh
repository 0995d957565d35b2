#!/usr/bin/env bash
# bench_health.sh: wrk against the real vnoded's /metrics for 30 s (issue 4):
# requests per second, p99 latency, errors (target 0), resident memory
# before and after (target: unchanged). vnoded runs in a namespace of its
# own with veth eth0/tun0/tailscale0 (the kernel may lack dummy), so its table inet vnode and the
# counter reads are real. BENCH_SECONDS, BENCH_CONNS, BENCH_THREADS tune it.
set -u
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
VNODED=$ROOT/build/vnoded
secs=${BENCH_SECONDS:-30}
conns=${BENCH_CONNS:-16}
threads=${BENCH_THREADS:-1}
NS=vhb$$
TMP=$(mktemp -d /tmp/vnode-bench-health.XXXXXX)
command -v wrk >/dev/null || { echo "bench_health: wrk missing (make deps)"; exit 1; }
[ -x "$VNODED" ] || make -s -C "$ROOT" all >/dev/null
cleanup() {
	[ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
for i in eth0 tun0 tailscale0; do
	ip -n "$NS" link add "$i" type veth peer name "${i}p"
	ip -n "$NS" link set "$i" up; ip -n "$NS" link set "${i}p" up
done
ip -n "$NS" addr add 192.168.77.2/24 dev eth0
ip -n "$NS" route add default via 192.168.77.1 dev eth0
ip -n "$NS" addr add 10.66.0.2/32 dev tun0
ip -n "$NS" addr add 100.100.0.1/32 dev tailscale0
ip netns exec "$NS" env -i PATH="$PATH" "$VNODED" --health-listen 127.0.0.1:9911 \
	--exit-ip-url none --lan-ip-url none >"$TMP/log" 2>&1 &
PID=$!
rss() { awk '/^VmRSS/ {print $2}' /proc/"$PID"/status; }
for _ in $(seq 100); do
	ip netns exec "$NS" curl -sf -o /dev/null http://127.0.0.1:9911/healthz && break
	sleep 0.05
done
ip netns exec "$NS" curl -sf -o "$TMP/m" http://127.0.0.1:9911/metrics || { echo "bench_health: vnoded does not answer"; cat "$TMP/log"; exit 1; }
size=$(wc -c <"$TMP/m")
# one short warm-up run: the endpoint's fixed buffers are touched once
ip netns exec "$NS" wrk -t"$threads" -c"$conns" -d2s http://127.0.0.1:9911/metrics >/dev/null
before=$(rss)
ip netns exec "$NS" wrk -t"$threads" -c"$conns" -d"${secs}s" --latency http://127.0.0.1:9911/metrics >"$TMP/wrk"
after=$(rss)
cat "$TMP/wrk"
rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$TMP/wrk")
p99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk")
# wrk's error line: "Socket errors: connect 0, read 0, write 0, timeout 0"
# and "Non-2xx or 3xx responses: N"
errs=$(awk '/Socket errors/ {gsub(",", ""); s += $4 + $6 + $8 + $10} /Non-2xx/ {s += $NF} END {print s + 0}' "$TMP/wrk")
reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk")
echo "vnoded RSS before ${before} KiB, after ${after} KiB; /metrics is ${size} bytes"
echo "RESULT health_metrics_rps vnode=${rps} baseline=- unit=req/s note=wrk -t${threads} -c${conns} ${secs}s GET /metrics (${size} B), ${reqs} requests"
echo "RESULT health_metrics_p99 vnode=${p99} baseline=- unit=latency note=99th percentile over the run"
echo "RESULT health_metrics_errors vnode=${errs} baseline=0 unit=errors note=target 0"
echo "RESULT health_rss vnode=${before}->${after} baseline=unchanged unit=KiB note=vnoded resident memory before and after the run"
[ "$errs" = 0 ] && [ "$before" = "$after" ]
