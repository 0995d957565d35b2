#!/usr/bin/env bash
# e2e/t_02_compose: the shipped Compose files parse with both Compose tools,
# docker-compose 1.x (Debian's) and the Compose v2 CLI plugin (built by
# peers.sh at the pinned version, shown to the Docker CLI through a per-run
# DOCKER_CONFIG: compose_plugin.sh), strictly: a refusal by either is a
# failure, and both must read the same stack (compose_view.py). Every
# variable they use is documented in .env.template, and nothing in them is
# privileged. (t_03_compose_v2 runs a small stack with the plugin; t_05_stack runs
# the real one.)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/versions.sh"
. "$(dirname "$0")/compose_plugin.sh"
C=$ROOT/compose
E2E=$ROOT/tests/e2e
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
env=$tmp/env
sed -e 's/^WIREGUARD_ENDPOINT_IP=$/WIREGUARD_ENDPOINT_IP=192.0.2.1/' \
    -e 's/^WIREGUARD_PUBLIC_KEY=$/WIREGUARD_PUBLIC_KEY=cHVibGlj/' \
    -e 's/^WIREGUARD_PRIVATE_KEY=$/WIREGUARD_PRIVATE_KEY=cHJpdmF0ZQ==/' \
    -e 's/^WIREGUARD_ADDRESSES=$/WIREGUARD_ADDRESSES=10.64.0.2\/32/' "$C/.env.template" >"$env"
# what world.sh's stack_env adds for the e2e overrides
echo "E2E_GLUETUN_AUTH=$E2E/gluetun-auth.toml" >>"$env"
: >"$tmp/empty.env"

# Every combination a user or the e2e test runs: the stack; the drop-in on
# top of it (attach mode); the e2e overrides on top of it (t_05_stack).
combos=("docker-compose.yml"
	"docker-compose.yml + docker-compose.dropin.yml"
	"docker-compose.yml + tests/e2e/compose.e2e.yml"
	"docker-compose.yml + tests/e2e/compose.containerboot.yml")
files_of() {	# COMBO -> -f args
	local f
	for f in ${1//+/}; do
		case $f in tests/*) printf -- '-f\n%s\n' "$ROOT/$f" ;; *) printf -- '-f\n%s\n' "$C/$f" ;; esac
	done
}

tools=()
if command -v docker-compose >/dev/null; then tools+=(v1)
else skip "docker-compose 1.x" "not installed (make deps installs it)"; fi
if compose_plugin "$tmp/docker-config"; then tools+=(v2)
elif [ "$COMPOSE_PLUGIN_SKIP" = 1 ]; then skip "compose v2 plugin" "$COMPOSE_PLUGIN_WHY"
else fail "compose v2 plugin $COMPOSE_VERSION builds and runs" "$COMPOSE_PLUGIN_WHY"; fi
[ ${#tools[@]} -gt 0 ] || { skip "compose config" "no Compose tool"; exit 0; }
dc() {	# v1|v2 ARGS...
	case $1 in v1) shift; docker-compose "$@" ;; v2) shift; "${DCV2[@]}" "$@" ;; esac
}
declare -A NAME=([v1]="docker-compose" [v2]="docker compose")

for k in "${tools[@]}"; do
	name="${NAME[$k]} ($(dc $k version --short 2>/dev/null))"
	for combo in "${combos[@]}"; do
		mapfile -t f < <(files_of "$combo")
		if out=$(dc $k --env-file "$env" "${f[@]}" config 2>"$tmp/err"); then
			ok "$name: $combo"
			printf '%s\n' "$out" | python3 "$E2E/compose_view.py" >"$tmp/view.$k.${combo//[^a-z0-9]/_}" 2>>"$tmp/err" ||
				fail "$name: $combo: config output readable" "$(tail -n 2 "$tmp/err" | tr '\n' ' ')"
		else
			fail "$name: $combo" "$(tail -n 3 "$tmp/err" | tr '\n' ' ')"
		fi
	done
	if out=$(dc $k --env-file "$tmp/empty.env" -f "$C/docker-compose.yml" config 2>&1); then
		fail "$name: a missing required variable is refused" "config succeeded with an empty .env"
	elif printf '%s' "$out" | grep -Eq 'set [A-Z_0-9]+ in \.env'; then
		ok "$name: a missing required variable is refused and named ($(printf '%s' "$out" | grep -Eo 'set [A-Z_0-9]+ in \.env' | head -n1))"
	else
		fail "$name: a missing required variable is named" "$(printf '%s' "$out" | tail -n 2)"
	fi
done

# Both tools read the same stack: services, images, namespaces, start
# conditions, capabilities, sysctls, devices, environment, volumes, addresses.
if [ "${#tools[@]}" -eq 2 ]; then
	for combo in "${combos[@]}"; do
		s=${combo//[^a-z0-9]/_}
		[ -s "$tmp/view.v1.$s" ] && [ -s "$tmp/view.v2.$s" ] || continue
		check "docker-compose and docker compose read the same stack: $combo" \
			diff -u "$tmp/view.v1.$s" "$tmp/view.v2.$s"
	done
fi

# Every ${VAR} of the Compose files is documented in .env.template.
missing=$(grep -hv '^\s*#' "$C"/docker-compose*.yml | grep -o '\${[A-Z_0-9]*'  | sort -u | cut -c3- |
	while read -r v; do grep -q "^$v=" "$C/.env.template" || echo "$v"; done | tr '\n' ' ')
expect_eq "every variable is in .env.template" "$missing" ""
check "no privileged container" sh -c "! grep -n 'privileged: *true' '$C'/docker-compose*.yml '$C'/kubernetes/*.yaml"
check "Gluetun sets the namespace's sysctls" sh -c "grep -q 'net.ipv4.conf.all.rp_filter: \"2\"' '$C/docker-compose.yml' && grep -q 'src_valid_mark: \"1\"' '$C/docker-compose.yml'"
check "FIREWALL_OUTBOUND_SUBNETS not widened" sh -c "! grep -n '0.0.0.0/0' '$C/.env.template' '$C/docker-compose.yml' | grep -i outbound"
exit 0
