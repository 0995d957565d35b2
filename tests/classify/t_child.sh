#!/usr/bin/env bash
# VNODE_CGROUP=child (hosts with a writable cgroup2 mount): the command
# moves itself into <agent's cgroup>/vnode-tailscaled before exec; only
# that cgroup is classified, the agent's own sockets are not.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"
lab_need
lab_up
start_vnoded "$TMPD/v.log" --cgroup child -- $SOCKPROBE open udp4 $DST4 7001 open tcp6 $DST6 7002 ready hold ||
	{ fail "vnoded --cgroup child starts" "$(tail -5 "$TMPD/v.log")"; exit 0; }
wait_for 5 grep -qx ready "$TMPD/v.log"
sleep 0.2
cpid=$(grep -o 'udp4 pid=[0-9]*' "$TMPD/v.log" | cut -d= -f2)
expect_eq "the command runs in the child cgroup" "$(sed -n 's/^0:://p' /proc/$cpid/cgroup)" "/$PFX-agent/vnode-tailscaled"
n=$(bpftool cgroup show "$CG_AGENT/vnode-tailscaled" | grep -c vnode_classify)
m=$(bpftool cgroup show "$CG_AGENT" | grep -c vnode_classify)
expect_eq "program on the child cgroup only" "$n$m" "10"
lan=$(seen lan) vpn=$(seen vpn)
[[ " $lan " == *" 7001 "* && " $lan " == *" 7002 "* && " $vpn " != *" 700"* ]] &&
	ok "the command's sockets left by the LAN" || fail "child cgroup: LAN" "lan: $lan vpn: $vpn"
# a process in the agent's cgroup itself (beside the agent) stays unclassified
in_cg "$CG_AGENT" $SOCKPROBE open udp4 $DST4 7003 >/dev/null
sleep 0.2
seen_has vpn 7003 && ! seen_has lan 7003 && ok "the agent's own cgroup is not classified" ||
	fail "agent's cgroup unclassified" "lan: $(seen lan) vpn: $(seen vpn)"
kill -TERM "$VPID"; wait "$VPID"
expect_eq "exits 143 with its command" "$?" 143
