#!/usr/bin/env bash
# With BPF refused (CAP_BPF and CAP_SYS_ADMIN dropped from the bounding
# set), vnoded falls back to nftables `socket cgroupv2`, says so, and its
# command's packets still leave by the LAN, a process outside by the VPN;
# VNODE_CLASSIFIER=ebpf refuses to run instead, naming the capability.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"
lab_need
command -v setpriv >/dev/null || { skip "fallback" "no setpriv"; exit 0; }
lab_up
NOBPF=(setpriv --bounding-set -bpf,-sys_admin --inh-caps -bpf,-sys_admin)

bg_in_cg "$CG_AGENT" "$TMPD/in.log" "${NOBPF[@]}" "${VENV[@]}" "$VNODED" -v -- \
	$SOCKPROBE open tcp4 $DST4 5001 open udp4 $DST4 5002 open tcp6 $DST6 5003 \
	open udp6 $DST6 5004 thread udp4 $DST4 5005 fork tcp4 $DST4 5006 ready hold
VPID=$BGPID
wait_for 5 grep -qx ready "$TMPD/in.log" || { fail "vnoded starts without CAP_BPF" "$(tail -5 "$TMPD/in.log")"; exit 0; }
grep -q "CapBnd:.*" /proc/$VPID/status
capbnd=$(awk '/CapBnd/ {print $2}' /proc/$VPID/status)
(( (0x$capbnd >> 39) & 1 || (0x$capbnd >> 21) & 1 )) && fail "vnoded runs without CAP_BPF and CAP_SYS_ADMIN" "CapBnd $capbnd" ||
	ok "vnoded runs without CAP_BPF and CAP_SYS_ADMIN (CapBnd $capbnd)"
grep -q "kernel refused the BPF program: Operation not permitted: needs CAP_BPF" "$TMPD/in.log" &&
   grep -q "falling back to nftables socket cgroupv2" "$TMPD/in.log" &&
	ok "log says BPF was refused, why, and that nftables classifies" ||
	fail "log names the fallback" "$(grep classify "$TMPD/in.log")"
rule=$(in_node nft list chain inet vnode output | grep 'socket cgroupv2')
[ -n "$rule" ] && ok "output chain carries: $(echo $rule)" || fail "socket cgroupv2 rule in table inet vnode" "$(in_node nft list chain inet vnode output)"
n=$(bpftool cgroup show "$CG_AGENT" | grep -c vnode_classify)
expect_eq "no program attached" "$n" 0

bg_in_cg "$CG_OUT" "$TMPD/out.log" $SOCKPROBE open tcp4 $DST4 5101 open udp4 $DST4 5102 \
	open udp6 $DST6 5104 ready hold
wait_for 5 grep -qx ready "$TMPD/out.log"
sleep 0.3
lan=$(seen lan) vpn=$(seen vpn) bad=
for p in 5001 5002 5003 5004 5005 5006; do
	[[ " $lan " == *" $p "* && " $vpn " != *" $p "* ]] || bad="$bad $p"
done
[ -z "$bad" ] && ok "nft classifier: every socket of the command (v4/v6, tcp/udp, thread, fork) left by the LAN" ||
	fail "nft classifier: LAN" "bad:$bad lan: $lan vpn: $vpn"
bad=
for p in 5101 5102 5104; do
	[[ " $vpn " == *" $p "* && " $lan " != *" $p "* ]] || bad="$bad $p"
done
[ -z "$bad" ] && ok "nft classifier: a process outside left by the VPN" ||
	fail "nft classifier: outside" "bad:$bad lan: $lan vpn: $vpn"
kill -TERM "$VPID"; wait "$VPID"
expect_eq "fallback agent exits with its command's 143" "$?" 143

# an explicit eBPF classifier refuses to run unclassified
out=$(in_cg "$CG_AGENT" "${NOBPF[@]}" env VNODE_CLASSIFIER=ebpf "${VENV[@]}" "$VNODED" -- true 2>&1); rc=$?
if [ $rc = 1 ] && grep -q "needs CAP_BPF" <<<"$out" && grep -q "VNODE_CLASSIFIER=ebpf" <<<"$out"; then
	ok "VNODE_CLASSIFIER=ebpf without CAP_BPF: exit 1 naming the capability, command not run"
else fail "VNODE_CLASSIFIER=ebpf refused" "rc=$rc $out"; fi
