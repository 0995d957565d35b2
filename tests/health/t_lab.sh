#!/usr/bin/env bash
# The real vnoded in the full namespace lab (tests/lab/lab.sh: a WireGuard
# VPN, a NAT home router, an internet, a tailnet client):
# - /readyz turns 503 within a second of tun0 going down or away, and 200
#   again when it is back;
# - the kill switch's counters move in /metrics when traffic moves them,
#   and stay monotonic when the core replaces its table;
# - from the tailnet client the endpoint does not answer (IPv4 and IPv6),
#   while the LAN reaches the same listener (it is the kill switch);
# - the exit addresses are what the internet's echo server saw for each
#   path, and no exit-address query is ever seen on the wrong path (router
#   and VPN-server counters, not the agent's word).
. "$(dirname "$0")/../lab/lab.sh"
H=$ROOT/tests/health
make -s -C "$ROOT" all >/dev/null || { fail "build" "make failed"; exit 1; }

lab_up || { fail "lab up" "see above"; exit 1; }
ECHO_LOG=$LAB_TMP/echo-http.log
: >"$ECHO_LOG"
lab_bg inet echohttp "$LAB_PY" "$H/fakes.py" echo "$ECHO_LOG" 8080
wait_for 5 sh -c "nsenter --net=/run/netns/$LAB_ID-inet ss -Htln | grep -q ':8080 '" ||
	{ fail "echo server on 8080" "not listening"; exit 1; }
lab_reset_counters
agent_start --health-listen "[::]:9911" \
	--exit-ip-url "http://$CLI_TARGET:8080/ip" --lan-ip-url "http://$CTL_TARGET:8080/ip" \
	--exit-ip-interval 10 || { fail "agent starts" "$(agent_why)"; exit 1; }

# get PATH: body in $LAB_TMP/body, prints the HTTP status
get() { in_ns vnode curl -s -m 2 -o "$LAB_TMP/body" -w '%{http_code}' "http://127.0.0.1:9911$1"; }
body() { cat "$LAB_TMP/body"; }
metric() { get /metrics >/dev/null; awk -v m="$1" '$1 == m { print $2 }' "$LAB_TMP/body"; }
status() { get /status >/dev/null; python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$LAB_TMP/body"; }
ready_is() { [ "$(get /readyz)" = "$1" ]; }
# ms_until TIMEOUT_S CMD...: milliseconds until CMD holds, or fails
ms_until() {
	local t0=$(date +%s%N) to=$1; shift
	wait_for "$to" "$@" || return 1
	echo $(( ($(date +%s%N) - t0) / 1000000 ))
}

expect_eq "/healthz 200" "$(get /healthz) $(body)" "200 ok"
if wait_for 5 ready_is 200; then ok "/readyz 200 once enforcing"
else fail "/readyz 200 once enforcing" "$(get /readyz) $(body)"; fi
out=$(ip netns exec "$LAB_ID-vnode" env -i "$VNODED" probe --ready --health-listen "[::]:9911"); rc=$?
expect_eq "vnoded probe --ready: 0" "$rc" 0
get /metrics >/dev/null
check "/metrics passes promtool" promtool check metrics <"$LAB_TMP/body"
expect_eq "the core's counters are read (vnode_nft_counters_present)" "$(metric vnode_nft_counters_present)" 1
expect_eq "vnode_vpn_up 1" "$(metric vnode_vpn_up)" 1

# ---- /readyz follows the tunnel ------------------------------------------
tr0=$(metric vnode_tunnel_transitions_total)
vpn_down
if ms=$(ms_until 1 ready_is 503); then ok "tun0 down: /readyz 503 within a second (${ms} ms)"
else fail "tun0 down: /readyz 503 within a second" "$(get /readyz) after 1 s"; fi
check "tun0 down: /readyz names tun0" grep -q "^tun: tun0 is down or has no address" "$LAB_TMP/body"
out=$(ip netns exec "$LAB_ID-vnode" env -i "$VNODED" probe --ready --health-listen "[::]:9911"); rc=$?
expect_eq "tun0 down: vnoded probe --ready 1" "$rc" 1
expect_eq "tun0 down: vnode_vpn_up 0" "$(metric vnode_vpn_up)" 0
expect_eq "tun0 down: VPN exit address unknown at once" "$(status 'd["exit"]["vpn"]["address"]')" None
vpn_up
if ms=$(ms_until 5 ready_is 200); then ok "tun0 up: /readyz 200 again (${ms} ms)"
else fail "tun0 up: /readyz 200 again" "$(get /readyz) $(body)"; fi
tr1=$(metric vnode_tunnel_transitions_total)
if [ "$tr1" -ge $((tr0 + 2)) ]; then ok "transitions counted ($tr0 -> $tr1)"; else fail "transitions counted" "$tr0 -> $tr1"; fi
vpn_delete
if ms=$(ms_until 1 ready_is 503); then ok "tun0 deleted: /readyz 503 within a second (${ms} ms)"
else fail "tun0 deleted: /readyz 503 within a second" "$(get /readyz)"; fi
vpn_restore; lab_wait_tunnel 10
if ms=$(ms_until 10 ready_is 200); then ok "tun0 recreated: /readyz 200 again (${ms} ms)"
else fail "tun0 recreated: /readyz 200 again" "$(get /readyz) $(body)"; fi

# ---- counters move ---------------------------------------------------------
pk() { metric "vnode_forwarded_packets_total{direction=\"$1\"}"; }
dr() { metric "vnode_killswitch_dropped_packets_total{reason=\"$1\"}"; }
o0=$(pk client_out); i0=$(pk client_in)
for _ in 1 2 3 4 5; do client_udp $CLI_TARGET >/dev/null; done
sleep 1.1
o1=$(pk client_out); i1=$(pk client_in)
if [ "$o1" -ge $((o0 + 5)) ] && [ "$i1" -ge $((i0 + 5)) ]; then ok "client traffic moves the forwarded counters (out $o0 -> $o1, in $i0 -> $i1)"
else fail "client traffic moves the forwarded counters" "out $o0 -> $o1, in $i0 -> $i1"; fi
b0=$(metric 'vnode_forwarded_bytes_total{direction="client_in"}')
client_bulk $CLI_TARGET >/dev/null	# 4 MiB from the server to the client
sleep 1.1
b1=$(metric 'vnode_forwarded_bytes_total{direction="client_in"}')
if [ $((b1 - b0)) -gt 4000000 ]; then ok "a 4 MiB download moves the byte counters ($b0 -> $b1)"
else fail "a bulk transfer moves the byte counters" "$b0 -> $b1"; fi
# a control-class socket forced into tun0: the kill switch drops it
c0=$(dr leak_control)
in_ns vnode "$LAB_PY" -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 0x80000)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"tun0"); s.settimeout(1.5)
try: s.connect(("203.0.113.10", 443))
except OSError: pass'
sleep 1.1
c1=$(dr leak_control)
if [ "$c1" -gt "$c0" ]; then ok "a control-class packet into tun0 moves drop_leak_control ($c0 -> $c1)"
else fail "a control-class packet into tun0 moves drop_leak_control" "$c0 -> $c1"; fi

# ---- the tailnet cannot reach the endpoint ---------------------------------
d0=$(dr input)
expect_fail "tailnet client: http://100.100.0.1:9911 does not answer" \
	in_ns client curl -sf -m 2 -o /dev/null http://100.100.0.1:9911/healthz
expect_fail "tailnet client: http://[fd7a:115c:a1e0::1]:9911 does not answer" \
	in_ns client curl -sf -m 2 -o /dev/null "http://[fd7a:115c:a1e0::1]:9911/healthz"
check "tailnet client still reaches the node (ICMP): the path is there" client_ping 100.100.0.1 1
expect_out "the LAN reaches the same listener: it is the kill switch that keeps the tailnet out" ok \
	in_ns router curl -sf -m 2 http://192.168.77.2:9911/healthz
sleep 1.1
d1=$(dr input)
if [ "$d1" -gt "$d0" ]; then ok "the tailnet's attempts moved drop_input ($d0 -> $d1)"
else fail "the tailnet's attempts moved drop_input" "$d0 -> $d1"; fi

# ---- the table replaced as a whole: counters stay monotonic ---------------
kctr() { in_ns vnode nft list counter inet vnode fwd_client_out | awk '$1 == "packets" {print $2}'; }
replaced() {	# WHAT CMD...: CMD makes the core replace its table
	local what=$1 o2 o3 d2 d3 k; shift
	o2=$(pk client_out); d2=$(dr input)
	"$@"
	sleep 0.5
	for _ in 1 2 3; do client_udp $CLI_TARGET >/dev/null; done
	sleep 1.1
	o3=$(pk client_out); d3=$(dr input); k=$(kctr)
	if [ "$o3" -ge $((o2 + 3)) ] && [ "$d3" -ge "$d2" ] && [ "${k:-0}" -lt "$o3" ]; then
		ok "$what: totals go on ($o2 -> $o3; the kernel's new counter says $k)"
	else fail "$what: totals go on" "out $o2 -> $o3 (kernel ${k:-?}), input drops $d2 -> $d3"; fi
}
# below tailscale0's 1280 the MSS clamp changes: a new table
replaced "table replaced (tun0 MTU 1240)" _lab_ip vnode link set tun0 mtu 1240
replaced "table replaced (tun0 MTU back to 1320)" _lab_ip vnode link set tun0 mtu 1320
replaced "table deleted by someone else and repaired" in_ns vnode nft delete table inet vnode

# ---- exit addresses ---------------------------------------------------------
both_known() { [ "$(status 'bool(d["exit"]["vpn"]["address"] and d["exit"]["lan"]["address"])')" = True ]; }
if wait_for 30 both_known; then ok "both exit addresses learned"
else fail "both exit addresses learned" "$(status 'd["exit"]') $(grep exitip "$AGENT_LOG" | tail -3)"; fi
seen_vpn=$(awk -v t=$CLI_TARGET '$1 == t && $3 == "/ip" {print $2}' "$ECHO_LOG" | sort -u | tr '\n' ' ')
seen_lan=$(awk -v t=$CTL_TARGET '$1 == t && $3 == "/ip" {print $2}' "$ECHO_LOG" | sort -u | tr '\n' ' ')
expect_eq "the echo server saw the VPN query only from the VPN's address" "$seen_vpn" "$VPN_ADDR "
expect_eq "the echo server saw the LAN query only from the LAN's address" "$seen_lan" "$LAN_ADDR "
expect_eq "reported exit addresses = what the echo server saw" \
	"$(status 'd["exit"]["vpn"]["address"], d["exit"]["lan"]["address"], d["exit"]["unlinkable"]')" \
	"$VPN_ADDR $LAN_ADDR True"
expect_eq "vnode_unlinkable 1" "$(metric vnode_unlinkable)" 1
# outside witnesses: nothing of the VPN query on the LAN segment, nothing
# of the LAN query inside the tunnel
expect_count "no client-target packet on the LAN segment (lan_client)" lan_client -eq 0
expect_count "no control-target packet inside the tunnel (tun_control)" tun_control -eq 0
check "the agent is alive" agent_alive
if grep -qiE "fatal|sanitizer" "$AGENT_LOG"; then fail "no fatal lines in the agent's log" "$(grep -iE 'fatal|sanitizer' "$AGENT_LOG" | head -2)"
else ok "no fatal lines in the agent's log"; fi
