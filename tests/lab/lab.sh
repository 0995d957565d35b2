# tests/lab/lab.sh: the network-namespace lab of DESIGN.md ("Test world"),
# sourced by tests/lab/t_*.sh, the demo and the benchmarks.
#
#   inet    "the internet": 203.0.113.10 (control target), .20 (client
#           target), .53 (DNS), 2001:db8:203::10/::20/::53, on a dummy;
#           echo servers that answer with the source address they saw and
#           a DNS server that logs who asked (labnet.py serve)
#   router  home router: WAN 198.51.100.2, LAN 192.168.77.1/24,
#           fd00:77::1/64, fe80::1; masquerades IPv4, routes IPv6
#   vpn     VPN provider: WAN 198.51.100.6, a wireguard-go server wg0
#           10.66.0.1/24 (fd00:66::1/64), masquerade out of WAN (NAT66 too)
#   vnode   the node: eth0 192.168.77.2/24 + fd00:77::2/64 (default via .1,
#           IPv6 via fe80::1), tun0 a wireguard-go client 10.66.0.2/32
#           (fwmark 51820, MTU 1320), tailscale0 a veth (MTU 1280) with
#           100.100.0.1 + fd7a:115c:a1e0::1; Gluetun's rules 98/100/101
#           (tables 200, 51820), Tailscale's 5210..5270 and table 52, an nft
#           table standing in for tailscaled's ts-* chains, strict
#           rp_filter, forwarding off
#   client  tailnet client 100.100.0.2 + fd7a:115c:a1e0::2 using the node as
#           exit node (default via tailscale0's peer)
#
# Every namespace is named $LAB_ID-<role> (LAB_ID=vn<pid> by default), every
# interface is created inside those namespaces (never in the caller's), and
# each wireguard-go gets a private mount namespace with a tmpfs on
# /run/wireguard, so labs run side by side. lab_up installs a trap that
# tears everything down on exit, Ctrl-C or SIGTERM.
#
# Leak counters (nftables, outside the agent; lab_count NAME):
#   router ingress from the node (LAN segment):
#     lan_client      to 203.0.113.20 / ::20, or from 100.64/10, fd7a:115c:a1e0::/48
#     lan_dns         udp/tcp dport 53
#     lan_control     to 203.0.113.10 / ::10 (positive when control works)
#     lan_icmp_client ICMP/ICMPv6 errors addressed to a client target
#     lan_tailnet     to 100.64/10 or fd7a:115c:a1e0::/48
#     lan_any         everything
#   VPN server, wg0 ingress (inside the tunnel):
#     tun_control tun_client tun_dns tun_icmp_client tun_any
#     tun_badsrc      inner source not tun0's address
#   internet: inet_ping_vpn / inet_ping_lan (echo requests to ::20/.20 from
#     the VPN / LAN address), inet_ptb (packet-too-big towards .20/::20)
#   node, postrouting after everything (what is handed to a device):
#     node_tun_control (control target via tun0), node_tun_any,
#     node_eth0_client (client target via eth0)
#   client: client_synack_mss_big (SYN-ACKs reaching the client with an MSS
#     above tailscale0's MTU minus 40 / 60)
# A capture of the LAN segment (router side, tunnel packets excluded) names
# the leaked packets in failure messages. A run with a failure keeps its
# logs (agent, servers, streams, capture) in /tmp/vnode-lab-logs/.
#
# Main entry points: lab_up [--v6-tunnel], lab_down, in_ns, lab_count,
# lab_reset_counters, vpn_down/vpn_up, vpn_delete/vpn_restore,
# vpn_server_restart, lan_down/lan_up, lan_renumber_localnet,
# tunnelvision_push, gluetun_rule_del/add, ctl_tcp/ctl_udp/ctl_dns_udp/
# ctl_dns_tcp (control class: SO_MARK 0x80000), client_tcp/udp/udp_big/
# ping/dns/bulk/stream, node_service, agent_start/stop/kill/run,
# lab_rules_dump, lab_snapshot, seed_recipe_apply, lab_naive_forwarding.

LAB_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${ROOT:-$(cd "$LAB_HERE/../.." && pwd)}
declare -F ok >/dev/null || . "$ROOT/tests/lib.sh"
# remember a failure, so lab_down keeps the logs (agent, servers, streams)
LAB_FAILED=
if ! declare -F _lab_lib_fail >/dev/null; then
	eval "_lab_lib_$(declare -f fail)"
	fail() { LAB_FAILED=1; _lab_lib_fail "$@"; }
fi
VNODED=${VNODED:-$ROOT/build/vnoded}
LAB_PY=${LAB_PY:-/usr/bin/python3}
LABNET="$LAB_PY $LAB_HERE/labnet.py"
LAB_ID=${LAB_ID:-vn$$}
LAB_TMP=/tmp/$LAB_ID.lab
LAB_V6_TUNNEL=0
LAB_ON_EXIT=${LAB_ON_EXIT:-}
CTL_MARK=0x80000

# Addresses (fixed: the agent's defaults, the demo and the benchmarks agree)
VPN_ADDR=198.51.100.6   VPN_ADDR6=2001:db8:2::2
LAN_ADDR=198.51.100.2   LAN_ADDR6=fd00:77::2
CTL_TARGET=203.0.113.10 CTL_TARGET6=2001:db8:203::10
CLI_TARGET=203.0.113.20 CLI_TARGET6=2001:db8:203::20
DNS_SERVER=203.0.113.53 DNS_SERVER6=2001:db8:203::53
DNS_LOG=$LAB_TMP/dns.log

lab_ns() { echo "$LAB_ID-$1"; }
# in_ns NS CMD...: run CMD in the lab namespace NS (network namespace only:
# /sys is the caller's; use ip netns exec for what reads /sys)
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$LAB_ID-$ns" "$@"; }
_lab_ip() { local ns=$1; shift; ip -n "$LAB_ID-$ns" "$@"; }
_lab_sysctl() { local ns=$1; shift; in_ns "$ns" sysctl -q -w "$@" >/dev/null; }
_lab_log() { [ -n "${LAB_QUIET:-}" ] || echo "  lab: $*" >&2; }
_lab_die() { echo "  lab: $*" >&2; return 1; }

# lab_bg NS NAME CMD...: a long-lived process in NS, output in $LAB_TMP/NAME.log
lab_bg() {
	local ns=$1 name=$2; shift 2
	ip netns exec "$LAB_ID-$ns" "$@" >"$LAB_TMP/$name.log" 2>&1 &
	echo $! >"$LAB_TMP/$name.pid"
	echo $! >>"$LAB_TMP/pids"
}

lab_down() {
	local role ns pids
	[ -d "$LAB_TMP" ] || [ -e "/run/netns/$LAB_ID-vnode" ] || return 0
	if [ -n "$LAB_ON_EXIT" ]; then eval "$LAB_ON_EXIT" || true; fi
	for role in client vnode vpn router inet; do
		ns=$LAB_ID-$role
		[ -e "/run/netns/$ns" ] || continue
		pids=$(ip netns pids "$ns" 2>/dev/null)
		[ -n "$pids" ] && kill $pids 2>/dev/null
	done
	[ -f "$LAB_TMP/pids" ] && kill $(cat "$LAB_TMP/pids") 2>/dev/null
	sleep 0.1
	for role in client vnode vpn router inet; do
		ns=$LAB_ID-$role
		[ -e "/run/netns/$ns" ] || continue
		pids=$(ip netns pids "$ns" 2>/dev/null)
		[ -n "$pids" ] && kill -9 $pids 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	# logs of a run with a failure stay in /tmp/vnode-lab-logs/<test>.<id>
	local keep=${LAB_KEEP_LOGS:-}
	[ -z "$keep" ] && [ -n "$LAB_FAILED" ] && keep=/tmp/vnode-lab-logs/${T_FILE:-lab}.$LAB_ID.$(date +%s)
	if [ -n "$keep" ] && [ -d "$LAB_TMP" ]; then
		mkdir -p "$keep" && cp -r "$LAB_TMP"/. "$keep"/ 2>/dev/null &&
		echo "  lab: logs kept in $keep" >&2
	fi
	rm -rf "$LAB_TMP"
	wait 2>/dev/null
	return 0
}

_lab_trap() {
	trap 'lab_down' EXIT
	trap 'lab_down; trap - INT; kill -INT $$' INT
	trap 'lab_down; trap - TERM; kill -TERM $$' TERM
}

# lab_up [--v6-tunnel]: build the whole lab, wait until the tunnel handshakes.
lab_up() {
	local a
	for a in "$@"; do
		case $a in
		--v6-tunnel) LAB_V6_TUNNEL=1 ;;
		*) _lab_die "lab_up: unknown option $a"; return 1 ;;
		esac
	done
	[ "$(id -u)" = 0 ] || { _lab_die "lab_up: needs root"; return 1; }
	_lab_trap
	rm -rf "$LAB_TMP"; mkdir -p "$LAB_TMP"; : >"$LAB_TMP/pids"
	mkdir -p /run/wireguard
	_lab_namespaces && _lab_links && _lab_inet && _lab_router && _lab_vpn &&
	_lab_vnode && _lab_client && _lab_servers && _lab_wg_server && _lab_wg_client &&
	_lab_servers_ready || {
		_lab_die "lab_up failed"; return 1; }
	wait_for 10 _lab_handshaked || { _lab_die "tunnel did not handshake"; return 1; }
	# everything the node puts on the LAN but the tunnel's own packets, for
	# failure messages (lab_lan_last) and kept logs
	lab_bg router lanpcap tcpdump -i lan -U -s 200 -w "$LAB_TMP/lan.pcap" not arp and not udp port 51820
	wait_for 3 test -s "$LAB_TMP/lan.pcap"
	_lab_log "up: $LAB_ID ($( [ $LAB_V6_TUNNEL = 1 ] && echo 'IPv4+IPv6 tunnel' || echo 'IPv4-only tunnel'))"
}

# _lab_ipb NS [-6]: ip commands from stdin in one batch (stops at the first
# failure and fails)
_lab_ipb() { local ns=$1; shift; ip "$@" -n "$LAB_ID-$ns" -batch -; }

_lab_namespaces() {
	local role
	for role in inet router vpn vnode client; do
		ip netns add "$LAB_ID-$role" || return 1
	done
	# no duplicate address detection or router advertisements anywhere:
	# addresses are usable at once and nothing configures itself
	local common="net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
		net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0"
	_lab_sysctl inet $common net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 &&
	_lab_sysctl router $common net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 &&
	_lab_sysctl vpn $common net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 &&
	_lab_sysctl client $common &&
	# the node as many hosts hand over a new namespace: strict reverse-path
	# filtering, no forwarding (the agent changes these)
	_lab_sysctl vnode $common net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0 \
		net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1 \
		net.ipv4.conf.all.src_valid_mark=0 \
		net.ipv4.conf.all.accept_redirects=1 net.ipv4.conf.default.accept_redirects=1
}

_lab_links() {
	# each veth is created inside a lab namespace with its peer in another
	_lab_ipb inet <<-EOF
	link set lo up
	link add r0 type veth peer name wan netns $LAB_ID-router
	link add v0 type veth peer name wan netns $LAB_ID-vpn
	EOF
	[ $? = 0 ] && _lab_ipb router <<-EOF
	link add lan type veth peer name eth0 netns $LAB_ID-vnode
	EOF
	[ $? = 0 ] && _lab_ipb vnode <<-EOF
	link add tailscale0 address 02:00:00:00:00:01 type veth peer name ts0 address 02:00:00:00:00:02 netns $LAB_ID-client
	EOF
}

_lab_inet() {
	_lab_ipb inet <<-'EOF' || return 1
	addr add 203.0.113.10/32 dev lo
	addr add 203.0.113.20/32 dev lo
	addr add 203.0.113.53/32 dev lo
	addr add 2001:db8:203::10/128 dev lo nodad
	addr add 2001:db8:203::20/128 dev lo nodad
	addr add 2001:db8:203::53/128 dev lo nodad
	addr add 198.51.100.1/30 dev r0
	addr add 2001:db8:1::1/64 dev r0 nodad
	addr add 198.51.100.5/30 dev v0
	addr add 2001:db8:2::1/64 dev v0 nodad
	link set r0 up
	link set v0 up
	route add fd00:77::/64 via 2001:db8:1::2 dev r0
	EOF
	# (IPv6 of the home LAN is routed, not translated: the route above)
	in_ns inet nft -f - <<-'EOF'
	table inet lab {
		counter inet_ping_vpn {}
		counter inet_ping_lan {}
		counter inet_ptb {}
		chain watch {
			type filter hook prerouting priority -500; policy accept;
			ip daddr 203.0.113.20 icmp type echo-request ip saddr 198.51.100.6 counter name inet_ping_vpn
			ip6 daddr 2001:db8:203::20 icmpv6 type echo-request ip6 saddr 2001:db8:2::2 counter name inet_ping_vpn
			ip daddr 203.0.113.20 icmp type echo-request ip saddr 198.51.100.2 counter name inet_ping_lan
			ip6 daddr 2001:db8:203::20 icmpv6 type echo-request ip6 saddr fd00:77::2 counter name inet_ping_lan
			ip daddr 203.0.113.20 icmp type destination-unreachable icmp code frag-needed counter name inet_ptb
			ip6 daddr 2001:db8:203::20 icmpv6 type packet-too-big counter name inet_ptb
		}
	}
	EOF
}

_lab_router() {
	_lab_ipb router <<-'EOF' || return 1
	link set lo up
	addr add 198.51.100.2/30 dev wan
	addr add 2001:db8:1::2/64 dev wan nodad
	link set lan addrgenmode none
	addr add 192.168.77.1/24 dev lan
	addr add fd00:77::1/64 dev lan nodad
	addr add fe80::1/64 dev lan nodad
	link set wan up
	link set lan up
	route add default via 198.51.100.1 dev wan
	route add ::/0 via 2001:db8:1::1 dev wan
	EOF
	in_ns router nft -f - <<-'EOF'
	table inet lab {
		counter lan_client {}
		counter lan_dns {}
		counter lan_control {}
		counter lan_icmp_client {}
		counter lan_tailnet {}
		counter lan_any {}
		# everything the node puts on the LAN segment, before defragmentation,
		# conntrack or NAT
		chain watch {
			type filter hook prerouting priority -500; policy accept;
			iifname != "lan" accept
			counter name lan_any
			ip daddr 203.0.113.20 counter name lan_client
			ip saddr 100.64.0.0/10 ip daddr != 203.0.113.20 counter name lan_client
			ip6 daddr 2001:db8:203::20 counter name lan_client
			ip6 saddr fd7a:115c:a1e0::/48 ip6 daddr != 2001:db8:203::20 counter name lan_client
			meta l4proto { tcp, udp } th dport 53 counter name lan_dns
			ip daddr 203.0.113.10 counter name lan_control
			ip6 daddr 2001:db8:203::10 counter name lan_control
			ip daddr 203.0.113.20 icmp type { destination-unreachable, source-quench, time-exceeded, parameter-problem } counter name lan_icmp_client
			ip6 daddr 2001:db8:203::20 icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } counter name lan_icmp_client
			ip daddr 100.64.0.0/10 counter name lan_tailnet
			ip6 daddr fd7a:115c:a1e0::/48 counter name lan_tailnet
		}
		chain nat {
			type nat hook postrouting priority 100; policy accept;
			oifname "wan" meta nfproto ipv4 masquerade
		}
	}
	EOF
}

_lab_vpn() {
	_lab_ipb vpn <<-'EOF' || return 1
	link set lo up
	addr add 198.51.100.6/30 dev wan
	addr add 2001:db8:2::2/64 dev wan nodad
	link set wan up
	route add default via 198.51.100.5 dev wan
	route add ::/0 via 2001:db8:2::1 dev wan
	EOF
	in_ns vpn nft -f - <<-'EOF'
	table inet lab {
		counter tun_control {}
		counter tun_client {}
		counter tun_dns {}
		counter tun_icmp_client {}
		counter tun_badsrc {}
		counter tun_any {}
		# what comes out of the tunnel at the provider
		chain watch {
			type filter hook prerouting priority -500; policy accept;
			iifname != "wg0" accept
			counter name tun_any
			ip daddr 203.0.113.10 counter name tun_control
			ip6 daddr 2001:db8:203::10 counter name tun_control
			ip daddr 203.0.113.20 counter name tun_client
			ip6 daddr 2001:db8:203::20 counter name tun_client
			meta l4proto { tcp, udp } th dport 53 counter name tun_dns
			ip daddr 203.0.113.20 icmp type { destination-unreachable, source-quench, time-exceeded, parameter-problem } counter name tun_icmp_client
			ip6 daddr 2001:db8:203::20 icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } counter name tun_icmp_client
			ip saddr != 10.66.0.2 counter name tun_badsrc
			ip6 saddr != { fd00:66::2, fe80::/10 } counter name tun_badsrc
		}
		chain nat {
			type nat hook postrouting priority 100; policy accept;
			oifname "wan" masquerade
		}
	}
	EOF
}

_lab_vnode() {
	# eth0 on the LAN; tailscale0 a veth standing in for Tailscale's tun
	# (point to point: no link-local address, static neighbours); Tailscale's
	# table 52; Gluetun's table 200
	_lab_ipb vnode <<-'EOF' || return 1
	link set lo up
	addr add 192.168.77.2/24 dev eth0
	addr add fd00:77::2/64 dev eth0 nodad
	link set eth0 up
	route add default via 192.168.77.1 dev eth0
	route add ::/0 via fe80::1 dev eth0
	link set tailscale0 mtu 1280 addrgenmode none
	addr add 100.100.0.1/32 dev tailscale0
	addr add fd7a:115c:a1e0::1/128 dev tailscale0 nodad
	link set tailscale0 up
	neigh replace 100.100.0.2 lladdr 02:00:00:00:00:02 dev tailscale0 nud permanent
	neigh replace fd7a:115c:a1e0::2 lladdr 02:00:00:00:00:02 dev tailscale0 nud permanent
	route add 100.100.0.2 dev tailscale0 table 52
	route add 100.100.100.100 dev tailscale0 table 52
	route add throw 127.0.0.0/8 table 52
	route add fd7a:115c:a1e0::2 dev tailscale0 table 52
	route add default via 192.168.77.1 dev eth0 table 200
	EOF
	# Tailscale's rules (both families), Gluetun's (IPv4; IPv6 too when its
	# tunnel carries IPv6)
	local fam
	for fam in -4 -6; do
		_lab_ipb vnode $fam <<-'EOF' || return 1
		rule add fwmark 0x80000/0xff0000 lookup main priority 5210
		rule add fwmark 0x80000/0xff0000 lookup default priority 5230
		rule add fwmark 0x80000/0xff0000 unreachable priority 5250
		rule add lookup 52 priority 5270
		EOF
	done
	_lab_ipb vnode <<-'EOF' || return 1
	rule add to 192.168.77.0/24 lookup main priority 98
	rule add from 192.168.77.2 lookup 200 priority 100
	EOF
	if [ $LAB_V6_TUNNEL = 1 ]; then
		_lab_ipb vnode -6 <<-'EOF' || return 1
		rule add to fd00:77::/64 lookup main priority 98
		rule add from fd00:77::2 lookup 200 priority 100
		route add ::/0 via fe80::1 dev eth0 table 200
		EOF
	fi
	# tailscaled's iptables chains, as nftables (a drop in any table is final)
	in_ns vnode nft -f - <<-'EOF'
	table inet tslab {
		chain input {
			type filter hook input priority filter; policy accept;
			jump ts-input
		}
		chain ts-input {
			iifname "lo" ip saddr 100.100.0.1 accept
			iifname != "tailscale0" ip saddr 100.115.92.0/23 return
			iifname != "tailscale0" ip saddr 100.64.0.0/10 drop
			iifname "tailscale0" accept
			udp dport 41641 accept
		}
		chain forward {
			type filter hook forward priority filter; policy accept;
			jump ts-forward
		}
		chain ts-forward {
			iifname "tailscale0" meta mark set meta mark & 0xff00ffff | 0x00040000
			meta mark & 0x00ff0000 == 0x00040000 accept
			oifname "tailscale0" ip saddr 100.64.0.0/10 drop
			oifname "tailscale0" accept
		}
		chain postrouting {
			type nat hook postrouting priority srcnat; policy accept;
			jump ts-postrouting
		}
		chain ts-postrouting {
			meta mark & 0x00ff0000 == 0x00040000 masquerade
		}
	}
	table inet lab {
		counter node_tun_control {}
		counter node_tun_any {}
		counter node_eth0_client {}
		# the lab's observer: what is finally handed to each device
		chain watch {
			type filter hook postrouting priority 1000; policy accept;
			oifname "tun0" counter name node_tun_any
			oifname "tun0" ip daddr 203.0.113.10 counter name node_tun_control
			oifname "tun0" ip6 daddr 2001:db8:203::10 counter name node_tun_control
			oifname "eth0" ip daddr 203.0.113.20 counter name node_eth0_client
			oifname "eth0" ip6 daddr 2001:db8:203::20 counter name node_eth0_client
		}
	}
	EOF
}

_lab_client() {
	_lab_ipb client <<-'EOF' || return 1
	link set lo up
	link set ts0 mtu 1280 addrgenmode none
	addr add 100.100.0.2/32 dev ts0
	addr add fd7a:115c:a1e0::2/128 dev ts0 nodad
	link set ts0 up
	neigh replace 100.100.0.1 lladdr 02:00:00:00:00:01 dev ts0 nud permanent
	neigh replace fd7a:115c:a1e0::1 lladdr 02:00:00:00:00:01 dev ts0 nud permanent
	route add default via 100.100.0.1 dev ts0 onlink
	route add ::/0 via fd7a:115c:a1e0::1 dev ts0 onlink
	EOF
	in_ns client nft -f - <<-'EOF'
	table inet lab {
		counter client_synack_mss_big {}
		chain watch {
			type filter hook prerouting priority -500; policy accept;
			meta nfproto ipv4 tcp flags & (syn | ack) == syn | ack tcp option maxseg size > 1240 counter name client_synack_mss_big
			meta nfproto ipv6 tcp flags & (syn | ack) == syn | ack tcp option maxseg size > 1220 counter name client_synack_mss_big
		}
	}
	EOF
}

_lab_servers() {
	: >"$DNS_LOG"
	lab_bg inet srv-inet $LAB_PY "$LAB_HERE/labnet.py" serve --dns-log "$DNS_LOG" --ready "$LAB_TMP/srv-inet.ready"
	# the tailnet client answers too (control-class traffic to the tailnet)
	lab_bg client srv-client $LAB_PY "$LAB_HERE/labnet.py" serve --ready "$LAB_TMP/srv-client.ready"
}
_lab_servers_ready() {
	wait_for 5 test -e "$LAB_TMP/srv-inet.ready" && wait_for 5 test -e "$LAB_TMP/srv-client.ready"
}

# ---------------------------------------------------------------- WireGuard
# wireguard-go keeps its control socket in /var/run/wireguard/<if>.sock in
# whatever namespace: each tunnel gets a holder process with its own mount
# namespace and a tmpfs there; wireguard-go and wg run inside it.
_lab_wg_holder() {	# ROLE
	local role=$1
	[ -f "$LAB_TMP/holder-$role.pid" ] && kill -0 "$(cat "$LAB_TMP/holder-$role.pid")" 2>/dev/null && return 0
	rm -f "$LAB_TMP/holder-$role.ready"
	lab_bg "$role" "holder-$role" unshare -m --propagation private sh -c \
		"mount -t tmpfs -o mode=0755,size=1m vnwg /run/wireguard && touch '$LAB_TMP/holder-$role.ready' && exec sleep infinity"
	wait_for 5 test -e "$LAB_TMP/holder-$role.ready"
}
lab_wg() {	# ROLE wg-args...: wg inside ROLE's tunnel namespace
	local role=$1; shift
	nsenter -t "$(cat "$LAB_TMP/holder-$role.pid")" -m -n wg "$@"
}
_lab_wg_go() {	# ROLE IFNAME
	local role=$1 ifn=$2 h
	h=$(cat "$LAB_TMP/holder-$role.pid")
	WG_PROCESS_FOREGROUND=1 nsenter -t "$h" -m -n wireguard-go -f "$ifn" >>"$LAB_TMP/wg-$role.log" 2>&1 &
	echo $! >"$LAB_TMP/wg-$role.pid"; echo $! >>"$LAB_TMP/pids"
	wait_for 10 nsenter -t "$h" -m test -S "/run/wireguard/$ifn.sock" ||
		{ _lab_die "wireguard-go $ifn in $role: no control socket after 10 s"; return 1; }
}

_lab_wg_server() {
	[ -f "$LAB_TMP/srv.key" ] || {
		(umask 077; wg genkey >"$LAB_TMP/srv.key"); wg pubkey <"$LAB_TMP/srv.key" >"$LAB_TMP/srv.pub"
		(umask 077; wg genkey >"$LAB_TMP/cli.key"); wg pubkey <"$LAB_TMP/cli.key" >"$LAB_TMP/cli.pub"; }
	_lab_wg_holder vpn && _lab_wg_go vpn wg0 || return 1
	lab_wg vpn set wg0 private-key "$LAB_TMP/srv.key" listen-port 51820 \
		peer "$(cat "$LAB_TMP/cli.pub")" allowed-ips 10.66.0.2/32,fd00:66::2/128 || return 1
	_lab_ip vpn addr add 10.66.0.1/24 dev wg0
	_lab_ip vpn addr add fd00:66::1/64 dev wg0 nodad
	_lab_ip vpn link set wg0 mtu 1420 up
}

_lab_wg_client() {
	local allowed=0.0.0.0/0
	[ $LAB_V6_TUNNEL = 1 ] && allowed=0.0.0.0/0,::/0
	_lab_wg_holder vnode && _lab_wg_go vnode tun0 || return 1
	lab_wg vnode set tun0 private-key "$LAB_TMP/cli.key" fwmark 51820 \
		peer "$(cat "$LAB_TMP/srv.pub")" endpoint 198.51.100.6:51820 \
		allowed-ips "$allowed" persistent-keepalive 25 || return 1
	_lab_ip vnode link set tun0 mtu 1320 || return 1
	_lab_ip vnode addr add 10.66.0.2/32 dev tun0
	if [ $LAB_V6_TUNNEL = 1 ]; then
		in_ns vnode sysctl -qw net.ipv6.conf.tun0.keep_addr_on_down=1
		_lab_ip vnode addr add fd00:66::2/128 dev tun0 nodad
	fi
	_lab_ip vnode link set tun0 up || return 1
	_lab_gluetun_routes
}

# What Gluetun does once its tunnel is up: table 51820 and rule 101.
_lab_gluetun_routes() {
	_lab_ip vnode route replace default dev tun0 table 51820 || return 1
	_lab_ip vnode rule show priority 101 | grep -q . ||
		_lab_ip vnode rule add not fwmark 51820 lookup 51820 priority 101
	if [ $LAB_V6_TUNNEL = 1 ]; then
		_lab_ip vnode -6 route replace default dev tun0 table 51820 || return 1
		_lab_ip vnode -6 rule show priority 101 | grep -q . ||
			_lab_ip vnode -6 rule add not fwmark 51820 lookup 51820 priority 101
	fi
	return 0
}

_lab_handshaked() {
	local t
	t=$(lab_wg vnode show tun0 latest-handshakes 2>/dev/null | awk '{print $2}')
	[ -n "$t" ] && [ "$t" != 0 ]
}
lab_wait_tunnel() { wait_for "${1:-10}" _lab_handshaked; }

# vpn_down / vpn_up: link down/up of tun0. vpn_up also puts back what
# Gluetun keeps (table 51820's route the kernel dropped with the link).
vpn_down() { _lab_ip vnode link set tun0 down; }
vpn_up() {
	_lab_ip vnode link set tun0 up || return 1
	if [ $LAB_V6_TUNNEL = 1 ] && ! _lab_ip vnode -6 addr show dev tun0 | grep -q fd00:66::2; then
		_lab_ip vnode addr add fd00:66::2/128 dev tun0 nodad
	fi
	_lab_gluetun_routes
}
# vpn_delete: what Gluetun does on reconnect: remove rule 101, delete the
# link (wireguard-go exits). vpn_restore: recreate it, same keys/addresses.
vpn_delete() {
	local p
	_lab_ip vnode rule del priority 101 2>/dev/null
	[ $LAB_V6_TUNNEL = 1 ] && _lab_ip vnode -6 rule del priority 101 2>/dev/null
	p=$(cat "$LAB_TMP/wg-vnode.pid" 2>/dev/null)
	[ -n "$p" ] && kill "$p" 2>/dev/null
	wait_for 5 _lab_no_tun0 || _lab_ip vnode link del tun0 2>/dev/null
	[ -n "$p" ] && wait "$p" 2>/dev/null
	return 0
}
_lab_no_tun0() { ! _lab_ip vnode link show tun0 >/dev/null 2>&1; }
vpn_restore() { _lab_wg_client || { _lab_die "vpn_restore failed"; return 1; }; }
# vpn_server_restart: the provider restarts its WireGuard server
vpn_server_restart() {
	local p
	p=$(cat "$LAB_TMP/wg-vpn.pid" 2>/dev/null)
	[ -n "$p" ] && kill "$p" 2>/dev/null
	wait_for 5 eval '! _lab_ip vpn link show wg0 >/dev/null 2>&1'
	[ -n "$p" ] && wait "$p" 2>/dev/null
	_lab_wg_server
}

# ---------------------------------------------------------------- counters
_lab_counter_ns() {
	case $1 in
	lan_*) echo router ;; tun_*) echo vpn ;; inet_*) echo inet ;;
	node_*) echo vnode ;; client_*) echo client ;; *) return 1 ;;
	esac
}
lab_count() {	# COUNTER: prints its packet count
	local ns
	ns=$(_lab_counter_ns "$1") || { echo "lab_count: unknown counter $1" >&2; return 1; }
	in_ns "$ns" nft list counter inet lab "$1" | awk '$1 == "packets" { print $2; f=1 } END { if (!f) exit 1 }'
}
lab_reset_counters() {
	local ns
	for ns in router vpn inet vnode client; do in_ns $ns nft reset counters table inet lab >/dev/null; done
}
lab_counters() {	# all counters, one "name value" a line
	local ns
	for ns in router vpn inet vnode client; do
		in_ns $ns nft list counters table inet lab | awk '$1 == "counter" { n=$2 } $1 == "packets" { print n, $2 }'
	done
}

# ---------------------------------------------------------------- probes
# Each prints the source address the echo server reported, or fails.
ctl_tcp() { in_ns vnode $LABNET tcp "$1" "${2:-443}" --mark $CTL_MARK "${@:3}"; }
ctl_udp() { in_ns vnode $LABNET udp "$1" "${2:-3478}" --mark $CTL_MARK "${@:3}"; }
ctl_dns_udp() { in_ns vnode $LABNET dns "${1:-$DNS_SERVER}" --mark $CTL_MARK "${@:2}"; }
ctl_dns_tcp() { in_ns vnode $LABNET dns "${1:-$DNS_SERVER}" --tcp --mark $CTL_MARK "${@:2}"; }
client_tcp() { in_ns client $LABNET tcp "$1" "${2:-80}" "${@:3}"; }
client_udp() { in_ns client $LABNET udp "$1" "${2:-7}" "${@:3}"; }
client_udp_big() { in_ns client $LABNET udp "$1" 7 --big "$2" --tries 2 "${@:3}"; }
client_dns() { in_ns client $LABNET dns "${1:-$DNS_SERVER}" "${@:2}"; }
client_bulk() { in_ns client $LABNET bulk "$1" "${2:-80}" --bytes "${3:-4194304}" --timeout 10; }
client_ping() {	# ADDR [COUNT]: exit status of ping
	local six=; case $1 in *:*) six=-6 ;; esac
	in_ns client ping $six -q -n -c "${2:-1}" -i 0.2 -W 2 "$1" >/dev/null 2>&1
}
# node_service PORT: a listener on the node (stands for a VPN container's
# control server, e.g. Gluetun's :8000); answers with the source it saw
node_service() {
	lab_bg vnode "svc-$1" $LAB_PY "$LAB_HERE/labnet.py" serve --tcp "$1" --udp "$1" --ready "$LAB_TMP/svc-$1.ready"
	wait_for 5 test -e "$LAB_TMP/svc-$1.ready"
}
dns_log_lines() { wc -l <"$DNS_LOG"; }

# client_stream NAME ADDR [--tcp] [--interval S]: a steady flow from the
# client, replies logged in $LAB_TMP/NAME.log; stop with lab_stop NAME
client_stream() {
	local name=$1 addr=$2; shift 2
	lab_bg client "$name" $LAB_PY -u "$LAB_HERE/labnet.py" stream "$addr" 7 "$@"
}
lab_stop() { local p; p=$(cat "$LAB_TMP/$1.pid" 2>/dev/null) && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; return 0; }
# stream_replies NAME KIND [SINCE]: replies of KIND (udp|tcp) logged after
# time SINCE (epoch seconds, default 0), with the source they report
stream_replies() { awk -v k="$2" -v t="${3:-0}" '$2 == k && $1 > t { print $3 }' "$LAB_TMP/$1.log"; }
now() { date +%s.%N; }

# ---------------------------------------------------------------- agent
# agent_start [ARGS...]: vnoded in the node's namespace with a clean
# environment (no stray VNODE_* key), verbose, log in $LAB_TMP/vnoded.log;
# returns once its rules and table are in place.
AGENT_PID=
AGENT_LOG=$LAB_TMP/vnoded.log
agent_start() {
	[ -x "$VNODED" ] || { _lab_die "no agent at $VNODED (run make)"; return 1; }
	ip netns exec "$LAB_ID-vnode" env -i PATH="$PATH" ${AGENT_ENV:-} "$VNODED" -v \
		--dns-server 203.0.113.53 --health-listen none "$@" >>"$AGENT_LOG" 2>&1 &
	AGENT_PID=$!
	echo $AGENT_PID >>"$LAB_TMP/pids"
	wait_for 5 agent_installed || { _lab_die "agent not ready; log:"; tail -n 20 "$AGENT_LOG" >&2; return 1; }
}
# agent_installed: the agent's rule block and nft table exist (kernel view)
_lab_low_rules() { _lab_ip vnode "$1" rule | awk -F: '$1 > 0 && $1 < 98' | wc -l; }
agent_installed() {
	kill -0 "$AGENT_PID" 2>/dev/null &&
	[ "$(_lab_low_rules -4)" -ge 5 ] && [ "$(_lab_low_rules -6)" -ge 5 ] &&
	in_ns vnode nft list table inet vnode >/dev/null 2>&1 &&
	{ _lab_no_tun0 || ! _lab_ip vnode link show tun0 | grep -q 'state UP\|,UP' ||
	  _lab_ip vnode route show table all | grep '^default dev tun0 ' | grep -qv 'table 51820'; }
}
agent_stop() { [ -n "$AGENT_PID" ] && kill -TERM "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null; AGENT_PID=; return 0; }
agent_kill() { [ -n "$AGENT_PID" ] && kill -KILL "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null; AGENT_PID=; return 0; }
agent_alive() { [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; }
agent_run() { timeout "${AGENT_RUN_TIMEOUT:-20}" ip netns exec "$LAB_ID-vnode" env -i PATH="$PATH" ${AGENT_ENV:-} "$VNODED" "$@"; }
# agent_why: the agent's first warning or error (why it is not ready)
agent_why() {
	{ grep -m1 -iE 'warning|error|fatal' "$AGENT_LOG" || tail -n 1 "$AGENT_LOG"; } 2>/dev/null | cut -c1-240
}
agent_log_lines() { wc -l <"$AGENT_LOG" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- read-backs
# lab_rules_dump: the node's rules and the agent's tables, both families
lab_rules_dump() {
	local fam
	for fam in -4 -6; do
		echo "# ip $fam rule"; _lab_ip vnode $fam rule
		echo "# ip $fam route table 51"; _lab_ip vnode $fam route show table 51
		echo "# ip $fam route table 53"; _lab_ip vnode $fam route show table 53
	done
}
# lab_snapshot: rules, every route, the nft ruleset (stateless) and the
# sysctls the agent may touch, in the node's namespace
lab_snapshot() {
	local fam
	for fam in -4 -6; do
		echo "# ip $fam rule"; _lab_ip vnode $fam rule
		echo "# ip $fam route table all"; _lab_ip vnode $fam route show table all | grep -v ' expires '
	done
	echo "# nft"; in_ns vnode nft -s list ruleset
	echo "# sysctl"
	in_ns vnode sysctl net.ipv4.ip_forward net.ipv6.conf.all.forwarding \
		net.ipv4.conf.all.rp_filter net.ipv4.conf.default.rp_filter \
		net.ipv4.conf.all.src_valid_mark net.ipv4.conf.all.accept_redirects \
		net.ipv4.conf.default.accept_redirects net.ipv6.conf.all.accept_redirects
}
lab_snapshot_routing() { lab_snapshot | sed '/^# sysctl/,$d'; }

# ---------------------------------------------------------------- baselines
# seed_recipe_apply: the seed project's entrypoint (DESIGN.md, "The seed's
# original recipe"), in the node's namespace, with iptables as it did.
seed_recipe_apply() {
	local p
	_lab_ip vnode route replace default via 192.168.77.1 dev eth0 table 51 &&
	_lab_ip vnode route replace default dev tun0 &&
	_lab_ip vnode rule add fwmark 0x40000 lookup 51 priority 1 &&
	_lab_ip vnode rule add to 100.64.0.0/10 lookup 52 priority 99 || return 1
	for p in 3478 41641; do
		in_ns vnode iptables -t mangle -A OUTPUT -p udp --sport $p -j MARK --set-mark 0x40000
		in_ns vnode iptables -t mangle -A OUTPUT -p udp --dport $p -j MARK --set-mark 0x40000
	done
	in_ns vnode iptables -P FORWARD ACCEPT &&
	in_ns vnode iptables -t nat -A POSTROUTING -o tun0 -j MASQUERADE &&
	in_ns vnode iptables -t nat -A POSTROUTING -o eth0 -m mark --mark 0x40000 -j MASQUERADE &&
	in_ns vnode iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1120 &&
	_lab_sysctl vnode net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
}
# lab_naive_forwarding: what the stack does with forwarding switched on and
# nothing else (no agent): Gluetun's rule 101 carries client traffic into
# tun0 while the tunnel is there, the main table takes over when it is not;
# a rule to the tailnet lets replies back; loose rp_filter.
lab_naive_forwarding() {
	_lab_sysctl vnode net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.default.rp_filter=2 &&
	_lab_ip vnode rule add to 100.64.0.0/10 lookup 52 priority 99 &&
	_lab_ip vnode -6 rule add to fd7a:115c:a1e0::/48 lookup 52 priority 99
}

# ---------------------------------------------------------------- LAN events
# lan_down / lan_up: eth0 link down (the kernel drops every route through
# it, in every table) and back, with what DHCP/Docker and Gluetun put back:
# addresses, main's defaults, table 200.
lan_down() { _lab_ip vnode link set eth0 down; }
lan_up() {
	_lab_ipb vnode -force <<-'EOF' >/dev/null 2>&1
	link set eth0 up
	addr replace 192.168.77.2/24 dev eth0
	addr replace fd00:77::2/64 dev eth0 nodad
	route replace default via 192.168.77.1 dev eth0
	route replace ::/0 via fe80::1 dev eth0
	route replace default via 192.168.77.1 dev eth0 table 200
	EOF
	[ $LAB_V6_TUNNEL = 1 ] && _lab_ip vnode -6 route replace default via fe80::1 dev eth0 table 200
	_lab_ip vnode route show default | grep -q 192.168.77.1
}
# lan_renumber_localnet: TunnelCrack "LocalNet": the LAN (here: a hostile
# one) is renumbered to 203.0.113.0/24, the client target's subnet, and the
# router answers for 203.0.113.20 on it. Gluetun's rules 98/100 follow the
# new local subnet, as Gluetun derives them from eth0.
lan_renumber_localnet() {
	_lab_ipb router <<-'EOF' || return 1
	addr del 192.168.77.1/24 dev lan
	addr add 203.0.113.1/24 dev lan
	addr add 203.0.113.20/32 dev lan
	EOF
	_lab_ipb vnode <<-'EOF' || return 1
	addr del 192.168.77.2/24 dev eth0
	addr add 203.0.113.2/24 dev eth0
	route replace default via 203.0.113.1 dev eth0
	rule del priority 98
	rule del priority 100
	rule add to 203.0.113.0/24 lookup main priority 98
	rule add from 203.0.113.2 lookup 200 priority 100
	route replace default via 203.0.113.1 dev eth0 table 200
	EOF
	# wireguard-go sends from the address it last received on (sticky
	# source, here the vanished 192.168.77.2) and never recovers from
	# ENETUNREACH: set the endpoint again, as a VPN client does on a network
	# change
	lab_wg vnode set tun0 peer "$(cat "$LAB_TMP/srv.pub")" endpoint 198.51.100.6:51820
}
# tunnelvision_push [TABLE]: TunnelVision (CVE-2024-3661): DHCP option 121
# routes via the LAN gateway, more specific than any default
tunnelvision_push() {
	_lab_ipb vnode <<-EOF
	route replace 0.0.0.0/1 via 192.168.77.1 dev eth0 table ${1:-main}
	route replace 128.0.0.0/1 via 192.168.77.1 dev eth0 table ${1:-main}
	route replace 203.0.113.20/32 via 192.168.77.1 dev eth0 table ${1:-main}
	route replace 203.0.113.53/32 via 192.168.77.1 dev eth0 table ${1:-main}
	EOF
}
# gluetun_rule_del / gluetun_rule_add: rule 101 goes away (Gluetun removes
# it on every reconnect) and comes back
gluetun_rule_del() {
	_lab_ip vnode rule del priority 101 2>/dev/null
	[ $LAB_V6_TUNNEL = 1 ] && _lab_ip vnode -6 rule del priority 101 2>/dev/null
	return 0
}
gluetun_rule_add() { _lab_gluetun_routes; }

# ---------------------------------------------------------------- assertions
# lab_lan_last COUNTER: the last packets of that class the LAN saw, decoded
lab_lan_last() {
	local f
	case $1 in
	lan_client) f='dst host 203.0.113.20 or dst host 2001:db8:203::20 or src net 100.64.0.0/10 or src net fd7a:115c:a1e0::/48' ;;
	lan_icmp_client) f='(icmp or icmp6) and (dst host 203.0.113.20 or dst host 2001:db8:203::20)' ;;
	lan_dns) f='port 53' ;;
	lan_tailnet) f='dst net 100.64.0.0/10 or dst net fd7a:115c:a1e0::/48' ;;
	*) return 0 ;;
	esac
	[ -s "$LAB_TMP/lan.pcap" ] || return 0
	tcpdump -r "$LAB_TMP/lan.pcap" -nn -tt "$f" 2>/dev/null | tail -n 2 | cut -c1-160 | sed 's/^/[LAN] /' | tr '\n' ' '
}
# expect_count NAME COUNTER OP N: e.g. expect_count "no leak" lan_client -eq 0
expect_count() {
	local n; n=$(lab_count "$2")
	if [ -n "$n" ] && [ "$n" "$3" "$4" ]; then ok "$1"; else fail "$1" "$2=${n:-?} (want $3 $4) $(lab_lan_last "$2")"; fi
}
# expect_grew NAME COUNTER BEFORE OP N: the counter's growth since BEFORE
expect_grew() {
	local n; n=$(lab_count "$2")
	if [ -n "$n" ] && [ $((n - $3)) "$4" "$5" ]; then ok "$1"; else fail "$1" "$2 grew by $((${n:-0} - $3)) (want $4 $5) $(lab_lan_last "$2")"; fi
}
# expect_out NAME WANT CMD...: CMD succeeds and its last line is WANT
expect_out() {
	local name=$1 want=$2 out; shift 2
	out=$("$@" 2>&1); local rc=$?
	if [ $rc = 0 ] && [ "$(tail -n 1 <<<"$out")" = "$want" ]; then ok "$name"
	else fail "$name" "rc=$rc, got '$(tail -n 2 <<<"$out" | tr '\n' ' ')', want '$want'"; fi
}
# expect_fail NAME CMD...: CMD fails (blocked)
expect_fail() {
	local name=$1 out; shift
	if out=$("$@" 2>&1); then fail "$name" "succeeded: $(tail -n 1 <<<"$out")"; else ok "$name"; fi
}
