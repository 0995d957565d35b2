// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * classify.bpf.c: cgroup/sock_create program. Every AF_INET and AF_INET6
 * socket created by a process of the cgroup it is attached to (and of every
 * cgroup below it) gets the control-class mark at birth, before the process
 * can connect, bind or send; the kernel calls it from inet_create() and
 * inet6_create() (BPF_CGROUP_RUN_PROG_INET_SOCK), so TCP, UDP, raw and ping
 * sockets are all covered, and an accepted TCP socket inherits its
 * listener's mark (tcp_v4_init_req: ir_mark = sk_mark). A later SO_MARK by
 * tailscaled (0x80000, the same value by default) simply overwrites it.
 *
 * The context is the uapi struct bpf_sock, whose field offsets the verifier
 * rewrites for the running kernel, so the object is portable without field
 * relocations; it is still built against the running kernel's BTF
 * (vmlinux.h) and loaded by libbpf like any CO-RE object. Tunables are
 * const volatile rodata set by the loader between open and load.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "classify.h"

#ifndef AF_INET6
#define AF_INET6 10
#endif

const volatile __u32 cls_mark = 0x80000;	/* VNODE_MARK */
const volatile __u32 cls_mask = 0xff0000;	/* its mask */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLS_NCOUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} vnode_cls_cnt SEC(".maps");

static __always_inline void
count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&vnode_cls_cnt, &slot);

	if (v)
		*v += 1;	/* per-CPU slot: no atomics needed */
}

SEC("cgroup/sock_create")
int vnode_classify(struct bpf_sock *sk)
{
	/* Keep bits outside the mask (none at birth, but say what we mean). */
	sk->mark = (sk->mark & ~cls_mask) | cls_mark;
	count(CLS_MARKED);
	if (sk->family == AF_INET6)
		count(CLS_MARKED_INET6);
	return 1;	/* allow the socket */
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
