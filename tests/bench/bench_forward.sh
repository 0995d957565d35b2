#!/usr/bin/env bash
# Forwarded-packet throughput: the agent's rules against bare routing on the
# same veth path (no WireGuard, so the rules and not the crypto are
# measured), and against the seed's recipe. client --veth(tailscale0)-- node
# --veth(tun0)-- server; iperf3 TCP, client -> server, median of 5 interleaved rounds.
set -u
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
VNODED=${VNODED:-$ROOT/build/vnoded}
P=vf$$
C=$P-c N=$P-n S=$P-s
SECS=${BENCH_SECS:-5}
cleanup() {
	pkill -f "iperf3 -s -B 10.66.0.1" 2>/dev/null
	for n in $C $N $S; do ip netns pids $n 2>/dev/null | xargs -r kill 2>/dev/null; ip netns del $n 2>/dev/null; done
}
trap cleanup EXIT
for n in $C $N $S; do ip netns add $n; ip -n $n link set lo up; done
ip link add tailscale0 netns $N mtu 1280 type veth peer name ts-c netns $C mtu 1280
ip link add tun0 netns $N type veth peer name tun-s netns $S
ip link add eth0 netns $N type veth peer name lan-x netns $S
ip -n $N addr add 100.100.0.1/32 dev tailscale0
ip -n $N addr add 10.66.0.2/24 dev tun0
ip -n $N addr add 192.168.77.2/24 dev eth0
ip -n $C addr add 100.100.0.2/32 dev ts-c
ip -n $S addr add 10.66.0.1/24 dev tun-s
ip -n $S addr add 192.168.77.1/24 dev lan-x
for l in "$N tailscale0" "$N tun0" "$N eth0" "$C ts-c" "$S tun-s" "$S lan-x"; do set -- $l; ip -n $1 link set $2 up; done
ip -n $C route add 100.100.0.1 dev ts-c
ip -n $C route add default via 100.100.0.1 dev ts-c onlink
ip -n $N route add 100.100.0.2 dev tailscale0 table 52
ip -n $N rule add lookup 52 priority 5270
ip -n $N route add default via 192.168.77.1
ip -n $S route add 100.64.0.0/10 via 10.66.0.2	# bare routing needs a way back
ip netns exec $N sysctl -qw net.ipv4.ip_forward=1
ip netns exec $S iperf3 -s -B 10.66.0.1 -D >/dev/null 2>&1
sleep 0.3

once() {	# one iperf3 run, Mbit/s
	ip netns exec $C iperf3 -c 10.66.0.1 -t "$SECS" -J 2>/dev/null |
		python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

bare_on() { ip -n $N route replace default via 10.66.0.1 dev tun0; }
bare_off() { ip -n $N route replace default via 192.168.77.1 dev eth0; }
vnode_on() {	# the agent: its table 53 and rules, kill switch, MSS, conntrack mark
	ip netns exec $N env -i "$VNODED" --health-listen none --exit-ip-url none --lan-ip-url none >/dev/null 2>&1 &
	apid=$!
	for i in $(seq 50); do ip -n $N rule | grep -q "^49:" && ip -n $N route show table 53 | grep -q default && break; sleep 0.1; done
}
vnode_off() { kill $apid; wait $apid 2>/dev/null; ip netns exec $N "$VNODED" --cleanup >/dev/null 2>&1; }
seed_on() { ip netns exec $N sh "$ROOT/tests/bench/seed_recipe.sh"; }
seed_off() { ip netns exec $N sh "$ROOT/tests/bench/seed_recipe.sh" undo; }
# interleaved rounds, so drift in the machine's load hits all three alike
for round in $(seq ${BENCH_ROUNDS:-5}); do
	for cfg in bare vnode seed; do
		${cfg}_on; once >>"/tmp/$P.$cfg"; ${cfg}_off
	done
done
bare=$(median <"/tmp/$P.bare"); vnode=$(median <"/tmp/$P.vnode"); seed=$(median <"/tmp/$P.seed")
rm -f /tmp/$P.*

r() { awk "BEGIN{printf \"%.3f\", $1/$2}"; }
echo "RESULT forward_throughput_vs_bare vnode=$vnode baseline=${bare}Mbit/s_bare unit=Mbit/s ratio=$(r "$vnode" "$bare") note=iperf3_TCP_${SECS}s_median_of_${BENCH_ROUNDS:-5}_interleaved;veth_path_no_crypto;target_>=0.97"
echo "RESULT forward_throughput_vs_seed vnode=$vnode baseline=${seed}Mbit/s_seed unit=Mbit/s ratio=$(r "$vnode" "$seed") note=same_path;seed_recipe_iptables"
