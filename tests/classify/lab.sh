# tests/classify/lab.sh: sourced by tests/classify/t_*.sh after ../lib.sh.
#
# A three-namespace lab, a per-run cgroup for the agent (the "container")
# and one for processes outside it, all named with a per-run prefix so that
# runs of several engineers never collide:
#
#   $NS_N  node: eth0 10.77.1.2 -> $NS_L (LAN peer)   table 51, rule fwmark
#                tun0 10.77.2.2 -> $NS_V (VPN peer)   main's default
#   both peers own 198.51.100.1 and 2001:db8::1 and record in an nftables
#   set the destination port of every packet that reaches them for those,
#   then drop it (a TCP socket stays in SYN-SENT, visible to ss).
#
# A packet of the control class must reach the LAN peer, any other the VPN
# peer: `seen lan`/`seen vpn` list the ports each peer saw.
#
# Processes run in the node namespace with nsenter --net (not `ip netns
# exec`, which remounts /sys and with it hides the cgroup2 mount).
PFX=${PFX:-vc$(printf '%04x' $((RANDOM % 65536)))$$}
NS_N=$PFX-n NS_L=$PFX-l NS_V=$PFX-v
DST4=198.51.100.1 DST6=2001:db8::1
SOCKPROBE=${SOCKPROBE:-$ROOT/build/sockprobe}
CG2=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break;
	if ($(i + 1) == "cgroup2") { print $5; exit } }' /proc/self/mountinfo)
CG_AGENT=$CG2/$PFX-agent	# the agent's own cgroup (its "container")
CG_OUT=$CG2/$PFX-out		# somebody else on the same host
TMPD=$(mktemp -d /tmp/$PFX.XXXX)
LAB_PIDS=()

# vnoded's environment: the harness exports VNODE_RESULTS, which vnoded
# would take for a setting; the lab's LAN gateways are given (main's default
# points into the tunnel here, as in the Gluetun stack)
VENV=(env -u VNODE_RESULTS VNODE_LAN_GATEWAY=10.77.1.1 VNODE_LAN_GATEWAY6=fd77:1::1)

in_node() { nsenter --net=/run/netns/$NS_N "$@"; }
# in_cg CGDIR CMD...: exec CMD inside cgroup CGDIR (and the node netns)
in_cg() {
	local cg=$1; shift
	nsenter --net=/run/netns/$NS_N sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

lab_need() {
	[ "$(id -u)" = 0 ] || { skip "lab" "needs root"; exit 0; }
	[ -n "$CG2" ] || { skip "lab" "no cgroup2 mount"; exit 0; }
	[ -x "$SOCKPROBE" ] || make -s -C "$ROOT" build/sockprobe >/dev/null || { fail "build sockprobe"; exit 1; }
	[ -x "$VNODED" ] || { fail "vnoded built" "missing $VNODED"; exit 1; }
}

_peer() {	# ns ifname-in-node node-addr peer-addr node6 peer6
	local ns=$1 ifn=$2
	ip netns add "$ns"
	ip link add "$ifn" netns "$NS_N" type veth peer name eth0 netns "$ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" link set eth0 up
	ip -n "$ns" addr add "$4/24" dev eth0
	ip -n "$ns" addr add "$6/64" dev eth0 nodad
	ip -n "$ns" addr add "$DST4/32" dev lo
	ip -n "$ns" addr add "$DST6/128" dev lo
	ip -n "$NS_N" link set "$ifn" up
	ip -n "$NS_N" addr add "$3/24" dev "$ifn"
	ip -n "$NS_N" addr add "$5/64" dev "$ifn" nodad
	nsenter --net=/run/netns/"$ns" nft -f - <<-EOF
	table inet seen {
		set p { type inet_service; flags dynamic; size 65535; }
		set i { typeof icmp id; flags dynamic; size 65535; }
		chain pre {
			type filter hook prerouting priority -300;
			ip daddr $DST4 icmp type echo-request add @i { icmp id } drop
			ip daddr $DST4 add @p { th dport } drop
			ip6 daddr $DST6 add @p { th dport } drop
		}
	}
	EOF
}

lab_up() {
	ip netns add "$NS_N"
	# no duplicate address detection: a link-local address leaving the
	# tentative state is an address event that wakes the agent, seconds
	# after the lab came up (idle measurements would count it)
	in_node sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	ip -n "$NS_N" link set lo up
	_peer "$NS_L" eth0 10.77.1.2 10.77.1.1 fd77:1::2 fd77:1::1
	_peer "$NS_V" tun0 10.77.2.2 10.77.2.1 fd77:2::2 fd77:2::1
	ip -n "$NS_N" route add default via 10.77.2.1
	ip -n "$NS_N" -6 route add default via fd77:2::1
	ip -n "$NS_N" route add default via 10.77.1.1 table 51
	ip -n "$NS_N" -6 route add default via fd77:1::1 table 51
	ip -n "$NS_N" rule add fwmark 0x80000/0xff0000 lookup 51 prio 100
	ip -n "$NS_N" -6 rule add fwmark 0x80000/0xff0000 lookup 51 prio 100
	mkdir "$CG_AGENT" "$CG_OUT"
	trap lab_down EXIT
}

# seen lan|vpn: the destination ports (and ICMP echo ids) that peer saw,
# sorted, space-separated
seen() {
	local ns=$NS_L
	[ "$1" = vpn ] && ns=$NS_V
	nsenter --net=/run/netns/"$ns" nft -j list table inet seen |
		python3 -c 'import json,sys
d=json.load(sys.stdin)["nftables"]
el=[e for x in d if "set" in x for e in x["set"].get("elem",[])]
print(" ".join(str(p) for p in sorted(el)))'
}
# seen_has lan|vpn PORT
seen_has() { [[ " $(seen "$1") " == *" $2 "* ]]; }

# ss_line PID LPORT: ss's extended line of PID's socket bound to LPORT
ss_line() {
	in_node ss -Hanepuwt "sport = :$2" | grep "pid=$1,"
}
# marked PID LPORT: ss shows fwmark 0x80000 on it
marked() { ss_line "$1" "$2" | grep -q 'fwmark:0x80000'; }

cg_kill() {	# kill everything in cgroup dir $1 and remove it
	[ -d "$1" ] || return 0
	echo 1 > "$1/cgroup.kill" 2>/dev/null
	for _ in $(seq 50); do [ -s "$1/cgroup.procs" ] || break; sleep 0.05; done
	find "$1" -depth -type d -exec rmdir {} + 2>/dev/null
}

lab_down() {
	local p
	disown -a 2>/dev/null	# no "Killed" notices for the jobs killed below
	for p in "${LAB_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	cg_kill "$CG_AGENT"
	cg_kill "$CG_OUT"
	for p in "$NS_N" "$NS_L" "$NS_V"; do ip netns del "$p" 2>/dev/null; done
	rm -rf "$TMPD"
}

# bg_in_cg CGDIR OUT CMD...: CMD in the background inside cgroup CGDIR and
# the node netns, stdout and stderr to OUT, stdin kept (a plain & would
# give it /dev/null). nsenter and sh exec, so BGPID is CMD's own pid.
bg_in_cg() {
	local cg=$1 out=$2; shift 2
	nsenter --net=/run/netns/$NS_N sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' \
		"$cg" "$@" >"$out" 2>&1 0<&0 &
	BGPID=$!
	LAB_PIDS+=("$BGPID")
}

# start_vnoded LOG ARGS...: vnoded (verbose) in the agent's cgroup, in the
# background; waits until it says it is ready. Sets VPID.
start_vnoded() {
	local log=$1; shift
	bg_in_cg "$CG_AGENT" "$log" "${VENV[@]}" "$VNODED" -v "$@"
	VPID=$BGPID
	wait_for 5 grep -q "enforcing in" "$log"
}

# lines_ge FILE N: FILE has at least N lines (for wait_for)
lines_ge() { [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -ge "$2" ]; }
# grep_n FILE PATTERN N: at least N lines of FILE match PATTERN
grep_n() { [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "$3" ]; }
