#!/usr/bin/env bash
# 9. Stale conntrack: a UDP and a TCP client flow established through tun0
# are not moved onto the LAN when the tunnel goes (down or deleted): none of
# their packets appear on the LAN, no conntrack entry of theirs is NATed to
# the LAN address; the UDP flow resumes through the VPN when it returns.
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }
agent_start || { fail "agent starts" "$(agent_why)"; exit 1; }

client_stream flow $CLI_TARGET --tcp --interval 0.02
wait_for 5 eval '[ -n "$(stream_replies flow tcp)" ] && [ -n "$(stream_replies flow udp)" ]' ||
	fail "client flows established" "$(tail -n 3 "$LAB_TMP/flow.log" | tr '\n' ' ')"
expect_eq "UDP flow through the VPN" "$(stream_replies flow udp | sort -u)" "$VPN_ADDR"
expect_eq "TCP flow through the VPN" "$(stream_replies flow tcp | sort -u)" "$VPN_ADDR"
lan_nat() { in_ns vnode conntrack -L -s 100.100.0.2 2>/dev/null | grep -c 'dst=192.168.77.2 '; }

for how in down delete; do
	lab_reset_counters
	if [ $how = down ]; then vpn_down; else vpn_delete; fi
	sleep 1.5
	expect_count "tun0 $how: no packet of the flows on the LAN (lan_client)" lan_client -eq 0
	expect_count "tun0 $how: none handed to eth0 (node_eth0_client)" node_eth0_client -eq 0
	expect_eq "tun0 $how: no client conntrack entry NATed to the LAN address" "$(lan_nat)" 0
	t=$(now)
	if [ $how = down ]; then vpn_up; else vpn_restore; fi
	if wait_for 10 eval 'stream_replies flow udp $t | grep -qx "$VPN_ADDR"'; then ok "tun0 back after $how: the UDP flow resumes through the VPN"
	else fail "tun0 back after $how: the UDP flow resumes through the VPN" "no reply in 10 s"; fi
	expect_count "tun0 back after $how: still nothing on the LAN" lan_client -eq 0
done
lab_stop flow
expect_eq "every reply of both flows came from the VPN address" "$( { stream_replies flow udp; stream_replies flow tcp; } | sort -u)" "$VPN_ADDR"
