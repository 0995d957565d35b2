#!/usr/bin/env bash
# The agent SIGKILLed and restarted, several times, while its child runs
# and while a process of its cgroup opens a socket every 2 ms: sockets
# opened while no agent runs, and after, are still marked (the attachment
# outlives the agent), and each restart replaces the program in place (one
# attached, never two, never none).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"
lab_need
lab_up

mkfifo "$TMPD/cmd"
exec 7<>"$TMPD/cmd"
start_vnoded "$TMPD/a.log" -- $SOCKPROBE - <&7 ||
	{ fail "vnoded starts" "$(tail -5 "$TMPD/a.log")"; exit 0; }
echo "open udp4 $DST4 3001" >&7
wait_for 5 grep -q 'udp4 pid=' "$TMPD/a.log"

# a steady stream of new sockets from the same cgroup through the restarts
bg_in_cg "$CG_AGENT" "$TMPD/burst.log" $SOCKPROBE burst udp4 $DST4 3100 1500 2
BPID=$BGPID
sleep 0.2
gapok=1
for i in 1 2 3 4 5; do
	kill -9 "$VPID"; wait "$VPID" 2>/dev/null
	# no agent now: the supervised child opens a socket
	echo "open udp4 $DST4 $((3010 + i))" >&7
	sleep 0.1
	start_vnoded "$TMPD/r$i.log" -- sleep 1000 || { gapok=0; fail "restart $i" "$(tail -3 "$TMPD/r$i.log")"; }
	grep -q "replace cgroup/sock_create" "$TMPD/r$i.log" || replaced_bad=1
	n=$(bpftool cgroup show "$CG_AGENT" | grep -c 'sock_create.*vnode_classify')
	[ "$n" = 1 ] || { gapok=0; fail "one program after restart $i" "$n attached"; }
	echo "open udp4 $DST4 $((3020 + i))" >&7
done
[ "$gapok" = 1 ] && ok "five restarts: exactly one program attached after each"
[ -z "${replaced_bad:-}" ] && ok "each restart replaced its predecessor's program (BPF_F_REPLACE)" ||
	fail "each restart replaced its predecessor's program" "$(grep -h classify "$TMPD"/r*.log | head -5)"
wait "$BPID"
grep -q 'burst 1500 done' "$TMPD/burst.log" || fail "burst ran" "$(tail -2 "$TMPD/burst.log")"
sleep 0.2
lan=$(seen lan) vpn=$(seen vpn)
[[ " $lan " == *" 3001 "* ]] && ok "child's socket before the kill left by the LAN" ||
	fail "child's socket before the kill left by the LAN" "lan: $lan"
bad=
for p in 3011 3012 3013 3014 3015 3021 3022 3023 3024 3025; do
	[[ " $lan " == *" $p "* && " $vpn " != *" $p "* ]] || bad="$bad $p"
done
[ -z "$bad" ] && ok "child's sockets opened with no agent running, and after each restart, left by the LAN" ||
	fail "child's sockets between and after restarts left by the LAN" "bad:$bad lan: $lan vpn: $vpn"
[[ " $lan " == *" 3100 "* ]] && ok "burst across the restarts reached the LAN" || fail "burst reached the LAN" "lan: $lan"
[[ " $vpn " != *" 3100 "* ]] && ok "not one of 1500 sockets opened across 5 restarts reached the VPN" ||
	fail "no burst socket reached the VPN" "vpn: $vpn"
kill -TERM "$VPID"; wait "$VPID"; rc=$?
expect_eq "last agent forwards SIGTERM to its command and exits 143" "$rc" 143
