#!/usr/bin/env bash
# Exit addresses and the unlinkability check, judged by what an echo server
# on the "internet" saw. Namespaces:
#
#   node (N): eth0 10.0.0.2 ── lan0 10.0.0.1  L (home router) 203.0.113.2 ─┐
#             tun0 10.8.0.2 ── tun0p 10.8.0.1 V (VPN provider) 192.0.2.2 ──┤
#                                                                     I (internet)
#                                              echo on 198.51.100.10 and .20
#
# In N the main table's preferred default is eth0 and tun0's default has a
# worse metric, so only a socket bound to tun0 takes the tunnel; the
# control-class mark 0x80000 selects table 51 (eth0), as vnoded's rules do.
# The "same" variant puts the VPN provider behind the home router: both
# paths then leave from 203.0.113.2.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/hlib.sh"

N=${P}n L=${P}l V=${P}v I=${P}i
ECHO_LOG=$TMP/echo.log
VPN_URL=http://198.51.100.10/ip
LAN_URL=http://198.51.100.20/ip

veth() {	# NS1 IF1 ADDR1 NS2 IF2 ADDR2
	ip -n "$1" link add "$2" type veth peer name "$5" netns "$4"
	ip -n "$1" addr add "$3" dev "$2"; ip -n "$4" addr add "$6" dev "$5"
	ip -n "$1" link set "$2" up; ip -n "$4" link set "$5" up
}
nat_router() {	# NS: forwards and masquerades out of wan0, like a home router
	ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1
	ip netns exec "$1" nft add table ip nat
	ip netns exec "$1" nft add chain ip nat post '{ type nat hook postrouting priority 100; }'
	ip netns exec "$1" nft add rule ip nat post oifname wan0 masquerade
}
topo() {	# SAME: 0 two providers, 1 the VPN behind the home router
	local vr=$V
	for ns in $N $L $V $I; do ip netns del "$ns" 2>/dev/null; done
	for ns in $N $L $V $I; do ns_new "$ns"; done
	ip -n $I addr add 198.51.100.10/32 dev lo
	ip -n $I addr add 198.51.100.20/32 dev lo
	veth $N eth0 10.0.0.2/24 $L lan0 10.0.0.1/24
	veth $L wan0 203.0.113.2/24 $I l0 203.0.113.1/24
	ip -n $L route add default via 203.0.113.1
	nat_router $L
	[ "$1" = 1 ] && vr=$L
	veth $N tun0 10.8.0.2/24 $vr tun0p 10.8.0.1/24
	if [ "$1" = 0 ]; then
		veth $V wan0 192.0.2.2/24 $I v0 192.0.2.1/24
		ip -n $V route add default via 192.0.2.1
		nat_router $V
	fi
	ip -n $N route add default via 10.0.0.1 dev eth0 metric 100
	ip -n $N route add default via 10.8.0.1 dev tun0 metric 200
	ip -n $N route add default via 10.0.0.1 dev eth0 table 51
	ip -n $N rule add fwmark 0x80000/0xff0000 lookup 51 prio 40
	# replies to the tunnel-bound socket arrive on tun0 while the main
	# table's best default is eth0: loose mode, as vnoded sets it
	for k in all default tun0 eth0; do
		ip netns exec $N sysctl -qw net.ipv4.conf.$k.rp_filter=2
	done
	: >"$ECHO_LOG"
	bg ip netns exec $I python3 "$H/fakes.py" echo "$ECHO_LOG"
	wait_for 5 ip netns exec $N curl -sf --interface tun0 -o /dev/null "$VPN_URL"
}
status() {	# python expression over the /status document d
	hcurl $N /status | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}
both_known() {
	[ "$(status 'bool(d["exit"]["vpn"]["address"] and d["exit"]["lan"]["address"])')" = True ]
}
stop_driver() { kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; }
ST=$TMP/state
ready_state "$ST"

# ---- two providers: the addresses are what the echo server saw ----------
topo 0
check "lab: tunnel path egresses as 192.0.2.2" \
	test "$(ip netns exec $N curl -s --interface tun0 $VPN_URL)" = 192.0.2.2
check "lab: LAN path egresses as 203.0.113.2" \
	test "$(ip netns exec $N curl -s $LAN_URL)" = 203.0.113.2
[ "$(ip netns exec $N curl -s $LAN_URL)" = 203.0.113.2 ] || exit 1	# no lab, no test
: >"$ECHO_LOG"
driver_start $N "$ST" "$TMP/log1" --exit-ip-url $VPN_URL --lan-ip-url $LAN_URL \
	--exit-ip-interval 10 --log-level debug || { fail "driver starts" "$(cat "$TMP/log1")"; exit 1; }
if wait_for 25 both_known; then ok "both exit addresses learned"
else fail "both exit addresses learned" "$(hcurl $N /status)"; fi
seen_vpn=$(awk '$1=="198.51.100.10" && $3=="/ip" {print $2}' "$ECHO_LOG" | sort -u)
seen_lan=$(awk '$1=="198.51.100.20" && $3=="/ip" {print $2}' "$ECHO_LOG" | sort -u)
expect_eq "echo server saw the VPN query from the VPN address only" "$seen_vpn" 192.0.2.2
expect_eq "echo server saw the LAN query from the LAN address only" "$seen_lan" 203.0.113.2
# the transfers run in short-lived children: the agent itself never maps
# libcurl (and its TLS libraries), however many checks it has made
check "checks made: libcurl not in the agent's memory map" \
	sh -c "grep -q . /proc/$DPID/maps && ! grep -q libcurl /proc/$DPID/maps"
expect_eq "reported VPN address = what the echo server saw" "$(status 'd["exit"]["vpn"]["address"]')" "$seen_vpn"
expect_eq "reported LAN address = what the echo server saw" "$(status 'd["exit"]["lan"]["address"]')" "$seen_lan"
expect_eq "sources named" "$(status 'd["exit"]["vpn"]["source"], d["exit"]["lan"]["source"]')" "198.51.100.10 198.51.100.20"
expect_eq "/status unlinkable true" "$(status 'd["exit"]["unlinkable"]')" True
expect_eq "vnode_unlinkable 1" "$(metric $N vnode_unlinkable)" 1
expect_eq "vnode_exit_addresses_equal 0" "$(metric $N vnode_exit_addresses_equal)" 0
expect_eq "exit address info metric, vpn" \
	"$(metric $N 'vnode_exit_address_info{path="vpn",address="192.0.2.2",source="198.51.100.10"}')" 1
expect_eq "exit address info metric, lan" \
	"$(metric $N 'vnode_exit_address_info{path="lan",address="203.0.113.2",source="198.51.100.20"}')" 1
hcurl $N /metrics >"$TMP/m"
check "/metrics with addresses passes promtool" promtool check metrics <"$TMP/m"

# a transition: the core calls exitip_kick(); down = unknown at once
printf 'vpn_up=0\nok_tun=0\n' >>"$ST"; hup; kill -USR1 "$DPID"; sleep 0.2
expect_eq "tunnel down: VPN address unknown at once" "$(status 'd["exit"]["vpn"]["address"]')" None
expect_eq "tunnel down: unlinkable unknown (null), not guessed" "$(status 'd["exit"]["unlinkable"]')" None
expect_eq "tunnel down: vnode_exit_address_known{vpn} 0" "$(metric $N 'vnode_exit_address_known{path="vpn"}')" 0
expect_eq "tunnel down: LAN address kept" "$(status 'd["exit"]["lan"]["address"]')" 203.0.113.2
n0=$(grep -c '^198.51.100.10 ' "$ECHO_LOG")
ready_state "$ST"; hup; kill -USR1 "$DPID"
if wait_for 6 both_known; then ok "tunnel up: VPN address learned again within seconds"
else fail "tunnel up: VPN address learned again within seconds" "$(hcurl $N /status)"; fi
n1=$(grep -c '^198.51.100.10 ' "$ECHO_LOG")
if [ "$n1" -gt "$n0" ]; then ok "the kick made a new check"; else fail "the kick made a new check" "$n0 -> $n1"; fi

# every check on its own connection: distinct client ports at the echo
# server is what no reuse looks like from outside
check "no connection reuse (one TCP connection per check)" test "$(grep -c "^198.51.100.10 " "$ECHO_LOG")" -ge 2

# a failing path becomes unknown, never keeps the old answer
e0=$(metric $N 'vnode_exit_address_checks_total{path="lan",result="error"}')
ip -n $L link set wan0 down
if wait_for 25 sh -c "[ \"\$(ip netns exec $N curl -s http://127.0.0.1:9911/status | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"exit\"][\"lan\"][\"address\"])')\" = None ]"; then
	ok "LAN path broken: LAN address unknown after the next check"
else fail "LAN path broken: LAN address unknown after the next check" "$(hcurl $N /status)"; fi
e1=$(metric $N 'vnode_exit_address_checks_total{path="lan",result="error"}')
if [ "$e1" -gt "$e0" ]; then ok "failed checks counted"; else fail "failed checks counted" "$e0 -> $e1"; fi
expect_eq "LAN path broken: unlinkable 0" "$(metric $N vnode_unlinkable)" 0
ip -n $L link set wan0 up
ip -n $L route replace default via 203.0.113.1	# flushed with the link
stop_driver
check "no check crossed paths at the echo server" \
	sh -c "! awk '(\$1==\"198.51.100.10\" && \$2!=\"192.0.2.2\") || (\$1==\"198.51.100.20\" && \$2!=\"203.0.113.2\")' '$ECHO_LOG' | grep -q ."

# ---- a check that hangs: killed at the whole-check limit (15 s) ----------
# 198.51.100.30:8080 answers its first request with the client's address, then
# accepts connections and never answers
ip -n $I addr add 198.51.100.30/32 dev lo
cat >"$TMP/hang.py" <<'EOS'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.51.100.30", 8080))
s.listen(16)
held, n = [], 0
while True:
    c, a = s.accept()
    n += 1
    with open(sys.argv[1], "a") as f:
        f.write("%s %d\n" % (a[0], n))
    if n == 1:
        c.recv(4096)
        b = a[0].encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(b), b))
        c.close()
    else:
        held.append(c)
EOS
bg ip netns exec $I python3 "$TMP/hang.py" "$TMP/hang.log"
HANGPID=$BGPID
wait_for 5 ip netns exec $I sh -c 'ss -ltn | grep -q 198.51.100.30:8080'
driver_start $N "$ST" "$TMP/logh" --exit-ip-url http://198.51.100.30:8080/ip --lan-ip-url $LAN_URL \
	--exit-ip-interval 10 --log-level debug || fail "driver starts" "$(cat "$TMP/logh")"
vpn_known() { [ "$(status 'd["exit"]["vpn"]["address"]')" = 192.0.2.2 ]; }
if wait_for 15 vpn_known; then ok "hanging source: first answer learned"
else fail "hanging source: first answer learned" "$(hcurl $N /status)"; fi
if wait_for 35 grep -q "vpn check via 198.51.100.30 failed: no answer within 15 s (check process killed)" "$TMP/logh"
then ok "a check that hangs is killed at the whole-check limit"
else fail "a check that hangs is killed at the whole-check limit" "$(tail -5 "$TMP/logh")"; fi
expect_eq "hung check killed: VPN address unknown" "$(status 'd["exit"]["vpn"]["address"]')" None
expect_eq "hung check killed: LAN address kept" "$(status 'd["exit"]["lan"]["address"]')" 203.0.113.2
sleep 0.5
zombies() {	# the driver's children in state Z
	local c
	for c in $(cat /proc/$DPID/task/*/children 2>/dev/null); do
		awk '{print $3}' /proc/$c/stat 2>/dev/null
	done | grep -c Z
}
expect_eq "hung check killed: no zombie child left" "$(zombies)" 0
check "hung check killed: at most one check process per path" \
	test "$(cat /proc/$DPID/task/*/children | wc -w)" -le 2
check "hung check killed: libcurl still not in the agent's memory map" \
	sh -c "! grep -q libcurl /proc/$DPID/maps"
kids=$(cat /proc/$DPID/task/*/children)
stop_driver
check "agent stopped: its check processes are gone" \
	sh -c "for k in $kids; do [ -e /proc/\$k ] && exit 1; done; exit 0"
kill $HANGPID 2>/dev/null; wait $HANGPID 2>/dev/null

# ---- tailscaled's STUN endpoints and Gluetun's control server ------------
TS_LOG=$TMP/ts.log GL_LOG=$TMP/gl.log
bg ip netns exec $N python3 "$H/fakes.py" tailscaled "$TMP/ts.sock" "$TS_LOG" http://198.51.100.20/stun 0x80000
bg ip netns exec $N python3 "$H/fakes.py" gluetun "$GL_LOG" http://198.51.100.10/gluetun tun0
GLPID=$BGPID
wait_for 5 test -S "$TMP/ts.sock"
wait_for 5 ip netns exec $N curl -sf -o /dev/null http://127.0.0.1:8000/v1/publicip/ip
: >"$ECHO_LOG"
printf 'tun_addr4=10.8.0.2\n' >>"$ST"
driver_start $N "$ST" "$TMP/log2" --exit-ip-url gluetun --lan-ip-url "tailscaled:$TMP/ts.sock" \
	--exit-ip-interval 10 || fail "driver starts" "$(cat "$TMP/log2")"
if wait_for 25 both_known; then ok "both addresses from Gluetun and tailscaled"
else fail "both addresses from Gluetun and tailscaled" "$(hcurl $N /status) $(cat "$TMP/log2")"; fi
expect_eq "VPN address from Gluetun = what the echo server saw through tun0" \
	"$(status 'd["exit"]["vpn"]["address"], d["exit"]["vpn"]["source"]')" \
	"$(awk '$3=="/gluetun" {print $2}' "$ECHO_LOG" | tail -1) gluetun"
expect_eq "LAN address = tailscaled's public endpoint (private, CGNAT, tun0 and ULA ones skipped)" \
	"$(status 'd["exit"]["lan"]["address"], d["exit"]["lan"]["source"]')" \
	"$(awk '$3=="/stun" {print $2}' "$ECHO_LOG" | tail -1) tailscaled"
expect_eq "unlinkable" "$(status 'd["exit"]["unlinkable"]')" True
expect_eq "LocalAPI asked as tailscale's own client does" "$(head -1 "$TS_LOG")" \
	"GET /localapi/v0/status?peers=false HTTP/1.1|local-tailscaled.sock|localapi"
expect_eq "Gluetun's route asked" "$(head -1 "$GL_LOG")" "GET /v1/publicip/ip HTTP/1.1"
check "with local sources, no third party was asked" \
	sh -c "! awk '\$3==\"/ip\"' '$ECHO_LOG' | grep -q ."
stop_driver

# tailscaled advertising the VPN's address among its endpoints: linked
FAKE_TS_EXTRA="192.0.2.2:41641" bg ip netns exec $N python3 "$H/fakes.py" tailscaled "$TMP/ts2.sock" "$TMP/ts2.log" http://198.51.100.20/stun 0x80000
wait_for 5 test -S "$TMP/ts2.sock"
driver_start $N "$ST" "$TMP/log3" --exit-ip-url gluetun --lan-ip-url "tailscaled:$TMP/ts2.sock" \
	--exit-ip-interval 10
wait_for 25 both_known
expect_eq "tailscaled also reachable at the VPN address: not unlinkable" "$(status 'd["exit"]["unlinkable"]')" False
stop_driver

# tailscaled with only an IPv6 public endpoint, the VPN answer IPv4:
# nothing compared, nothing claimed
FAKE_TS_EXTRA="[2001:db8:5::5]:41641" bg ip netns exec $N python3 "$H/fakes.py" tailscaled "$TMP/ts3.sock" "$TMP/ts3.log" http://127.0.0.1:1/none 0x80000
wait_for 5 test -S "$TMP/ts3.sock"
driver_start $N "$ST" "$TMP/log3b" --exit-ip-url gluetun --lan-ip-url "tailscaled:$TMP/ts3.sock" \
	--exit-ip-interval 10
wait_for 25 both_known
expect_eq "IPv4 VPN address, IPv6 LAN address: unlinkable unknown, not claimed" \
	"$(status 'd["exit"]["vpn"]["address"], d["exit"]["lan"]["address"], d["exit"]["unlinkable"]')" "192.0.2.2 2001:db8:5::5 None"
expect_eq "IPv4 VPN address, IPv6 LAN address: vnode_unlinkable 0" "$(metric $N vnode_unlinkable)" 0
stop_driver

# Gluetun refusing (401): no address from it, the next source is tried
kill $GLPID; wait $GLPID 2>/dev/null
bg ip netns exec $N python3 "$H/fakes.py" gluetun "$TMP/gl401.log" http://198.51.100.10/gluetun tun0 401
wait_for 5 sh -c "ip netns exec $N curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/v1/publicip/ip | grep -q 401"
driver_start $N "$ST" "$TMP/log4" --exit-ip-url "gluetun,$VPN_URL" --lan-ip-url none --exit-ip-interval 10
wait_for 15 sh -c "[ \"\$(ip netns exec $N curl -s http://127.0.0.1:9911/metrics | awk '\$1==\"vnode_exit_address_known{path=\\\"vpn\\\"}\"{print \$2}')\" = 1 ]"
expect_eq "Gluetun 401: the next source in the list answers" \
	"$(status 'd["exit"]["vpn"]["address"], d["exit"]["vpn"]["source"]')" "192.0.2.2 198.51.100.10"
check "Gluetun 401 logged with a hint" grep -q "gluetun: HTTP 401 (authentication required" "$TMP/log4"
expect_eq "no LAN source: LAN address unknown" "$(status 'd["exit"]["lan"]["address"]')" None
stop_driver

# ---- one provider: both paths leave from the same address ----------------
topo 1
check "lab (same): tunnel path egresses as 203.0.113.2" \
	test "$(ip netns exec $N curl -s --interface tun0 $VPN_URL)" = 203.0.113.2
driver_start $N "$ST" "$TMP/log5" --exit-ip-url $VPN_URL --lan-ip-url $LAN_URL --exit-ip-interval 10
wait_for 25 both_known
expect_eq "same address: unlinkable false" "$(status 'd["exit"]["unlinkable"]')" False
expect_eq "same address: vnode_unlinkable 0" "$(metric $N vnode_unlinkable)" 0
expect_eq "same address: vnode_exit_addresses_equal 1" "$(metric $N vnode_exit_addresses_equal)" 1
check "same address: loud warning" grep -q "exit addresses are EQUAL" "$TMP/log5"
hcurl $N /readyz >/dev/null
expect_eq "same address, not required: still ready" "$(code)" 200
stop_driver
driver_start $N "$ST" "$TMP/log6" --exit-ip-url $VPN_URL --lan-ip-url $LAN_URL --exit-ip-interval 10 \
	--require-unlinkable 1
wait_for 25 both_known
body=$(hcurl $N /readyz)
expect_eq "VNODE_REQUIRE_UNLINKABLE=1: /readyz 503" "$(code)" 503
expect_eq "VNODE_REQUIRE_UNLINKABLE=1: names the check" "$body" \
	"unlinkable: clients and tailscaled both leave from 203.0.113.2 (VNODE_REQUIRE_UNLINKABLE=1)"
out=$(ip netns exec $N "$VNODED" probe --ready); rc=$?
expect_eq "probe --ready fails too" "$rc" 1
stop_driver
