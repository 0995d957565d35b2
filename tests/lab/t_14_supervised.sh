#!/usr/bin/env bash
# 14. The control class made by the agent itself: a process started by
# vnoded in supervise mode (`vnoded -- command`), in a child cgroup the eBPF
# program classifies, with no SO_MARK of its own. Its HTTP-like TCP and its
# UDP reach the internet from the LAN address; its DNS (UDP and TCP) from
# the VPN address, and with the tunnel down nobody hears it; a tailnet
# client's traffic is still from the VPN address. A process outside the
# cgroup, run beside it, is not classified.
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }
# the agent runs in a cgroup of its own (as in a container); the command
# goes into the child cgroup the agent makes below it
CG2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
[ -n "$CG2" ] || { fail "cgroup2 mount" "none in /proc/self/mountinfo"; exit 1; }
CG=$CG2/$LAB_ID-agent
mkdir -p "$CG"
LAB_ON_EXIT="rmdir $CG/vnode-tailscaled $CG 2>/dev/null"
OUT=$LAB_TMP/sup
mkdir -p "$OUT"
# the command: probes without --mark, results into files
cat >"$OUT/probes.sh" <<PROBES
$LABNET tcp $CTL_TARGET 443 >$OUT/tcp 2>&1
$LABNET udp $CTL_TARGET 3478 >$OUT/udp 2>&1
$LABNET dns $DNS_SERVER >$OUT/dns_udp 2>&1
$LABNET dns $DNS_SERVER --tcp >$OUT/dns_tcp 2>&1
PROBES

run_supervised() {	# run probes.sh as the agent's child; the agent exits with it
	rm -f "$OUT"/tcp "$OUT"/udp "$OUT"/dns_udp "$OUT"/dns_tcp
	# nsenter, not ip netns exec: that remounts /sys and hides cgroup2
	nsenter --net=/run/netns/"$LAB_ID-vnode" sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" \
		env -i PATH="$PATH" "$VNODED" --cgroup child \
		--dns-server $DNS_SERVER --health-listen none --exit-ip-url none --lan-ip-url none \
		-- sh "$OUT/probes.sh" >>"$AGENT_LOG" 2>&1
}

lab_reset_counters
n0=$(dns_log_lines)
run_supervised
rc=$?
expect_eq "vnoded exits with its command's status" "$rc" 0
expect_eq "the child's TCP arrives from the LAN address" "$(cat "$OUT/tcp")" "$LAN_ADDR"
expect_eq "the child's UDP arrives from the LAN address" "$(cat "$OUT/udp")" "$LAN_ADDR"
expect_eq "the child's DNS over UDP is asked from the VPN address" "$(cat "$OUT/dns_udp")" "$VPN_ADDR"
expect_eq "the child's DNS over TCP is asked from the VPN address" "$(cat "$OUT/dns_tcp")" "$VPN_ADDR"
expect_count "nothing of the child inside the tunnel but DNS (tun_control)" tun_control -eq 0
expect_count "no DNS on the LAN (lan_dns)" lan_dns -eq 0
expect_eq "the DNS server heard 2 lookups, from the VPN address" \
	"$(tail -n +$((n0 + 1)) "$DNS_LOG" | awk '{print $3}' | sort | uniq -c | awk '{print $1, $2}')" "2 $VPN_ADDR"

# a process outside the classified cgroup is not control class: unmarked,
# it follows Gluetun's rule 101 into the tunnel
expect_out "a process outside the cgroup is not classified (by the tunnel)" "$VPN_ADDR" \
	in_ns vnode $LABNET tcp $CTL_TARGET 443

# the kill switch stayed after the command ended: client traffic by the VPN
expect_out "client traffic from the VPN address after the supervised run" "$VPN_ADDR" client_udp $CLI_TARGET

vpn_down
lab_reset_counters
n0=$(dns_log_lines)
run_supervised
expect_eq "tunnel down: the child's TCP still leaves by the LAN" "$(cat "$OUT/tcp")" "$LAN_ADDR"
check "tunnel down: the child's DNS over UDP gets no answer" bash -c "! grep -q '^[0-9]' '$OUT/dns_udp'"
check "tunnel down: the child's DNS over TCP gets no answer" bash -c "! grep -q '^[0-9]' '$OUT/dns_tcp'"
expect_eq "tunnel down: the DNS server heard nothing" "$(dns_log_lines)" "$n0"
expect_count "tunnel down: no DNS on the LAN (lan_dns)" lan_dns -eq 0
expect_count "tunnel down: no client or control packet in the tunnel (tun_control)" tun_control -eq 0
vpn_up
