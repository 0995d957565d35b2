#!/usr/bin/env bash
# 1. Traffic paths, judged by what the internet saw: client TCP, UDP, ICMP
# and DNS from the VPN address; control-class traffic from the LAN address;
# control-class DNS (UDP and TCP 53) from the VPN address, and with the
# tunnel down nowhere at all; control-class traffic to a tailnet address by
# tailscale0.
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }
agent_start || { fail "agent starts" "$(agent_why)"; exit 1; }

lab_reset_counters
expect_out "client TCP arrives from the VPN address" "$VPN_ADDR" client_tcp $CLI_TARGET
expect_out "client UDP arrives from the VPN address" "$VPN_ADDR" client_udp $CLI_TARGET
check "client ping answered" client_ping $CLI_TARGET 3
expect_count "client pings arrive from the VPN address (inet_ping_vpn)" inet_ping_vpn -ge 3
expect_count "no client ping from the LAN address (inet_ping_lan)" inet_ping_lan -eq 0
expect_out "client DNS lookup asked from the VPN address" "$VPN_ADDR" client_dns
expect_out "control TCP arrives from the LAN address" "$LAN_ADDR" ctl_tcp $CTL_TARGET 443
expect_out "control UDP (STUN) arrives from the LAN address" "$LAN_ADDR" ctl_udp $CTL_TARGET 3478
expect_out "control UDP (41641) arrives from the LAN address" "$LAN_ADDR" ctl_udp $CTL_TARGET 41641
expect_out "control TCP over IPv6 arrives from the LAN address" "$LAN_ADDR6" ctl_tcp $CTL_TARGET6 443
n0=$(dns_log_lines)
expect_out "control DNS over UDP asked from the VPN address" "$VPN_ADDR" ctl_dns_udp
expect_out "control DNS over TCP asked from the VPN address" "$VPN_ADDR" ctl_dns_tcp
expect_out "control DNS to the LAN's resolver is asked from the VPN address" "$VPN_ADDR" ctl_dns_udp 192.168.77.1
expect_out "control DNS over TCP to the LAN's resolver too" "$VPN_ADDR" ctl_dns_tcp 192.168.77.1
expect_eq "the DNS server logged 4 lookups, all from the VPN address" \
	"$(tail -n +$((n0 + 1)) "$DNS_LOG" | awk '{print $3}' | sort | uniq -c | awk '{print $1, $2}')" "4 $VPN_ADDR"
# IPv4-only tunnel: control DNS over IPv6 may only go nowhere
ctl_dns_udp $DNS_SERVER6 --timeout 1 >/dev/null 2>&1
expect_out "control TCP to a tailnet address leaves by tailscale0" 100.100.0.1 ctl_tcp 100.100.0.2 7
expect_out "control UDP to a tailnet address leaves by tailscale0" 100.100.0.1 ctl_udp 100.100.0.2 7
expect_out "control TCP to a tailnet IPv6 address leaves by tailscale0" fd7a:115c:a1e0::1 ctl_tcp fd7a:115c:a1e0::2 7
expect_count "no client packet on the LAN (lan_client)" lan_client -eq 0
expect_count "no DNS on the LAN (lan_dns)" lan_dns -eq 0
expect_count "no tailnet packet on the LAN (lan_tailnet)" lan_tailnet -eq 0
expect_count "no control packet inside the tunnel (tun_control)" tun_control -eq 0
expect_count "nothing in the tunnel with a foreign source (tun_badsrc)" tun_badsrc -eq 0
expect_count "control traffic seen on the LAN (lan_control)" lan_control -gt 0
expect_count "client traffic seen in the tunnel (tun_client)" tun_client -gt 0
expect_count "control DNS seen in the tunnel (tun_dns)" tun_dns -gt 0

dns_down_checks() {	# WHAT
	local n0; n0=$(dns_log_lines)
	lab_reset_counters
	expect_fail "$1: control DNS over UDP gets no answer" ctl_dns_udp $DNS_SERVER --timeout 1
	expect_fail "$1: control DNS over TCP gets no answer" ctl_dns_tcp $DNS_SERVER --timeout 1
	expect_fail "$1: control DNS to the LAN's resolver gets no answer" ctl_dns_udp 192.168.77.1 --timeout 1
	expect_fail "$1: control DNS over IPv6 gets no answer" ctl_dns_udp $DNS_SERVER6 --timeout 1
	expect_count "$1: no DNS on the LAN (lan_dns)" lan_dns -eq 0
	expect_eq "$1: the DNS server heard nothing" "$(dns_log_lines)" "$n0"
	expect_out "$1: control TCP still leaves by the LAN" "$LAN_ADDR" ctl_tcp $CTL_TARGET 443
	expect_fail "$1: client traffic blocked" client_udp $CLI_TARGET --timeout 1 --tries 1
	expect_count "$1: no client packet on the LAN (lan_client)" lan_client -eq 0
}
vpn_down
dns_down_checks "tun0 down"
vpn_up
wait_for 10 eval 'ctl_dns_udp >/dev/null 2>&1' || fail "control DNS back after tun0 up" "no answer in 10 s"
vpn_delete
dns_down_checks "tun0 deleted"
vpn_restore
wait_for 10 eval 'client_udp $CLI_TARGET --tries 1 --timeout 1 >/dev/null 2>&1'
expect_out "client traffic back through the VPN after the tunnel returns" "$VPN_ADDR" client_udp $CLI_TARGET
expect_out "control DNS back through the VPN" "$VPN_ADDR" ctl_dns_udp
