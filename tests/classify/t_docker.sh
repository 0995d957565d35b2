#!/usr/bin/env bash
# The classification part inside a Docker container, as the image will run
# it: vnoded as the entrypoint (PID 1), Docker's default seccomp profile
# (and AppArmor's docker-default where the host enforces AppArmor), no
# network but loopback, and only the documented additions:
#   cap_add: NET_ADMIN, BPF          (BPF: the eBPF classifier) -- or, on a
#            Docker that does not know CAP_BPF (20.10 rejects the name, and
#            its seccomp profile allows bpf() only with CAP_SYS_ADMIN):
#            NET_ADMIN, SYS_ADMIN
#   volume:  /sys/fs/cgroup/unified:/sys/fs/cgroup/unified:ro
#            (hybrid cgroup hosts only: Docker mounts no cgroup2 there)
# Judged from the host: a counter in the container's network namespace on
# packets that carry the mark, ss -e, bpftool, docker's exit code. Then the
# same with BPF refused (cap_add NET_ADMIN only): the nftables fallback.
#
# The image is made from the host's own files (vnoded, sockprobe, the
# libraries ldd names, busybox for sh): offline, seconds to build, cached
# under a tag naming its content.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"
lab_need
command -v docker >/dev/null && docker info >/dev/null 2>&1 || { skip "docker" "no Docker engine"; exit 0; }
command -v busybox >/dev/null || { skip "docker" "no busybox to give the image a shell"; exit 0; }
NAME=$PFX-ctr
trap '[ -n "${KEEP:-}" ] && cp -r "$TMPD" /tmp/vc-docker-debug; docker rm -f "$NAME" "$NAME-2" >/dev/null 2>&1; rm -rf "$TMPD"' EXIT

# --- image
# libnftables is dlopen'ed by the agent, so ldd of vnoded does not name it
NFTLIB=$(ldconfig -p | awk '/libnftables.so.1 / {print $NF; exit}')
files=("$VNODED" "$SOCKPROBE" "$(command -v busybox)" "$NFTLIB")
libs=$(for f in "${files[@]}"; do ldd "$f"; done | grep -o '/[^ ]*' | sort -u)
tag=$(cat "${files[@]}" $libs | sha256sum | cut -c1-16)
IMG=vnode-classify-test:$tag
if ! docker image inspect "$IMG" >/dev/null 2>&1; then
	R=$TMPD/rootfs
	mkdir -p "$R"/{bin,usr/local/bin,etc,proc,sys,dev,tmp,run}
	cp "$VNODED" "$SOCKPROBE" "$R/usr/local/bin/"
	cp "$(command -v busybox)" "$R/bin/"
	for a in sh sleep cat ls grep; do ln -s busybox "$R/bin/$a"; done
	for l in $libs "$NFTLIB"; do mkdir -p "$R$(dirname "$l")"; cp -L "$l" "$R$l"; done
	cp /etc/protocols /etc/services "$R/etc/" 2>/dev/null
	echo 'root:x:0:0:root:/:/bin/sh' >"$R/etc/passwd"
	tar -C "$R" -c . | docker import -c 'ENV PATH=/usr/local/bin:/bin' - "$IMG" >/dev/null ||
		{ fail "image builds" "docker import failed"; exit 0; }
	# stale tags of earlier builds
	docker images --format '{{.Repository}}:{{.Tag}}' vnode-classify-test | grep -vx "$IMG" |
		xargs -r docker rmi >/dev/null 2>&1
fi
ok "image $IMG"

CG_VOL=()
# hybrid host: give the container the cgroup2 hierarchy, read-only
[ "$CG2" = /sys/fs/cgroup/unified ] && CG_VOL=(-v /sys/fs/cgroup/unified:/sys/fs/cgroup/unified:ro)

# run NAME CAPS...: start the container with vnoded supervising sockprobe,
# which reads commands from a fifo on its stdin
run() {
	local name=$1; shift
	mkfifo "$TMPD/$name.in"
	exec 8<>"$TMPD/$name.in"
	# an attached client (not -d) forwards its stdin to the container
	docker run -i --name "$name" --network none "$@" "${CG_VOL[@]}" \
		-e VNODE_HEALTH_LISTEN=none "$IMG" vnoded -v -- sockprobe - <&8 \
		>"$TMPD/$name.out" 2>&1 &
	wait_for 10 sh -c "[ \"\$(docker inspect -f '{{.State.Running}}' '$name' 2>/dev/null)\" = true ]" ||
		return 1
	CPID=$(docker inspect -f '{{.State.Pid}}' "$name")
	CID=$(docker inspect -f '{{.Id}}' "$name")
}
# judge: a counter in the container's netns of marked UDP packets to port 9
judge_add() {
	nsenter -t "$CPID" -n nft -f - <<-EOF
	table inet judge {
		chain o {
			type filter hook output priority 100;
			udp dport 9 meta mark & 0xff0000 == 0x80000 counter
			udp dport 9 counter
		}
	}
	EOF
}
judge() { nsenter -t "$CPID" -n nft list chain inet judge o | grep -o 'packets [0-9]*' | awk '{printf "%s ", $2}'; }

# --- eBPF, the default
if docker run --rm --network none --cap-add BPF "$IMG" true >/dev/null 2>&1; then
	EBPF_CAPS=(--cap-add NET_ADMIN --cap-add BPF)
else
	EBPF_CAPS=(--cap-add NET_ADMIN --cap-add SYS_ADMIN)
fi
ok "cap_add for the eBPF classifier on Docker $(docker version -f '{{.Server.Version}}'): ${EBPF_CAPS[*]}"
run "$NAME" "${EBPF_CAPS[@]}" || { fail "container starts" "docker run failed"; exit 0; }
wait_for 10 sh -c "docker logs '$NAME' 2>&1 | grep -q 'supervise: started'" ||
	{ fail "vnoded starts in the container" "$(docker logs "$NAME" 2>&1 | tail -5)"; exit 0; }
judge_add
# (Docker disables IPv6 in a container without an IPv6 network: v4 only)
printf 'open udp4 127.0.0.1 9\nopen tcp4 127.0.0.1 9\nthread udp4 127.0.0.1 9\nfork udp4 127.0.0.1 9\nexec udp4 127.0.0.1 9\naccept4\nready\n' >&8
wait_for 5 sh -c "docker logs '$NAME' 2>/dev/null | grep -qx ready" || fail "probe ran" "$(docker logs "$NAME" 2>&1 | tail -3)"
sleep 0.3
logs=$(docker logs "$NAME" 2>&1)
grep -q "attach cgroup/sock_create program vnode_classify to cgroup /sys/fs/cgroup/unified/docker/$CID\|attach cgroup/sock_create program vnode_classify to cgroup /sys/fs/cgroup$" <<<"$logs" &&
	ok "eBPF program attached to the container's own cgroup through a read-only mount" ||
	fail "attached to the container's cgroup" "$(grep -i classif <<<"$logs")"
grep -q "Operation not permitted\|falling back" <<<"$logs" && fail "no fallback with BPF allowed" "$(grep -i classif <<<"$logs")"
c=$(judge)
expect_eq "every UDP packet of the command (main, thread, fork, exec) carries the mark (marked total)" "$c" "4 4 "
bad=$(nsenter -t "$CPID" -n ss -Hanepuwt | grep sockprobe | grep -v 'fwmark:0x80000')
n=$(nsenter -t "$CPID" -n ss -Hanepuwt | grep sockprobe | grep -c 'fwmark:0x80000')
[ -z "$bad" ] && [ "$n" -ge 6 ] && ok "ss -e: all $n sockets of the command marked, accepted included" ||
	fail "ss -e marks in the container" "n=$n unmarked: $bad"
n=$(bpftool cgroup show "$CG2/docker/$CID" 2>/dev/null | grep -c vnode_classify)
expect_eq "bpftool on the host: one program on the container's cgroup" "$n" 1
docker stop -t 5 "$NAME" >/dev/null
expect_eq "docker stop: SIGTERM forwarded, container exits 143" "$(docker inspect -f '{{.State.ExitCode}}' "$NAME")" 143
exec 8>&-

# --- BPF refused: NET_ADMIN only, the nftables fallback
run "$NAME-2" --cap-add NET_ADMIN || { fail "container 2 starts" "docker run failed"; exit 0; }
wait_for 10 sh -c "docker logs '$NAME-2' 2>&1 | grep -q 'supervise: started'" ||
	{ fail "vnoded starts without CAP_BPF" "$(docker logs "$NAME-2" 2>&1 | tail -5)"; exit 0; }
judge_add
printf 'open udp4 127.0.0.1 9\nthread udp4 127.0.0.1 9\nfork udp4 127.0.0.1 9\nready\n' >&8
wait_for 5 sh -c "docker logs '$NAME-2' 2>/dev/null | grep -qx ready"
sleep 0.3
logs=$(docker logs "$NAME-2" 2>&1)
grep -q "falling back to nftables socket cgroupv2" <<<"$logs" &&
	ok "without CAP_BPF: nftables fallback, and the log says why" ||
	fail "fallback in the container" "$(grep -i classif <<<"$logs")"
nsenter -t "$CPID" -n nft list chain inet vnode output | grep -q "socket cgroupv2 level [0-9]* \"unified/docker/$CID\"\|socket cgroupv2 level [0-9]* \"/\?\"" &&
	ok "table inet vnode classifies the container's cgroup" ||
	fail "socket cgroupv2 rule" "$(nsenter -t "$CPID" -n nft list chain inet vnode output)"
c=$(judge)
expect_eq "nftables fallback: every packet of the command carries the mark" "$c" "3 3 "
docker stop -t 5 "$NAME-2" >/dev/null
expect_eq "container 2 exits 143" "$(docker inspect -f '{{.State.ExitCode}}' "$NAME-2")" 143

# where to attach, measured: a child cgroup cannot be made in a container
# (read-only cgroup mount), so VNODE_CGROUP=child refuses with the reason
out=$(docker run --rm --name "$NAME-3" --network none "${EBPF_CAPS[@]}" "${CG_VOL[@]}" \
	-e VNODE_HEALTH_LISTEN=none -e VNODE_CGROUP=child "$IMG" vnoded -- true 2>&1); rc=$?
if [ $rc = 1 ] && grep -q "Read-only file system (read-only cgroup mount: use VNODE_CGROUP=self)" <<<"$out"; then
	ok "VNODE_CGROUP=child in a container: mkdir EROFS, exit 1, command not run"
else fail "VNODE_CGROUP=child in a container" "rc=$rc $(grep -i classif <<<"$out")"; fi
aa=$(docker inspect -f '{{.AppArmorProfile}}' "$NAME" 2>/dev/null)
sec=$(docker info -f '{{.SecurityOptions}}')
ok "security: Docker's default seccomp profile ($sec); AppArmor profile: ${aa:-none (not enforced on this host)}"
