#!/bin/sh
# The VPN provider of the e2e world: a real WireGuard server (wireguard-go +
# wg) with NAT out of its own address, like a commercial provider. Gluetun's
# upstream resolvers (Cloudflare, Google, Quad9) are DNATed to the world's DNS
# logger before routing, so no packet is ever routed towards their addresses.
# Counters (table inet e2e), read by the tests:
#   tunnel_control   packets from the tunnel to the control server, STUN, or the
#                    tailnet client's address: tailscaled's traffic in the tunnel
#   tunnel_client    packets from the tunnel to the echo/DNS server
# env: TUN (tunnel /24 prefix), ECHO, HS, CLIENT
set -eu
ip route replace blackhole default
wireguard-go wg0
wg setconf wg0 /e2e/wg0.conf
ip addr add "$TUN.1/24" dev wg0
ip link set wg0 up
nft -f - <<NFT
table inet e2e {
	counter tunnel_control {}
	counter tunnel_client {}
	counter tunnel_dns {}
	chain dnat_in {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "wg0" ip daddr { 1.1.1.1, 1.0.0.1, 8.8.8.8, 8.8.4.4, 9.9.9.9, 149.112.112.112 } meta l4proto { udp, tcp } th dport 53 counter name tunnel_dns dnat ip to $ECHO
	}
	chain count_fwd {
		type filter hook forward priority filter; policy drop;
		iifname "wg0" ip daddr { $HS, $CLIENT } counter name tunnel_control
		iifname "wg0" udp dport 3478 counter name tunnel_control
		iifname "wg0" ip daddr $ECHO counter name tunnel_client
		iifname "wg0" oifname "eth0" accept
		iifname "eth0" oifname "wg0" ct state established,related accept
	}
	chain snat_out {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr $TUN.0/24 oifname "eth0" masquerade
	}
}
NFT
touch /tmp/vpn-ready
echo "vpn server up: $(wg show wg0 listen-port) $TUN.1/24"
exec sleep infinity
