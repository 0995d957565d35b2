/*
 * classify.h: what the cgroup/sock_create program (classify.bpf.c) and its
 * loader (agent/classify.c) share. Included by both, so plain C types only.
 */
#ifndef VNODE_CLASSIFY_H
#define VNODE_CLASSIFY_H

/*
 * The program's name as the kernel stores it (BPF_OBJ_NAME_LEN is 16 with
 * the NUL). A restarted agent recognises the attachment a previous run left
 * on the cgroup by this name and by its counter map's name, and replaces it
 * in place (BPF_F_REPLACE).
 */
#define CLASSIFY_PROG_NAME	"vnode_classify"
#define CLASSIFY_MAP_NAME	"vnode_cls_cnt"

/* Slots of the per-CPU counter array. */
enum classify_counter {
	CLS_MARKED,		/* sockets stamped with the mark, all families */
	CLS_MARKED_INET6,	/* of which AF_INET6 */
	CLS_NCOUNTERS
};

#endif
