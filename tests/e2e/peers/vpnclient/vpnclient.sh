#!/bin/sh
# /gluetun-entrypoint of vnode-e2e/vpnclient (see the Dockerfile for what it
# stands in for and what it is not).
#   (no argument)  set up firewall, routes, DNS and the tunnel, then serve
#                  the control server and the DNS forwarder (control.py)
#   up | down      bring the tunnel up / take it down (the control server's
#                  PUT /v1/vpn/status running|stopped)
#   healthcheck    exit 0 when a TCP dial to the first HEALTH_TARGET_ADDRESSES
#                  entry through the tunnel succeeds
set -eu
IF=${VPN_INTERFACE:-tun0}
RUN=/run/vpnclient
log() { echo "vpnclient: $*"; }
die() { echo "vpnclient: $*" >&2; exit 1; }
need() { eval "[ -n \"\${$1:-}\" ]" || die "$1 is not set"; }

# The LAN side, as Docker made it: the default route's interface.
lan() {
	LANIF=$(ip -4 route show default | awk '{print $5; exit}')
	GW=$(ip -4 route show default | awk '{print $3; exit}')
	[ -n "$LANIF" ] && [ -n "$GW" ] || die "no default route on the LAN"
	LANADDR=$(ip -o -4 addr show dev "$LANIF" | awk '{sub(/\/.*/, "", $4); print $4; exit}')
	SUBNET=$(ip -4 route show dev "$LANIF" scope link | awk '{print $1; exit}')
}

# Gluetun's firewall: DROP policies, loopback, established flows, the LAN
# subnet, the VPN endpoint, tun0 out, FIREWALL_INPUT_PORTS; then the user's
# post-rules, one command per line.
firewall() {
	for t in iptables ip6tables; do
		$t -P INPUT DROP; $t -P OUTPUT DROP; $t -P FORWARD DROP
		$t -F INPUT; $t -F OUTPUT; $t -F FORWARD
		$t -A INPUT -i lo -j ACCEPT
		$t -A OUTPUT -o lo -j ACCEPT
		$t -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
		$t -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
		$t -A OUTPUT -o "$IF" -j ACCEPT
	done
	iptables -A OUTPUT -o "$LANIF" -s "$LANADDR" -d "$SUBNET" -j ACCEPT
	iptables -A INPUT -i "$LANIF" -s "$SUBNET" -d "$LANADDR" -j ACCEPT
	iptables -A OUTPUT -o "$LANIF" -d "$WIREGUARD_ENDPOINT_IP" -p udp \
		--dport "$WIREGUARD_ENDPOINT_PORT" -j ACCEPT
	for p in $(echo "${FIREWALL_INPUT_PORTS:-}" | tr , ' '); do
		iptables -A INPUT -i "$LANIF" -p tcp --dport "$p" -j ACCEPT
		iptables -A INPUT -i "$LANIF" -p udp --dport "$p" -j ACCEPT
	done
	for s in $(echo "${FIREWALL_OUTBOUND_SUBNETS:-}" | tr , ' '); do
		iptables -A OUTPUT -o "$LANIF" -d "$s" -j ACCEPT
	done
	if [ -f /iptables/post-rules.txt ]; then
		log "running /iptables/post-rules.txt"
		grep -Ev '^[[:space:]]*(#|$)' /iptables/post-rules.txt | while read -r line; do
			case $line in
			iptables\ *|ip6tables\ *) sh -c "$line" || die "post-rules: failed: $line" ;;
			*) die "post-rules: not an iptables command: $line" ;;
			esac
		done
	fi
}

# Gluetun's policy routing: 98 the LAN subnet by main, 99 the outbound
# subnets by 199, 100 the LAN address's own replies by 200.
routes() {
	ip rule add to "$SUBNET" lookup main priority 98
	for s in $(echo "${FIREWALL_OUTBOUND_SUBNETS:-}" | tr , ' '); do
		ip route replace "$s" via "$GW" dev "$LANIF" table 199
		ip rule add to "$s" lookup 199 priority 99
	done
	ip route replace default via "$GW" dev "$LANIF" table 200
	ip rule add from "$LANADDR" lookup 200 priority 100
}

has_v6() { echo "$WIREGUARD_ADDRESSES" | grep -q :; }

up() {
	need WIREGUARD_ENDPOINT_IP; need WIREGUARD_PUBLIC_KEY
	need WIREGUARD_PRIVATE_KEY; need WIREGUARD_ADDRESSES
	ip link show "$IF" >/dev/null 2>&1 && down
	mkdir -p "$RUN"
	(umask 077; printf '%s\n' "$WIREGUARD_PRIVATE_KEY" >"$RUN/key"
	 printf '%s\n' "${WIREGUARD_PRESHARED_KEY:-}" >"$RUN/psk")
	wireguard-go "$IF" >"$RUN/wireguard-go.log" 2>&1
	psk=""
	[ -n "${WIREGUARD_PRESHARED_KEY:-}" ] && psk="preshared-key $RUN/psk"
	# shellcheck disable=SC2086
	wg set "$IF" private-key "$RUN/key" fwmark 51820 peer "$WIREGUARD_PUBLIC_KEY" $psk \
		endpoint "$WIREGUARD_ENDPOINT_IP:$WIREGUARD_ENDPOINT_PORT" allowed-ips 0.0.0.0/0,::/0
	for a in $(echo "$WIREGUARD_ADDRESSES" | tr , ' '); do ip addr add "$a" dev "$IF"; done
	ip link set "$IF" mtu "${WIREGUARD_MTU:-1320}" up
	ip route replace default dev "$IF" table 51820
	ip rule add not fwmark 51820 lookup 51820 priority 101
	if has_v6; then
		ip -6 route replace default dev "$IF" table 51820
		ip -6 rule add not fwmark 51820 lookup 51820 priority 101
	fi
	log "tunnel $IF up: $WIREGUARD_ADDRESSES via $WIREGUARD_ENDPOINT_IP:$WIREGUARD_ENDPOINT_PORT"
}

# What Gluetun does on a restart: rule 101 goes, then the link.
down() {
	while ip rule del priority 101 2>/dev/null; do :; done
	while ip -6 rule del priority 101 2>/dev/null; do :; done
	ip link del "$IF" 2>/dev/null || true
	pkill -x wireguard-go 2>/dev/null || true
	log "tunnel $IF down"
}

healthcheck() {
	t=$(echo "${HEALTH_TARGET_ADDRESSES:-}" | cut -d, -f1)
	[ -n "$t" ] || exit 1
	ip link show "$IF" up 2>/dev/null | grep -q UP || exit 1
	exec nc -z -w 4 "${t%:*}" "${t##*:}"
}

case ${1:-run} in
run)
	lan
	log "LAN $LANIF $LANADDR ($SUBNET via $GW)"
	firewall
	routes
	printf 'nameserver 127.0.0.1\n' >/etc/resolv.conf
	up
	exec vpnclient-control
	;;
up) lan; up ;;
down) down ;;
healthcheck) healthcheck ;;
*) die "unknown command $1 (run, up, down, healthcheck)" ;;
esac
