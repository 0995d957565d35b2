# tests/health/hlib.sh: shared by the health suite. Sourced after lib.sh.
# Every namespace is named after this shell's PID (other engineers share the
# machine) and removed on exit, with every process the script started.
# The runner exports VNODE_RESULTS, and vnoded refuses unknown VNODE_* keys in
# its environment: keep it for this shell's ok/fail, hide it from children.
export -n VNODE_RESULTS
H=$ROOT/tests/health
DRIVER=${DRIVER:-$ROOT/build/health-driver}
FUZZ=$ROOT/build/fuzz_http
P=vh$$				# namespace prefix, unique per run
TMP=$(mktemp -d /tmp/vnode-health.XXXXXX)
_NS=()
_PIDS=()

make -s -C "$ROOT" health-test-bins >/dev/null || { fail "build test binaries" "make failed"; exit 1; }

h_cleanup() {
	local p ns
	for p in "${_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for ns in "${_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$TMP"
}
trap h_cleanup EXIT

ns_new() {	# NAME: a namespace with lo up
	ip netns add "$1" && _NS+=("$1") && ip -n "$1" link set lo up
}

bg() {	# CMD...: run in the background, remembered for cleanup; sets BGPID
	"$@" &
	BGPID=$!
	_PIDS+=("$BGPID")
}

# driver_start NS STATEFILE LOG [flags...]: sets DPID; waits for the port
driver_start() {
	local ns=$1 st=$2 log=$3; shift 3
	HDRIVER_STATE=$st bg ip netns exec "$ns" "$DRIVER" "$@" 2>"$log"
	DPID=$BGPID
	wait_for 5 ip netns exec "$ns" curl -sf -o /dev/null "http://${HADDR:-127.0.0.1:9911}/healthz"
}

hup() { kill -HUP "$DPID"; sleep 0.1; }	# re-read the state file

# hcurl NS PATH [curl args]: body on stdout; HTTP code in $TMP/code
hcurl() {
	local ns=$1 path=$2; shift 2
	ip netns exec "$ns" curl -s -m 3 -o "$TMP/body" -w '%{http_code}' "$@" \
	    "http://${HADDR:-127.0.0.1:9911}$path" >"$TMP/code"
	cat "$TMP/body"
}
code() { cat "$TMP/code"; }

# metric NS NAME{labels}: the sample's value ("" when absent)
metric() {
	hcurl "$1" /metrics | awk -v m="$2" '$1 == m { print $2 }'
}

# py_report: turn hclient.py's PASS/FAIL/INFO lines into ok/fail
py_report() {
	local st name why
	while IFS=$'\t' read -r st name why; do
		case $st in
		PASS) ok "$name" ;;
		FAIL) fail "$name" "$why" ;;
		INFO) echo "  info  $name: $why" ;;
		*) [ -n "$st" ] && echo "  ?     $st $name $why" ;;
		esac
	done
}

ready_state() {	# a state file where every readiness check holds
	cat >"$1" <<EOS
vpn_up=1
ok_tun=1
ok_vpn_route=1
ok_rules=1
ok_nft=1
ok_ts_if=1
ok_classifier=1
ok_child=1
classifier=ebpf
EOS
}
