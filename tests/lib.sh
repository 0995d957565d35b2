# tests/lib.sh: sourced by every test script. A script reports each check
# with ok/fail/skip; tests/run.sh tallies them. Checks judge behaviour from
# outside the agent (kernel read-backs, router counters, echo servers).
#
#   ok NAME                 a check held
#   fail NAME WHY           a check failed (WHY is printed)
#   skip NAME REASON        a check could not run here (REASON is printed)
#   check NAME CMD...       ok if CMD exits 0, else fail with its output
#   expect_eq NAME GOT WANT
set -u
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VNODED=${VNODED:-$ROOT/build/vnoded}
: "${T_RESULTS:=/dev/null}"
T_SUITE=${T_SUITE:-$(basename "$(dirname "$0")")}
T_FILE=${T_FILE:-$(basename "$0" .sh)}

_t_report() {	# status name detail (T_PREFIX, if set, goes before the name)
	set -- "$1" "${T_PREFIX:-}$2" "${3:-}"
	printf '%s\t%s/%s: %s\t%s\n' "$1" "$T_SUITE" "$T_FILE" "$2" "${3:-}" >>"$T_RESULTS"
	case $1 in
	pass) printf '  ok    %s\n' "$2" ;;
	fail) printf '  FAIL  %s: %s\n' "$2" "${3:-}" ;;
	skip) printf '  skip  %s: %s\n' "$2" "${3:-}" ;;
	esac
}
ok()   { _t_report pass "$1"; }
fail() { _t_report fail "$1" "${2:-}"; }
skip() { _t_report skip "$1" "${2:-no reason given}"; }

check() {
	local name=$1 out; shift
	if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "$(printf '%s' "$out" | tail -n 5 | tr '\n' ' ')"; fi
}

expect_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "got '$2', want '$3'"; fi
}

# wait_for TIMEOUT_S CMD...: poll CMD every 20 ms until it succeeds.
wait_for() {
	local deadline=$(( $(date +%s%N) + ${1%.*} * 1000000000 )); shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s%N)" -lt "$deadline" ] || return 1
		sleep 0.02
	done
}
