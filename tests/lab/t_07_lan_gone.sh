#!/usr/bin/env bash
# 7. LAN gateway gone: control-class traffic blocked, never inside tun0
# (node_tun_control counts what is handed to tun0, tun_control what comes
# out at the provider); it comes back with the LAN.
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }
agent_start || { fail "agent starts" "$(agent_why)"; exit 1; }
expect_out "control traffic by the LAN" "$LAN_ADDR" ctl_tcp $CTL_TARGET

gone_checks() {	# WHAT
	lab_reset_counters
	expect_fail "$1: control TCP blocked" ctl_tcp $CTL_TARGET 443 --timeout 1
	expect_fail "$1: control UDP blocked" ctl_udp $CTL_TARGET 3478 --timeout 1 --tries 1
	expect_fail "$1: control TCP over IPv6 blocked" ctl_tcp $CTL_TARGET6 443 --timeout 1
	expect_count "$1: no control packet handed to tun0 (node_tun_control)" node_tun_control -eq 0
	expect_count "$1: no control packet out of the tunnel (tun_control)" tun_control -eq 0
}
lan_down
gone_checks "eth0 down"
lan_up
if wait_for 10 eval 'ctl_tcp $CTL_TARGET 443 --timeout 1 >/dev/null 2>&1'; then ok "eth0 back: control traffic flows again"
else fail "eth0 back: control traffic flows again" "$(ip -n $LAB_ID-vnode route show table 51 | tr '\n' ' ')"; fi
expect_out "eth0 back: from the LAN address" "$LAN_ADDR" ctl_tcp $CTL_TARGET

_lab_ip router link set lan down
gone_checks "router's LAN port down (no carrier)"
_lab_ip router link set lan up
lan_up
if wait_for 10 eval 'ctl_tcp $CTL_TARGET 443 --timeout 1 >/dev/null 2>&1'; then ok "carrier back: control traffic flows again"
else fail "carrier back: control traffic flows again" "$(ip -n $LAB_ID-vnode route show table 51 | tr '\n' ' ')"; fi

_lab_ip router addr del 192.168.77.1/24 dev lan
_lab_ip vnode neigh flush dev eth0
gone_checks "gateway address gone from the LAN"
_lab_ip router addr add 192.168.77.1/24 dev lan
wait_for 10 eval 'ctl_tcp $CTL_TARGET 443 --timeout 1 >/dev/null 2>&1'
expect_out "gateway back: control traffic from the LAN address" "$LAN_ADDR" ctl_tcp $CTL_TARGET
