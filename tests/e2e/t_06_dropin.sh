#!/usr/bin/env bash
# e2e/t_06_dropin: compose/docker-compose.dropin.yml added to a plain Gluetun +
# Tailscale stack (the official image's containerboot, no agent in it): the
# slim agent image joins the VPN client's network namespace, Tailscale joins
# the agent's PID namespace and starts once the agent is armed (Docker
# health: vnoded probe --armed), the agent
# attaches its classifier to Tailscale's cgroup (attach mode, by name). The
# same promises as the full stack, judged from outside (world.sh,
# exit_node_guarantees): client TCP/UDP/ICMP/DNS from the VPN address,
# nothing of it on the LAN, nothing of tailscaled's in the tunnel, headscale
# sees the LAN. Run under the Compose v2 plugin, then under docker-compose.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/world.sh"
. "$(dirname "$0")/compose_plugin.sh"

img_ok() { docker image inspect "$1" >/dev/null 2>&1; }
ns_has() { ns "${@:2}" 2>/dev/null | grep -Eq -- "$1"; }	# REGEX CMD...
if ! docker info >/dev/null 2>&1; then skip "dropin" "no Docker engine here"; exit 0; fi
if [ ${#DC[@]} -eq 0 ]; then skip "dropin" "neither docker-compose nor docker compose"; exit 0; fi
for i in "$IMG_TS" "$IMG_HEADSCALE" "$IMG_WORLD" "$IMG_SIDECAR"; do
	img_ok "$i" || { skip "dropin" "image $i missing (tests/e2e/images.sh)"; exit 0; }
done
pick_vpn_client || exit 0

# The drop-in runs as a real stack under each Compose tool here: the v2
# plugin (built by peers.sh) and docker-compose 1.29 (Debian's), each in a
# world of its own; t_05_stack runs the full stack under docker-compose.
pdir=$(mktemp -d /tmp/vnode-e2e-dc.XXXXXX)
trap 'world_down; rm -rf "$pdir"' EXIT

# dropin_run: the user's plain stack plus the drop-in in a new world, the
# checks, the world torn down. DC is the Compose tool.
dropin_run() {
	local t0 t1 since ev armed_at ts_at ts_id n
	t0=$SECONDS
	world_up || { fail "world up" "see above"; return 1; }
	ok "world up ($((SECONDS - t0))s)"

	# The user's plain stack: the shipped file's services with the official
	# Tailscale image and its own entrypoint (compose.containerboot.yml),
	# plus the drop-in file, as the drop-in's header tells users to run it.
	stack_env "VNODE_IMAGE=$IMG_TS" "VNODE_SIDECAR_IMAGE=$IMG_SIDECAR" "VNODE_CONTAINER_NAME=$W-vnode"
	DC_EXTRA=(-f "$COMPOSE_DIR/docker-compose.dropin.yml")
	t1=$SECONDS; since=$(date +%s)
	if stack_up "$E2E_DIR/compose.containerboot.yml"; then
		ok "plain stack + drop-in up: $vc, the agent, Tailscale ($((SECONDS - t1))s)"
	else
		fail "plain stack + drop-in up" "$(docker logs "$W-vnode" 2>&1 | tail -5 | tr '\n' ' ')"; return 1
	fi
	expect_eq "Tailscale runs the official image's entrypoint" \
		"$(docker inspect -f '{{.Config.Image}} {{json .Config.Entrypoint}}' "$W-tailscale")" "$IMG_TS [\"containerboot\"]"
	expect_eq "Tailscale shares the agent's PID namespace" \
		"$(docker inspect -f '{{.HostConfig.PidMode}}' "$W-tailscale")" "container:$(docker inspect -f '{{.Id}}' "$W-vnode")"
	check "the agent is in the VPN client's network namespace" in_gluetun_ns vnode
	# Tailscale started only once the agent's Docker health said armed.
	ev=$(docker events --since "$since" --until "$(( $(date +%s) + 1 ))" --filter "label=com.docker.compose.project=$W" \
		--format '{{.TimeNano}} {{.Actor.Attributes.name}} {{.Status}}')
	armed_at=$(awk -v c="$W-vnode" '$2 == c && /health_status: healthy/ {print $1; exit}' <<<"$ev")
	ts_at=$(awk -v c="$W-tailscale" '$2 == c && $3 == "start" {print $1; exit}' <<<"$ev")
	if [ -n "$armed_at" ] && [ -n "$ts_at" ] && [ "$armed_at" -le "$ts_at" ]; then
		ok "Tailscale started $(( (ts_at - armed_at) / 1000000 )) ms after the agent's health turned healthy (armed)"
	else
		fail "Tailscale started after the agent was armed" "agent healthy at '$armed_at', Tailscale started at '$ts_at'"
	fi
	check "rule block below Gluetun's 98: tailnet to table 52" ns_has '^[1-8]?[0-9]:.*to 100.64.0.0/10 lookup 52' ip rule
	check "nftables table inet vnode" ns_has 'table inet vnode' nft list tables
	ts_id=$(docker inspect -f '{{.Id}}' "$W-tailscale")
	attached() { docker logs "$W-vnode" 2>&1 | grep -i attach | grep -q "$ts_id"; }
	if wait_for 30 attached; then ok "the agent attached its classifier to Tailscale's cgroup ($(docker logs "$W-vnode" 2>&1 | grep -i attach | grep "$ts_id" | tail -n1 | cut -c1-160))"
	else fail "the agent attached to Tailscale's cgroup" "$(docker logs "$W-vnode" 2>&1 | grep -i -E 'attach|classif' | tail -3 | tr '\n' ' ')"; fi

	exit_node_guarantees || return 1

	n=$(metric vnode_sockets_classified_total)
	[ "${n%.*}" -gt 0 ] 2>/dev/null && ok "sockets of Tailscale's cgroup classified by the agent ($n)" ||
		fail "sockets of Tailscale's cgroup classified" "vnode_sockets_classified_total=$n"
	wait_for 30 ready && ok "the agent's /readyz: ready" ||
		fail "the agent's /readyz" "$(ns curl -s -m 3 http://127.0.0.1:9911/readyz | tr '\n' ' ')"
}
metric() { ns curl -s -m 3 http://127.0.0.1:9911/metrics | awk -v m="$1" '$1 == m {print $2}'; }
ready() { [ "$(ns curl -s -o /dev/null -m 3 -w '%{http_code}' http://127.0.0.1:9911/readyz)" = 200 ]; }

if compose_plugin "$pdir"; then
	DC=("${DCV2[@]}") T_PREFIX="[v2] "
	ok "Compose: the v2 plugin, $COMPOSE_VERSION"
	dropin_run; world_down; W=
else
	fail "Compose v2 plugin for the drop-in stack" "$COMPOSE_PLUGIN_WHY"
fi
if command -v docker-compose >/dev/null; then
	DC=(docker-compose) T_PREFIX="[$(docker-compose version --short)] "
	ok "Compose: docker-compose"
	dropin_run; world_down; W=
else
	skip "drop-in under docker-compose" "docker-compose is not installed"
fi
exit 0
