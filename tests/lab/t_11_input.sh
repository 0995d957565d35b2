#!/usr/bin/env bash
# 11. From tailscale0 nothing but established traffic and ICMP reaches the
# node's own services (a listener on :8000 stands for a VPN container's
# control server); from the LAN nothing addressed to tun0's address (or a
# tailnet address) gets an answer (CVE-2019-14899).
. "$(dirname "$0")/lab.sh"

lab_up || { fail "lab up" "see above"; exit 1; }
node_service 8000
agent_start || { fail "agent starts" "$(agent_why)"; exit 1; }
check "the service answers on the node itself" in_ns vnode $LABNET tcp 127.0.0.1 8000

for a in 100.100.0.1 10.66.0.2 192.168.77.2 fd7a:115c:a1e0::1 fd00:77::2; do
	expect_fail "tailnet -> node's service at $a:8000 (TCP): no answer" client_tcp $a 8000 --timeout 1
done
expect_fail "tailnet -> node's service at 100.100.0.1:8000 (UDP): no answer" client_udp 100.100.0.1 8000 --timeout 1 --tries 1
check "tailnet -> ping 100.100.0.1 answered" client_ping 100.100.0.1
check "tailnet -> ping fd7a:115c:a1e0::1 answered" client_ping fd7a:115c:a1e0::1
expect_out "established traffic from tailscale0 reaches the node (control TCP to the tailnet)" 100.100.0.1 ctl_tcp 100.100.0.2 7

_lab_ipb router <<-'IPEOF'
route replace 10.66.0.2/32 via 192.168.77.2 dev lan
route replace 100.100.0.0/24 via 192.168.77.2 dev lan
route replace fd7a:115c:a1e0::/48 via fd00:77::2 dev lan
IPEOF
check "LAN -> node's LAN address: the service answers (the probe works)" in_ns router $LABNET tcp 192.168.77.2 8000 --timeout 2
expect_fail "LAN -> 10.66.0.2:8000: no answer" in_ns router $LABNET tcp 10.66.0.2 8000 --timeout 1
expect_fail "LAN -> ping 10.66.0.2: no answer" in_ns router ping -c 1 -W 1 10.66.0.2
expect_fail "LAN -> 100.100.0.1:8000: no answer" in_ns router $LABNET tcp 100.100.0.1 8000 --timeout 1
expect_fail "LAN -> ping 100.100.0.1: no answer" in_ns router ping -c 1 -W 1 100.100.0.1
expect_fail "LAN -> ping fd7a:115c:a1e0::1: no answer" in_ns router ping -6 -c 1 -W 1 fd7a:115c:a1e0::1
expect_fail "LAN -> a tailnet client through the node: no answer" in_ns router ping -c 1 -W 1 100.100.0.2
