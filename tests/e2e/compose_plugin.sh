# tests/e2e/compose_plugin.sh: sourced by t_02_compose and t_03_compose_v2 (after
# lib.sh and versions.sh). The Compose v2 CLI plugin (`docker compose`) is
# built by peers.sh at the pinned $COMPOSE_VERSION into $E2E_CACHE/bin and
# shown to the Docker CLI for this run only: DOCKER_CONFIG names a temporary
# directory whose cli-plugins/ holds docker-compose (the per-user plugin
# place, ~/.docker/cli-plugins, moved with DOCKER_CONFIG). config.json and
# contexts/ of the caller's own Docker config are linked in, so registry
# auth and the current context stay as they were. Nothing is installed
# system-wide: without DOCKER_CONFIG, `docker compose` is what it was.
#
#   compose_plugin DIR   builds the plugin if missing (cached), fills DIR and
#                        sets DCV2=(env DOCKER_CONFIG=DIR docker compose);
#                        returns 1 with the reason in COMPOSE_PLUGIN_WHY.
#                        COMPOSE_PLUGIN_SKIP=1 when it cannot run here at all.
compose_plugin() {
	local dir=$1 user=${DOCKER_CONFIG:-$HOME/.docker} f
	COMPOSE_PLUGIN_WHY= COMPOSE_PLUGIN_SKIP=0 DCV2=()
	if ! command -v docker >/dev/null; then
		COMPOSE_PLUGIN_WHY="no docker CLI here" COMPOSE_PLUGIN_SKIP=1; return 1
	fi
	mkdir -p "$E2E_CACHE"
	# Cold, this is a few minutes of Go compilation: its progress lines show.
	bash "$ROOT/tests/e2e/peers.sh" compose 2>&1 >/dev/null | tee "$E2E_CACHE/compose.err" >&2
	if [ "${PIPESTATUS[0]}" -ne 0 ] || [ ! -x "$COMPOSE_BIN" ]; then
		if [ ! -x /usr/local/go/bin/go ] && ! command -v go >/dev/null; then
			COMPOSE_PLUGIN_WHY="no Go toolchain to build it (peers.sh)" COMPOSE_PLUGIN_SKIP=1; return 1
		fi
		COMPOSE_PLUGIN_WHY="peers.sh compose failed: $(grep -v '^$' "$E2E_CACHE/compose.err" | tail -n 4 | tr '\n' ' ')"
		return 1
	fi
	mkdir -p "$dir/cli-plugins"
	ln -sfn "$COMPOSE_BIN" "$dir/cli-plugins/docker-compose"
	for f in config.json contexts; do
		[ -e "$user/$f" ] && [ "$(cd "$user" && pwd -P)" != "$(cd "$dir" && pwd -P)" ] && ln -sfn "$user/$f" "$dir/$f"
	done
	DCV2=(env "DOCKER_CONFIG=$dir" docker compose)
	local v
	if ! v=$("${DCV2[@]}" version --short 2>&1) || [ "v${v#v}" != "$COMPOSE_VERSION" ]; then
		COMPOSE_PLUGIN_WHY="the Docker CLI does not run the plugin from $dir/cli-plugins: $v"; DCV2=(); return 1
	fi
	return 0
}
