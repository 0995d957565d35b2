#!/usr/bin/env bash
# 8. Someone else deletes a route of table 51 or 53, a rule, or the nft
# table: the agent restores it and logs it. Tailscale's table 52 and rules
# are never written by the agent (dump before/after, and no route event in
# table 52 while the agent runs).
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }
t52() { for f in -4 -6; do _lab_ip vnode $f route show table 52; _lab_ip vnode $f rule | grep -E '^52[0-9][0-9]:'; done; }
T52=$(t52)
lab_bg vnode monitor ip monitor route
sleep 0.2
agent_start || { fail "agent starts" "$(agent_why)"; exit 1; }
D=$(lab_rules_dump)
NFT=$(in_ns vnode nft -s list table inet vnode)
client_stream stream $CLI_TARGET --interval 0.01
lab_reset_counters

heal() {	# NAME LOG-PATTERN ip-args...
	local name=$1 pat=$2 l; shift 2
	l=$(agent_log_lines)
	_lab_ip vnode "$@" || { fail "$name: delete" "ip $*"; return; }
	if wait_for 3 eval '[ "$(lab_rules_dump)" = "$D" ]'; then ok "$name: restored"
	else fail "$name: restored" "$(diff <(echo "$D") <(lab_rules_dump) | grep '^[<>]' | head -3 | tr '\n' ' ')"; fi
	if tail -n +$((l + 1)) "$AGENT_LOG" | grep -qE -- "$pat"; then ok "$name: the agent logs it"
	else fail "$name: the agent logs it" "no log line matching '$pat'"; fi
}
heal "table 51 default (IPv4) deleted" "route .*default.* table 51" route del default table 51
heal "table 51 default (IPv6) deleted" "route .*default.* table 51" -6 route del default table 51
heal "table 51 on-link route deleted" "192.168.77.0/24.*table 51" route del 192.168.77.0/24 table 51
heal "table 53 default deleted" "route .*default.* table 53" route del default table 53
heal "rule 43 (control class -> 51) deleted" "rule .*43" rule del priority 43
heal "rule 40 (tailnet -> 52) deleted" "rule .*40" rule del priority 40
heal "rule 49 (tailscale0 unreachable) deleted" "rule .*49" rule del priority 49
heal "IPv6 rule 48 (tailscale0 -> 53) deleted" "rule .*48" -6 rule del priority 48
heal "IPv6 rule 46 (client flows unreachable) deleted" "rule .*46" -6 rule del priority 46

l=$(agent_log_lines)
in_ns vnode nft delete table inet vnode
if wait_for 3 eval '[ "$(in_ns vnode nft -s list table inet vnode 2>/dev/null)" = "$NFT" ]'; then ok "nft table deleted: restored as it was"
else fail "nft table deleted: restored as it was" "$(in_ns vnode nft -s list table inet vnode 2>&1 | head -3 | tr '\n' ' ')"; fi
if tail -n +$((l + 1)) "$AGENT_LOG" | grep -qE 'nft|inet vnode'; then ok "nft table deleted: the agent logs it"
else fail "nft table deleted: the agent logs it" "no log line"; fi

# several at once
_lab_ipb vnode <<-'IPEOF'
route del default table 51
route del default table 53
rule del priority 48
rule del priority 45
IPEOF
in_ns vnode nft delete table inet vnode
if wait_for 3 eval '[ "$(lab_rules_dump)" = "$D" ] && [ "$(in_ns vnode nft -s list table inet vnode 2>/dev/null)" = "$NFT" ]'; then
	ok "routes, rules and the table deleted together: all restored"
else fail "routes, rules and the table deleted together: all restored" "$(diff <(echo "$D") <(lab_rules_dump) | grep '^[<>]' | head -3 | tr '\n' ' ')"; fi

expect_out "client traffic still through the VPN" "$VPN_ADDR" client_udp $CLI_TARGET
expect_out "control traffic still by the LAN" "$LAN_ADDR" ctl_tcp $CTL_TARGET
lab_stop stream
expect_count "no client packet on the LAN during the repairs" lan_client -eq 0
check "the agent is still running" agent_alive
agent_stop
lab_stop monitor
expect_eq "Tailscale's table 52 and rules unchanged" "$(t52)" "$T52"
expect_eq "no route event in table 52 while the agent ran" "$(grep -c 'table 52' "$LAB_TMP/monitor.log")" 0
