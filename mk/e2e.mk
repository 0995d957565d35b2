# Container end-to-end test (tests/e2e/, README "End-to-end test").
#   make e2e          images (cached) + the e2e suite alone
#   make e2e-images   only build or refresh the images
#   make e2e-clean    remove the e2e caches (Go modules and build cache included)
#                     and images, the base image too (the next run is cold)
# `make deps` also installs what the e2e images need on the host.
E2E_CACHE ?= /var/cache/vnode-e2e
export E2E_CACHE

e2e: all
	bash tests/run.sh e2e

e2e-images:
	bash tests/e2e/images.sh

e2e-clean:
	-docker rmi vnode/vnode:dev vnode/vnode-sidecar:dev vnode-e2e/world:latest \
		vnode-e2e/vpnclient:latest headscale/headscale:0.29.2 tailscale/tailscale:v1.102.3 \
		qmcgaw/gluetun:v3.41.1 debian:bookworm-slim 2>/dev/null
	-docker image prune -f >/dev/null
	rm -rf $(E2E_CACHE)

# debootstrap makes the base image; wireguard-tools (wg genkey) and python3
# come with scripts/deps.sh.
deps: e2e-deps
e2e-deps:
	@command -v debootstrap >/dev/null || { echo "deps: installing debootstrap"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap; }; }

.PHONY: e2e e2e-images e2e-clean e2e-deps
