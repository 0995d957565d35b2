#!/usr/bin/env bash
# Settings: --check prints the normalised configuration (golden file); every
# bad value or unknown key exits 2 with a message naming the key and value.
. "$(dirname "$0")/../lib.sh"
G=$ROOT/tests/unit/golden

env -i "$VNODED" --check >/tmp/vn-check.$$ 2>&1
check "defaults match golden" diff -u "$G/check-defaults.txt" /tmp/vn-check.$$

printf 'VNODE_LAN_IF=lan0\n# comment\nTS_AUTHKEY=ignored\nVNODE_MARK=0x100000/0xf00000\nVNODE_ALLOW_LAN="192.168.1.0/24, fd00::/8"\nVNODE_DNS_SERVER=10.64.0.1\nVNODE_EXIT_IP_URL="gluetun, https://ip.example.net/"\nVNODE_EXIT_IP_INTERVAL=5m\n' >/tmp/vn-conf.$$
env -i VNODE_VPN_IF=wg1 "$VNODED" -c /tmp/vn-conf.$$ --rule-priority 20 --mss=1200 --check >/tmp/vn-check.$$ 2>&1
check "file, environment and flags match golden" diff -u "$G/check-mixed.txt" /tmp/vn-check.$$

# flag beats environment beats file
printf 'VNODE_LAN_IF=fromfile\n' >/tmp/vn-conf.$$
got=$(env -i VNODE_LAN_IF=fromenv "$VNODED" -c /tmp/vn-conf.$$ --lan-if fromflag --check | grep '^VNODE_LAN_IF=')
expect_eq "flag wins over environment and file" "$got" "VNODE_LAN_IF=fromflag"
got=$(env -i VNODE_LAN_IF=fromenv "$VNODED" -c /tmp/vn-conf.$$ --check | grep '^VNODE_LAN_IF=')
expect_eq "environment wins over file" "$got" "VNODE_LAN_IF=fromenv"

# bad input: exit 2, message names key (or option) and value
bad() {	# name expected-substring env... -- args...
	local name=$1 want=$2; shift 2
	local envs=() out rc
	while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
	[ "${1:-}" = -- ] && shift
	out=$(env -i "${envs[@]}" "$VNODED" "$@" --check 2>&1 >/dev/null); rc=$?
	if [ $rc -eq 2 ] && grep -qF -- "$want" <<<"$out"; then ok "$name"
	else fail "$name" "rc=$rc out=$out"; fi
}
bad "unknown key suggests the right one" "unknown key 'VNODE_LAN_IFF' (did you mean VNODE_LAN_IF?)" VNODE_LAN_IFF=eth1
bad "unknown option" "unknown option '--lan-iff'" -- --lan-iff eth1
bad "mark overlapping the VPN fwmark" "VNODE_MARK" VNODE_MARK=51820
bad "mark overlapping 0x40000" "VNODE_MARK" VNODE_MARK=0x40000/0xff0000
bad "mark overlapping the client-flow mark" "VNODE_MARK" VNODE_MARK=0x1000000
bad "mark with bits outside its mask" "'0x80001/0xff0000'" VNODE_MARK=0x80001/0xff0000
bad "table 52 refused" "table 52 is Tailscale's" VNODE_VPN_TABLE=52
bad "main table refused" "'254'" VNODE_LAN_TABLE=254
bad "same table twice" "both 60" VNODE_LAN_TABLE=60 VNODE_VPN_TABLE=60
bad "rule block must stay below 98" "'90'" VNODE_RULE_PRIORITY=90
bad "rule priority zero" "'0'" VNODE_RULE_PRIORITY=0
bad "dns mode" "'tunnel'" VNODE_DNS=tunnel
bad "dns server not an address" "'dns.example'" VNODE_DNS_SERVER=dns.example
bad "dns server in 100.64/10" "100.64.0.0/10" VNODE_DNS_SERVER=100.64.0.7
bad "ipv6 mode" "'maybe'" VNODE_IPV6=maybe
bad "public allow-lan without force" "not a private range" VNODE_ALLOW_LAN=8.8.8.0/24
bad "allow-lan host bits" "'10.0.0.1/8'" VNODE_ALLOW_LAN=10.0.0.1/8
bad "mss too small" "'100'" VNODE_MSS=100
bad "interface name too long" "'averyveryverylongname'" VNODE_LAN_IF=averyveryverylongname
bad "interfaces must differ" "must differ" VNODE_VPN_IF=eth0
bad "gateway of the wrong family" "VNODE_LAN_GATEWAY6" VNODE_LAN_GATEWAY6=192.168.1.1
bad "log level" "'loud'" VNODE_LOG_LEVEL=loud
bad "health listen" "'localhost'" VNODE_HEALTH_LISTEN=localhost
bad "exit ip url not http(s)" "'ftp://x.example/'" VNODE_EXIT_IP_URL=ftp://x.example/
bad "exit ip url with user info" "VNODE_EXIT_IP_URL" VNODE_EXIT_IP_URL=https://u:p@x.example/
bad "lan ip url: gluetun is no LAN source" "'gluetun'" VNODE_LAN_IP_URL=gluetun
bad "exit ip url: tailscaled is no VPN source" "'tailscaled'" VNODE_EXIT_IP_URL=tailscaled
bad "too many exit ip urls" "VNODE_EXIT_IP_URL" VNODE_EXIT_IP_URL=http://a.example,http://b.example,http://c.example,http://d.example,http://e.example
bad "same service for both addresses" "would see both exit addresses" VNODE_EXIT_IP_URL=https://ipv4.icanhazip.com VNODE_LAN_IP_URL=https://icanhazip.com
bad "same address for both addresses" "would see both exit addresses" VNODE_EXIT_IP_URL=http://192.0.2.7/ip VNODE_LAN_IP_URL=tailscaled,http://192.0.2.7:8080/
bad "exit ip interval too short" "'5s'" VNODE_EXIT_IP_INTERVAL=5s
bad "exit ip interval not a duration" "'often'" VNODE_EXIT_IP_INTERVAL=often
bad "require unlinkable" "'maybe'" VNODE_REQUIRE_UNLINKABLE=maybe
bad "attach name longer than comm's 15 bytes" "VNODE_ATTACH_NAME" VNODE_ATTACH_NAME=containerboot,tailscaled-longer
bad "attach name list of empty names" "VNODE_ATTACH_NAME" VNODE_ATTACH_NAME=containerboot,,tailscaled
bad "attach name and attach pid exclude each other" "VNODE_ATTACH_NAME and VNODE_ATTACH_PID exclude each other" \
	VNODE_ATTACH_NAME=tailscaled -- --attach-pid 7
bad "attach name and attach cgroup exclude each other" "VNODE_ATTACH_NAME and VNODE_ATTACH_CGROUP exclude each other" \
	-- --attach-name tailscaled --attach-cgroup /ts
out=$(env -i "$VNODED" --attach-name ' containerboot , tailscaled' --check 2>&1)
check "attach names normalised" grep -qx 'VNODE_ATTACH_NAME=containerboot,tailscaled' <<<"$out"
out=$(env -i VNODE_EXIT_IP_URL=http://192.0.2.7/ip VNODE_LAN_IP_URL=http://192.0.2.8/ip "$VNODED" --check 2>&1)
check "different services for the two addresses accepted" grep -qx 'VNODE_LAN_IP_URL=http://192.0.2.8/ip' <<<"$out"
bad "config file missing" "/nonexistent" -- -c /nonexistent
printf 'VNODE_LAN_IF=eth0\nVNODE_LAN_TALBE=51\n' >/tmp/vn-conf.$$
bad "config file names the line" "line 2: unknown key 'VNODE_LAN_TALBE'" -- -c /tmp/vn-conf.$$
printf 'just words\n' >/tmp/vn-conf.$$
bad "config file line without =" "line 1: expected KEY=VALUE" -- -c /tmp/vn-conf.$$

out=$(env -i VNODE_ALLOW_LAN=8.8.8.0/24 VNODE_ALLOW_LAN_FORCE=1 "$VNODED" --check 2>&1)
check "forced public allow-lan accepted" grep -qx 'VNODE_ALLOW_LAN=8.8.8.0/24' <<<"$out"

"$VNODED" --help >/tmp/vn-help.$$ 2>&1; rc=$?
expect_eq "--help exits 0" "$rc" 0
# every key the agent accepts is in --help and in the README's reference
for k in $(env -i "$VNODED" --check | cut -d= -f1); do
	grep -q "$k" /tmp/vn-help.$$ && grep -q "$k" "$ROOT/README.md" || { fail "$k documented in --help and README" "missing"; continue; }
done
ok "every key documented in --help and README"
rm -f /tmp/vn-check.$$ /tmp/vn-conf.$$ /tmp/vn-help.$$
