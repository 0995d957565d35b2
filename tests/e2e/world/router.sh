#!/bin/sh
# The home router of the e2e world: the LAN's gateway (LAN.1, added beside
# the address Docker gave it) with NAT out of its internet address.
# Counters (table inet e2e), read by the tests, on packets from the LAN:
#   lan_client    to the echo/DNS server: client traffic on the LAN (a leak)
#   lan_control   to the control server: tailscaled's traffic, as it should go
#   lan_vpn       to the VPN server: the tunnel's own packets
#   lan_peer      to the tailnet client's address: peer-to-peer WireGuard
# env: LAN INET ECHO HS VPN CLIENT
set -eu
lanif=$(ip -o -4 addr show | awk -v p="$LAN." 'index($4, p) == 1 {print $2; exit}')
wanif=$(ip -o -4 addr show | awk -v p="$INET." 'index($4, p) == 1 {print $2; exit}')
ip route replace blackhole default
# NAT before the gateway address: a LAN host's packet forwarded before the
# masquerade rule exists makes a conntrack entry without NAT, and a flow
# that keeps sending (a WireGuard handshake retried every 5 s from one port)
# keeps that entry and never gets a reply
nft -f - <<NFT
table inet e2e {
	counter lan_client {}
	counter lan_control {}
	counter lan_vpn {}
	counter lan_peer {}
	chain count_fwd {
		type filter hook forward priority filter; policy accept;
		iifname "$lanif" ip daddr $ECHO counter name lan_client
		iifname "$lanif" ip daddr $HS counter name lan_control
		iifname "$lanif" ip daddr $VPN counter name lan_vpn
		iifname "$lanif" ip daddr $CLIENT counter name lan_peer
	}
	chain snat_out {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "$wanif" ip saddr $LAN.0/24 masquerade
	}
}
NFT
ip addr add "$LAN.1/24" dev "$lanif" 2>/dev/null || true
echo "router: lan $lanif wan $wanif"
