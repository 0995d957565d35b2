#!/usr/bin/env bash
# Installs what building and testing vNode need, from Debian's packages.
# Idempotent: packages already present are left alone.
set -euo pipefail
pkgs=(
	# build
	build-essential pkg-config clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
	libnl-3-dev libnl-route-3-dev libmnl-dev libnftnl-dev libnftables-dev
	libnetfilter-conntrack-dev libev-dev libcurl4-openssl-dev libjansson-dev
	# lab and tests
	iproute2 nftables conntrack wireguard-go wireguard-tools python3 socat
	iperf3 tcpdump procps util-linux iputils-ping iptables
	# tests/classify: shell of the container test's image
	busybox
	# health endpoint tests and benchmark (promtool, wrk; clang has libFuzzer)
	prometheus wrk curl
	# libFuzzer and ASan/UBSan runtimes for clang (fuzz_http, make health-asan)
	libclang-rt-14-dev
)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#pkgs[@]} packages present"
	exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
