#!/usr/bin/env bash
# 4. TunnelVision (CVE-2024-3661): 0.0.0.0/1, 128.0.0.0/1 and /32s of the
# client target and of the resolver pushed via the LAN gateway into main:
# client traffic (and control DNS) still through the VPN.
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }
agent_start || { fail "agent starts" "$(agent_why)"; exit 1; }

tv_checks() {	# WHAT
	lab_reset_counters
	expect_out "$1: client TCP from the VPN address" "$VPN_ADDR" client_tcp $CLI_TARGET
	expect_out "$1: client UDP from the VPN address" "$VPN_ADDR" client_udp $CLI_TARGET
	check "$1: client ping answered" client_ping $CLI_TARGET 2
	expect_count "$1: pings from the VPN address" inet_ping_vpn -ge 2
	expect_out "$1: client DNS from the VPN address" "$VPN_ADDR" client_dns
	expect_out "$1: control DNS from the VPN address" "$VPN_ADDR" ctl_dns_udp
	expect_count "$1: no client packet on the LAN" lan_client -eq 0
	expect_count "$1: no DNS on the LAN" lan_dns -eq 0
}
tunnelvision_push main
tv_checks "TunnelVision routes in main"
gluetun_rule_del
tv_checks "TunnelVision routes, Gluetun's rule 101 gone"
# the agent started on an already poisoned main table
agent_stop
agent_start || fail "agent restarts on a poisoned main table" "$(agent_why)"
tv_checks "agent started after TunnelVision"
