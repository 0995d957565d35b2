#!/usr/bin/env bash
# tests/e2e/peers.sh: builds the real peers from the Go module proxy at
# pinned versions into $E2E_CACHE/bin/<peer>-<version>/. Idempotent: a peer
# whose binaries exist is skipped. GOPATH/GOCACHE live in the cache, so a
# rebuild after a version bump reuses modules and compiled packages.
#   peers.sh [tailscale|headscale|gluetun|compose]...
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/versions.sh"
export PATH=/usr/local/go/bin:$PATH
# No DWARF from the compiler: -ldflags -w drops it from every binary anyway,
# and not making it saves about a tenth of the cold build (571 s against
# 631 s for the three peers side by side, one run each on two cores). The
# programs are the same, so it is not part of a peer's recipe.
export GOPATH=$E2E_CACHE/go GOCACHE=$E2E_CACHE/gocache GOFLAGS="-trimpath -gcflags=all=-dwarf=false"
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
command -v go >/dev/null || { echo "peers: go not found (expected /usr/local/go)" >&2; exit 1; }

# go_progress NAME LOG CMD...: runs a go command, its output into LOG, and
# prints a progress line every 50 modules downloaded / 100 packages compiled
# (-v prints each package as it is compiled).
go_progress() {
	local name=$1 log=$2; shift 2
	"$@" 2>&1 | tee -a "$log" |
		awk -v n="$name" '/^go: downloading/ {d++; if (d % 50 == 0) printf "[e2e] peer %s: %d modules downloaded\n", n, d > "/dev/stderr"; next}
			{c++; if (c % 100 == 0) printf "[e2e] peer %s: %d packages compiled\n", n, c > "/dev/stderr"}'
}

# install NAME VERSIONDIR LDFLAGS PKG@VER... (CGO as the caller sets it)
install_peer() {
	local name=$1 dir=$E2E_CACHE/bin/$2 ldflags=$3; shift 3
	local want=() p lock
	# One build of a peer at a time on this cache: two runs (or images.sh
	# and t_02_compose) building the same peer would remove each other's
	# $dir.tmp. The lock is held until this script exits.
	mkdir -p "$E2E_CACHE/bin"
	exec {lock}>"$dir.lock"
	flock -n "$lock" || { e2e_log "peer $name: waiting for another build of it"; flock "$lock"; }
	for p in "$@"; do want+=("$dir/$(basename "${p%@*}")"); done
	local missing=0 recipe="$* ldflags=$ldflags CGO_ENABLED=${CGO_ENABLED:-}"
	for p in "${want[@]}"; do [ -x "$p" ] || missing=1; done
	[ "$(cat "$dir/.recipe" 2>/dev/null)" = "$recipe" ] || missing=1
	if [ $missing -eq 0 ]; then e2e_log "peer $name: cached in $dir"; return 0; fi
	e2e_log "peer $name: go install $* (progress: one line per package with -v)"
	local t0=$SECONDS tmp=$dir.tmp
	rm -rf "$tmp"; mkdir -p "$tmp" "$E2E_CACHE/logs"; : >"$E2E_CACHE/logs/peer-$name.log"
	local log=$E2E_CACHE/logs/peer-$name.log
	if ! GOBIN=$tmp go_progress "$name" "$log" go install -v -ldflags "$ldflags" "$@"; then
		# The proxy may serve a version but refuse the module's version list,
		# which `go install m@v` reads to look for deprecations. The same
		# build list comes from a throw-away module requiring only that
		# version (minimal version selection picks the peer's own go.mod).
		if grep -q 'loading deprecation\|@v/list: 403' "$log" && ! grep -q '\.info: 403' "$log"; then
			e2e_log "peer $name: the module proxy refuses the version list; building the same version in a wrapper module"
			local w=$E2E_CACHE/src/$name
			rm -rf "$w"; mkdir -p "$w"
			(cd "$w" && go mod init "vnode-e2e/peer-$name" >/dev/null 2>&1 &&
			 for p in "$@"; do go_progress "$name" "$log" go get "$p" || exit 1; done &&
			 GOBIN=$tmp go_progress "$name" "$log" go install -v -ldflags "$ldflags" "${@%@*}") ||
			{ tail -n 30 "$log" >&2; e2e_log "peer $name: build failed (log: $log)"; exit 1; }
		elif grep -q 'more \(exclude\|replace\) directives' "$log"; then
			# `go install m@v` refuses a module whose go.mod excludes or
			# replaces (Compose v2). Build as its own Makefile does: in a
			# copy of the module (go.sum included) as the main module, so
			# those directives apply and the build list is its own.
			local mod src w=$E2E_CACHE/src/$name
			mod=$(sed -n 's/.*(in \([^@ ]*\)@.*/\1/p' "$log" | head -n1)
			e2e_log "peer $name: its go.mod has exclude/replace directives (go install m@v refuses them); building in a copy of $mod@${1##*@}"
			src=$(cd "$E2E_CACHE" && go mod download -json "$mod@${1##*@}" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
			[ -n "$mod" ] && [ -d "$src" ] || { tail -n 30 "$log" >&2; e2e_log "peer $name: module source not found (log: $log)"; exit 1; }
			rm -rf "$w"; mkdir -p "$(dirname "$w")"; cp -r "$src" "$w"; chmod -R u+w "$w"
			(cd "$w" && GOBIN=$tmp go_progress "$name" "$log" go install -v -ldflags "$ldflags" "${@%@*}") ||
			{ tail -n 30 "$log" >&2; e2e_log "peer $name: build failed (log: $log)"; exit 1; }
		else
			tail -n 30 "$log" >&2; e2e_log "peer $name: go install failed (log: $log)"; exit 1
		fi
	fi
	printf '%s\n' "$recipe" >"$tmp/.recipe"
	rm -rf "$dir"; mv "$tmp" "$dir"
	e2e_log "peer $name: built in $((SECONDS - t0))s: $(cd "$dir" && ls | tr '\n' ' ')"
}

want=${*:-tailscale headscale gluetun}
for p in $want; do
	case $p in
	tailscale)
		CGO_ENABLED=0 install_peer tailscale "tailscale-$TS_VERSION" \
			"-s -w -X tailscale.com/version.longStamp=${TS_VERSION#v} -X tailscale.com/version.shortStamp=${TS_VERSION#v}" \
			"tailscale.com/cmd/tailscaled@$TS_VERSION" \
			"tailscale.com/cmd/tailscale@$TS_VERSION" \
			"tailscale.com/cmd/containerboot@$TS_VERSION" ;;
	headscale)
		CGO_ENABLED=0 install_peer headscale "headscale-$HEADSCALE_VERSION" \
			"-s -w" \
			"github.com/juanfont/headscale/cmd/headscale@$HEADSCALE_VERSION" ;;
	gluetun)
		CGO_ENABLED=0 install_peer gluetun "gluetun-$GLUETUN_VERSION" \
			"-s -w -X main.version=$GLUETUN_VERSION -X main.commit=$GLUETUN_COMMIT -X main.created=unknown" \
			"github.com/qdm12/gluetun/cmd/gluetun@$GLUETUN_COMMIT" ;;
	compose)	# the Compose v2 CLI plugin; ldflags as its Makefile (-w -X .../internal.Version)
		CGO_ENABLED=0 install_peer compose "compose-$COMPOSE_VERSION" \
			"-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
			"github.com/docker/compose/v2/cmd@$COMPOSE_VERSION"
		# A CLI plugin is found by its file name, docker-<command>.
		ln -sfn cmd "$(dirname "$COMPOSE_BIN")/docker-compose" ;;
	*) echo "peers: unknown peer $p" >&2; exit 2 ;;
	esac
done
