# tests/e2e/versions.sh: pinned peers and cache locations, sourced by the
# e2e scripts. Everything built here is cached under $E2E_CACHE.
: "${E2E_CACHE:=/var/cache/vnode-e2e}"
TS_VERSION=v1.102.3
HEADSCALE_VERSION=v0.29.2
# github.com/qdm12/gluetun tags lack the /v3 module suffix: pin by commit.
GLUETUN_VERSION=v3.41.1
GLUETUN_COMMIT=7f22fb32764d5d7548bc669cde88c57fc1a0de83
# The Docker Compose v2 CLI plugin (`docker compose`), built by peers.sh;
# its main package is the module's ./cmd (the binary is named `cmd`).
COMPOSE_VERSION=v2.40.3
COMPOSE_BIN=$E2E_CACHE/bin/compose-$COMPOSE_VERSION/docker-compose
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# Image names, tagged like the official ones so shipped files use them as is.
IMG_BASE=debian:bookworm-slim
IMG_TS=tailscale/tailscale:$TS_VERSION
IMG_HEADSCALE=headscale/headscale:${HEADSCALE_VERSION#v}
IMG_GLUETUN=qmcgaw/gluetun:$GLUETUN_VERSION
IMG_WORLD=vnode-e2e/world:latest
# Gluetun's stand-in when the Gluetun image cannot be built (peers/vpnclient)
IMG_VPNCLIENT=vnode-e2e/vpnclient:latest
IMG_AGENT=vnode/vnode:dev
IMG_SIDECAR=vnode/vnode-sidecar:dev

e2e_log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
