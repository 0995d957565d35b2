#!/usr/bin/env bash
# tests/lab/demo.sh (make demo, as root): builds the namespace lab (an
# internet, a home router, a WireGuard VPN provider, the node, a tailnet
# client), starts vnoded in the node and shows, as the internet and the
# router see it: the client leaves by the VPN, tailscaled by the LAN; with
# the VPN gone the client is blocked and nothing leaks; the VPN comes back
# and so does the client. Cleans up on exit and on Ctrl-C. About 15 s.
set -u
LAB_QUIET=1
. "$(dirname "$0")/lab.sh"
T_SUITE=demo T_FILE=demo

[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces)" >&2; exit 1; }
[ -x "$VNODED" ] || { echo "demo: $VNODED missing: run make" >&2; exit 1; }
bold=; off=; green=; red=
if [ -t 1 ]; then bold=$'\e[1m'; off=$'\e[0m'; green=$'\e[32m'; red=$'\e[31m'; fi
bad=0
say() { printf '%s\n' "$*"; }
row() {	# LABEL GOT WANT NOTE
	local mark="${green}ok${off}"
	[ "$2" = "$3" ] || { mark="${red}UNEXPECTED (want $3)${off}"; bad=1; }
	printf '  %-34s %-16s %s  %s\n' "$1" "${2:-(no answer)}" "$4" "$mark"
}

say "${bold}vNode demo${off}: building the lab (internet, router, VPN provider, node, tailnet client)..."
lab_up || { echo "demo: lab did not come up" >&2; exit 1; }
say "  LAN address seen by the internet: $LAN_ADDR    VPN address: $VPN_ADDR"
agent_start || { echo "demo: vnoded did not start; its log:" >&2; tail -n 20 "$AGENT_LOG" >&2; exit 1; }
say "  vnoded: $(grep -m1 'enforcing in' "$AGENT_LOG" | sed 's/^vnoded: //')"
say
say "${bold}1. What the internet sees${off}"
row "tailnet client (via exit node)" "$(client_tcp $CLI_TARGET 2>/dev/null)" "$VPN_ADDR" "(VPN)"
row "tailscaled stand-in (control)" "$(ctl_tcp $CTL_TARGET 2>/dev/null)" "$LAN_ADDR" "(LAN)"
row "tailscaled's DNS lookups" "$(ctl_dns_udp 2>/dev/null)" "$VPN_ADDR" "(VPN)"

say
say "${bold}2. The VPN drops (tun0 deleted)${off}"
vpn_delete
lab_reset_counters
in_ns client ping -q -c 20 -i 0.05 -W 1 $CLI_TARGET >/dev/null 2>&1
client_udp $CLI_TARGET --tries 3 --timeout 1 >/dev/null 2>&1
got=$(client_tcp $CLI_TARGET 80 --timeout 1 2>/dev/null)
row "tailnet client" "${got:-blocked}" "blocked" ""
row "client packets seen on the LAN" "$(lab_count lan_client)" 0 "(router counter)"
row "tailscaled stand-in (control)" "$(ctl_tcp $CTL_TARGET 2>/dev/null)" "$LAN_ADDR" "(LAN, unaffected)"

say
say "${bold}3. The VPN comes back${off}"
vpn_restore
wait_for 10 eval 'client_udp $CLI_TARGET --tries 1 --timeout 1 >/dev/null 2>&1'
row "tailnet client" "$(client_tcp $CLI_TARGET 2>/dev/null)" "$VPN_ADDR" "(VPN)"
row "client packets seen on the LAN" "$(lab_count lan_client)" 0 "(router counter, whole demo)"

say
if [ $bad = 0 ]; then say "${green}demo: every line as expected${off}; cleaning up."
else say "${red}demo: some lines were not as expected${off}; agent log: $AGENT_LOG (kept: LAB_KEEP_LOGS=dir)"; fi
exit $bad
