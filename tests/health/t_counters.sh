#!/usr/bin/env bash
# Counters move: the kill switch's named counters of table inet vnode
# appear in /metrics and /status, cached for about a second, and stay
# monotonic when the table is replaced as a whole (as the core does when
# tun0's address or MTU changes) or deleted for a while.
# The table here is a stand-in with the core's counter names whose rules
# count test traffic on loopback ports; the lab exercises the real one.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/hlib.sh"

NS=${P}c
ns_new "$NS"
ST=$TMP/state
ready_state "$ST"

table() {	# a fresh table inet vnode: the old one deleted in the same transaction
	local del=""
	ip netns exec "$NS" nft list table inet vnode >/dev/null 2>&1 && del="delete table inet vnode"
	ip netns exec "$NS" nft -f - <<NFT
$del
table inet vnode {
	counter fwd_client_out {}
	counter fwd_client_in {}
	counter drop_forward {}
	counter drop_input {}
	counter drop_leak_flow {}
	counter drop_leak_dns {}
	counter drop_leak_control {}
	counter drop_leak_source {}
	chain output {
		type filter hook output priority 0; policy accept;
		udp dport 7001 counter name fwd_client_out
		udp dport 7002 counter name fwd_client_in
		udp dport 7003 counter name drop_leak_dns drop
	}
}
NFT
}
send() {	# PORT COUNT: COUNT UDP datagrams of 100 bytes payload to 127.0.0.1:PORT
	ip netns exec "$NS" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[2])):
    try: s.sendto(b"x" * 100, ("127.0.0.1", int(sys.argv[1])))
    except OSError: pass' "$1" "$2"
}
pk() { metric "$NS" "vnode_forwarded_packets_total{direction=\"$1\"}"; }

driver_start "$NS" "$ST" "$TMP/log" --exit-ip-url none --lan-ip-url none \
	|| { fail "driver starts" "$(cat "$TMP/log")"; exit 1; }
expect_eq "no table: counters_present 0" "$(metric "$NS" vnode_nft_counters_present)" 0
expect_eq "no table: counters read as 0" "$(pk client_out)" 0

table
send 7001 10; send 7002 4; send 7003 3
sleep 1.1
expect_eq "table present: counters_present 1" "$(metric "$NS" vnode_nft_counters_present)" 1
expect_eq "forwarded packets client_out moved" "$(pk client_out)" 10
expect_eq "forwarded packets client_in moved" "$(pk client_in)" 4
expect_eq "forwarded bytes client_out (IP+UDP+100)" \
	"$(metric "$NS" 'vnode_forwarded_bytes_total{direction="client_out"}')" 1280
expect_eq "kill-switch drops by reason" \
	"$(metric "$NS" 'vnode_killswitch_dropped_packets_total{reason="leak_dns"}')" 3
expect_eq "other drop reasons stay 0" \
	"$(metric "$NS" 'vnode_killswitch_dropped_packets_total{reason="leak_flow"}')" 0
got=$(hcurl "$NS" /status | python3 -c 'import json,sys; c=json.load(sys.stdin)["counters"]; print(c["forwarded_client_out"]["packets"], c["dropped_leak_dns"]["packets"])')
expect_eq "/status counters" "$got" "10 3"

# cached: a scrape right after new traffic may still show the old value,
# one a second later shows the new one
send 7001 5
a=$(pk client_out); sleep 1.1; b=$(pk client_out)
if [ "$b" = 15 ] && { [ "$a" = 10 ] || [ "$a" = 15 ]; }; then ok "counters cached about a second ($a then $b)"
else fail "counters cached about a second" "$a then $b"; fi

# replaced as a whole: new counters start at 0, totals keep going
table
send 7001 2
sleep 1.1
expect_eq "table replaced: client_out keeps counting (15 + 2)" "$(pk client_out)" 17
expect_eq "table replaced: leak_dns keeps its total" \
	"$(metric "$NS" 'vnode_killswitch_dropped_packets_total{reason="leak_dns"}')" 3

# replaced with more traffic than before on the new table: no decrease to
# detect, only the table's new handle tells
table
send 7001 40
sleep 1.1
expect_eq "table replaced, new count above the old: 17 + 40" "$(pk client_out)" 57

# deleted for a while: totals stay, present says 0; back: totals go on
ip netns exec "$NS" nft delete table inet vnode
sleep 1.1
expect_eq "table gone: totals stay" "$(pk client_out)" 57
expect_eq "table gone: counters_present 0" "$(metric "$NS" vnode_nft_counters_present)" 0
table
send 7001 1
sleep 1.1
expect_eq "table back: 57 + 1" "$(pk client_out)" 58
hcurl "$NS" /metrics >"$TMP/m"
check "/metrics passes promtool with counters" promtool check metrics <"$TMP/m"

# 1000 scrapes on one connection: rendering and the cached counter read stay cheap
start=$(date +%s%N)
ip netns exec "$NS" python3 - <<'PY'
import socket
s = socket.create_connection(("127.0.0.1", 9911))
for _ in range(1000):
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
    buf = b""
    while b'vnode_health_responses_total{code="505"}' not in buf:
        buf += s.recv(65536)
PY
ms=$(( ($(date +%s%N) - start) / 1000000 ))
if [ $ms -lt 10000 ]; then ok "1000 /metrics scrapes in ${ms} ms"; else fail "1000 /metrics scrapes under 10 s" "${ms} ms"; fi
