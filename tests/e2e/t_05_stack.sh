#!/usr/bin/env bash
# e2e/t_05_stack: the shipped Gluetun + Tailscale stack (compose/) in the test
# world (tests/e2e/world.sh), against real headscale, Gluetun (or its stand-in
# peers/vpnclient where Gluetun cannot be built) and real
# tailscaled, judged from outside the node: counters on the home router
# (LAN side), on the VPN server (tunnel side) and at the control server, the
# echo and DNS servers' logs, the client's own view.
#
# Phase 1, baseline: the official image's entrypoint (containerboot alone).
#   It proves the counters with the leak vNode exists to stop: tailscaled's
#   control traffic goes into the tunnel (Gluetun's rule 101 takes every
#   unmarked-by-51820 packet) and the control server sees the VPN address.
# Phase 3: the tunnel restarted through the VPN client's control server,
#   the VPN server stopped and started, the agent's container restarted,
#   tailscaled killed: fail closed, /readyz and Docker's health follow, then
#   back without restarting anything else.
# Phase 2, vNode: the agent in the namespace before tailscaled starts
#   (`vnoded -- containerboot`, the agent image's entrypoint; until the agent
#   supervises a child, the sidecar image beside plain containerboot).
#   Client TCP/UDP/ICMP and DNS leave by the VPN, nothing of them on the
#   LAN, nothing of tailscaled's in the tunnel, headscale sees the LAN.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/world.sh"

img_ok() { docker image inspect "$1" >/dev/null 2>&1; }
has_node() { [ -n "$(node_ip 2>/dev/null)" ]; }
ns_has() { ns "${@:2}" 2>/dev/null | grep -Eq -- "$1"; }	# REGEX CMD...
post_rules_ran() { docker exec "$W-gluetun" iptables -S FORWARD | grep -q -- '-i tailscale0 -o tun0 -j ACCEPT'; }
if ! docker info >/dev/null 2>&1; then skip "stack" "no Docker engine here"; exit 0; fi
if [ ${#DC[@]} -eq 0 ]; then skip "stack" "neither docker-compose nor docker compose"; exit 0; fi
for i in "$IMG_TS" "$IMG_HEADSCALE" "$IMG_WORLD" "$IMG_AGENT" "$IMG_SIDECAR"; do
	img_ok "$i" || { skip "stack" "image $i missing (tests/e2e/images.sh)"; exit 0; }
done
pick_vpn_client || exit 0

trap world_down EXIT
t0=$SECONDS
world_up || { fail "world up" "see above"; exit 0; }
ok "world up: internet, VPN server, router, headscale, client ($((SECONDS - t0))s)"

# --- phase 1: containerboot alone ------------------------------------------
stack_env
if stack_up "$E2E_DIR/compose.containerboot.yml" gluetun; then ok "VPN client healthy: $vc (custom WireGuard provider, userspace)"
else fail "VPN client healthy ($vc)" "not healthy in 120 s"; exit 0; fi
check "the VPN client ran the shipped post-rules.txt" post_rules_ran
stack_up "$E2E_DIR/compose.containerboot.yml" tailscale || { fail "baseline: tailscale up" "compose failed"; exit 0; }
if wait_for 150 has_node; then ok "baseline: node registered in headscale as $(node_ip)"
else fail "baseline: node registered" "$(docker logs "$W-tailscale" 2>&1 | tail -5 | tr '\n' ' ')"; exit 0; fi
sleep 5
n=$(counter vpn tunnel_control); v=$(counter hsmon hs_from_vpn)
if [ "${n:-0}" -gt 0 ] && [ "${v:-0}" -gt 0 ]; then
	ok "baseline leak seen (proves the counters): $n control packets in the tunnel, headscale reached from the VPN address $v times"
else
	fail "baseline leak seen" "tunnel_control=$n hs_from_vpn=$v: the counters may be blind"
fi
expect_eq "baseline: nothing of tailscaled's on the LAN" "$(counter router lan_control)" 0
dc stop tailscale >/dev/null 2>&1

# --- phase 2: vNode --------------------------------------------------------
supervise=1
if timeout 30 docker run --rm --entrypoint vnoded "$IMG_AGENT" -- true 2>&1 | grep -q "not supported"; then supervise=0; fi
if [ $supervise = 1 ]; then
	# compose.e2e.yml gives the agent cgroup2 as on a hybrid host; elsewhere
	# Docker mounts it itself and the volume line goes.
	ov=$WDIR/compose.e2e.host.yml
	if [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then cp "$E2E_DIR/compose.e2e.yml" "$ov"
	else sed '/^    volumes:$/{N; /sys\/fs\/cgroup/d}' "$E2E_DIR/compose.e2e.yml" >"$ov"; fi
	stack_up "$ov" tailscale || { fail "vnode: tailscale up" "compose failed"; exit 0; }
	ok "agent image started as the stack's Tailscale container (vnoded -- containerboot)"
else
	docker run -d --name "$W-vnoded" --label org.vnode.e2e=1 --network "container:$W-gluetun" \
		--cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_ADMIN "$IMG_SIDECAR" >/dev/null
	skip "agent image entrypoint" "this vnoded cannot run a command yet: vnoded from $IMG_SIDECAR in the namespace, then plain containerboot"
	wait_for 20 ns_has 'lookup 52' ip rule || { fail "vnoded rules" "$(docker logs "$W-vnoded" 2>&1 | tail -5 | tr '\n' ' ')"; exit 0; }
	stack_up "$E2E_DIR/compose.containerboot.yml" tailscale || { fail "vnode: tailscale up" "compose failed"; exit 0; }
fi
check "rule block below Gluetun's 98: tailnet to table 52" ns_has '^[1-8]?[0-9]:.*to 100.64.0.0/10 lookup 52' ip rule
check "table 51 (LAN) via the router" ns_has "default via $LAN_GW" ip route show table 51
check "table 53 (VPN) via tun0" ns_has 'default dev tun0' ip route show table 53
check "nftables table inet vnode" ns_has 'table inet vnode' nft list tables

exit_node_guarantees || exit 0
# Docker's health is the agent's readiness (HEALTHCHECK vnoded probe).
agent=$W-tailscale; [ $supervise = 0 ] && agent=$W-vnoded
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$agent" 2>/dev/null)" = healthy ]; }
if wait_for 90 healthy; then ok "Docker health of the agent's container: healthy"
else fail "Docker health of the agent's container" "$(docker inspect -f '{{json .State.Health}}' "$agent" | tail -c 300)"; fi
check "vnoded probe (/readyz) answers ready" docker exec "$agent" vnoded probe
# /status: the node's two faces, as the agent learned them (the VPN one from
# the echo server through the tunnel, the LAN one from tailscaled's STUN).
status_field() {	# PATH.TO.FIELD
	ns curl -s -m 3 http://127.0.0.1:9911/status | python3 -c '
import json,sys
d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d.get(k) if isinstance(d,dict) else None
print(d if d is not None else "")' "$1" 2>/dev/null
}
faces() { [ -n "$(status_field exit.vpn.address)" ] && [ -n "$(status_field exit.lan.address)" ]; }
wait_for 60 faces
expect_eq "/status: the VPN address the echo server saw" "$(status_field exit.vpn.address)" "$VPN"
expect_eq "/status: the LAN address headscale's STUN saw" "$(status_field exit.lan.address)" "$ROUTER_WAN"
expect_eq "/status: the two faces are unlinkable" "$(status_field exit.unlinkable)" "True"

# --- phase 3: things go away and come back ----------------------------------
echo_ok() { [ "$(wx client curl -s -m 2 "http://$ECHO/" 2>/dev/null | cut -d: -f1)" = "src=$VPN" ]; }
rules_once() { [ -z "$(ns ip rule | sort | uniq -d)" ]; }
readyz_code() { ns curl -s -o /dev/null -m 3 -w '%{http_code}' http://127.0.0.1:9911/readyz; }
health_is() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$agent" 2>/dev/null)" = "$1" ]; }
started() { docker inspect -f '{{.Name}} {{.State.StartedAt}} {{.RestartCount}}' "$@" | tr '\n' ' '; }
vpn_ctl() {	# running|stopped: Gluetun's control server, from inside the namespace
	ns curl -s -m 20 -X PUT -H 'Content-Type: application/json' \
		-d "{\"status\":\"$1\"}" http://127.0.0.1:8000/v1/vpn/status
}
# The VPN client restarts its tunnel (its control server: rule 101 goes,
# then tun0): fail closed, /readyz and Docker's health follow, and traffic
# comes back with no container restarted.
before=$(started "$W-gluetun" "$agent")
counter_reset router
out=$(vpn_ctl stopped)
case $out in *stopped*) ok "control server: tunnel stopped ($out)" ;;
*) fail "control server: PUT /v1/vpn/status stopped" "answer: '$out'" ;; esac
t1=$SECONDS
echo_ok && fail "tunnel stopped: client traffic stops" "the echo server still answered" ||
	ok "tunnel stopped: client traffic stops"
wx client ping -c 3 -W 2 "$ECHO" >/dev/null 2>&1
wx client dig +time=2 +tries=1 @100.100.100.100 "stopped-$RANDOM.vnode-e2e.net" >/dev/null 2>&1
expect_eq "tunnel stopped: /readyz" "$(readyz_code)" 503
if wait_for 60 health_is unhealthy; then ok "tunnel stopped: Docker health turns unhealthy ($((SECONDS - t1))s)"
else fail "tunnel stopped: Docker health turns unhealthy" "still $(docker inspect -f '{{.State.Health.Status}}' "$agent")"; fi
expect_eq "tunnel stopped: client packets on the LAN" "$(counter router lan_client)" 0
out=$(vpn_ctl running)
case $out in *running*) ok "control server: tunnel running again" ;;
*) fail "control server: PUT /v1/vpn/status running" "answer: '$out'" ;; esac
t1=$SECONDS
if wait_for 120 echo_ok; then ok "tunnel restarted: client traffic resumes from the VPN address ($((SECONDS - t1))s)"
else fail "tunnel restarted: client traffic resumes" "not within 120 s"; fi
expect_eq "tunnel restarted: /readyz" "$(readyz_code)" 200
wait_for 60 healthy && ok "tunnel restarted: Docker health healthy again" ||
	fail "tunnel restarted: Docker health healthy again" "$(docker inspect -f '{{.State.Health.Status}}' "$agent")"
expect_eq "tunnel stopped and restarted: client packets on the LAN" "$(counter router lan_client)" 0
expect_eq "tunnel restarted: no container restarted" "$(started "$W-gluetun" "$agent")" "$before"

# The VPN server dies: client traffic stops, nothing of it on the LAN; it
# comes back without any container of the stack restarted.
counter_reset router
docker stop "$W-vpn" >/dev/null
t1=$SECONDS
echo_ok && fail "VPN server down: client traffic stops" "the echo server still answered" ||
	ok "VPN server down: client traffic stops"
wx client ping -c 3 -W 2 "$ECHO" >/dev/null 2>&1
wx client dig +time=2 +tries=1 @100.100.100.100 "down-$RANDOM.vnode-e2e.net" >/dev/null 2>&1
sleep 10
expect_eq "VPN server down: client packets on the LAN" "$(counter router lan_client)" 0
docker start "$W-vpn" >/dev/null
if wait_for 120 echo_ok; then ok "VPN server back: client traffic resumes from the VPN address ($((SECONDS - t1))s after the stop, no restart)"
else fail "VPN server back: client traffic resumes" "not within 120 s"; fi
expect_eq "VPN server down and back: client packets on the LAN" "$(counter router lan_client)" 0
# The agent's container restarts (tailscaled with it): ready again, each
# rule once, no leak.
counter_reset router; counter_reset vpn
# back_again WHAT T1: after WHAT (begun at $SECONDS = T1) the node comes
# back: traffic resumes, each rule once, healthy; and nothing leaked.
back_again() {
	if wait_for 90 echo_ok; then ok "$1: client traffic resumes ($((SECONDS - $2))s)"
	else fail "$1: client traffic resumes" "not within 90 s"; fi
	check "$1: each rule once" rules_once
	wait_for 90 healthy && ok "$1: healthy again" ||
		fail "$1: healthy again" "health $(docker inspect -f '{{.State.Health.Status}}' "$agent")"
	sleep 10
	expect_eq "$1: client packets on the LAN" "$(counter router lan_client)" 0
	expect_eq "$1: tailscaled's packets in the tunnel" "$(counter vpn tunnel_control)" 0
}
docker restart "$agent" >/dev/null
back_again "agent container restarted" $SECONDS

# tailscaled dies alone: containerboot and the agent exit after it and
# Docker's restart policy brings the container back (a crash, not a
# `docker restart`): the same guarantees.
counter_reset router; counter_reset vpn
rc0=$(docker inspect -f '{{.RestartCount}}' "$agent")
docker exec "$agent" sh -c 'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = tailscaled ] && kill -9 ${p#/proc/}; done'
t1=$SECONDS
restarted() { [ "$(docker inspect -f '{{.RestartCount}}' "$agent")" -gt "$rc0" ]; }
if wait_for 60 restarted; then ok "tailscaled killed: the container restarts by its policy ($((SECONDS - t1))s)"
else fail "tailscaled killed: the container restarts" "restart count still $rc0, state $(docker inspect -f '{{.State.Status}}' "$agent")"; fi
back_again "tailscaled killed" "$t1"

# The agent heals what others change; it must not fight its own changes:
# measured before, in a container, each of its transactions looked foreign
# (the kernel reports the init-namespace PID) and it "repaired" in a loop.
rep=$(docker logs "$agent" 2>&1 | grep -c 'repaired nft')
cpu=$(docker stats --no-stream --format '{{.CPUPerc}}' "$agent")
if [ "$rep" -lt 20 ]; then ok "agent not repairing in a loop ($rep nft repairs; container CPU $cpu)"
else fail "agent not repairing in a loop" "$rep 'repaired nft' lines in $((SECONDS - t0))s, container CPU $cpu"; fi
exit 0
