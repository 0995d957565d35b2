#!/usr/bin/env bash
# e2e/t_compose: the shipped Compose files parse with the Compose tools
# here (docker-compose 1.x, and the v2 plugin where installed), every
# variable they use is documented in .env.template, and nothing in them is
# privileged. (t_stack runs the stack itself.)
. "$(dirname "$0")/../lib.sh"
C=$ROOT/compose
env=$(mktemp); trap 'rm -f "$env" "$env.empty"' EXIT
sed -e 's/^WIREGUARD_ENDPOINT_IP=$/WIREGUARD_ENDPOINT_IP=192.0.2.1/' \
    -e 's/^WIREGUARD_PUBLIC_KEY=$/WIREGUARD_PUBLIC_KEY=cHVibGlj/' \
    -e 's/^WIREGUARD_PRIVATE_KEY=$/WIREGUARD_PRIVATE_KEY=cHJpdmF0ZQ==/' \
    -e 's/^WIREGUARD_ADDRESSES=$/WIREGUARD_ADDRESSES=10.64.0.2\/32/' "$C/.env.template" >"$env"

tools=()
command -v docker-compose >/dev/null && tools+=("docker-compose")
docker compose version >/dev/null 2>&1 && tools+=("docker compose")
[ ${#tools[@]} -gt 0 ] || { skip "compose config" "no Compose tool"; exit 0; }
for t in "${tools[@]}"; do
	v=$($t version --short 2>/dev/null || $t version | head -n1)
	check "$t ($v): docker-compose.yml" $t --env-file "$env" -f "$C/docker-compose.yml" config -q
	check "$t ($v): docker-compose.yml + docker-compose.dropin.yml" \
		$t --env-file "$env" -f "$C/docker-compose.yml" -f "$C/docker-compose.dropin.yml" config -q
	: >"$env.empty"
	out=$($t --env-file "$env.empty" -f "$C/docker-compose.yml" config 2>&1)
	case $out in *"set WIREGUARD_ENDPOINT_IP in .env"*|*"WIREGUARD_ENDPOINT_IP"*) ok "$t: a missing required variable is named" ;;
	*) fail "$t: a missing required variable is named" "$(printf '%s' "$out" | tail -n 2)" ;; esac
done
[ "${#tools[@]}" -lt 2 ] && skip "compose v2 plugin" "not installed here; files use the 2.4 format both read"

# Every ${VAR} of the Compose files is documented in .env.template.
missing=$(grep -hv '^\s*#' "$C"/docker-compose*.yml | grep -o '\${[A-Z_0-9]*'  | sort -u | cut -c3- |
	while read -r v; do grep -q "^$v=" "$C/.env.template" || echo "$v"; done | tr '\n' ' ')
expect_eq "every variable is in .env.template" "$missing" ""
check "no privileged container" sh -c "! grep -n 'privileged: *true' '$C'/docker-compose*.yml '$C'/kubernetes/*.yaml"
check "Gluetun sets the namespace's sysctls" sh -c "grep -q 'net.ipv4.conf.all.rp_filter: \"2\"' '$C/docker-compose.yml' && grep -q 'src_valid_mark: \"1\"' '$C/docker-compose.yml'"
check "FIREWALL_OUTBOUND_SUBNETS not widened" sh -c "! grep -n '0.0.0.0/0' '$C/.env.template' '$C/docker-compose.yml' | grep -i outbound"
exit 0
