#!/usr/bin/env bash
# Every socket of a process vnoded starts -- its threads, children and
# exec'd descendants, TCP, UDP, raw, v4, v6, accepted -- carries the mark
# from the first packet; a process outside the agent's cgroup: none.
# Judged by where the packets went (the peers' records) and by ss -e.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"
lab_need
lab_up

P="$SOCKPROBE open tcp4 $DST4 1001 open udp4 $DST4 1002 open tcp6 $DST6 1003
	open udp6 $DST6 1004 open raw4 $DST4 1005 thread tcp4 $DST4 1006
	thread udp6 $DST6 1007 fork udp4 $DST4 1008 fork tcp6 $DST6 1009
	exec udp4 $DST4 1010 somark 0x80000 udp4 $DST4 1011
	somark 0x80000 tcp6 $DST6 1012 accept4 accept6 ready hold"
start_vnoded "$TMPD/in.log" -- $P ||
	{ fail "vnoded starts" "$(tail -5 "$TMPD/in.log")"; exit 0; }
bg_in_cg "$CG_OUT" "$TMPD/out.log" $SOCKPROBE open tcp4 $DST4 2001 \
	open udp4 $DST4 2002 open tcp6 $DST6 2003 open udp6 $DST6 2004 \
	open raw4 $DST4 2005 fork udp4 $DST4 2006 accept4 ready hold
wait_for 5 grep -qx 'ready' "$TMPD/in.log" ||
	{ fail "probe inside ran" "$(tail -5 "$TMPD/in.log")"; exit 0; }
wait_for 5 grep -qx 'ready' "$TMPD/out.log" ||
	{ fail "probe outside ran" "$(tail -5 "$TMPD/out.log")"; exit 0; }
wait_for 5 grep -q 'udp4 pid=.* lport=' "$TMPD/in.log"
grep -q 'attach cgroup/sock_create' "$TMPD/in.log" && ok "eBPF classifier in use" ||
	fail "eBPF classifier in use" "$(grep -i classif "$TMPD/in.log")"
sleep 0.3	# let the last SYNs land

lan=$(seen lan) vpn=$(seen vpn)
for p in 1001 1002 1003 1004 1005 1006 1007 1008 1009 1010 1011 1012; do
	if [[ " $lan " == *" $p "* && " $vpn " != *" $p "* ]]; then :; else
		fail "inside: packet to port $p left by the LAN only" "lan: $lan; vpn: $vpn"; continue; fi
done
ok "inside: first packet of every socket (tcp/udp/raw, v4/v6, thread, fork, exec, SO_MARK) left by the LAN"
for p in 2001 2002 2003 2004 2005 2006; do
	if [[ " $vpn " == *" $p "* && " $lan " != *" $p "* ]]; then :; else
		fail "outside: packet to port $p left by the VPN only" "lan: $lan; vpn: $vpn"; continue; fi
done
ok "outside: every packet left by the VPN"

# ss: every socket the probe reported, marked inside, unmarked outside
check_ss() {	# log want(0|1) label
	local log=$1 want=$2 bad=0 n=0 kind pid lport line
	while read -r kind pid lport rest; do
		pid=${pid#pid=} lport=${lport#lport=}
		case $kind in
		raw4) continue ;;	# raw_diag reports no mark: judged by its packet above
		accepted*) line=$(in_node ss -Hanept "sport = :$lport and dport = :${rest#peerport=}" | grep "pid=$pid,") ;;
		*) line=$(ss_line "$pid" "$lport") ;;
		esac
		n=$((n + 1))
		if [ -z "$line" ]; then bad=1; echo "no socket for $kind $pid $lport"; continue; fi
		if [ "$want" = 1 ] && ! grep -q 'fwmark:0x80000' <<<"$line"; then bad=1; echo "unmarked: $kind $line"; fi
		if [ "$want" = 0 ] && grep -q 'fwmark:' <<<"$line"; then bad=1; echo "marked: $kind $line"; fi
	done < <(grep -E '^(tcp|udp|raw|accepted)[46] pid=' "$log")
	[ "$bad" = 0 ] && [ "$n" -gt 0 ] && echo "$n sockets"
	return $bad
}
out=$(check_ss "$TMPD/in.log" 1) && ok "inside: ss shows fwmark 0x80000 on all ($out, accepted included; raw judged by its packet)" ||
	fail "inside: ss shows fwmark 0x80000 on all" "$out"
out=$(check_ss "$TMPD/out.log" 0) && ok "outside: ss shows no mark ($out)" ||
	fail "outside: ss shows no mark" "$out"

# the program counts what it marked; the agent's metrics read it
n=$(bpftool cgroup show "$CG_AGENT" | grep -c 'sock_create.*vnode_classify')
expect_eq "one program attached to the agent's cgroup" "$n" 1
n=$(bpftool cgroup show "$CG_OUT" | grep -c .)
expect_eq "nothing attached to the outside cgroup" "$n" 0

# its counter map (what classify_sockets_marked() reads), from outside
pid=$(bpftool cgroup show "$CG_AGENT" | awk '/vnode_classify/ {print $1}')
cnt=$(python3 - "$pid" <<'PY'
import json, subprocess, sys
bt = lambda *a: json.loads(subprocess.run(["bpftool", "-j", *a], capture_output=True, text=True).stdout)
for m in bt("prog", "show", "id", sys.argv[1])["map_ids"]:
	if bt("map", "show", "id", str(m))["name"] != "vnode_cls_cnt":
		continue
	v = {}
	for e in bt("map", "dump", "id", str(m)):
		f = e["formatted"]
		v[int(f["key"])] = sum(int(x["value"]) for x in f["values"])
	print(v.get(0, 0), v.get(1, 0))
PY
)
read -r total v6 <<<"$cnt"
[ "${total:-0}" -ge 13 ] && [ "${v6:-0}" -ge 5 ] && [ "$v6" -lt "$total" ] &&
	ok "counter map: $total sockets marked, $v6 of them IPv6" || fail "counter map" "got '$cnt'"

kill -TERM "$VPID"; wait "$VPID"; rc=$?
expect_eq "SIGTERM forwarded: vnoded exits 128+15 with its child" "$rc" 143
