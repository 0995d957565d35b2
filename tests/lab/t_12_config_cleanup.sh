#!/usr/bin/env bash
# 12. Bad configuration: exit 2, a message naming the key, the namespace
# untouched (rules, routes, nft, sysctls). --cleanup leaves the namespace as
# it was before the agent (rules, routes, nft); SIGTERM leaves the kill
# switch in place.
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }
S0=$(lab_snapshot)
R0=$(lab_snapshot_routing)

bad() {	# NAME WANT-IN-MESSAGE ENV-ASSIGNMENT|-- FLAGS...
	local name=$1 want=$2 env=$3 out rc; shift 3
	out=$(AGENT_ENV=$([ "$env" != -- ] && echo "$env") agent_run "$@" 2>&1 >/dev/null); rc=$?
	if [ $rc = 2 ] && grep -qF -- "$want" <<<"$out"; then ok "$name: exit 2 naming $want"
	else fail "$name: exit 2 naming $want" "rc=$rc: $(head -n 2 <<<"$out" | tr '\n' ' ')"; fi
	local s; s=$(lab_snapshot)
	if [ "$s" = "$S0" ]; then ok "$name: namespace untouched"
	else fail "$name: namespace untouched" "$(diff <(echo "$S0") <(echo "$s") | grep '^[<>]' | head -3 | tr '\n' ' ')"; fi
}
bad "mark overlapping the VPN's fwmark" VNODE_MARK VNODE_MARK=51820
bad "mark overlapping 0x40000" VNODE_MARK VNODE_MARK=0x40000/0xff0000
bad "table 52" VNODE_VPN_TABLE VNODE_VPN_TABLE=52
bad "unknown key" VNODE_LAN_IFF VNODE_LAN_IFF=eth0
bad "rule block reaching Gluetun's 98" VNODE_RULE_PRIORITY -- --rule-priority 95
bad "public allow-lan" VNODE_ALLOW_LAN -- --allow-lan 8.8.8.0/24
bad "same interface twice" VNODE_VPN_IF -- --vpn-if eth0

agent_start || { fail "agent starts" "$(agent_why)"; exit 1; }
R1=$(lab_snapshot_routing)
[ "$R1" != "$R0" ] && ok "the snapshot sees what the agent installed" || fail "the snapshot sees what the agent installed" "no difference"
agent_stop
expect_eq "SIGTERM: rules, routes and nft table stay (kill switch)" "$(lab_snapshot_routing)" "$R1"
out=$(agent_run --cleanup 2>&1); rc=$?
expect_eq "--cleanup exits 0" "$rc" 0
R2=$(lab_snapshot_routing)
if [ "$R2" = "$R0" ]; then ok "--cleanup: rules, routes and nft as before the agent"
else fail "--cleanup: rules, routes and nft as before the agent" "$(diff <(echo "$R0") <(echo "$R2") | grep '^[<>]' | head -4 | tr '\n' ' ')"; fi
out=$(agent_run --cleanup 2>&1); rc=$?
expect_eq "--cleanup again: exit 0" "$rc" 0
expect_eq "--cleanup again: nothing else removed" "$(lab_snapshot_routing)" "$R0"

# after a crash with the tunnel down, and with other table/priority settings
agent_start --lan-table 61 --vpn-table 63 --rule-priority 20 || fail "agent starts with other tables" "$(agent_why)"
vpn_down
sleep 0.3
agent_kill
vpn_up
out=$(agent_run --cleanup --lan-table 61 --vpn-table 63 --rule-priority 20 2>&1); rc=$?
expect_eq "--cleanup after SIGKILL (other tables): exit 0" "$rc" 0
R3=$(lab_snapshot_routing)
if [ "$R3" = "$R0" ]; then ok "--cleanup after SIGKILL (other tables): as before the agent"
else fail "--cleanup after SIGKILL (other tables): as before the agent" "$(diff <(echo "$R0") <(echo "$R3") | grep '^[<>]' | head -4 | tr '\n' ' ')"; fi
expect_out "after --cleanup: control traffic as without the agent (Gluetun's rule 101)" "$VPN_ADDR" ctl_tcp $CTL_TARGET
