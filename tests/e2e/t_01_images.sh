#!/usr/bin/env bash
# e2e/t_01_images: builds (or finds cached) every image of the end-to-end test
# with tests/e2e/images.sh and checks that each one runs. Cold, this is the
# long part of `make e2e`: progress lines come from images.sh.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/versions.sh"

if ! docker info >/dev/null 2>&1; then
	skip "images" "no Docker engine here"; exit 0
fi
if ! command -v debootstrap >/dev/null; then
	skip "images" "debootstrap missing (make deps installs it)"; exit 0
fi

t0=$SECONDS
if bash "$ROOT/tests/e2e/images.sh"; then ok "images.sh built or found every image ($((SECONDS - t0))s)"
else fail "images.sh" "see the lines above and $E2E_CACHE/logs"; exit 0; fi

img_ok() { docker image inspect "$1" >/dev/null 2>&1; }
for i in "$IMG_BASE" "$IMG_TS" "$IMG_HEADSCALE" "$IMG_WORLD" "$IMG_AGENT" "$IMG_SIDECAR"; do
	check "image $i exists" img_ok "$i"
done

expect_eq "base: Debian 12 from debootstrap" \
	"$(docker run --rm "$IMG_BASE" sh -c '. /etc/os-release; echo $VERSION_CODENAME')" "$DEBIAN_SUITE"
expect_eq "tailscaled --version" \
	"$(docker run --rm --entrypoint tailscaled "$IMG_TS" --version | head -n1)" "${TS_VERSION#v}"
expect_eq "tailscale version (CLI)" \
	"$(docker run --rm --entrypoint tailscale "$IMG_TS" version | head -n1)" "${TS_VERSION#v}"
expect_eq "tailscale image: iptables on the legacy backend, as the official image" \
	"$(docker run --rm --entrypoint iptables "$IMG_TS" --version)" "iptables v1.8.9 (legacy)"
expect_eq "headscale version" \
	"$(docker run --rm "$IMG_HEADSCALE" version | head -n1)" "headscale version $HEADSCALE_VERSION"
expect_eq "agent image: tailscaled from the tailscale image" \
	"$(docker run --rm --entrypoint tailscaled "$IMG_AGENT" --version | head -n1)" "${TS_VERSION#v}"
check "agent image: vnoded runs (--version)" docker run --rm --entrypoint vnoded "$IMG_AGENT" --version
check "agent image: vnoded --check with the defaults" docker run --rm --entrypoint vnoded "$IMG_AGENT" --check
expect_eq "agent image: entrypoint" \
	"$(docker image inspect -f '{{json .Config.Entrypoint}}' "$IMG_AGENT")" '["vnoded","--","containerboot"]'
check "sidecar image: vnoded runs (--version)" docker run --rm "$IMG_SIDECAR" --version
check "sidecar image: libnftables resolves protocol names (/etc/protocols)" \
	docker run --rm --entrypoint sh "$IMG_SIDECAR" -c 'grep -q "^icmp" /etc/protocols'

if img_ok "$IMG_GLUETUN"; then
	expect_eq "gluetun image: iptables on the nftables backend, as on Alpine 3.22" \
		"$(docker run --rm --entrypoint iptables "$IMG_GLUETUN" --version)" "iptables v1.8.9 (nf_tables)"
	check "gluetun image: openvpn2.6 --version answers" \
		docker run --rm --entrypoint openvpn2.6 "$IMG_GLUETUN" --version
else
	skip "gluetun image" "not built: $(cat "$E2E_CACHE/gluetun.unavailable" 2>/dev/null || echo 'no binary')"
fi

# Image sizes, for the record.
for i in "$IMG_BASE" "$IMG_TS" "$IMG_HEADSCALE" "$IMG_GLUETUN" "$IMG_WORLD" "$IMG_AGENT" "$IMG_SIDECAR"; do
	img_ok "$i" && printf '  size  %-32s %s MB\n' "$i" \
		"$(( $(docker image inspect -f '{{.Size}}' "$i") / 1000000 ))"
done
exit 0
