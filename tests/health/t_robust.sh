#!/usr/bin/env bash
# A slow or hostile client cannot stall the endpoint or grow its memory:
# malformed, oversized, slow, non-reading and pipelined requests, and a
# thousand idle connections (RSS measured from /proc, not reported by the
# agent). Client side in tests/health/hclient.py.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/hlib.sh"

NS=${P}r
ns_new "$NS"
ST=$TMP/state
ready_state "$ST"
driver_start "$NS" "$ST" "$TMP/log" --exit-ip-url none --lan-ip-url none \
	|| { fail "driver starts" "$(cat "$TMP/log")"; exit 1; }
hc() { ip netns exec "$NS" python3 "$H/hclient.py" 127.0.0.1 9911 "$@" | py_report; }

hc malformed
hc pipelined
hc slow
hc slowread
hc idle 1000 "$DPID"

if kill -0 "$DPID" 2>/dev/null; then ok "driver still running"; else fail "driver still running" "exited"; fi
closed=$(metric "$NS" 'vnode_health_connections_closed_total{reason="evicted"}')
if [ "${closed:-0}" -ge 900 ]; then ok "idle connections beyond 64 evicted ($closed)"
else fail "idle connections beyond 64 evicted" "evicted=$closed"; fi
open=$(metric "$NS" vnode_health_connections)
if [ "${open:-99}" -le 64 ]; then ok "open connections bounded ($open <= 64)"
else fail "open connections bounded" "$open"; fi
fds=$(ls /proc/"$DPID"/fd | wc -l)
if [ "$fds" -le 80 ]; then ok "descriptors bounded ($fds)"; else fail "descriptors bounded" "$fds open"; fi
if grep -qiE "fatal|sanitizer" "$TMP/log"; then fail "no errors logged" "$(tail -3 "$TMP/log")"; else ok "no errors logged"; fi
