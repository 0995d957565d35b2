#!/usr/bin/env bash
# 13. Positive controls: without the agent, deliberate leaks of every class
# the other tests count are seen by the same counters and probes, so that a
# zero there means something. Also: the seed's original recipe leaks control
# TCP into the tunnel and client IPv6 to the LAN (DESIGN.md).
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }

# --- the lab as built (Gluetun + Tailscale, no agent) ----------------------
lab_reset_counters
expect_out "no agent: control TCP leaves by the VPN (Gluetun's rule 101 takes it)" "$VPN_ADDR" ctl_tcp $CTL_TARGET
expect_count "tun_control counts control traffic inside the tunnel" tun_control -gt 0
expect_count "node_tun_control counts control traffic handed to tun0" node_tun_control -gt 0
expect_count "lan_control stays 0 when nothing goes by the LAN" lan_control -eq 0
expect_fail "no agent, forwarding off: client traffic goes nowhere" client_udp $CLI_TARGET --tries 1 --timeout 1

# a naive classification: the whole control class to the LAN, DNS included
_lab_ip vnode rule add fwmark 0x80000/0xff0000 lookup 200 priority 90
_lab_ip vnode -6 rule add fwmark 0x80000/0xff0000 lookup main priority 90
lab_reset_counters
expect_out "naive classification: control UDP from the LAN address" "$LAN_ADDR" ctl_udp $CTL_TARGET
expect_out "naive classification: control TCP over IPv6 from the LAN" "$LAN_ADDR6" ctl_tcp $CTL_TARGET6
expect_count "lan_control counts control traffic on the LAN" lan_control -gt 0
n0=$(dns_log_lines)
expect_out "naive classification: control DNS (UDP) asked from the LAN address" "$LAN_ADDR" ctl_dns_udp
expect_out "naive classification: control DNS (TCP) asked from the LAN address" "$LAN_ADDR" ctl_dns_tcp
expect_count "lan_dns counts DNS on the LAN" lan_dns -ge 2
expect_eq "the DNS server logs both lookups" "$(( $(dns_log_lines) - n0 ))" 2
_lab_ip vnode rule del priority 90
_lab_ip vnode -6 rule del priority 90

# the LAN link goes away: control traffic falls through to rule 101, tun0
lan_down
lab_reset_counters
ctl_tcp $CTL_TARGET 443 --timeout 1 >/dev/null 2>&1
expect_count "LAN down, no agent: node_tun_control counts control traffic entering tun0" node_tun_control -gt 0
lan_up
lab_wait_tunnel 10

# from the LAN, the node answers for tun0's address (CVE-2019-14899 class)
_lab_ip router route replace 10.66.0.2/32 via 192.168.77.2 dev lan
node_service 8000
check "no agent: the LAN reaches the node's service on tun0's address" \
	in_ns router $LABNET tcp 10.66.0.2 8000 --timeout 2
check "no agent: the LAN gets ping answers from tun0's address" \
	in_ns router ping -c 1 -W 2 10.66.0.2

# --- forwarding on, nothing else (what the stack gives without an agent) ----
lab_naive_forwarding
lab_reset_counters
expect_out "naive forwarding: client UDP leaves by the VPN while the tunnel is up" "$VPN_ADDR" client_udp $CLI_TARGET
expect_out "naive forwarding: client TCP leaves by the VPN" "$VPN_ADDR" client_tcp $CLI_TARGET
check "naive forwarding: client ping answered" client_ping $CLI_TARGET
expect_count "inet_ping_vpn counts pings from the VPN address" inet_ping_vpn -gt 0
expect_count "tun_client counts client traffic in the tunnel" tun_client -gt 0
expect_count "no MSS clamp: the client sees a SYN-ACK MSS above 1240 (client_synack_mss_big)" client_synack_mss_big -gt 0
expect_count "lan_client stays 0 while the tunnel carries everything" lan_client -eq 0
check "naive forwarding: the tailnet reaches the node's own service (:8000)" client_tcp 100.100.0.1 8000

# client IPv6, no IPv6 in the tunnel: the main table sends it to the LAN
lab_reset_counters
client_tcp $CLI_TARGET6 80 --timeout 2 >/dev/null 2>&1
client_ping $CLI_TARGET6
expect_count "naive forwarding: client IPv6 counted on the LAN (lan_client)" lan_client -gt 0

# a steady client flow, then the tunnel goes down: it falls back to the LAN
client_stream pc-stream $CLI_TARGET --tcp --interval 0.02
wait_for 5 eval '[ -n "$(stream_replies pc-stream udp)" ]'
lab_reset_counters
vpn_down
sleep 0.5
client_ping $CLI_TARGET
expect_count "tunnel down, naive forwarding: the client flow counted on the LAN" lan_client -gt 0
expect_count "node_eth0_client agrees (handed to eth0)" node_eth0_client -gt 0
expect_count "inet_ping_lan counts pings from the LAN address" inet_ping_lan -gt 0
lab_stop pc-stream
vpn_up
lab_wait_tunnel 10

# ICMP errors the node sends about a client flow: with Gluetun's rule 101
# gone (its reconnect), they follow the main table to the LAN
gluetun_rule_del
_lab_ip vnode rule add iif tailscale0 lookup 51820 priority 97
wait_for 5 eval 'client_udp $CLI_TARGET --tries 1 --timeout 1 >/dev/null'
lab_reset_counters
client_udp_big $CLI_TARGET 1272 --timeout 2 >/dev/null 2>&1
expect_count "packet too big about a client flow counted on the LAN (lan_icmp_client)" lan_icmp_client -gt 0
expect_count "inet_ptb counts the packet-too-big at the server" inet_ptb -gt 0
_lab_ip vnode rule del priority 97
gluetun_rule_add

# LocalNet: the LAN renumbered around the target; Gluetun's rule 98 sends
# it to the LAN
lan_renumber_localnet
lab_reset_counters
client_udp $CLI_TARGET --tries 2 --timeout 1 >/dev/null 2>&1
expect_count "LocalNet, naive forwarding: client traffic counted on the LAN" lan_client -gt 0
lab_down

# --- the seed's original recipe --------------------------------------------
lab_up || { fail "lab up (seed)" "see above"; exit 1; }
seed_recipe_apply || fail "seed recipe applies" "see above"
lab_reset_counters
expect_out "seed: client TCP leaves by the VPN" "$VPN_ADDR" client_tcp $CLI_TARGET
expect_out "seed: control TCP (tailscaled's HTTPS) leaves by the VPN" "$VPN_ADDR" ctl_tcp $CTL_TARGET 443
expect_count "seed: control traffic counted inside the tunnel (tun_control)" tun_control -gt 0
ctl_udp $CTL_TARGET 3478 --timeout 1 --tries 1 >/dev/null 2>&1
expect_count "seed: STUN (udp 3478) goes by the LAN (lan_control)" lan_control -gt 0
lab_reset_counters
client_tcp $CLI_TARGET6 80 --timeout 2 >/dev/null 2>&1
client_ping $CLI_TARGET6
expect_count "seed: client IPv6 counted on the LAN (lan_client)" lan_client -gt 0
# TunnelVision against the seed once Gluetun's rule 101 is gone
gluetun_rule_del
tunnelvision_push
lab_reset_counters
client_udp $CLI_TARGET --tries 2 --timeout 1 >/dev/null 2>&1
expect_count "seed + TunnelVision routes (rule 101 gone): client traffic on the LAN" lan_client -gt 0
