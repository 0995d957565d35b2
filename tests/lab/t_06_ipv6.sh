#!/usr/bin/env bash
# 6. Client IPv6 with an IPv4-only tunnel: dropped, 0 on the LAN. With an
# IPv6 tunnel: client IPv6 from the VPN's IPv6 address, control IPv6 by
# the LAN, and the IPv6 MSS clamp / packet-too-big path.
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }
agent_start || { fail "agent starts" "$(agent_why)"; exit 1; }
lab_reset_counters
expect_fail "IPv4-only tunnel: client TCP over IPv6 blocked" client_tcp $CLI_TARGET6 80 --timeout 1
expect_fail "IPv4-only tunnel: client UDP over IPv6 blocked" client_udp $CLI_TARGET6 7 --timeout 1 --tries 1
expect_fail "IPv4-only tunnel: client ping over IPv6 blocked" client_ping $CLI_TARGET6
expect_fail "IPv4-only tunnel: client DNS over IPv6 blocked" client_dns $DNS_SERVER6 --timeout 1
expect_count "IPv4-only tunnel: no client IPv6 on the LAN (lan_client)" lan_client -eq 0
expect_count "IPv4-only tunnel: nothing in the tunnel for it either (tun_client)" tun_client -eq 0
expect_out "IPv4-only tunnel: client IPv4 still from the VPN address" "$VPN_ADDR" client_udp $CLI_TARGET
expect_out "IPv4-only tunnel: control IPv6 from the LAN address" "$LAN_ADDR6" ctl_tcp $CTL_TARGET6
lab_down

lab_up --v6-tunnel || { fail "lab up (IPv6 tunnel)" "see above"; exit 1; }
agent_start || { fail "agent starts (IPv6 tunnel)" "$(agent_why)"; exit 1; }
lab_reset_counters
wait_for 5 eval 'client_udp $CLI_TARGET6 7 --tries 1 --timeout 1 >/dev/null 2>&1'
expect_out "IPv6 tunnel: client TCP over IPv6 from the VPN's IPv6 address" "$VPN_ADDR6" client_tcp $CLI_TARGET6
expect_out "IPv6 tunnel: client UDP over IPv6 from the VPN's IPv6 address" "$VPN_ADDR6" client_udp $CLI_TARGET6
check "IPv6 tunnel: client ping over IPv6 answered" client_ping $CLI_TARGET6 2
expect_count "IPv6 tunnel: pings from the VPN's IPv6 address" inet_ping_vpn -ge 2
expect_out "IPv6 tunnel: client IPv4 from the VPN address" "$VPN_ADDR" client_tcp $CLI_TARGET
expect_out "IPv6 tunnel: control IPv6 from the LAN address" "$LAN_ADDR6" ctl_tcp $CTL_TARGET6
expect_out "IPv6 tunnel: download over IPv6 completes" 4194304 client_bulk $CLI_TARGET6 80 4194304
expect_count "IPv6 tunnel: SYN-ACK MSS clamped to 1220 (client_synack_mss_big)" client_synack_mss_big -eq 0
client_udp_big $CLI_TARGET6 1252 --timeout 1 >/dev/null 2>&1
expect_count "IPv6 tunnel: packet too big about a client flow went through the tunnel" tun_icmp_client -gt 0
expect_count "IPv6 tunnel: no client packet on the LAN" lan_client -eq 0
expect_count "IPv6 tunnel: no ICMP error about a client flow on the LAN" lan_icmp_client -eq 0
expect_count "IPv6 tunnel: no control packet in the tunnel" tun_control -eq 0
vpn_down
lab_reset_counters
expect_fail "IPv6 tunnel down: client IPv6 blocked" client_udp $CLI_TARGET6 7 --timeout 1 --tries 1
client_ping $CLI_TARGET6
expect_count "IPv6 tunnel down: no client packet on the LAN" lan_client -eq 0
