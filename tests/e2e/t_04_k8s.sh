#!/usr/bin/env bash
# e2e/t_04_k8s: the Kubernetes manifests decode strictly into the Kubernetes
# API types (k8s.io/api from the Go module proxy; no cluster runs here).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/versions.sh"
export PATH=/usr/local/go/bin:$PATH GOPATH=$E2E_CACHE/go GOCACHE=$E2E_CACHE/gocache GOFLAGS=-mod=mod
command -v go >/dev/null || { skip "k8s manifests" "no Go toolchain"; exit 0; }
bin=$E2E_CACHE/k8scheck
if ! (cd "$ROOT/tests/e2e/k8scheck" && go build -o "$bin" .) 2>"$E2E_CACHE/k8scheck.err"; then
	fail "k8scheck builds" "$(tail -n 3 "$E2E_CACHE/k8scheck.err" | tr '\n' ' ')"; exit 0
fi
for f in "$ROOT"/compose/kubernetes/*.yaml; do
	check "$(basename "$f") decodes strictly into k8s.io/api types" "$bin" "$f"
done
# and the checker is not blind: a misspelt field is refused
bad=$(mktemp); trap 'rm -f "$bad"' EXIT
sed 's/readinessProbe:/readinessProbes:/' "$ROOT/compose/kubernetes/vnode.yaml" >"$bad"
check "a misspelt field is refused" sh -c "! '$bin' '$bad'"
exit 0
