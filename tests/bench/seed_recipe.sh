#!/bin/sh
# The seed project's entrypoint recipe (the baseline of the benchmarks), as
# its container ran it: every step a command, run inside the namespace.
#   seed_recipe.sh        apply
#   seed_recipe.sh undo   remove what it added
if [ "${1:-}" = undo ]; then
	ip rule del priority 1 2>/dev/null; ip rule del priority 99 2>/dev/null
	ip route replace default via 192.168.77.1 dev eth0; ip route flush table 51
	iptables -t mangle -F; iptables -t nat -F
	exit 0
fi
ip route replace default via 192.168.77.1 dev eth0 table 51
ip route replace default dev tun0
ip rule add fwmark 0x40000 lookup 51 priority 1
ip rule add to 100.64.0.0/10 lookup 52 priority 99
for p in 3478 41641; do
	iptables -t mangle -A OUTPUT -p udp --sport $p -j MARK --set-mark 0x40000
	iptables -t mangle -A OUTPUT -p udp --dport $p -j MARK --set-mark 0x40000
done
iptables -P FORWARD ACCEPT
iptables -t nat -A POSTROUTING -o tun0 -j MASQUERADE
iptables -t nat -A POSTROUTING -o eth0 -m mark --mark 0x40000 -j MASQUERADE
iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1120
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
