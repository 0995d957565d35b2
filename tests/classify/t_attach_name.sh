#!/usr/bin/env bash
# Attach mode by name, as the drop-in sidecar runs it: vnoded starts first,
# as PID 1 of a PID namespace of its own, with --attach-name; "tailscaled"
# (sockprobe under that name) joins the namespace later, from a cgroup of
# its own, as a container with `pid: service:vnode` does. Judged from
# outside: /readyz and `vnoded probe` exit codes, which lab peer got the
# packets, `ss -e` marks, `bpftool cgroup show`, the namespace's zombies,
# the agent's context switches.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"
lab_need
lab_up
CG_TS=$CG2/$PFX-ts
trap 'disown -a; cg_kill "$CG_TS"; lab_down' EXIT
NAMES=containerboot,tailscaled
WAITING="classifier: waiting for a process named $NAMES"
# tailscale0 exists, so that the classifier is what readiness waits for
ip -n "$NS_N" link add tailscale0 type veth peer name ts0peer
ip -n "$NS_N" link set tailscale0 up
cp "$SOCKPROBE" "$TMPD/tailscaled"

probe() { in_node "${VENV[@]}" "$VNODED" probe "$@" 2>&1; }
status() { in_node curl -s --max-time 3 http://127.0.0.1:9911/status; }
# marked_port LPORT: ss shows fwmark 0x80000 on the socket bound to LPORT
marked_port() { in_node ss -Hanuwt "sport = :$1" -e | grep -q 'fwmark:0x80000'; }
lports() { sed -n 's/.*lport=//p' "$1"; }

bg_in_cg "$CG_AGENT" "$TMPD/a.log" unshare -p -f --mount-proc "${VENV[@]}" "$VNODED" -v \
	--attach-name "$NAMES" --exit-ip-url none --lan-ip-url none
UPID=$BGPID
wait_for 5 grep -q "attach: waiting for a process named $NAMES" "$TMPD/a.log" ||
	{ fail "agent waits for its process" "$(tail -5 "$TMPD/a.log")"; exit 0; }
V1=$(pgrep -P "$UPID" -x vnoded)
[ -n "$V1" ] || { fail "vnoded is the PID namespace's init" "no child of unshare"; exit 0; }
grep -q "enforcing in" "$TMPD/a.log" && ok "rules, routes and the kill switch applied before the wait" ||
	fail "enforcing before the wait" "$(tail -5 "$TMPD/a.log")"

# ---- waiting: not ready, but armed
out=$(probe); rc=$?
expect_eq "waiting: vnoded probe exits 1, /readyz says only that it waits" "$rc:$out" "1:$WAITING"
out=$(probe --armed); rc=$?
expect_eq "waiting: vnoded probe --armed exits 0" "$rc" 0
st=$(status)
[[ $st == *'"armed":true,"attach":{"state":"waiting","names":"'$NAMES'","pid":null'* && $st == *'"ready":false'* ]] &&
	ok "waiting: /status says armed, not ready, waiting" || fail "/status while waiting" "$st"

# start: the process opens its first socket 0.2 s after its exec (four
# fast scans); tailscaled's come later still (containerboot starts it)
start_ts() {	# LOG: "tailscaled" in $CG_TS and the agent's PID namespace
	mkdir -p "$CG_TS"
	exec 7<>"$TMPD/cmd"
	nsenter --pid=/proc/$V1/ns/pid --net=/run/netns/$NS_N \
		sh -c 'echo 0 > "$0/cgroup.procs" && exec "$@"' "$CG_TS" "$TMPD/tailscaled" - \
		<&7 >"$1" 2>&1 &
	LAB_PIDS+=("$!")
	disown	# killed with its cgroup: no job notice
}
mkfifo "$TMPD/cmd"
start_ts "$TMPD/ts1.log"
sleep 0.2
echo "open udp4 $DST4 7001" >&7
echo "open tcp4 $DST4 7002" >&7
echo "open udp6 $DST6 7003" >&7
echo "fork tcp6 $DST6 7004" >&7
echo ready >&7
wait_for 5 grep -qx ready "$TMPD/ts1.log"
sleep 0.3
expect_eq "the attach is logged once" "$(grep -c "attach: pid [0-9]* (tailscaled) found" "$TMPD/a.log")" 1
grep -q "classify: cgroup $CG_TS (attach mode)" "$TMPD/a.log" && ok "the process's cgroup is the one classified" ||
	fail "classified cgroup" "$(grep classify "$TMPD/a.log")"
lan=$(seen lan) vpn=$(seen vpn) bad=
for p in 7001 7002 7003 7004; do [[ " $lan " == *" $p "* && " $vpn " != *" $p "* ]] || bad="$bad $p"; done
[ -z "$bad" ] && ok "its sockets (and a child's), from the first on, leave by the LAN" ||
	fail "sockets after the attach" "bad:$bad lan: $lan vpn: $vpn"
bad=
for l in $(lports "$TMPD/ts1.log"); do marked_port "$l" || bad="$bad $l"; done
[ -z "$bad" ] && [ "$(lports "$TMPD/ts1.log" | wc -l)" = 4 ] && ok "ss: each of its sockets carries the mark" ||
	fail "ss marks" "unmarked:$bad $(cat "$TMPD/ts1.log")"
expect_eq "one program on its cgroup" "$(bpftool cgroup show "$CG_TS" | grep -c 'sock_create.*vnode_classify')" 1
in_node nft list chain inet vnode output | grep -q "socket cgroupv2 level [0-9]* \"${CG_TS#/sys/fs/cgroup/}\"" &&
	ok "nftables classifies its cgroup's sockets from before the attach" ||
	fail "nft rule for the cgroup" "$(in_node nft list chain inet vnode output)"
out=$(probe); rc=$?
expect_eq "attached: vnoded probe exits 0 (/readyz 200)" "$rc:$out" "0:ok"
out=$(probe --armed); rc=$?
expect_eq "attached: vnoded probe --armed exits 0" "$rc" 0

# idle while attached: no timer, so no wakeup (a 50 ms poll would be 100)
cs() { awk '/ctxt_switches/ {s += $2} END {print s}' /proc/$V1/status; }
# settled first: an address event (a link-local leaving DAD) rightly wakes it
wait_for 5 sh -c "[ -z \"\$(nsenter --net=/run/netns/$NS_N ip -6 addr show tentative)\" ]"
sleep 0.2
c0=$(cs); sleep 5; c1=$(cs)
echo "  (context switches of the attached agent over 5 s: $((c1 - c0)))"
[ $((c1 - c0)) -le 2 ] && ok "attached and idle: at most 2 wakeups in 5 s ($((c1 - c0)))" ||
	fail "idle wakeups while attached" "$((c1 - c0)) in 5 s"

# ---- the container restarts: process killed, cgroup removed and re-created
exec 7>&-
cg_kill "$CG_TS"
wait_for 3 grep_n "$TMPD/a.log" "attach: waiting for a process named $NAMES" 2 &&
	ok "the exit is seen and the agent waits again" || fail "waits again" "$(grep attach: "$TMPD/a.log")"
expect_eq "the exit is logged once" "$(grep -c "attach: pid [0-9]* (tailscaled) exited" "$TMPD/a.log")" 1
out=$(probe); rc=$?
expect_eq "waiting again: /readyz says so" "$rc:$out" "1:$WAITING"
in_node nft list chain inet vnode output | grep -q "socket cgroupv2" &&
	fail "no nft rule for a removed cgroup" "$(in_node nft list chain inet vnode output)" ||
	ok "the nftables rule for the removed cgroup is gone"
start_ts "$TMPD/ts2.log"
sleep 0.2
echo "open udp4 $DST4 7011" >&7
echo "open tcp6 $DST6 7012" >&7
echo ready >&7
wait_for 5 grep -qx ready "$TMPD/ts2.log"
sleep 0.3
lan=$(seen lan) vpn=$(seen vpn) bad=
for p in 7011 7012; do [[ " $lan " == *" $p "* && " $vpn " != *" $p "* ]] || bad="$bad $p"; done
[ -z "$bad" ] && ok "re-created cgroup: the new process's sockets leave by the LAN" ||
	fail "sockets after the re-attach" "bad:$bad lan: $lan vpn: $vpn"
bad=
for l in $(lports "$TMPD/ts2.log"); do marked_port "$l" || bad="$bad $l"; done
[ -z "$bad" ] && ok "re-created cgroup: ss shows the mark" || fail "ss marks after the re-attach" "unmarked:$bad"
expect_eq "re-created cgroup: exactly one program of ours on it" \
	"$(bpftool cgroup show "$CG_TS" | grep -c 'sock_create.*vnode_classify')" 1
expect_eq "two attaches logged" "$(grep -c "attach: pid [0-9]* (tailscaled) found" "$TMPD/a.log")" 2

# ---- the process restarts in a cgroup that stayed: the program there is
# the agent's own, kept (not attached twice, not refused)
exec 7>&-
pkill -KILL -f "^$TMPD/tailscaled"
wait_for 3 grep_n "$TMPD/a.log" "attach: waiting for a process named $NAMES" 3 || fail "waits a third time" ""
start_ts "$TMPD/ts3.log"
sleep 0.2
echo "open udp4 $DST4 7021" >&7
echo ready >&7
wait_for 5 grep -qx ready "$TMPD/ts3.log"
sleep 0.3
seen_has lan 7021 && ! seen_has vpn 7021 && ok "same cgroup: the restarted process's socket leaves by the LAN" ||
	fail "same cgroup re-attach" "lan: $(seen lan) vpn: $(seen vpn)"
expect_eq "same cgroup: still one program on it" \
	"$(bpftool cgroup show "$CG_TS" | grep -c 'sock_create.*vnode_classify')" 1
out=$(probe); rc=$?
expect_eq "same cgroup: ready again" "$rc:$out" "0:ok"
exec 7>&-
cg_kill "$CG_TS"
wait_for 3 grep_n "$TMPD/a.log" "attach: waiting for a process named $NAMES" 4 || fail "waits a fourth time" ""

# ---- a process of that name whose cgroup cannot be classified (the
# hierarchy's root): refused, watched, and not armed
nsenter --pid=/proc/$V1/ns/pid sh -c 'echo 0 > "$0/cgroup.procs" && exec "$@"' "$CG2" \
	"$TMPD/tailscaled" hold </dev/null >/dev/null 2>&1 &
LAB_PIDS+=("$!")
disown
wait_for 3 grep -q "attach: pid [0-9]* (tailscaled): its cgroup cannot be classified" "$TMPD/a.log" &&
	ok "a process in the root cgroup is refused" || fail "root cgroup refused" "$(tail -5 "$TMPD/a.log")"
out=$(probe --armed); rc=$?
[ $rc = 1 ] && [[ $out == *"classifier: the cgroup of pid "*" (tailscaled) cannot be classified"* ]] &&
	ok "refused: vnoded probe --armed exits 1" || fail "refused: not armed" "rc=$rc $out"
expect_eq "nothing attached to the root cgroup" "$(bpftool cgroup show "$CG2" | grep -c vnode_classify)" 0
pkill -KILL -f "^$TMPD/tailscaled hold"
wait_for 3 grep_n "$TMPD/a.log" "attach: waiting for a process named $NAMES" 5 &&
	ok "after the refused process exits the agent waits again" || fail "waits after refusal" ""

# ---- PID 1: an orphan of another "container" in the namespace is reaped.
# Control first: with the agent stopped the orphan stays a zombie, so the
# check can see one.
zombies() { ps --ppid "$V1" -o stat= | grep -c Z; }
kill -STOP "$V1"
nsenter --pid=/proc/$V1/ns/pid sh -c 'sleep 0.2 & exit 0'
sleep 0.5
z_stopped=$(zombies)
kill -CONT "$V1"
sleep 0.3
expect_eq "orphan reaped by the agent (zombies while stopped: $z_stopped)" "$z_stopped:$(zombies)" "1:0"
nsenter --pid=/proc/$V1/ns/pid sh -c 'for i in 1 2 3 4 5; do sleep 0.1 & done; exit 0'
sleep 0.5
expect_eq "five more orphans reaped" "$(zombies)" 0

kill -TERM "$V1"; wait "$UPID"
expect_eq "the agent exits 0 on SIGTERM" "$?" 0
