#!/usr/bin/env bash
# 5. TunnelCrack LocalNet: the LAN renumbered to a subnet containing the
# client target (eth0 203.0.113.2/24, router 203.0.113.1 answering for .20):
# client traffic still through the VPN.
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }
agent_start || { fail "agent starts" "$(agent_why)"; exit 1; }

ln_checks() {	# WHAT
	lab_reset_counters
	wait_for 10 eval 'client_udp $CLI_TARGET --tries 1 --timeout 1 >/dev/null 2>&1'
	expect_out "$1: client UDP from the VPN address" "$VPN_ADDR" client_udp $CLI_TARGET
	expect_out "$1: client TCP from the VPN address" "$VPN_ADDR" client_tcp $CLI_TARGET
	check "$1: client ping answered" client_ping $CLI_TARGET 2
	expect_out "$1: client DNS from the VPN address" "$VPN_ADDR" client_dns
	expect_count "$1: no client packet on the LAN" lan_client -eq 0
}
lan_renumber_localnet || fail "renumber the LAN" "see above"
ln_checks "LAN renumbered under the running agent"
agent_stop
agent_start || fail "agent starts on the renumbered LAN" "$(agent_why)"
ln_checks "agent started on the renumbered LAN"
