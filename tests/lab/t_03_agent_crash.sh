#!/usr/bin/env bash
# 3. Agent SIGKILLed: still 0 leaks (the kill switch stays); restarted: the
# same rules, none twice.
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }
agent_start || { fail "agent starts" "$(agent_why)"; exit 1; }
expect_out "client through the VPN" "$VPN_ADDR" client_udp $CLI_TARGET
sorted_dump() { lab_rules_dump | sort; }
nft_dump() { in_ns vnode nft -s list table inet vnode; }
D1=$(sorted_dump); N1=$(nft_dump)

agent_kill
lab_reset_counters
client_stream stream $CLI_TARGET --interval 0.01
sleep 0.5
vpn_down
sleep 1
client_ping $CLI_TARGET
client_tcp $CLI_TARGET 80 --timeout 1 >/dev/null 2>&1
client_tcp $CLI_TARGET6 80 --timeout 1 >/dev/null 2>&1
expect_fail "agent dead, tunnel down: control DNS gets no answer" ctl_dns_udp $DNS_SERVER --timeout 1
expect_count "agent dead, tunnel down: no client packet on the LAN" lan_client -eq 0
expect_count "agent dead, tunnel down: no DNS on the LAN" lan_dns -eq 0
expect_out "agent dead: control traffic still leaves by the LAN" "$LAN_ADDR" ctl_tcp $CTL_TARGET
vpn_up
sleep 0.5
expect_count "agent dead, tunnel back: still no client packet on the LAN" lan_client -eq 0
expect_count "agent dead: no control packet in the tunnel" tun_control -eq 0
lab_stop stream

agent_start || fail "agent restarts" "$(agent_why)"
wait_for 5 eval '[ "$(sorted_dump)" = "$D1" ]'
D2=$(sorted_dump)
if [ "$D2" = "$D1" ]; then ok "restarted after SIGKILL: the same rules and tables"
else fail "restarted after SIGKILL: the same rules and tables" "$(diff <(echo "$D1") <(echo "$D2") | grep '^[<>]' | head -5 | tr '\n' ' ')"; fi
dups=$( { _lab_ip vnode -4 rule; _lab_ip vnode -6 rule | sed 's/^/v6 /'; } | sort | uniq -d)
expect_eq "no rule twice" "$dups" ""
expect_eq "the same nft table" "$(nft_dump)" "$N1"
expect_out "client through the VPN again" "$VPN_ADDR" client_udp $CLI_TARGET

# SIGKILL with the tunnel up, restart at once; then SIGTERM and restart
agent_kill; agent_start || fail "agent restarts (2)" "$(agent_why)"
agent_stop; agent_start || fail "agent restarts after SIGTERM" "$(agent_why)"
sleep 0.3
expect_eq "after kill/restart/stop/restart: the same rules and tables" "$(sorted_dump)" "$D1"
dups=$( { _lab_ip vnode -4 rule; _lab_ip vnode -6 rule | sed 's/^/v6 /'; } | sort | uniq -d)
expect_eq "still no rule twice" "$dups" ""
expect_count "whole run: no client packet on the LAN" lan_client -eq 0
