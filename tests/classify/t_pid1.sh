#!/usr/bin/env bash
# vnoded as PID 1 of a PID namespace (unshare -p -f), judged from outside:
# exit codes as tini's (0, 1, 126, 127, 128+n), every listed signal
# forwarded, signals reset for the command, orphans reaped, no zombie left.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"
lab_need
lab_up

# pid1 ARGS...: vnoded as PID 1 in a new PID namespace, in the agent's
# cgroup; waits; returns its status (unshare -f passes it on, signals too)
pid1() {
	in_cg "$CG_AGENT" unshare -p -f --mount-proc "${VENV[@]}" "$VNODED" "$@"
}
code() {	# name want ARGS...
	local name=$1 want=$2 rc; shift 2
	pid1 "$@" >"$TMPD/code.log" 2>&1; rc=$?
	expect_eq "$name" "$rc" "$want"
}
code "command exits 0 -> 0" 0 -- sh -c 'exit 0'
code "command exits 1 -> 1" 1 -- sh -c 'exit 1'
code "command exits 42 -> 42" 42 -- sh -c 'exit 42'
code "command not found -> 127" 127 -- /nonexistent/tailscaled
code "command not on PATH -> 127" 127 -- no-such-command-$PFX
printf 'not a program\n' >"$TMPD/noexec"; chmod 644 "$TMPD/noexec"
code "command not executable -> 126" 126 -- "$TMPD/noexec"
code "command killed by SIGUSR1 -> 138" 138 -- sh -c 'kill -USR1 $$'
code "command killed by SIGKILL -> 137" 137 -- sh -c 'kill -KILL $$'

# signals: the command traps each and records it; vnoded gets them from
# outside the namespace. Started as a background job of this
# non-interactive shell, vnoded inherits SIGINT and SIGQUIT ignored; sh
# cannot trap a signal ignored at entry, so INT and QUIT only arrive if
# vnoded reset them before exec.
cat >"$TMPD/trap.sh" <<EOS
#!/bin/sh
grep -E '^Sig(Ign|Blk)' /proc/self/status > $TMPD/sigstate
for s in HUP INT QUIT USR1 USR2; do trap "echo \$s >> $TMPD/got" \$s; done
trap "echo TERM >> $TMPD/got; exit 7" TERM
echo started > $TMPD/got
while :; do sleep 0.05; done
EOS
chmod +x "$TMPD/trap.sh"
# trap '' ignores them as a careless parent would; vnoded must undo it
bg_in_cg "$CG_AGENT" "$TMPD/sig.log" sh -c 'trap "" INT QUIT HUP PIPE USR2; exec "$@"' sh \
	unshare -p -f --mount-proc "${VENV[@]}" "$VNODED" -- "$TMPD/trap.sh"
UPID=$BGPID
wait_for 5 grep -q started "$TMPD/got" || fail "trap script started" "$(cat "$TMPD/sig.log")"
V1=$(pgrep -P "$UPID" -x vnoded)
[ -n "$V1" ] || fail "vnoded is the PID namespace's init" "no child of unshare"
for s in HUP INT QUIT USR1 USR2; do
	kill -$s "$V1"
	wait_for 3 grep -qx "$s" "$TMPD/got" || { fail "SIG$s forwarded" "got: $(tr '\n' ' ' <"$TMPD/got")"; continue; }
	ok "SIG$s forwarded to the command"
done
kill -TERM "$V1"
wait "$UPID"; rc=$?
grep -qx TERM "$TMPD/got" && ok "SIGTERM forwarded to the command" || fail "SIGTERM forwarded" "$(cat "$TMPD/got")"
expect_eq "vnoded exits with the command's status after SIGTERM" "$rc" 7
expect_eq "command starts with no signal ignored or blocked" \
	"$(tr -s '\t ' ' ' <"$TMPD/sigstate" | tr '\n' ' ')" "SigBlk: 0000000000000000 SigIgn: 0000000000000000 "

# orphans: the command leaves 20 grandchildren behind (their parent exits
# at once, so they become PID 1's), then looks for zombies in its namespace
cat >"$TMPD/orphans.sh" <<'EOS'
#!/bin/sh
for i in $(seq 20); do sh -c 'sleep 0.2 & exit 0'; done
sleep 0.2; sh -c 'sleep 0.1 & exec true'
sleep 1
z=0
for f in /proc/[0-9]*/stat; do
	s=$(cut -d' ' -f3 "$f" 2>/dev/null); [ "$s" = Z ] && z=$((z + 1))
done
echo "zombies=$z"
ps -eo pid,ppid,stat,comm 2>/dev/null | awk '$3 ~ /Z/' >&2
exit 3
EOS
chmod +x "$TMPD/orphans.sh"
pid1 -- "$TMPD/orphans.sh" >"$TMPD/orph.log" 2>&1; rc=$?
expect_eq "orphans reaped: no zombie in the namespace" "$(grep -o 'zombies=[0-9]*' "$TMPD/orph.log")" "zombies=0"
expect_eq "exit status after the orphans" "$rc" 3

# when the command ends, vnoded (PID 1) ends and the kernel kills the rest:
# nothing of the namespace survives
bg_in_cg "$CG_AGENT" "$TMPD/rest.log" unshare -p -f --mount-proc "${VENV[@]}" \
	"$VNODED" -- sh -c "sh -c 'trap \"\" TERM; echo \$\$ > $TMPD/left; exec sleep 30' & sleep 0.3; exit 5"
UPID=$BGPID
wait "$UPID"; rc=$?
expect_eq "vnoded exits with the command's 5 although a descendant lingers" "$rc" 5
sleep 0.2
n=0
for p in $(cat "$CG_AGENT/cgroup.procs"); do
	tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q '^sleep 30' && n=$((n + 1))
done
expect_eq "no process of the namespace left after PID 1 exits" "$n" 0

# exit-address checks run in children of their own, which PID 1 reaps with
# everything else: each check's result must still arrive (not taken by the
# orphan reaper). An echo server in the node's namespace answers the LAN
# check with the address it saw; the command waits until the agent's
# /status shows it, and then looks for zombies.
in_node python3 "$ROOT/tests/health/fakes.py" echo "$TMPD/echo.log" 18089 >/dev/null 2>&1 &
ECHOPID=$!
LAB_PIDS+=("$ECHOPID")	# killed with the lab
wait_for 5 in_node curl -sf -o /dev/null http://127.0.0.1:18089/ip
cat >"$TMPD/exitip.sh" <<EOS
#!/bin/sh
i=0
while [ \$i -lt 120 ]; do
	curl -s -m 2 http://127.0.0.1:19911/status >$TMPD/exst 2>/dev/null
	grep -q '"127.0.0.1"' $TMPD/exst && break
	sleep 0.25; i=\$((i + 1))
done
grep -q '"127.0.0.1"' $TMPD/exst || exit 9
sleep 0.5
z=0
for f in /proc/[0-9]*/stat; do
	s=\$(cut -d' ' -f3 "\$f" 2>/dev/null); [ "\$s" = Z ] && z=\$((z + 1))
done
echo "zombies=\$z"
exit 0
EOS
chmod +x "$TMPD/exitip.sh"
pid1 --exit-ip-url none --lan-ip-url http://127.0.0.1:18089/ip --exit-ip-interval 10 \
	--health-listen 127.0.0.1:19911 -- "$TMPD/exitip.sh" >"$TMPD/exitip.log" 2>&1; rc=$?
expect_eq "PID 1 with exit-address checks: a check completes (its status not stolen)" "$rc" 0
expect_eq "PID 1 with exit-address checks: no zombie in the namespace" \
	"$(grep -o 'zombies=[0-9]*' "$TMPD/exitip.log")" "zombies=0"
check "PID 1 with exit-address checks: the echo server was asked" grep -q ' /ip$' "$TMPD/echo.log"
