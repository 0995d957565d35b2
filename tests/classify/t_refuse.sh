#!/usr/bin/env bash
# Settings that would defeat the separation are refused before anything
# starts: exit 2, the reason on stderr, no program attached, no nftables
# table, the command never run. containerboot without TS_USERSPACE gets
# TS_USERSPACE=false.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"
lab_need
lab_up

printf '#!/bin/sh\necho "ran TS_USERSPACE=${TS_USERSPACE-unset}" > %s/ran\n' "$TMPD" >"$TMPD/containerboot"
chmod +x "$TMPD/containerboot"
cp "$TMPD/containerboot" "$TMPD/tailscaled"

refused() {	# name want-substring env-assignments... -- vnoded-arguments...
	local name=$1 want=$2 envs=() rc out; shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift	# what follows are vnoded's arguments
	rm -f "$TMPD/ran"
	out=$(in_cg "$CG_AGENT" env "${envs[@]}" "${VENV[@]}" "$VNODED" "$@" 2>&1); rc=$?
	local progs tables
	progs=$(bpftool cgroup show "$CG_AGENT" | grep -c .)
	tables=$(in_node nft list tables | grep -c vnode)
	if [ $rc = 2 ] && grep -qF -- "$want" <<<"$out" && [ "$progs" = 0 ] &&
	   [ "$tables" = 0 ] && [ ! -e "$TMPD/ran" ]; then ok "$name"
	else fail "$name" "rc=$rc progs=$progs tables=$tables ran=$(cat "$TMPD/ran" 2>/dev/null) out=$out"; fi
}
refused "TS_USERSPACE=true refused" "refusing TS_USERSPACE=true" TS_USERSPACE=true -- -- "$TMPD/containerboot"
refused "TS_USERSPACE=1 refused for tailscaled too" "refusing TS_USERSPACE=1" TS_USERSPACE=1 -- -- "$TMPD/tailscaled"
refused "TS_USERSPACE unparsable refused for containerboot (it reads it as true)" \
	"refusing TS_USERSPACE=yes" TS_USERSPACE=yes -- -- "$TMPD/containerboot"
refused "--tun=userspace-networking refused" "refusing --tun=userspace-networking" \
	-- -- "$TMPD/tailscaled" --state=mem: --tun=userspace-networking
refused "-tun userspace-networking refused" "refusing --tun=userspace-networking" \
	-- -- "$TMPD/tailscaled" -tun userspace-networking
refused "userspace networking in TS_TAILSCALED_EXTRA_ARGS refused" "TS_TAILSCALED_EXTRA_ARGS" \
	"TS_TAILSCALED_EXTRA_ARGS=--verbose=1 --tun=userspace-networking" -- -- "$TMPD/containerboot"
refused "TS_ACCEPT_DNS=true refused" "refusing TS_ACCEPT_DNS=true" TS_ACCEPT_DNS=true TS_USERSPACE=false -- -- "$TMPD/containerboot"
refused "--accept-dns in TS_EXTRA_ARGS refused" "refusing TS_ACCEPT_DNS=true" \
	"TS_EXTRA_ARGS=--advertise-exit-node --accept-dns" TS_USERSPACE=false -- -- "$TMPD/containerboot"
refused "a command in attach mode refused" "refusing a command in attach mode" \
	-- --attach-pid 1 -- "$TMPD/tailscaled"
refused "a command with --attach-name refused" "refusing a command in attach mode" \
	-- --attach-name tailscaled -- "$TMPD/tailscaled"
refused "--attach-name with --attach-pid refused" "VNODE_ATTACH_NAME and VNODE_ATTACH_PID exclude each other" \
	-- --attach-name tailscaled --attach-pid 1
refused "--attach-name with --attach-cgroup refused" "VNODE_ATTACH_NAME and VNODE_ATTACH_CGROUP exclude each other" \
	VNODE_ATTACH_CGROUP=/x -- --attach-name tailscaled
refused "bad classifier setting" "VNODE_CLASSIFIER" VNODE_CLASSIFIER=bpf -- -- "$TMPD/tailscaled"

# accepted: containerboot without TS_USERSPACE runs with it false
rm -f "$TMPD/ran"
in_cg "$CG_AGENT" env -u TS_USERSPACE "${VENV[@]}" "$VNODED" -- "$TMPD/containerboot" >"$TMPD/cb.log" 2>&1; rc=$?
expect_eq "containerboot without TS_USERSPACE runs (exit 0)" "$rc" 0
expect_eq "containerboot gets TS_USERSPACE=false" "$(cat "$TMPD/ran" 2>/dev/null)" "ran TS_USERSPACE=false"
rm -f "$TMPD/ran"
in_cg "$CG_AGENT" "${VENV[@]}" TS_USERSPACE=false TS_ACCEPT_DNS=false "$VNODED" -- "$TMPD/containerboot" >"$TMPD/cb.log" 2>&1; rc=$?
expect_eq "TS_USERSPACE=false TS_ACCEPT_DNS=false accepted" "$rc:$(cat "$TMPD/ran" 2>/dev/null)" "0:ran TS_USERSPACE=false"

# the root of the hierarchy is never classified
out=$(nsenter --net=/run/netns/$NS_N sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG2" \
	"${VENV[@]}" "$VNODED" -- true 2>&1); rc=$?
if [ $rc = 1 ] && grep -q "root of the cgroup2 hierarchy" <<<"$out" &&
   ! bpftool cgroup show "$CG2" | grep -q vnode_classify; then
	ok "an agent in the root cgroup refuses to classify the whole host (exit 1)"
else fail "root cgroup refused" "rc=$rc $out"; fi

# a resolver tailscaled would upgrade to DNS-over-HTTPS (tcp/443, control
# class, out of the LAN): refused unless VNODE_DNS=lan. resolv.conf is
# replaced in a private mount namespace.
with_resolv() {	# content env... -- vnoded args
	local content=$1; shift
	printf '%s\n' "$content" >"$TMPD/resolv.conf"
	local envs=(); while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
	in_cg "$CG_AGENT" unshare -m sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' \
		"$TMPD/resolv.conf" env "${envs[@]}" "${VENV[@]}" "$VNODED" "$@"
}
for r in 1.1.1.1 8.8.8.8 9.9.9.9 2606:4700:4700::1111 45.90.28.7; do
	rm -f "$TMPD/ran"
	out=$(with_resolv "nameserver $r" -- -- "$TMPD/tailscaled" 2>&1); rc=$?
	if [ $rc = 2 ] && grep -q "refusing nameserver $r in /etc/resolv.conf: tailscaled upgrades" <<<"$out" &&
	   [ ! -e "$TMPD/ran" ]; then ok "resolv.conf naming $r (DoH-upgraded) refused, exit 2"
	else fail "resolv.conf $r refused" "rc=$rc $out"; fi
done
rm -f "$TMPD/ran"
with_resolv "nameserver 127.0.0.1" TS_USERSPACE=false -- -- "$TMPD/containerboot" >/dev/null 2>&1; rc=$?
expect_eq "resolv.conf naming a local resolver (Gluetun's 127.0.0.1) accepted" "$rc:$(cat "$TMPD/ran" 2>/dev/null)" "0:ran TS_USERSPACE=false"
rm -f "$TMPD/ran"
with_resolv "nameserver 1.1.1.1" VNODE_DNS=lan TS_USERSPACE=false -- -- "$TMPD/containerboot" >/dev/null 2>&1; rc=$?
expect_eq "VNODE_DNS=lan opts out of the DoH refusal" "$rc:$(cat "$TMPD/ran" 2>/dev/null)" "0:ran TS_USERSPACE=false"
