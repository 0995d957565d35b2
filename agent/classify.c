/*
 * classify.c: puts tailscaled's sockets in the control class. Loads the
 * cgroup/sock_create program (bpf/classify.bpf.c) and attaches it to the
 * classified cgroup, or, when the kernel refuses BPF, prepares the
 * nftables `socket cgroupv2` classifier that the core's ruleset carries.
 *
 * Where: the classified cgroup is, by default (VNODE_CGROUP=self), the
 * agent's own cgroup as a whole, opened through its directory. Measured on
 * this project's hosts (tests/classify, DESIGN "tailscaled's cgroup"):
 *  - Docker and Kubernetes mount cgroup2 read-only in a container (and on a
 *    hybrid host Docker mounts no cgroup2 at all: the agent is given
 *    /sys/fs/cgroup/unified read-only). A child cgroup cannot be made there
 *    (mkdir: EROFS), while BPF_PROG_ATTACH only needs an fd of the
 *    directory, which a read-only mount gives.
 *  - Everything in the Tailscale container is control class anyway: the
 *    agent's own sockets get the mark too; a probe that must not be
 *    classified sets SO_MARK itself.
 *  - The root of a cgroup2 hierarchy is refused: attaching there would mark
 *    every process of the host.
 * VNODE_CGROUP=child (a cgroup "vnode-tailscaled" under the agent's own,
 * which the command moves itself into) is kept for hosts where the agent
 * shares its cgroup with things that must stay unclassified and the mount
 * is writable.
 *
 * How it outlives the agent: a legacy BPF_PROG_ATTACH with
 * BPF_F_ALLOW_MULTI. Such an attachment belongs to the cgroup, not to the
 * loader's fd, so it stays when the agent exits or is SIGKILLed, and goes
 * away with the cgroup. A bpf_link (BPF_LINK_CREATE) would be detached when
 * its last fd closes; keeping it needs a pin in bpffs, which a container
 * cannot mount (AppArmor denies mount even with CAP_SYS_ADMIN). Measured:
 * with a link, sockets created while the agent was down were unmarked; with
 * PROG_ATTACH none were (tests/classify/t_restart.sh). A restarted agent
 * finds its predecessor's program by name and swaps in the new one with
 * BPF_F_REPLACE: one atomic update of the cgroup's effective array, no
 * instant with zero or two programs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <nftables/libnftables.h>	/* flags only; nft_exec() runs commands */

#include "vnoded.h"
#include "../bpf/classify.h"
#include "classify.skel.h"

#define CHILD_CGROUP	"vnode-tailscaled"
#define SYSFS_CGROUP	"/sys/fs/cgroup/"	/* nft resolves paths below it */

static struct {
	struct classify_bpf *skel;
	int		 cgfd;			/* the classified cgroup */
	char		 cg[PATH_MAX];		/* its path as /proc/PID/cgroup says */
	char		 dir[PATH_MAX];		/* its directory here */
	char		 nftpath[PATH_MAX];	/* dir below /sys/fs/cgroup, "" if not */
	int		 level;			/* for nft's socket cgroupv2 */
	int		 level_off;		/* level = depth of cg + this */
	bool		 tested;		/* level_off was self-tested */
	uint32_t	 mark, mask;
	enum cls_kind	 kind;			/* VNODE_CLASSIFIER */
	bool		 ebpf;			/* the program is attached */
	bool		 nft;			/* the core's ruleset must classify */
	bool		 nft_ok;		/* --attach-name: nftables can */
	bool		 own;			/* the agent itself is in cg */
	uint64_t	 base;			/* count of the programs replaced */
} cls = { .cgfd = -1 };

/* libbpf's print callback, routed into the agent's log. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static int
libbpf_log(enum libbpf_print_level lvl, const char *fmt, va_list ap)
{
	char	 buf[512];
	size_t	 n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (lvl == LIBBPF_WARN)
		log_warnx("%s", buf);	/* libbpf says "libbpf: " itself */
	else
		log_debug("%s", buf);
	return 0;
}
#pragma GCC diagnostic pop

/* Number of components of a cgroup path: "/" 0, "/a/b" 2. */
static int
path_depth(const char *p)
{
	int	 d = 0;

	for (; *p; p++)
		if (*p == '/' && p[1] != '\0' && p[1] != '/')
			d++;
	return d;
}

/*
 * Sum of one slot of a per-CPU counter map. Returns 0 when unreadable
 * (metrics only; never worth failing over).
 */
static uint64_t
counter_sum(int map_fd, uint32_t slot)
{
	int	 ncpu = libbpf_num_possible_cpus();
	uint64_t sum = 0, *v;

	if (map_fd < 0 || ncpu <= 0 || (v = calloc(ncpu, sizeof(*v))) == NULL)
		return 0;
	if (bpf_map_lookup_elem(map_fd, &slot, v) == 0)
		for (int i = 0; i < ncpu; i++)
			sum += v[i];
	free(v);
	return sum;
}

/* The count kept by program PROG_FD's counter map (a predecessor's). */
static uint64_t
prog_count(int prog_fd)
{
	struct bpf_prog_info pi;
	uint32_t ids[8], len = sizeof(pi);
	uint64_t sum = 0;

	memset(&pi, 0, sizeof(pi));
	pi.nr_map_ids = 8;
	pi.map_ids = (uint64_t)(uintptr_t)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &pi, &len) < 0)
		return 0;
	for (uint32_t i = 0; i < pi.nr_map_ids && i < 8; i++) {
		struct bpf_map_info mi;
		uint32_t ml = sizeof(mi);
		int	 fd = bpf_map_get_fd_by_id(ids[i]);
		if (fd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		if (bpf_obj_get_info_by_fd(fd, &mi, &ml) == 0 &&
		    !strcmp(mi.name, CLASSIFY_MAP_NAME))
			sum = counter_sum(fd, CLS_MARKED);
		close(fd);
	}
	return sum;
}

/* The kernel's id of program PROG_FD, 0 when it cannot say. */
static uint32_t
prog_id(int prog_fd)
{
	struct bpf_prog_info pi;
	uint32_t len = sizeof(pi);

	memset(&pi, 0, sizeof(pi));
	return bpf_obj_get_info_by_fd(prog_fd, &pi, &len) < 0 ? 0 : pi.id;
}

/*
 * Our programs already attached directly to CGFD by a previous run: their
 * fds in OLD (up to MAX). Needs CAP_SYS_ADMIN (BPF_PROG_GET_FD_BY_ID);
 * without it returns -EPERM and the caller attaches next to them.
 */
static int
find_ours(int cgfd, int *old, int max)
{
	uint32_t ids[64], cnt = 64, aflags = 0;
	int	 n = 0;

	if (bpf_prog_query(cgfd, BPF_CGROUP_INET_SOCK_CREATE, 0, &aflags,
	    ids, &cnt) < 0)
		return -errno;
	for (uint32_t i = 0; i < cnt && n < max; i++) {
		struct bpf_prog_info pi;
		uint32_t len = sizeof(pi);
		int	 fd = bpf_prog_get_fd_by_id(ids[i]);
		if (fd < 0)
			return -errno;
		memset(&pi, 0, sizeof(pi));
		if (bpf_obj_get_info_by_fd(fd, &pi, &len) == 0 &&
		    !strcmp(pi.name, CLASSIFY_PROG_NAME))
			old[n++] = fd;
		else
			close(fd);
	}
	return n;
}

/* Why bpf() refused, in terms a person can act on. */
static const char *
bpf_hint(int err)
{
	switch (err) {
	case EPERM:
	case EACCES:
		return "needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN (and a "
		    "seccomp profile that allows bpf())";
	case ENOSYS:
		return "bpf() not available (kernel without CONFIG_BPF_SYSCALL, "
		    "or blocked by seccomp)";
	case EINVAL:
	case 524:	/* the kernel's ENOTSUPP */
	case EOPNOTSUPP:
		return "kernel lacks cgroup/sock_create programs (CONFIG_CGROUP_BPF) or BTF";
	default:
		return "see the libbpf messages above";
	}
}

/*
 * Load the program with the configured mark into cls.skel (not attached).
 * Returns 0 or -errno (logged).
 */
static int
ebpf_load(void)
{
	struct classify_bpf *skel;
	int	 ret;

	libbpf_set_print(libbpf_log);
	if ((skel = classify_bpf__open()) == NULL) {
		ret = -errno;
		log_warnx("classify: cannot open the BPF object: %s", strerror(-ret));
		return ret;
	}
	skel->rodata->cls_mark = cls.mark;
	skel->rodata->cls_mask = cls.mask;
	if ((ret = classify_bpf__load(skel)) < 0) {
		log_warnx("classify: kernel refused the BPF program: %s: %s",
		    strerror(-ret), bpf_hint(-ret));
		classify_bpf__destroy(skel);
		return ret;
	}
	cls.skel = skel;
	return 0;
}

/*
 * Attach the loaded program to cls.cgfd, replacing a predecessor's in
 * place. A cgroup that already holds this very program (--attach-name's
 * process restarted and its cgroup stayed) keeps it: attaching it twice
 * would be refused. Returns 0 or -errno (logged).
 */
static int
ebpf_attach(void)
{
	int	 old[8], nold, pfd, ret, i, j, first = 0;
	uint32_t self;
	bool	 here = false;

	pfd = bpf_program__fd(cls.skel->progs.vnode_classify);
	self = prog_id(pfd);
	nold = find_ours(cls.cgfd, old, 8);
	if (nold == -EPERM)
		log_warnx("classify: cannot inspect programs already on %s "
		    "(BPF_PROG_GET_FD_BY_ID needs CAP_SYS_ADMIN): attaching next to any "
		    "a previous run left", cls.dir);
	for (i = j = 0; i < nold; i++) {
		if (self && prog_id(old[i]) == self) {
			here = true;
			close(old[i]);
		} else
			old[j++] = old[i];
	}
	if (nold > 0)
		nold = j;
	if (here) {
		log_debug("classify: program %s already attached to cgroup %s",
		    CLASSIFY_PROG_NAME, cls.dir);
		ret = 0;
	} else if (nold > 0) {
		LIBBPF_OPTS(bpf_prog_attach_opts, o,
		    .flags = BPF_F_ALLOW_MULTI | BPF_F_REPLACE,
		    .replace_prog_fd = old[0]);
		cls.base += prog_count(old[0]);
		log_cmd("replace %s program %s on cgroup %s (mark 0x%x/0x%x)",
		    "cgroup/sock_create", CLASSIFY_PROG_NAME, cls.dir, cls.mark, cls.mask);
		ret = bpf_prog_attach_opts(pfd, cls.cgfd,
		    BPF_CGROUP_INET_SOCK_CREATE, &o);
		if (ret < 0)
			ret = -errno;
		first = 1;
	} else {
		log_cmd("attach %s program %s to cgroup %s (mark 0x%x/0x%x)",
		    "cgroup/sock_create", CLASSIFY_PROG_NAME, cls.dir, cls.mark, cls.mask);
		ret = bpf_prog_attach(pfd, cls.cgfd, BPF_CGROUP_INET_SOCK_CREATE,
		    BPF_F_ALLOW_MULTI);
		if (ret < 0)
			ret = -errno;
	}
	/* More than one of ours (a run without CAP_SYS_ADMIN added one): ours
	 * is in place now, so the others can go. */
	for (i = first; ret == 0 && i < nold; i++) {
		cls.base += prog_count(old[i]);
		if (bpf_prog_detach2(old[i], cls.cgfd, BPF_CGROUP_INET_SOCK_CREATE) < 0)
			log_warn("classify: detach an older program from %s", cls.dir);
	}
	for (i = 0; i < nold; i++)
		close(old[i]);
	if (ret < 0) {
		if (ret == -EPERM && nold >= 0)
			log_warnx("classify: cannot attach to cgroup %s: %s (or another "
			    "program sits there without BPF_F_ALLOW_MULTI)", cls.dir,
			    bpf_hint(EPERM));
		else
			log_warnx("classify: cannot attach to cgroup %s: %s", cls.dir,
			    strerror(-ret));
		return ret;
	}
	cls.ebpf = true;
	return 0;
}

/* Load and attach, for a classified cgroup known at start. 0 or -errno. */
static int
ebpf_start(void)
{
	int	 ret;

	if ((ret = ebpf_load()) < 0)
		return ret;
	if ((ret = ebpf_attach()) < 0) {
		classify_bpf__destroy(cls.skel);
		cls.skel = NULL;
	}
	return ret;
}

/* Parse "counter packets N" occurrences in order into V. Returns how many. */
static int
parse_counters(const char *s, uint64_t *v, int max)
{
	int	 n = 0;

	while (n < max && (s = strstr(s, "counter packets ")) != NULL) {
		s += strlen("counter packets ");
		v[n++] = strtoull(s, NULL, 10);
	}
	return n;
}

/*
 * Does `socket cgroupv2 level LEVEL "PATH"` match a socket of the agent's
 * own cgroup? Sends one UDP datagram to 127.0.0.1 from a fresh socket and
 * reads the counters of a scratch table. Returns 1, 0, or -1 when the probe
 * could not run (no loopback, no nftables).
 */
static int
nft_probe(const char *path, int level)
{
	char	 cmd[PATH_MAX + 1024], out[4096], table[64];
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	uint64_t c[2] = { 0, 0 };
	int	 s, ret = -1;

	snprintf(table, sizeof(table), "vnode_clsprobe_%d", (int)getpid());
	if ((s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(s, (struct sockaddr *)&sin, &sl) < 0)
		goto out;
	snprintf(cmd, sizeof(cmd),
	    "add table inet %s\n"
	    "add chain inet %s o { type filter hook output priority 0; }\n"
	    "add rule inet %s o udp sport %u counter\n"
	    "add rule inet %s o udp sport %u socket cgroupv2 level %d \"%s\" counter\n",
	    table, table, table, ntohs(sin.sin_port), table, ntohs(sin.sin_port),
	    level, path);
	if (nft_exec(cmd, NULL, 0, NULL) < 0)
		goto out;
	sin.sin_port = htons(9);	/* discard; nobody needs to listen */
	if (sendto(s, "v", 1, 0, (struct sockaddr *)&sin, sizeof(sin)) == 1) {
		snprintf(cmd, sizeof(cmd), "list table inet %s", table);
		if (nft_exec(cmd, out, sizeof(out), NULL) == 0 &&
		    parse_counters(out, c, 2) == 2 && c[0] > 0)
			ret = c[1] > 0;
	}
	snprintf(cmd, sizeof(cmd), "delete table inet %s", table);
	nft_exec(cmd, NULL, 0, NULL);
out:
	close(s);
	return ret;
}

/*
 * nftables fallback: find the `level` that matches on this kernel. Its
 * meaning changed in 2024 (kernel commit "nft_socket: make cgroupsv2
 * matching work with namespaces"): measured on 6.18 it is the depth of the
 * cgroup below the cgroup namespace's root, which is what /proc/self/cgroup
 * shows; older kernels count from the host's root, which a namespaced agent
 * cannot see. So probe with the agent's own cgroup, starting at its
 * namespace depth, and keep the offset found for the classified cgroup
 * (cls.level_off; once: it is the kernel's and the namespace's, not the
 * target's). Returns 0 or -1 (logged).
 */
static int
nft_selftest(void)
{
	char	 own[PATH_MAX], dir[PATH_MAX];
	int	 d, off, r = -1;

	if (cls.tested)
		return 0;
	if (cgroup_of_pid(0, own, sizeof(own)) < 0 ||
	    cgroup_dir(own, dir, sizeof(dir)) < 0 ||
	    strncmp(dir, SYSFS_CGROUP, strlen(SYSFS_CGROUP)) || !strcmp(own, "/")) {
		log_warnx("classify: cannot self-test nftables socket cgroupv2 (agent in "
		    "the root cgroup or outside %s); trusting the cgroup's depth as level",
		    SYSFS_CGROUP);
		cls.tested = true;
		return 0;
	}
	d = path_depth(own);
	for (off = 0; off < 8; off++) {
		r = nft_probe(dir + strlen(SYSFS_CGROUP), d + off);
		if (r != 0)
			break;
	}
	if (r < 0) {
		log_warnx("classify: nftables socket cgroupv2 self-test could not run "
		    "(nftables or loopback missing)");
		return -1;
	}
	if (r == 0) {
		log_warnx("classify: nftables socket cgroupv2 never matched a socket of "
		    "cgroup %s at levels %d-%d", own, d, d + 7);
		return -1;
	}
	cls.level_off = off;
	cls.tested = true;
	log_info("classify: nftables socket cgroupv2 self-test: cgroup %s matches "
	    "at level %d", own, d + off);
	return 0;
}

/*
 * The `socket cgroupv2` path and level of the classified cgroup (cls.dir,
 * cls.cg): nft resolves paths only below /sys/fs/cgroup. 0 or -1 (logged).
 */
static int
nft_target(void)
{
	if (strncmp(cls.dir, SYSFS_CGROUP, strlen(SYSFS_CGROUP))) {
		log_warnx("classify: cgroup directory %s is not below %s, where "
		    "nftables resolves socket cgroupv2 paths", cls.dir, SYSFS_CGROUP);
		return -1;
	}
	/* same size as cls.dir, which starts with SYSFS_CGROUP: it fits */
	strcpy(cls.nftpath, cls.dir + strlen(SYSFS_CGROUP));
	cls.level = path_depth(cls.cg) + cls.level_off;
	return 0;
}

static int
nft_prepare(void)
{
	if (nft_target() < 0 || nft_selftest() < 0)
		return -1;
	return nft_target();
}

/*
 * cls.dir and cls.cgfd for the path in cls.cg; the root of the hierarchy
 * is refused (ATTACH: the target was named, so no hint to name it).
 * Returns 0 or -1 (logged).
 */
static int
target_dir(bool attach)
{
	int	 ret;

	if (!cls.dir[0] && (ret = cgroup_dir(cls.cg, cls.dir, sizeof(cls.dir))) < 0) {
		log_warnx("classify: no cgroup2 mount shows cgroup %s: %s (in Docker on a "
		    "hybrid cgroup host, mount /sys/fs/cgroup/unified read-only into the "
		    "container; give --attach-cgroup as /proc/PID/cgroup shows it)",
		    cls.cg, strerror(-ret));
		return -1;
	}
	if ((cls.cgfd = cgroup_open(cls.dir)) < 0) {
		log_warnx("classify: open cgroup %s: %s", cls.dir, strerror(-cls.cgfd));
		return -1;
	}
	if (cgroup_is_root(cls.cgfd)) {
		log_warnx("classify: cgroup %s is the root of the cgroup2 hierarchy: "
		    "classifying it would mark every process of the host; run vnoded "
		    "in a cgroup of its own (a container, a systemd unit)%s", cls.dir,
		    attach ? "" : ", or give the target with --attach-cgroup");
		close(cls.cgfd);
		cls.cgfd = -1;
		return -1;
	}
	return 0;
}

/*
 * Resolve the classified cgroup: --attach-pid's, --attach-cgroup, or the
 * agent's own (or a child of it). Fills cls.cg, cls.dir, cls.cgfd.
 * Returns 0 or -1 (logged).
 */
static int
target_open(const struct config *cfg)
{
	char	 own[PATH_MAX];
	int	 ret;

	if ((ret = cgroup_of_pid(0, own, sizeof(own))) < 0) {
		log_warnx("classify: no cgroup v2 in /proc/self/cgroup: %s (a cgroup "
		    "v1-only host cannot classify by cgroup)", strerror(-ret));
		return -1;
	}
	if (cfg->attach_pid) {
		if ((ret = cgroup_of_pid(cfg->attach_pid, cls.cg, sizeof(cls.cg))) < 0) {
			log_warnx("classify: attach pid %d: cannot read its cgroup: %s "
			    "(vnoded needs the target's PID namespace)", cfg->attach_pid,
			    strerror(-ret));
			return -1;
		}
	} else if (cfg->attach_cgroup[0])
		snprintf(cls.cg, sizeof(cls.cg), "%s", cfg->attach_cgroup);
	else
		snprintf(cls.cg, sizeof(cls.cg), "%s", own);

	if (target_dir(cfg->attach_pid || cfg->attach_cgroup[0]) < 0)
		return -1;
	if (!cfg->attach_pid && !cfg->attach_cgroup[0] && cfg->cgroup == CLS_CHILD) {
		int	 fd = cgroup_mkchild(cls.cgfd, CHILD_CGROUP);
		if (fd < 0) {
			log_warnx("classify: cannot make cgroup %s/%s: %s%s", cls.dir,
			    CHILD_CGROUP, strerror(-fd), fd == -EROFS ?
			    " (read-only cgroup mount: use VNODE_CGROUP=self)" : "");
			return -1;
		}
		log_cmd("mkdir %s/%s", cls.dir, CHILD_CGROUP);
		close(cls.cgfd);
		cls.cgfd = fd;
		strncat(cls.dir, "/" CHILD_CGROUP, sizeof(cls.dir) - strlen(cls.dir) - 1);
		if (strcmp(cls.cg, "/"))
			strncat(cls.cg, "/", sizeof(cls.cg) - strlen(cls.cg) - 1);
		strncat(cls.cg, CHILD_CGROUP, sizeof(cls.cg) - strlen(cls.cg) - 1);
	}
	cls.own = cgroup_self_in(cls.cgfd, true) == 1;
	return 0;
}

/*
 * --attach-name: no process to classify yet (attach.c finds it and calls
 * classify_attach()). Load the program and self-test nftables now, so that
 * a kernel that refuses both is known at start (exit 1), not once
 * tailscaled runs. Returns 0 or -1 (logged).
 */
static int
byname_start(void)
{
	int	 ret = -1;

	if (cls.kind != CLS_NFT)
		ret = ebpf_load();
	if (ret < 0 && cls.kind == CLS_EBPF) {
		log_warnx("classify: VNODE_CLASSIFIER=ebpf and the program cannot be loaded");
		return -1;
	}
	cls.nft_ok = nft_selftest() == 0;
	if (!cls.nft_ok && ret < 0) {
		log_warnx("classify: neither eBPF nor nftables socket cgroupv2 can "
		    "classify: refusing to run unclassified");
		return -1;
	}
	if (!cls.nft_ok)
		log_warnx("classify: sockets tailscaled opens before each attach will "
		    "stay unclassified");
	if (ret < 0)
		log_warnx("classify: the nftables socket cgroupv2 classifier will "
		    "classify alone");
	return 0;
}

/*
 * Attach the classifier before the command starts (COMMAND: there is one;
 * without a command and without --attach-*, there is nothing to classify:
 * the agent then only routes, and says so). Returns 0, or -1 after logging
 * why nothing can classify: the caller must not run the command.
 */
int
classify_start(const struct config *cfg, bool command)
{
	bool	 attach = cfg->attach_pid || cfg->attach_cgroup[0];
	int	 ret = -1;

	vstate.classifier = "none";
	vstate.ok_classifier = false;
	if (!command && !attach && !cfg->attach_name[0]) {
		log_info("classify: no command and no --attach-pid/--attach-cgroup/"
		    "--attach-name: classifying nothing");
		vstate.ok_classifier = true;
		return 0;
	}
	cls.mark = cfg->mark;
	cls.mask = cfg->mark_mask;
	cls.kind = cfg->classifier;
	if (cfg->attach_name[0])
		return byname_start();
	if (target_open(cfg) < 0)
		return -1;
	log_info("classify: cgroup %s (%s)", cls.dir, attach ? "attach mode" :
	    cfg->cgroup == CLS_CHILD ? "child of the agent's" : "the agent's own");

	if (cfg->classifier != CLS_NFT)
		ret = ebpf_start();
	if (ret < 0 && cfg->classifier == CLS_EBPF) {
		log_warnx("classify: VNODE_CLASSIFIER=ebpf and the program is not attached");
		return -1;
	}
	/* Sockets that exist before the attach never pass sock_create: attach
	 * mode keeps the nftables classifier for them (and the core
	 * masquerades them out of the LAN, their source having been chosen for
	 * the old route). Destroying them instead (SOCK_DESTROY) would not
	 * help tailscaled's long-lived bound UDP socket, which stays open and
	 * unmarked after an abort. */
	cls.nft = ret < 0 || attach;
	if (cls.nft && nft_prepare() < 0) {
		if (ret < 0) {
			log_warnx("classify: neither eBPF nor nftables socket cgroupv2 can "
			    "classify cgroup %s: refusing to run unclassified", cls.dir);
			return -1;
		}
		log_warnx("classify: sockets tailscaled opened before the attach "
		    "stay unclassified");
		cls.nft = false;
	}
	if (ret < 0)
		log_warnx("classify: falling back to nftables socket cgroupv2 level %d "
		    "\"%s\"", cls.level, cls.nftpath);
	vstate.classifier = cls.ebpf ? "ebpf" : "nft";
	vstate.ok_classifier = true;
	return 0;
}

/*
 * --attach-name found process PID: classify its cgroup as --attach-pid does
 * at start (the program from birth, nftables for sockets opened before).
 * Returns 0, or -1 (logged) when that cgroup cannot be classified.
 */
int
classify_attach(pid_t pid)
{
	int	 ret = -1;

	cls.dir[0] = '\0';
	if ((ret = cgroup_of_pid(pid, cls.cg, sizeof(cls.cg))) < 0) {
		log_warnx("classify: pid %d: cannot read its cgroup: %s", (int)pid,
		    strerror(-ret));
		goto fail;
	}
	if (target_dir(true) < 0)
		goto fail;
	log_info("classify: cgroup %s (attach mode)", cls.dir);
	ret = -1;
	if (cls.skel && (ret = ebpf_attach()) < 0 && cls.kind == CLS_EBPF) {
		log_warnx("classify: VNODE_CLASSIFIER=ebpf and the program is not attached");
		goto fail;
	}
	cls.nft = cls.nft_ok && nft_target() == 0;
	if (ret < 0 && !cls.nft) {
		log_warnx("classify: neither eBPF nor nftables socket cgroupv2 can "
		    "classify cgroup %s", cls.dir);
		goto fail;
	}
	if (ret == 0 && !cls.nft)
		log_warnx("classify: sockets tailscaled opened before the attach "
		    "stay unclassified");
	if (ret < 0)
		log_warnx("classify: nftables socket cgroupv2 level %d \"%s\" alone "
		    "classifies it", cls.level, cls.nftpath);
	vstate.classifier = cls.ebpf ? "ebpf" : "nft";
	vstate.ok_classifier = true;
	return 0;
fail:
	classify_release();
	return -1;
}

/*
 * --attach-name's process is gone: forget its cgroup. The program stays
 * attached there: it must outlive the agent anyway, and whatever of
 * tailscaled still runs in that cgroup stays classified (a restarted
 * container gets a new cgroup, where the next attach puts it). The
 * nftables rule goes (set_extra), since a table naming a cgroup path that
 * no longer exists cannot be loaded.
 */
void
classify_release(void)
{
	if (cls.cgfd >= 0)
		close(cls.cgfd);
	cls.cgfd = -1;
	cls.cg[0] = cls.dir[0] = cls.nftpath[0] = '\0';
	cls.ebpf = cls.nft = false;
	vstate.classifier = "none";
	vstate.ok_classifier = false;
}

int
classify_cgroup_fd(void)
{
	return cls.cgfd;
}

bool
classify_cgroup_own(void)
{
	return cls.own;
}

bool
classify_need_nft(void)
{
	return cls.nft;
}

/*
 * Rule for the core's `type route hook output` chain of table inet vnode,
 * or "" when the eBPF program alone classifies. A route chain re-routes a
 * packet whose mark it changed, so the control-class rules then send it to
 * the LAN table.
 */
const char *
classify_nft_output_rule(void)
{
	static char buf[PATH_MAX + 160];

	if (!cls.nft)
		return "";
	snprintf(buf, sizeof(buf),
	    "socket cgroupv2 level %d \"%s\" meta mark set meta mark and 0x%x or 0x%x",
	    cls.level, cls.nftpath, ~cls.mask, cls.mark);
	return buf;
}

/*
 * Rule for the core's nat postrouting chain (priority srcnat): the control
 * class leaving by the LAN interface is masqueraded. Only the nftables
 * classifier needs it (its sockets chose their source address for the VPN
 * route before the output chain re-routed them); for eBPF-marked sockets the
 * source already is the LAN address and the rule maps it onto itself.
 * "" when not needed.
 */
const char *
classify_nft_postrouting_rule(const char *lan_if)
{
	static char buf[IFNAMSIZ + 128];

	if (!cls.nft)
		return "";
	snprintf(buf, sizeof(buf), "oifname \"%s\" meta mark and 0x%x == 0x%x masquerade",
	    lan_if, cls.mask, cls.mark);
	return buf;
}

/*
 * Rule for the core's input chain, before its drop of packets from the LAN
 * addressed to the VPN's address: replies of those masqueraded flows are
 * un-NATed to that address. "" when not needed.
 */
const char *
classify_nft_input_rule(const char *lan_if)
{
	static char buf[IFNAMSIZ + 128];

	if (!cls.nft)
		return "";
	snprintf(buf, sizeof(buf), "iifname \"%s\" ct direction reply ct status snat accept",
	    lan_if);
	return buf;
}

uint64_t
classify_sockets_marked(void)
{
	if (!cls.skel)
		return cls.base;
	return cls.base + counter_sum(bpf_map__fd(cls.skel->maps.vnode_cls_cnt),
	    CLS_MARKED);
}

/* Leaves the program attached: it must outlive the agent. */
void
classify_stop(void)
{
	if (cls.skel)
		classify_bpf__destroy(cls.skel);
	cls.skel = NULL;
	if (cls.cgfd >= 0)
		close(cls.cgfd);
	cls.cgfd = -1;
}

/*
 * --cleanup: detach every program of ours from the cgroup the settings
 * name. Returns the number detached, or -1.
 */
int
classify_detach(const struct config *cfg)
{
	char	 own[PATH_MAX];
	int	 old[8], n, d = 0;

	/* an agent in the root cgroup never attached there: nothing to undo */
	if (!cfg->attach_pid && !cfg->attach_cgroup[0] && !cfg->attach_name[0] &&
	    (cgroup_of_pid(0, own, sizeof(own)) < 0 || !strcmp(own, "/")))
		return 0;
	if (cfg->attach_name[0]) {
		/* the cgroup of the process running now; the program went
		 * with the cgroups of those that ran before */
		pid_t	 pid = attach_find(cfg);
		if (pid <= 0) {
			log_info("classify: no process named %s: no cgroup to detach from",
			    cfg->attach_name);
			return 0;
		}
		if (cgroup_of_pid(pid, cls.cg, sizeof(cls.cg)) < 0 ||
		    target_dir(true) < 0)
			return -1;
	} else if (target_open(cfg) < 0)
		return -1;
	if ((n = find_ours(cls.cgfd, old, 8)) < 0) {
		log_warnx("classify: cannot list programs on %s: %s", cls.dir, strerror(-n));
		classify_stop();
		return -1;
	}
	for (int i = 0; i < n; i++) {
		log_cmd("detach %s program %s from cgroup %s", "cgroup/sock_create",
		    CLASSIFY_PROG_NAME, cls.dir);
		if (bpf_prog_detach2(old[i], cls.cgfd, BPF_CGROUP_INET_SOCK_CREATE) == 0)
			d++;
		else
			log_warn("classify: detach from %s", cls.dir);
		close(old[i]);
	}
	classify_stop();
	return d;
}
