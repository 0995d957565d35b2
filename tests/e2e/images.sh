#!/usr/bin/env bash
# tests/e2e/images.sh [STEP...]: builds every image the end-to-end test
# runs, offline from any container registry, cached:
#   base     debootstrap --variant=minbase bookworm + docker import, tagged
#            debian:bookworm-slim (what docker/ and tests/e2e/ Dockerfiles pull)
#   peers    tailscaled/tailscale/containerboot, headscale, Gluetun, the
#            Compose v2 plugin with `go install` from the Go module proxy
#            (tests/e2e/peers.sh)
#   peer-images  tailscale/tailscale:v1.102.3, headscale/headscale:0.29.2,
#            qmcgaw/gluetun:v3.41.1 from tests/e2e/peers/*/Dockerfile
#   world    vnode-e2e/world: the test world's tools (wireguard-go, nft,
#            python3 echo/DNS server, tailscale client); vnode-e2e/vpnclient
#            on top of it, the VPN client where Gluetun cannot be built
#   project  docker/Dockerfile (vnode/vnode:dev), docker/Dockerfile.sidecar
# Default: all of them in that order. An image whose label matches its
# recipe (Dockerfile, inputs, base image) is kept; E2E_FORCE=1 rebuilds.
# Timings of each step go to $E2E_CACHE/timings.log.
#
# Gluetun: the module proxy refuses github.com/qdm12/gluetun here (403);
# then E2E_GLUETUN_BIN may name a gluetun binary built elsewhere from the
# same commit, and without it the image is left out (the test says so).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/versions.sh"
mkdir -p "$E2E_CACHE"/{logs,rootfs,debs}
TIMINGS=$E2E_CACHE/timings.log
export DOCKER_BUILDKIT=0	# the engine is 20.10; the classic builder needs no buildx

step_time() {	# NAME SECONDS STATE
	printf '%s\t%s\t%ss\t%s\n' "$(date +%F.%T)" "$1" "$2" "$3" >>"$TIMINGS"
	e2e_log "$1: $3 in $2s"
}

label_of() {	# IMAGE -> its org.vnode.e2e.recipe label, or empty
	docker image inspect -f '{{index .Config.Labels "org.vnode.e2e.recipe"}}' "$1" 2>/dev/null || true
}

fresh() {	# IMAGE RECIPE: true if IMAGE exists with that recipe
	[ "${E2E_FORCE:-0}" != 1 ] && [ "$(label_of "$1")" = "$2" ]
}

# --- base ------------------------------------------------------------------
BASE_INCLUDE=ca-certificates
base() {
	local recipe t0=$SECONDS
	recipe=$(printf '%s\n' "v2 $DEBIAN_SUITE minbase $BASE_INCLUDE" "$(declare -f slim_rootfs)" | sha256sum | cut -c1-16)
	if fresh "$IMG_BASE" "$recipe"; then step_time base 0 cached; return; fi
	local root=$E2E_CACHE/rootfs/$DEBIAN_SUITE.$$
	rm -rf "$root"
	e2e_log "base: debootstrap --variant=minbase $DEBIAN_SUITE (debs cached in $E2E_CACHE/debs)"
	if ! debootstrap --variant=minbase --include="$BASE_INCLUDE" --cache-dir="$E2E_CACHE/debs" \
		"$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$E2E_CACHE/logs/debootstrap.log" 2>&1; then
		tail -n 20 "$E2E_CACHE/logs/debootstrap.log" >&2; rm -rf "$root"; exit 1
	fi
	slim_rootfs "$root"
	e2e_log "base: docker import as $IMG_BASE"
	tar --numeric-owner -C "$root" -c . | docker import \
		--change 'CMD ["bash"]' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change "LABEL org.vnode.e2e.recipe=$recipe" - "$IMG_BASE" >/dev/null
	rm -rf "$root"
	step_time base $((SECONDS - t0)) built
}

# Make the rootfs look like the official slim image: no docs, man pages or
# locales from later installs, apt lists and caches emptied after each
# install, sources for the release, its updates and security.
slim_rootfs() {
	local r=$1
	rm -f "$r/etc/apt/sources.list"
	cat >"$r/etc/apt/sources.list.d/debian.sources" <<-EOF
	Types: deb
	URIs: http://deb.debian.org/debian
	Suites: bookworm bookworm-updates
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

	Types: deb
	URIs: http://deb.debian.org/debian-security
	Suites: bookworm-security
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<-EOF
	path-exclude /usr/share/doc/*
	path-include /usr/share/doc/*/copyright
	path-exclude /usr/share/man/*
	path-exclude /usr/share/info/*
	path-exclude /usr/share/locale/*
	path-include /usr/share/locale/locale.alias
	path-exclude /usr/share/lintian/*
	EOF
	cat >"$r/etc/apt/apt.conf.d/docker-clean" <<-'EOF'
	DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
	APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
	Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
	EOF
	printf 'Acquire::Languages "none";\n' >"$r/etc/apt/apt.conf.d/docker-no-languages"
	printf 'APT::AutoRemove::SuggestsImportant "false";\n' >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
	find "$r/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
	find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
	rm -rf "$r"/usr/share/{man,info,locale,lintian}/* "$r"/var/lib/apt/lists/* \
		"$r"/var/cache/apt/* "$r"/var/log/*.log "$r"/var/log/apt/* "$r"/dev/* \
		"$r"/tmp/* "$r"/var/tmp/*
	: >"$r/etc/hostname"
}

# --- peers -----------------------------------------------------------------
peers() {
	local t0=$SECONDS ts hs k8 dc
	# The Go builds wait on module downloads as much as on the CPU: run them
	# side by side (and t_04_k8s's checker, to warm its cache).
	bash "$HERE/peers.sh" tailscale & ts=$!
	bash "$HERE/peers.sh" headscale & hs=$!
	bash "$HERE/peers.sh" compose & dc=$!
	(cd "$HERE/k8scheck" && GOPATH=$E2E_CACHE/go GOCACHE=$E2E_CACHE/gocache GOFLAGS=-mod=mod \
		PATH=/usr/local/go/bin:$PATH go build -o "$E2E_CACHE/k8scheck" . >"$E2E_CACHE/logs/k8scheck.log" 2>&1) & k8=$!
	wait $ts || { e2e_log "peers: tailscale failed"; exit 1; }
	wait $hs || { e2e_log "peers: headscale failed"; exit 1; }
	wait $k8 || e2e_log "peers: k8scheck did not build (t_04_k8s will say why)"
	wait $dc || e2e_log "peers: the Compose v2 plugin did not build (t_02_compose will say why)"
	rm -f "$E2E_CACHE/gluetun.unavailable"
	if [ -n "${E2E_GLUETUN_BIN:-}" ]; then
		e2e_log "peers: gluetun from E2E_GLUETUN_BIN=$E2E_GLUETUN_BIN"
	elif ! bash "$HERE/peers.sh" gluetun 2>"$E2E_CACHE/logs/peer-gluetun.err"; then
		grep -m1 -o '[0-9]* Forbidden.*\|server response.*' "$E2E_CACHE/logs/peer-gluetun.log" \
			>"$E2E_CACHE/gluetun.unavailable" 2>/dev/null || echo "go install failed" >"$E2E_CACHE/gluetun.unavailable"
		e2e_log "peers: Gluetun cannot be built here: go install github.com/qdm12/gluetun/cmd/gluetun@$GLUETUN_COMMIT: $(tr '\n' ' ' <"$E2E_CACHE/gluetun.unavailable")"
	fi
	step_time peers $((SECONDS - t0)) done
}

gluetun_bin() {
	if [ -n "${E2E_GLUETUN_BIN:-}" ]; then echo "$E2E_GLUETUN_BIN"; return; fi
	local b=$E2E_CACHE/bin/gluetun-$GLUETUN_VERSION/gluetun
	[ -x "$b" ] && echo "$b"
	return 0
}

# --- image builds ----------------------------------------------------------
# build_image TAG DOCKERFILE CONTEXT [docker build args...]: rebuilds when
# the Dockerfile, the files of the context or the base image changed.
build_image() {
	local tag=$1 df=$2 ctx=$3; shift 3
	local t0=$SECONDS recipe log=$E2E_CACHE/logs/build-${tag//[\/:]/_}.log
	if [ "$ctx" = "$ROOT" ]; then	# our own sources: docker's layer cache decides
		recipe=always
	else recipe=$( { docker image inspect -f '{{.Id}}' "$IMG_BASE"; printf '%s\n' "$@";
		cat "$df"; (cd "$ctx" && find . -type f ! -path './.git/*' -print0 | sort -z | xargs -0 sha256sum); } |
		sha256sum | cut -c1-16)
	fi
	if [ "$recipe" != always ] && fresh "$tag" "$recipe"; then step_time "image $tag" 0 cached; return; fi
	e2e_log "image $tag: docker build -f ${df#"$ROOT"/} (log: $log)"
	if ! docker build --label "org.vnode.e2e.recipe=$recipe" -t "$tag" -f "$df" "$@" "$ctx" 2>&1 |
		tee "$log" | grep --line-buffered -E '^Step [0-9]+/[0-9]+ : ' | sed -u "s|^|[e2e] $tag: |" >&2
	then
		tail -n 30 "$log" >&2; e2e_log "image $tag: build failed"; exit 1
	fi
	step_time "image $tag" $((SECONDS - t0)) built
}

peer_images() {
	local ctx
	build_image "$IMG_TS" "$HERE/peers/tailscale/Dockerfile" "$E2E_CACHE/bin/tailscale-$TS_VERSION"
	build_image "$IMG_HEADSCALE" "$HERE/peers/headscale/Dockerfile" "$E2E_CACHE/bin/headscale-$HEADSCALE_VERSION"
	local g; g=$(gluetun_bin)
	if [ -n "$g" ]; then
		ctx=$E2E_CACHE/ctx/gluetun; rm -rf "$ctx"; mkdir -p "$ctx"
		cp "$g" "$ctx/gluetun"
		build_image "$IMG_GLUETUN" "$HERE/peers/gluetun/Dockerfile" "$ctx"
	else
		e2e_log "image $IMG_GLUETUN: skipped, no gluetun binary ($(cat "$E2E_CACHE/gluetun.unavailable" 2>/dev/null))"
	fi
}

world() {
	build_image "$IMG_WORLD" "$HERE/world/Dockerfile" "$HERE/world" --build-arg "TS_IMAGE=$IMG_TS"
	# Gluetun's stand-in (peers/vpnclient/Dockerfile says what it is and is not)
	build_image "$IMG_VPNCLIENT" "$HERE/peers/vpnclient/Dockerfile" "$HERE/peers/vpnclient" \
		--build-arg "WORLD_IMAGE=$IMG_WORLD" --build-arg "WORLD_ID=$(docker image inspect -f '{{.Id}}' "$IMG_WORLD")"
}

project() {
	build_image "$IMG_AGENT" "$ROOT/docker/Dockerfile" "$ROOT" --build-arg "TAILSCALE_IMAGE=$IMG_TS"
	build_image "$IMG_SIDECAR" "$ROOT/docker/Dockerfile.sidecar" "$ROOT"
}

command -v docker >/dev/null || { echo "images: docker not found" >&2; exit 1; }
need_debootstrap() {
	command -v debootstrap >/dev/null || { echo "images: debootstrap missing (make deps)" >&2; exit 1; }
}
T0=$SECONDS
if [ $# -gt 0 ]; then
	for s in "$@"; do
		case $s in
		base) need_debootstrap; base ;;
		peers) peers ;;
		peer-images) peer_images ;;
		world) world ;;
		project) project ;;
		*) echo "images: unknown step $s" >&2; exit 2 ;;
		esac
	done
	step_time "images ($*)" $((SECONDS - T0)) done
	exit 0
fi
# Everything, overlapping the CPU-bound Go builds with the network-bound
# debootstrap and apt steps: peers in the background; meanwhile the base
# image and the sidecar image (whose build stage the agent image reuses
# from Docker's cache); then what needs the peers.
need_debootstrap
peers >"$E2E_CACHE/logs/peers.out" 2>&1 &
peers_pid=$!
tail -n +1 -f "$E2E_CACHE/logs/peers.out" --pid=$peers_pid 2>/dev/null | sed -u 's/^/  /' >&2 &
base
build_image "$IMG_SIDECAR" "$ROOT/docker/Dockerfile.sidecar" "$ROOT"
wait $peers_pid || { e2e_log "peers failed (log: $E2E_CACHE/logs/peers.out)"; exit 1; }
peer_images
world
project
step_time "images (all)" $((SECONDS - T0)) done
