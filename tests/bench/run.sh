#!/usr/bin/env bash
# tests/bench/run.sh: runs every tests/bench/bench_*.sh, each printing lines
#   RESULT <name> vnode=<value> baseline=<value> unit=<unit> [ratio=<r>] [note=...]
# and gathers them into build/bench.txt, a table for the README.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export ROOT
out=$ROOT/build/bench.txt
: >"$out.tmp"
for b in "$ROOT"/tests/bench/bench_*.sh; do
	echo "== $(basename "$b" .sh)"
	bash "$b" 2>&1 | tee /dev/stderr | grep '^RESULT ' >>"$out.tmp"
done 2>&1
mv "$out.tmp" "$out"
echo
echo "| benchmark | vnode | baseline | ratio | note |"
echo "| --- | --- | --- | --- | --- |"
while read -r _ name rest; do
	v=$(sed -n 's/.*vnode=\([^ ]*\).*/\1/p' <<<"$rest")
	b=$(sed -n 's/.*baseline=\([^ ]*\).*/\1/p' <<<"$rest")
	u=$(sed -n 's/.*unit=\([^ ]*\).*/\1/p' <<<"$rest")
	r=$(sed -n 's/.*ratio=\([^ ]*\).*/\1/p' <<<"$rest")
	n=$(sed -n 's/.*note=\(.*\)$/\1/p' <<<"$rest")
	echo "| $name | $v $u | $b | ${r:--} | $n |"
done <"$out" | tee "$out.md"
