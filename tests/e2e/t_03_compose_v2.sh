#!/usr/bin/env bash
# e2e/t_03_compose_v2: the Compose v2 plugin (pinned, built by peers.sh) creates
# on this engine what the shipped stack relies on, with a small two-service
# project of the same shape: `network_mode: service:x` (one network
# namespace), `depends_on: condition: service_healthy` (y starts only once x
# is healthy), sysctls, cap_add, /dev/net/tun, a macvlan network with a
# fixed address and MAC. The macvlan's parent is a port-less bridge made by
# the test (never the machine's own interface). Only the base image is used
# (tests/e2e/images.sh base makes it when missing).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/versions.sh"
. "$(dirname "$0")/compose_plugin.sh"

if ! docker info >/dev/null 2>&1; then skip "compose v2 up" "no Docker engine here"; exit 0; fi
tmp=$(mktemp -d)
K=$((RANDOM % 200 + 20)) BR=vnc$RANDOM P=vnc2t$RANDOM
cleanup() {
	[ ${#DCV2[@]} -gt 0 ] && "${DCV2[@]}" -p "$P" -f "$tmp/compose.yml" down -v -t 0 >/dev/null 2>&1
	ip link del "$BR" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
if ! compose_plugin "$tmp/docker-config"; then
	if [ "$COMPOSE_PLUGIN_SKIP" = 1 ]; then skip "compose v2 up" "$COMPOSE_PLUGIN_WHY"
	else fail "compose v2 plugin $COMPOSE_VERSION builds and runs" "$COMPOSE_PLUGIN_WHY"; fi
	exit 0
fi
if ! docker image inspect "$IMG_BASE" >/dev/null 2>&1; then
	command -v debootstrap >/dev/null || { skip "compose v2 up" "no $IMG_BASE and no debootstrap to make it"; exit 0; }
	bash "$ROOT/tests/e2e/images.sh" base || { fail "base image for compose v2 up" "images.sh base failed"; exit 0; }
fi
ip link add "$BR" type bridge && ip link set "$BR" up ||
	{ fail "compose v2 up: bridge $BR for the macvlan" "ip link add failed"; exit 0; }

MAC=02:76:6e:63:$(printf %02x $K):0a	# not the 02:42:<IP> Docker would pick
cat >"$tmp/compose.yml" <<EOF
services:
  x:
    image: $IMG_BASE
    # healthy 3 s after start: the health check finds /tmp/healthy
    command: ["sh", "-c", "sleep 3; date +%s.%N >/tmp/healthy; exec sleep infinity"]
    cap_add: [NET_ADMIN]
    devices: ["/dev/net/tun:/dev/net/tun"]
    sysctls:
      net.ipv4.ip_forward: "1"
      net.ipv4.conf.all.rp_filter: "2"
      net.ipv4.conf.all.src_valid_mark: "1"
    networks:
      lan:
        ipv4_address: 10.215.$K.10
    mac_address: $MAC
    healthcheck:
      test: ["CMD", "test", "-e", "/tmp/healthy"]
      interval: 1s
      timeout: 2s
      retries: 30
  y:
    image: $IMG_BASE
    command: ["sh", "-c", "date +%s.%N >/tmp/started; exec sleep infinity"]
    network_mode: service:x
    depends_on:
      x:
        condition: service_healthy
    cap_add: [NET_ADMIN, NET_RAW, SYS_ADMIN]
    devices: ["/dev/net/tun:/dev/net/tun"]
networks:
  lan:
    driver: macvlan
    driver_opts:
      parent: $BR
    ipam:
      config:
        - subnet: 10.215.$K.0/24
          gateway: 10.215.$K.1
EOF
dc() { "${DCV2[@]}" -p "$P" -f "$tmp/compose.yml" "$@"; }
t0=$SECONDS
if ! dc up -d >"$tmp/up.log" 2>&1; then
	fail "docker compose ($COMPOSE_VERSION) up -d: network_mode service, health-gated depends_on, sysctls, macvlan" \
		"$(tail -n 4 "$tmp/up.log" | tr '\n' ' ')"
	exit 0
fi
ok "docker compose ($COMPOSE_VERSION) up -d on engine API $(docker version -f '{{.Server.APIVersion}}') ($((SECONDS - t0))s)"
X=$(dc ps -q x) Y=$(dc ps -q y)
insp() { docker inspect -f "$1" "$2"; }
xpid=$(insp '{{.State.Pid}}' "$X") ypid=$(insp '{{.State.Pid}}' "$Y")

# one network namespace: y's is x's (the kernel's view, not only Docker's)
expect_eq "y's NetworkMode is container:<x>" "$(insp '{{.HostConfig.NetworkMode}}' "$Y")" "container:$X"
expect_eq "y runs in x's network namespace" "$(readlink /proc/$ypid/ns/net)" "$(readlink /proc/$xpid/ns/net)"
check "the namespaces differ from the host's" test "$(readlink /proc/$xpid/ns/net)" != "$(readlink /proc/self/ns/net)"

# sysctls applied in the namespace, seen from both containers
for s in net/ipv4/ip_forward=1 net/ipv4/conf/all/rp_filter=2 net/ipv4/conf/all/src_valid_mark=1; do
	expect_eq "sysctl ${s%=*} in x" "$(docker exec "$X" cat /proc/sys/${s%=*})" "${s#*=}"
	expect_eq "sysctl ${s%=*} as y sees it" "$(docker exec "$Y" cat /proc/sys/${s%=*})" "${s#*=}"
done

# start order: y started after x wrote /tmp/healthy (and x took its 3 s)
healthy=$(docker exec "$X" cat /tmp/healthy) ystart=$(docker exec "$Y" cat /tmp/started)
xstart=$(date -d "$(insp '{{.State.StartedAt}}' "$X")" +%s.%N)
check "y started after x became healthy (x healthy at ${healthy:-never}, y started at $ystart)" \
	awk -v h="$healthy" -v y="$ystart" 'BEGIN { exit !(h != "" && y != "" && y > h) }'
check "y waited for x's health check ($(awk -v x="$xstart" -v y="$ystart" 'BEGIN { printf "%.1f", y - x }') s after x started)" \
	awk -v x="$xstart" -v y="$ystart" 'BEGIN { exit !(y - x >= 3) }'
expect_eq "x is healthy" "$(insp '{{.State.Health.Status}}' "$X")" healthy

# capabilities in the kernel (CapEff bits: NET_ADMIN 12, NET_RAW 13, SYS_ADMIN 21)
capeff() { printf '%d' "0x$(awk '/^CapEff/ {print $2}' /proc/$1/status)"; }
cy=$(capeff "$ypid") cx=$(capeff "$xpid")
check "y has NET_ADMIN, NET_RAW, SYS_ADMIN" test $(( (cy >> 12 & 1) + (cy >> 13 & 1) + (cy >> 21 & 1) )) -eq 3
check "x has NET_ADMIN and not SYS_ADMIN" test $(( (cx >> 12 & 1) * 2 + (cx >> 21 & 1) )) -eq 2
check "/dev/net/tun in y (char 10:200)" docker exec "$Y" sh -c 'test -c /dev/net/tun && [ "$(stat -c %t:%T /dev/net/tun)" = a:c8 ]'
check "/dev/net/tun in x" docker exec "$X" test -c /dev/net/tun

# the macvlan: address, MAC, parent is the test's bridge
net=$(insp '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$X")
expect_eq "macvlan network's parent is the test bridge" "$(docker network inspect -f '{{.Driver}} {{index .Options "parent"}}' "$net")" "macvlan $BR"
link=$(nsenter -t "$xpid" -n ip -d -o link show eth0)
check "x's eth0 is a macvlan on $BR" sh -c "printf '%s' '$link' | grep -q 'macvlan' && printf '%s' '$link' | grep -q 'eth0@if$(cat /sys/class/net/$BR/ifindex)'"
expect_eq "x's eth0 MAC" "$(printf '%s' "$link" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)" "$MAC"
check "x's eth0 has 10.215.$K.10/24" sh -c "nsenter -t $xpid -n ip -4 -o addr show eth0 | grep -q 'inet 10.215.$K.10/24'"

# down removes everything it made
if dc down -v -t 0 >"$tmp/down.log" 2>&1; then ok "docker compose down"
else fail "docker compose down" "$(tail -n 3 "$tmp/down.log" | tr '\n' ' ')"; fi
expect_eq "no container or network of the project left" \
	"$(docker ps -aq --filter "label=com.docker.compose.project=$P"; docker network ls -q --filter "label=com.docker.compose.project=$P")" ""
exit 0
