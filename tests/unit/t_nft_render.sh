#!/usr/bin/env bash
# The nftables table the agent renders is valid for every kind of setting:
# `vnoded --check -v` prints it; `nft -c` checks it in a throwaway network
# namespace (nothing is installed). Catches a syntax error before a lab does.
. "$(dirname "$0")/../lib.sh"
ns=vnu$$
ip netns add $ns || { fail "netns" "cannot create a network namespace"; exit 0; }
trap 'ip netns del $ns 2>/dev/null' EXIT

variant() {	# name env...
	local name=$1 out; shift
	out=$(env -i "$@" "$VNODED" --check -v 2>&1) || { fail "$name: --check" "$out"; return; }
	sed -n '/^# nft -f -/,$p' <<<"$out" | tail -n +2 >/tmp/vn-nft.$$
	[ -s /tmp/vn-nft.$$ ] || { fail "$name: table printed" "empty"; return; }
	check "$name: nft accepts the table" ip netns exec $ns nft -c -f /tmp/vn-nft.$$
}
variant "defaults"
variant "DNS redirected to a v4 resolver" VNODE_DNS_SERVER=203.0.113.53
variant "DNS redirected to a v6 resolver" VNODE_DNS_SERVER=2001:db8::53
variant "DNS by the LAN" VNODE_DNS=lan
variant "own mark beside Tailscale's" VNODE_MARK=0x100000/0xf00000
variant "allow-lan both families" VNODE_ALLOW_LAN=192.168.1.0/24,fd00::/8
variant "fixed MSS" VNODE_MSS=1200
variant "MSS off" VNODE_MSS=off
variant "IPv6 on" VNODE_IPV6=on
variant "other interface names" VNODE_LAN_IF=lan0 VNODE_VPN_IF=wg0 VNODE_TS_IF=ts1

out=$(env -i VNODE_DNS_SERVER=203.0.113.53 "$VNODED" --check -v)
check "the redirect names the resolver" grep -q 'dnat ip to 203.0.113.53' <<<"$out"
out=$(env -i VNODE_DNS=lan "$VNODED" --check -v)
check "DNS=lan: no DNS rule in postrouting" bash -c '! grep -q "th dport 53" <<<"$0"' "$out"
rm -f /tmp/vn-nft.$$
