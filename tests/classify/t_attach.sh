#!/usr/bin/env bash
# Attach mode (sidecar): tailscaled already runs in its own cgroup; vnoded,
# in another, classifies it with --attach-pid (and --attach-cgroup). Its
# socket opened before the attach leaves by the LAN afterwards (nftables
# socket cgroupv2, masqueraded), sockets opened after are marked from
# birth (eBPF), a process outside stays on the VPN.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"
lab_need
lab_up
CG_TS=$CG2/$PFX-ts
mkdir "$CG_TS"
trap 'disown -a; cg_kill "$CG_TS"; lab_down' EXIT

mkfifo "$TMPD/cmd"
exec 7<>"$TMPD/cmd"
bg_in_cg "$CG_TS" "$TMPD/ts.log" $SOCKPROBE - <&7
TPID=$BGPID
echo "open udp4 $DST4 6001" >&7
echo "open udp6 $DST6 6002" >&7
wait_for 5 grep -q 'udp6 pid=' "$TMPD/ts.log"
sleep 0.2
lan=$(seen lan) vpn=$(seen vpn)
[[ " $vpn " == *" 6001 "* && " $vpn " == *" 6002 "* ]] &&
	ok "before the attach: the old sockets' first packets went by the VPN (counters work)" ||
	fail "before attach" "lan: $lan vpn: $vpn"

start_vnoded "$TMPD/a.log" --attach-pid "$TPID" ||
	{ fail "vnoded --attach-pid starts" "$(tail -5 "$TMPD/a.log")"; exit 0; }
grep -q "classify: cgroup $CG_TS (attach mode)" "$TMPD/a.log" && ok "attach mode found the target's cgroup" ||
	fail "attach mode target" "$(grep classify "$TMPD/a.log")"
grep -q "self-test: cgroup .* matches at level" "$TMPD/a.log" && ok "socket cgroupv2 level self-tested at start" ||
	fail "level self-test" "$(grep classify "$TMPD/a.log")"
in_node nft list chain inet vnode output | grep -q "socket cgroupv2 level 1 \"${CG_TS#/sys/fs/cgroup/}\"" &&
	ok "output chain classifies the target's cgroup for sockets from before" ||
	fail "output chain rule" "$(in_node nft list chain inet vnode output)"

echo "resend 100" >&7		# the old sockets again: 6101, 6102
echo "open udp4 $DST4 6003" >&7
echo "open tcp4 $DST4 6004" >&7
echo "open tcp6 $DST6 6005" >&7
echo "fork udp6 $DST6 6006" >&7
wait_for 5 grep -q 'udp6 pid=.*' "$TMPD/ts.log"
bg_in_cg "$CG_OUT" "$TMPD/out.log" $SOCKPROBE open udp4 $DST4 6201 open tcp4 $DST4 6202 ready hold
wait_for 5 grep -qx ready "$TMPD/out.log"
sleep 0.4
lan=$(seen lan) vpn=$(seen vpn) bad=
for p in 6101 6102; do [[ " $lan " == *" $p "* && " $vpn " != *" $p "* ]] || bad="$bad $p"; done
[ -z "$bad" ] && ok "after the attach: sockets opened before it leave by the LAN, not the VPN" ||
	fail "old sockets after attach" "bad:$bad lan: $lan vpn: $vpn"
bad=
for p in 6003 6004 6005 6006; do [[ " $lan " == *" $p "* && " $vpn " != *" $p "* ]] || bad="$bad $p"; done
[ -z "$bad" ] && ok "after the attach: new sockets (and a child's) leave by the LAN" ||
	fail "new sockets after attach" "bad:$bad lan: $lan vpn: $vpn"
bad=
for p in 6201 6202; do [[ " $vpn " == *" $p "* && " $lan " != *" $p "* ]] || bad="$bad $p"; done
[ -z "$bad" ] && ok "a process outside still leaves by the VPN" || fail "outside" "bad:$bad lan: $lan vpn: $vpn"
# from outside: new sockets carry the mark, old ones do not (nftables marks their packets)
old=$(grep '^udp4 pid=' "$TMPD/ts.log" | head -1 | sed 's/.*lport=//')
new=$(grep '^udp4 pid=' "$TMPD/ts.log" | tail -1 | sed 's/.*lport=//')
! marked "$TPID" "$old" && marked "$TPID" "$new" &&
	ok "ss: the socket from before carries no mark, the one from after does" ||
	fail "ss marks" "old: $(ss_line "$TPID" "$old") new: $(ss_line "$TPID" "$new")"
n=$(bpftool cgroup show "$CG_TS" | grep -c 'sock_create.*vnode_classify')
expect_eq "program attached to the target's cgroup" "$n" 1
n=$(bpftool cgroup show "$CG_AGENT" | grep -c vnode_classify)
expect_eq "nothing attached to the agent's own cgroup" "$n" 0

# the agent exits (SIGTERM); the attachment stays; a new one attaches by
# cgroup path and replaces it
kill -TERM "$VPID"; wait "$VPID"
expect_eq "attach-mode agent exits 0 on SIGTERM" "$?" 0
echo "open udp4 $DST4 6007" >&7
start_vnoded "$TMPD/b.log" --attach-cgroup "/${CG_TS#$CG2/}" ||
	{ fail "vnoded --attach-cgroup starts" "$(tail -5 "$TMPD/b.log")"; exit 0; }
grep -q "replace cgroup/sock_create" "$TMPD/b.log" && ok "--attach-cgroup replaced the program left attached" ||
	fail "--attach-cgroup replaced" "$(grep classify "$TMPD/b.log")"
sleep 0.2
lan=$(seen lan) vpn=$(seen vpn)
[[ " $lan " == *" 6007 "* && " $vpn " != *" 6007 "* ]] &&
	ok "a socket opened while no agent ran left by the LAN" || fail "socket between agents" "lan: $lan vpn: $vpn"
kill -TERM "$VPID"; wait "$VPID"
# --cleanup detaches what attach mode attached
in_cg "$CG_AGENT" "${VENV[@]}" "$VNODED" --cleanup --attach-cgroup "/${CG_TS#$CG2/}" >"$TMPD/c.log" 2>&1
n=$(bpftool cgroup show "$CG_TS" | grep -c vnode_classify)
expect_eq "--cleanup detaches the program" "$n" 0
