# tests/e2e/world.sh: sourced by the e2e tests. Builds the test world out of
# containers on networks this run creates (every name starts with $W, unique
# per run), brings the project's Compose stack up in it, and tears it all
# down. Nothing touches the machine's own interfaces: the "internet" is an
# internal Docker bridge (no NAT to the host's uplink), the LAN a macvlan on
# a bridge made here (no ports: the kernel may lack the dummy driver).
#
#   internet 198.18.K.0/24 (internal bridge)
#     .10 internet  echo server (HTTP 80, UDP 7) + DNS logger (53), e2e-echo
#     .20 vpn       WireGuard server (wireguard-go, udp/51820) + NAT out of .20;
#                   DNS for Gluetun's upstream resolvers DNATed to .10
#     .30 headscale control server, embedded DERP over HTTP, STUN 3478
#     .40 client    real tailscaled, uses the node as exit node
#     .2  router    home router: NAT of the LAN out of .2
#   LAN 10.213.K.0/24 (macvlan on bridge vnK, a bridge with no ports)
#     .1  router    (LAN side)      .10 gluetun + tailscale (the vNode stack)
#   tunnel 10.214.K.0/24 inside WireGuard: .1 server, .2 Gluetun
# Leak counters live on the router (LAN side) and the VPN server (tunnel
# side), never in the node.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$E2E_DIR/versions.sh"
COMPOSE_DIR=$(cd "$E2E_DIR/../../compose" && pwd)

if docker compose version >/dev/null 2>&1; then DC=(docker compose)
elif command -v docker-compose >/dev/null; then DC=(docker-compose)
else DC=(); fi

W=""	# run prefix, set by world_up
wx() { local c=$1; shift; docker exec "$W-$c" "$@"; }	# run in a world container
DC_EXTRA=()	# more -f FILE for dc (the drop-in test adds the drop-in file)
dc() { "${DC[@]}" --env-file "$WDIR/stack.env" -p "$W" -f "$COMPOSE_DIR/docker-compose.yml" "${DC_EXTRA[@]}" -f "$WDIR/e2e.override.yml" "$@"; }

# pick_vpn_client: sets VPN_CLIENT_IMAGE (the stack's GLUETUN_IMAGE) and vc
# (its description). Gluetun itself where its image could be built, else
# its stand-in (peers/vpnclient: plain WireGuard with Gluetun's measured
# rules, firewall and control-server subset), saying so;
# E2E_VPN_CLIENT=vpnclient forces the stand-in. Returns 1 (skipped) if
# neither image exists.
pick_vpn_client() {
	if docker image inspect "$IMG_GLUETUN" >/dev/null 2>&1 && [ "${E2E_VPN_CLIENT:-auto}" != vpnclient ]; then
		VPN_CLIENT_IMAGE=$IMG_GLUETUN; vc="Gluetun $GLUETUN_VERSION"
	elif docker image inspect "$IMG_VPNCLIENT" >/dev/null 2>&1; then
		VPN_CLIENT_IMAGE=$IMG_VPNCLIENT; vc="Gluetun's stand-in $IMG_VPNCLIENT"
		echo "  note  Gluetun's image is not built here ($(cat "$E2E_CACHE/gluetun.unavailable" 2>/dev/null || echo 'no binary')):"
		echo "        the VPN client is $IMG_VPNCLIENT, a plain WireGuard client in Gluetun's place (tests/e2e/README.md)"
	else
		skip "VPN client" "neither $IMG_GLUETUN nor $IMG_VPNCLIENT exists (tests/e2e/images.sh)"; return 1
	fi
}

# world_net: picks K and makes the internet bridge and the LAN parent.
world_net() {
	local try
	for try in 1 2 3 4 5 6 7 8; do
		K=$(( (RANDOM % 200) + 20 ))
		W=vne2e$K
		ip link show "vn$K" >/dev/null 2>&1 && continue
		docker network inspect "$W-inet" >/dev/null 2>&1 && continue
		if docker network create --internal --subnet "198.18.$K.0/24" --gateway "198.18.$K.1" \
			--label org.vnode.e2e=1 "$W-inet" >/dev/null 2>"$WDIR/net.err"; then
			ip link add "vn$K" type bridge && ip link set "vn$K" up && return 0
			docker network rm "$W-inet" >/dev/null
		fi
	done
	cat "$WDIR/net.err" >&2
	return 1
}

world_run() {	# NAME IP [docker run args...] -- IMAGE [cmd...]
	local name=$1 ip=$2; shift 2
	docker run -d --name "$W-$name" --hostname "$name" --label org.vnode.e2e=1 \
		--network "$W-inet" --ip "198.18.$K.$ip" "$@" >/dev/null
}

# world_up: everything but the vNode stack. Sets W, K, WDIR and the
# addresses below.
world_up() {
	WDIR=$(mktemp -d /tmp/vnode-e2e.XXXXXX)
	world_net || return 1
	INET=198.18.$K; ECHO=$INET.10; VPN=$INET.20; HS=$INET.30; CLIENT=$INET.40; ROUTER_WAN=$INET.2
	LAN=10.213.$K; LAN_GW=$LAN.1; NODE_LAN=$LAN.10; TUN=10.214.$K
	e2e_log "world $W: internet $INET.0/24, LAN $LAN.0/24 on bridge vn$K, tunnel $TUN.0/24 (files in $WDIR)"

	# internet: echo + DNS logger; every A record points at the echo server.
	world_run internet 10 --cap-add NET_ADMIN "$IMG_WORLD" \
		sh -c "ip route replace blackhole default; exec e2e-echo --answer $ECHO --log /tmp/echo.log" || return 1

	# control server
	mkdir -p "$WDIR/headscale"
	sed -e "s/@HS@/$HS/g" "$E2E_DIR/world/headscale.yaml" >"$WDIR/headscale/config.yaml"
	world_run headscale 30 -v "$WDIR/headscale:/etc/headscale:ro" "$IMG_HEADSCALE" serve || return 1
	# Who reaches the control server (HTTP, DERP, STUN), counted in its own
	# namespace: from the home router's address (the node's LAN) or the VPN's.
	cat >"$WDIR/headscale/count.nft" <<-EOF
	table inet e2e {
		counter hs_from_lan {}
		counter hs_from_vpn {}
		chain count_in {
			type filter hook input priority filter; policy accept;
			ip saddr $ROUTER_WAN counter name hs_from_lan
			ip saddr $VPN counter name hs_from_vpn
		}
	}
	EOF
	docker run -d --name "$W-hsmon" --label org.vnode.e2e=1 --network "container:$W-headscale" \
		--cap-add NET_ADMIN -v "$WDIR/headscale:/e2e:ro" "$IMG_WORLD" \
		sh -c "nft -f /e2e/count.nft && exec sleep infinity" >/dev/null || return 1

	# VPN provider: keys made here, wg0.conf for the server, WIREGUARD_* for Gluetun.
	mkdir -p "$WDIR/vpn"
	local skey ckey
	skey=$(wg genkey); ckey=$(wg genkey)
	VPN_PUB=$(wg pubkey <<<"$skey"); CLIENT_PRIV=$ckey
	cat >"$WDIR/vpn/wg0.conf" <<-EOF
	[Interface]
	PrivateKey = $skey
	ListenPort = 51820
	[Peer]
	PublicKey = $(wg pubkey <<<"$ckey")
	AllowedIPs = $TUN.2/32
	EOF
	world_run vpn 20 --cap-add NET_ADMIN --device /dev/net/tun --sysctl net.ipv4.ip_forward=1 \
		-v "$WDIR/vpn:/e2e:ro" -v "$E2E_DIR/world/vpn-server.sh:/vpn-server.sh:ro" \
		-e TUN="$TUN" -e ECHO="$ECHO" -e HS="$HS" -e CLIENT="$CLIENT" \
		"$IMG_WORLD" sh /vpn-server.sh || return 1

	# home router (its LAN leg is added once Compose made the LAN)
	world_run router 2 --cap-add NET_ADMIN --sysctl net.ipv4.ip_forward=1 \
		"$IMG_WORLD" sleep infinity || return 1	# blackhole default: router.sh

	# tailnet client
	world_run client 40 --cap-add NET_ADMIN --cap-add NET_RAW --device /dev/net/tun \
		-e TS_DEBUG_USE_DERP_HTTP=1 "$IMG_WORLD" \
		sh -c "ip route replace blackhole default; exec tailscaled --state=mem: --no-logs-no-support --socket=/var/run/tailscale/tailscaled.sock >/tmp/tailscaled.log 2>&1" || return 1

	wait_for 30 wx headscale headscale users list || { docker logs "$W-headscale" 2>&1 | tail -20 >&2; return 1; }
	wx headscale headscale users create e2e >/dev/null || return 1
	local uid
	uid=$(wx headscale headscale users list -o json | python3 -c 'import json,sys; print([u["id"] for u in json.load(sys.stdin) if u["name"]=="e2e"][0])') || return 1
	AUTHKEY=$(wx headscale headscale preauthkeys create -u "$uid" --reusable -e 2h -o json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])') || return 1
	wait_for 10 wx vpn test -e /tmp/vpn-ready || { docker logs "$W-vpn" 2>&1 | tail -20 >&2; return 1; }
	return 0
}

# router_lan: joins the router to the LAN Compose made and starts NAT and
# the LAN-side leak counters.
router_lan() {
	docker network connect --ip "$LAN.2" "$W"_lan "$W-router" || return 1
	docker cp "$E2E_DIR/world/router.sh" "$W-router:/router.sh" >/dev/null
	wx router env LAN="$LAN" INET="$INET" ECHO="$ECHO" HS="$HS" VPN="$VPN" CLIENT="$CLIENT" sh /router.sh
}

# stack_env [KEY=VALUE...]: the .env of the shipped stack for the test
# world; later lines win.
stack_env() {
	cat >"$WDIR/stack.env" <<-EOF
	VNODE_IMAGE=${E2E_NODE_IMAGE:-$IMG_AGENT}
	GLUETUN_IMAGE=${VPN_CLIENT_IMAGE:-$IMG_GLUETUN}
	GLUETUN_CONTAINER_NAME=$W-gluetun
	TAILSCALE_CONTAINER_NAME=$W-tailscale
	LAN_PARENT=vn$K
	LAN_SUBNET=$LAN.0/24
	LAN_GATEWAY=$LAN_GW
	LAN_IP=$NODE_LAN
	LAN_MAC=02:42:0a:d5:$(printf %02x "$K"):0a
	WIREGUARD_ENDPOINT_IP=$VPN
	WIREGUARD_ENDPOINT_PORT=51820
	WIREGUARD_PUBLIC_KEY=$VPN_PUB
	WIREGUARD_PRIVATE_KEY=$CLIENT_PRIV
	WIREGUARD_ADDRESSES=$TUN.2/32
	WIREGUARD_IMPLEMENTATION=userspace
	DNS_UPSTREAM_RESOLVER_TYPE=plain
	DNS_UPSTREAM_RESOLVERS=cloudflare
	BLOCK_MALICIOUS=off
	HEALTH_TARGET_ADDRESSES=$ECHO:80
	HEALTH_ICMP_TARGET_IPS=$ECHO
	PUBLICIP_ENABLED=off
	VERSION_INFORMATION=off
	TS_AUTHKEY=$AUTHKEY
	TS_HOSTNAME=vnode
	TS_EXTRA_ARGS=--login-server=http://$HS:8080
	TS_TAILSCALED_EXTRA_ARGS=--no-logs-no-support
	VNODE_EXIT_IP_URL=http://$ECHO/ip
	VNODE_EXIT_IP_INTERVAL=10
	E2E_GLUETUN_AUTH=$E2E_DIR/gluetun-auth.toml
	EOF
	[ $# -eq 0 ] || printf '%s\n' "$@" >>"$WDIR/stack.env"
}

# stack_up OVERRIDE [SERVICE...]: the shipped compose file, unchanged, with
# the test's .env and an override file (test-only settings: DERP over HTTP;
# plain containerboot for the baseline). Starts Gluetun first (Compose makes
# the LAN with it), joins the router to the LAN, waits for Gluetun's health,
# then the other services (all by default). `up --no-start` is not used:
# docker-compose 1.29 then creates the Tailscale container on the default
# bridge instead of in Gluetun's namespace (measured).
stack_up() {
	cp "$1" "$WDIR/e2e.override.yml"; shift
	dc up -d gluetun >>"$WDIR/compose.log" 2>&1 || { tail -5 "$WDIR/compose.log" >&2; return 1; }
	if ! docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$W-router" | grep -q "$W"_lan; then
		router_lan || return 1
	fi
	wait_for 120 gluetun_healthy || { gluetun_unhealthy_why >&2; return 1; }
	[ $# -gt 0 ] && [ "$*" = gluetun ] && return 0
	dc up -d "$@" >>"$WDIR/compose.log" 2>&1 ||
		{ tail -5 "$WDIR/compose.log" >&2; return 1; }
	in_gluetun_ns tailscale || { echo "the tailscale container is not in Gluetun's namespace" >&2; return 1; }
}
# in_gluetun_ns SERVICE: the container shares Gluetun's network namespace.
in_gluetun_ns() {
	[ "$(docker inspect -f '{{.HostConfig.NetworkMode}}' "$W-$1")" = "container:$(docker inspect -f '{{.Id}}' "$W-gluetun")" ]
}
# gluetun_unhealthy_why: what the VPN client said, its health checks' last
# outputs, its tunnel as wg sees it
gluetun_unhealthy_why() {
	docker logs "$W-gluetun" 2>&1 | tail -30
	docker inspect -f '{{range .State.Health.Log}}health check: exit {{.ExitCode}} {{.Output}}{{"\n"}}{{end}}' \
		"$W-gluetun" 2>&1 | tail -4
	docker exec "$W-gluetun" wg show 2>&1 | sed "s/^/wg: /"
	ns ip neigh 2>&1 | sed 's/^/neigh: /'
}
gluetun_healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$W-gluetun" 2>/dev/null)" = healthy ]; }

# ns CMD...: runs CMD in the stack's namespace (Gluetun's) from a world
# container, with the tools the node's images lack.
ns() { docker run --rm --network "container:$W-gluetun" --cap-add NET_ADMIN "$IMG_WORLD" "$@"; }

# node_ip: the node's tailnet IPv4 as headscale lists it.
node_ip() {
	wx headscale headscale nodes list -o json | python3 -c '
import json,sys
for n in json.load(sys.stdin):
    if n.get("given_name")=="vnode" or n.get("name")=="vnode":
        print([a for a in n["ip_addresses"] if "." in a][0]); break'
}
node_id() {
	wx headscale headscale nodes list -o json | python3 -c '
import json,sys
for n in json.load(sys.stdin):
    if n.get("given_name")=="vnode" or n.get("name")=="vnode": print(n["id"]); break'
}

# approve_exit: approves the node's exit routes in headscale.
approve_exit() {
	local id; id=$(node_id)
	[ -n "$id" ] && wx headscale headscale nodes approve-routes -i "$id" -r 0.0.0.0/0,::/0 >/dev/null
}

# client_up: the tailnet client joins and uses the node as its exit node.
client_up() {
	wx client tailscale up --login-server "http://$HS:8080" --authkey "$AUTHKEY" --hostname client \
		--accept-dns=true --exit-node="$(node_ip)" --timeout 60s
}

# counter_reset HOST: zero that host's e2e counters.
counter_reset() { wx "$1" nft reset counters table inet e2e >/dev/null; }

# counter HOST NAME: packets of a named nft counter in table "e2e".
counter() {
	wx "$1" nft -j list counter inet e2e "$2" 2>/dev/null |
		python3 -c 'import json,sys; print([o["counter"]["packets"] for o in json.load(sys.stdin)["nftables"] if "counter" in o][0])'
}

# exit_node_guarantees: with the stack up (agent and tailscaled in the
# namespace), the exit node's promises judged from outside, checks 1-3 of
# the issue: the client joins with the node as exit node; its TCP, UDP,
# ping and DNS leave from the VPN address; nothing of it on the LAN;
# nothing of tailscaled's in the tunnel; headscale sees the LAN. Returns 1
# when the rest of a test cannot go on.
ts_up() { docker exec "$W-tailscale" tailscale --socket=/tmp/tailscaled.sock status >/dev/null 2>&1; }
exit_node_guarantees() {
	local out name askers c t k l v peer h
	wait_for 60 ts_up ||
		{ fail "vnode: tailscaled running" "$(docker logs "$W-tailscale" 2>&1 | tail -5 | tr '\n' ' ')"; return 1; }
	approve_exit && ok "exit routes approved in headscale" || fail "approve exit routes" "headscale refused"
	if client_up >/dev/null 2>&1; then ok "client joined, exit node $(node_ip)"
	else fail "client up with --exit-node" "$(wx client tailscale status 2>&1 | tail -3 | tr '\n' ' ')"; return 1; fi
	wait_for 30 wx client tailscale ping -c 1 "$(node_ip)" || fail "client reaches the node" "tailscale ping failed"

	# The measured window starts now: every counter from zero.
	for h in vpn router hsmon; do counter_reset "$h"; done
	sleep 2
	out=$(wx client curl -s -m 10 "http://$ECHO/")
	expect_eq "client HTTP via the exit node arrives from the VPN address" "${out%%:*}" "src=$VPN"
	out=$(wx client sh -c "echo e2e | nc -u -w 3 $ECHO 7")
	expect_eq "client UDP via the exit node arrives from the VPN address" "${out%%:*}" "src=$VPN"
	check "client ping via the exit node" wx client ping -c 3 -W 3 "$ECHO"
	name=probe-$RANDOM.vnode-e2e.net
	wx client dig +time=5 +tries=2 @100.100.100.100 "$name" >/dev/null 2>&1
	askers=$(wx internet grep " name=$name " /tmp/echo.log | sed -n 's/.*asker=\([^ ]*\).*/\1/p' | sort -u | tr '\n' ' ')
	expect_eq "client DNS through the exit node reaches the DNS server from the VPN address only" "$askers" "$VPN "
	sleep 20	# let tailscaled's keepalives, netcheck and map polls run in the window
	c=$(counter router lan_client); t=$(counter vpn tunnel_control); k=$(counter vpn tunnel_client)
	expect_eq "leak: client packets on the LAN (router counter)" "$c" 0
	expect_eq "leak: tailscaled's packets in the tunnel (VPN server counter)" "$t" 0
	[ "${k:-0}" -gt 0 ] && ok "client traffic seen in the tunnel ($k packets)" || fail "client traffic in the tunnel" "tunnel_client=$k"
	l=$(counter hsmon hs_from_lan); v=$(counter hsmon hs_from_vpn)
	if [ "${l:-0}" -gt 0 ] && [ "${v:-1}" -eq 0 ]; then ok "headscale reached from the LAN's address only ($l packets, 0 from the VPN)"
	else fail "headscale sees the LAN address" "from LAN $l, from VPN $v"; fi
	peer=$(wx client tailscale status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print([p.get("CurAddr","") for p in d["Peer"].values() if p["HostName"]=="vnode"][0])')
	case $peer in
	"$VPN":*) fail "client's direct path to the node" "through the VPN: $peer" ;;
	"") ok "client reaches the node over DERP (no direct path)" ;;
	*) ok "client's direct path to the node is the LAN's public address ($peer)" ;;
	esac
}

world_down() {
	[ -n "$W" ] || return 0
	if [ "${E2E_KEEP:-0}" = 1 ]; then e2e_log "E2E_KEEP=1: world $W left running ($WDIR)"; return 0; fi
	e2e_log "world $W: tearing down"
	local c
	# world containers first: the router on the LAN would keep Compose from
	# removing the network, and it would then stop before the volumes
	for c in $(docker ps -aq --filter "name=^$W-"); do docker rm -f "$c" >/dev/null 2>&1; done
	[ -f "$WDIR/e2e.override.yml" ] && dc down -v --remove-orphans >/dev/null 2>&1
	docker volume rm "$W"_tailscale-state >/dev/null 2>&1
	docker network rm "$W-inet" "$W"_lan >/dev/null 2>&1
	ip link del "vn$K" 2>/dev/null
	rm -rf "$WDIR"
}
