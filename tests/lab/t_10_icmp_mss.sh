#!/usr/bin/env bash
# 10. ICMP errors the node sends about client flows (packet too big: the
# server sends more than tailscale0 carries) leave by the tunnel, never by
# the LAN — with Gluetun's rule 101 in place and without it (its reconnect
# window). A large download through the exit node completes, SYN-ACKs are
# clamped to tailscale0's MTU (MSS).
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }
agent_start || { fail "agent starts" "$(agent_why)"; exit 1; }

ptb_checks() {	# WHAT
	lab_reset_counters
	expect_out "$1: a 1200-byte reply fits and arrives" "$VPN_ADDR" client_udp_big $CLI_TARGET 1200
	client_udp_big $CLI_TARGET 1272 --timeout 1 >/dev/null 2>&1
	expect_count "$1: packet too big about the client flow went into the tunnel (tun_icmp_client)" tun_icmp_client -gt 0
	expect_count "$1: the server got it (inet_ptb)" inet_ptb -gt 0
	expect_count "$1: no ICMP error about a client flow on the LAN (lan_icmp_client)" lan_icmp_client -eq 0
	expect_count "$1: no client packet on the LAN" lan_client -eq 0
}
ptb_checks "rule 101 present"
gluetun_rule_del
ptb_checks "rule 101 gone"
gluetun_rule_add

lab_reset_counters
expect_out "a 4 MiB download through the exit node completes" 4194304 client_bulk $CLI_TARGET 80 4194304
expect_out "a 16 MiB download completes" 16777216 client_bulk $CLI_TARGET 80 16777216
expect_count "SYN-ACKs reach the client clamped to 1240 (client_synack_mss_big)" client_synack_mss_big -eq 0
expect_count "no client packet on the LAN" lan_client -eq 0
