#!/usr/bin/env bash
# Every endpoint's status codes and bodies, /readyz following each
# readiness check, /metrics through promtool, `vnoded probe`, listen
# addresses. The agent side is build/health-driver (health.c on a libev
# loop, vstate from a file): judged only by what a client receives.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/hlib.sh"

NS=${P}e
ns_new "$NS"
ST=$TMP/state
ready_state "$ST"
driver_start "$NS" "$ST" "$TMP/log" --exit-ip-url none --lan-ip-url none \
	|| { fail "driver starts" "$(cat "$TMP/log")"; exit 1; }

body=$(hcurl "$NS" /healthz); expect_eq "/healthz 200" "$(code)" 200
expect_eq "/healthz body" "$body" "ok"
body=$(hcurl "$NS" /readyz); expect_eq "/readyz 200 when every check holds" "$(code)" 200
expect_eq "/readyz body" "$body" "ok"
hcurl "$NS" /nope >/dev/null; expect_eq "unknown path 404" "$(code)" 404
hcurl "$NS" /healthz -X POST >/dev/null; expect_eq "POST /healthz 405" "$(code)" 405
ctype=$(ip netns exec "$NS" curl -s -o /dev/null -w '%{content_type}' http://127.0.0.1:9911/metrics)
expect_eq "/metrics content type" "$ctype" "text/plain; version=0.0.4; charset=utf-8"
ctype=$(ip netns exec "$NS" curl -s -o /dev/null -w '%{content_type}' http://127.0.0.1:9911/status)
expect_eq "/status content type" "$ctype" "application/json"

# /readyz names each failing check, one line each, and flips back
declare -A line=(
	[ok_tun]="tun: tun0 is down or has no address"
	[ok_vpn_route]="vpn_route: no default route via tun0 in table 53"
	[ok_rules]="rules: the rule block at priorities 40-49 is incomplete"
	[ok_nft]="nft: table inet vnode is missing or incomplete"
	[ok_classifier]="classifier: tailscaled's sockets are not being marked (ebpf)"
	[ok_ts_if]="ts_if: tailscale0 does not exist"
	[ok_child]="child: the supervised command is not running"
)
for k in ok_tun ok_vpn_route ok_rules ok_nft ok_classifier ok_ts_if ok_child; do
	ready_state "$ST"; echo "$k=0" >>"$ST"; hup
	body=$(hcurl "$NS" /readyz)
	if [ "$(code)" = 503 ] && [ "$body" = "${line[$k]}" ]; then ok "/readyz 503 naming $k"
	else fail "/readyz 503 naming $k" "code $(code) body '$body'"; fi
	v=$(metric "$NS" "vnode_check{check=\"${k#ok_}\"}")
	expect_eq "vnode_check{${k#ok_}} 0 while it fails" "$v" 0
done
ready_state "$ST"; printf 'ok_tun=0\nok_vpn_route=0\nvpn_up=0\n' >>"$ST"; hup
body=$(hcurl "$NS" /readyz)
expect_eq "/readyz lists two failures on two lines" "$(printf '%s\n' "$body" | wc -l)" 2
expect_eq "vnode_ready 0" "$(metric "$NS" vnode_ready)" 0
ready="$(hcurl "$NS" /status | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["ready"], d["state"], len(d["failing"]))')"
expect_eq "/status says not ready, down, 2 failing" "$ready" "False down 2"
ready_state "$ST"; hup
hcurl "$NS" /readyz >/dev/null; expect_eq "/readyz back to 200" "$(code)" 200
expect_eq "vnode_ready 1" "$(metric "$NS" vnode_ready)" 1

# /metrics: promtool, every family the issue names, state values
hcurl "$NS" /metrics >"$TMP/metrics"
check "/metrics passes promtool check metrics" promtool check metrics <"$TMP/metrics"
for m in vnode_vpn_up vnode_ready vnode_tunnel_transitions_total vnode_repairs_total \
	vnode_conntrack_flushed_total vnode_sockets_classified_total \
	vnode_forwarded_packets_total vnode_forwarded_bytes_total \
	vnode_killswitch_dropped_packets_total vnode_exit_address_info vnode_unlinkable \
	vnode_build_info; do
	grep -q "^# TYPE $m " "$TMP/metrics" || { fail "/metrics has $m" "missing"; continue; }
	grep -q "^# HELP $m " "$TMP/metrics" || { fail "/metrics has HELP for $m" "missing"; continue; }
done
ok "/metrics has HELP and TYPE for every family the issue names"
cat >>"$ST" <<EOS
transitions=7
repairs_route=3
repairs_rule=2
repairs_nft=1
ct_flushed=42
sockets_marked=1234
child_pid=4242
vpn_since=1700000000
tun_addr4=10.64.0.2
lan_addr4=192.168.1.20
repair=rule 41 re-added (deleted by someone)
repair=route default dev tun0 table 53 re-added
EOS
hup
hcurl "$NS" /metrics >"$TMP/metrics"
expect_eq "transitions exposed" "$(awk '$1=="vnode_tunnel_transitions_total"{print $2}' "$TMP/metrics")" 7
expect_eq "repairs by object" "$(grep '^vnode_repairs_total' "$TMP/metrics" | tr '\n' ' ')" \
	'vnode_repairs_total{object="route"} 3 vnode_repairs_total{object="rule"} 2 vnode_repairs_total{object="nft"} 1 '
expect_eq "conntrack flushed" "$(awk '$1=="vnode_conntrack_flushed_total"{print $2}' "$TMP/metrics")" 42
expect_eq "sockets classified" "$(awk '$1=="vnode_sockets_classified_total"{print $2}' "$TMP/metrics")" 1234
expect_eq "no exit address info while unknown" "$(grep -c '^vnode_exit_address_info' "$TMP/metrics")" 0
expect_eq "unlinkable 0 while unknown" "$(awk '$1=="vnode_unlinkable"{print $2}' "$TMP/metrics")" 0
check "/metrics still passes promtool" promtool check metrics <"$TMP/metrics"

hcurl "$NS" /status >"$TMP/status"
check "/status is JSON" python3 -m json.tool "$TMP/status"
got=$(python3 - "$TMP/status" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(d["version"], d["state"], d["since"], d["transitions"], d["repairs"]["route"],
      d["conntrack_flushed"], d["sockets_classified"], d["child_pid"],
      d["addresses"]["tun4"], d["addresses"]["lan4"], d["exit"]["vpn"]["address"],
      d["exit"]["unlinkable"], d["classifier"], "|".join(d["last_repairs"]),
      sorted(d["counters"]) == sorted(["forwarded_client_out", "forwarded_client_in",
      "dropped_forward", "dropped_input", "dropped_leak_flow", "dropped_leak_dns",
      "dropped_leak_control", "dropped_leak_source"]))
PY
)
expect_eq "/status fields" "$got" "0.1.0 up 2023-11-14T22:13:20Z 7 3 42 1234 4242 10.64.0.2 192.168.1.20 None None ebpf rule 41 re-added (deleted by someone)|route default dev tun0 table 53 re-added True"
for i in 1 2 3 4 5 6 7 8 9; do echo "repair=repair number $i" >>"$ST"; done; hup
got=$(hcurl "$NS" /status | python3 -c 'import json,sys; r=json.load(sys.stdin)["last_repairs"]; print(len(r), r[0], "/", r[-1])')
expect_eq "/status keeps the last 8 repairs, oldest first" "$got" "8 repair number 2 / repair number 9"

# vnoded probe: exit status and body
out=$(ip netns exec "$NS" "$VNODED" probe --ready); rc=$?
expect_eq "probe --ready: 0 when ready" "$rc" 0
echo "ok_nft=0" >>"$ST"; hup
out=$(ip netns exec "$NS" "$VNODED" probe --ready); rc=$?
expect_eq "probe --ready: 1 when not ready" "$rc" 1
expect_eq "probe --ready prints the failing check" "$out" "nft: table inet vnode is missing or incomplete"
out=$(ip netns exec "$NS" "$VNODED" probe); rc=$?
expect_eq "probe defaults to --ready" "$rc" 1
out=$(ip netns exec "$NS" "$VNODED" probe --live); rc=$?
expect_eq "probe --live: 0 while the loop turns" "$rc" 0
kill -STOP "$DPID"
start=$(date +%s%N)
out=$(ip netns exec "$NS" "$VNODED" probe --live 2>&1); rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
kill -CONT "$DPID"
if [ $rc -eq 1 ] && [ $ms -lt 4000 ]; then ok "probe --live: 1 within 3 s when the loop is stuck"
else fail "probe --live: 1 within 3 s when the loop is stuck" "rc=$rc after ${ms}ms: $out"; fi
out=$(ip netns exec "$NS" "$VNODED" probe --live --health-listen 127.0.0.1:9999 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "Connection refused" <<<"$out"; then ok "probe: 1 and a message when nothing listens"
else fail "probe: 1 and a message when nothing listens" "rc=$rc $out"; fi
out=$(VNODE_HEALTH_LISTEN=none "$VNODED" probe 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "is none" <<<"$out"; then ok "probe with VNODE_HEALTH_LISTEN=none says so"
else fail "probe with VNODE_HEALTH_LISTEN=none says so" "rc=$rc $out"; fi
out=$("$VNODED" probe --bogus 2>&1); rc=$?
expect_eq "probe with an unknown option exits 2" "$rc" 2
out=$("$VNODED" probe -- true 2>&1); rc=$?
expect_eq "probe with a command exits 2" "$rc" 2
kill "$DPID"; wait "$DPID" 2>/dev/null

# other listen addresses: IPv6 wildcard (probe asks ::1), none
NS6=${P}6
ns_new "$NS6"
ready_state "$ST"
HADDR="[::1]:9912" driver_start "$NS6" "$ST" "$TMP/log6" --health-listen "[::]:9912" \
	--exit-ip-url none --lan-ip-url none
body=$(HADDR="[::1]:9912" hcurl "$NS6" /healthz)
expect_eq "listens on [::]:9912" "$body" "ok"
out=$(ip netns exec "$NS6" "$VNODED" probe --health-listen "[::]:9912"); rc=$?
expect_eq "probe of a [::] listener asks ::1" "$rc" 0
kill "$DPID"; wait "$DPID" 2>/dev/null
driver_start "$NS6" "$ST" "$TMP/log7" --health-listen none --exit-ip-url none --lan-ip-url none
sleep 0.3
if kill -0 "$DPID" 2>/dev/null && ! ip netns exec "$NS6" ss -Htln | grep -q .; then
	ok "VNODE_HEALTH_LISTEN=none: runs, listens nowhere"
else fail "VNODE_HEALTH_LISTEN=none: runs, listens nowhere" "$(ip netns exec "$NS6" ss -tln)"; fi
kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null
# a busy port is an error at start
bg ip netns exec "$NS6" python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",9913)); s.listen(); time.sleep(30)'
wait_for 5 sh -c "ip netns exec $NS6 ss -Htln | grep -q 127.0.0.1:9913"
HDRIVER_STATE=$ST timeout 5 ip netns exec "$NS6" "$DRIVER" --health-listen 127.0.0.1:9913 --exit-ip-url none --lan-ip-url none 2>"$TMP/log8"; rc=$?
if [ $rc -ne 0 ] && grep -q "listen on 127.0.0.1:9913: Address already in use" "$TMP/log8"; then ok "busy port: start fails naming the address"
else fail "busy port: start fails naming the address" "rc=$rc $(cat "$TMP/log8")"; fi
