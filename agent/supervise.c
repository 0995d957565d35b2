/*
 * supervise.c: vnoded as the container's PID 1 with tailscaled (or
 * containerboot) as its child, as tini does it: start the command inside
 * the classified cgroup, forward signals, reap every zombie, exit with the
 * child's status (tini's codes: 127 command not found, 126 not executable,
 * 128+n killed by signal n).
 *
 * The child enters the classified cgroup itself, between fork and exec,
 * and execs only if it verifiably sits there: clone3(CLONE_INTO_CGROUP)
 * fails with ENOSYS under Docker's default seccomp profile, and a parent
 * that moved the child after fork would race the child's first socket.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <netinet/in.h>

#include "vnoded.h"

static struct {
	pid_t	 pid;		/* the command; 0 before start */
	bool	 done;		/* it has exited */
	int	 status;	/* its wait status */
	int	 exec_errno;	/* exec's errno when exec failed, else 0 */
} sup;

/* Signals forwarded to the command (tini's set minus the job-control ones). */
const int supervise_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1,
    SIGUSR2, 0 };

/* Go's strconv.ParseBool, which containerboot uses: 1 true, 0 false, -1 bad. */
static int
parse_go_bool(const char *v)
{
	static const char *t[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *f[] = { "0", "f", "F", "FALSE", "false", "False" };

	for (size_t i = 0; i < 6; i++) {
		if (!strcmp(v, t[i]))
			return 1;
		if (!strcmp(v, f[i]))
			return 0;
	}
	return -1;
}

/* Is ARG (at index I of ARGV) tailscaled's --tun=userspace-networking? */
static bool
is_userspace_tun(char **argv, int i)
{
	const char *a = argv[i];

	if (*a == '-')
		a++;
	if (*a == '-')
		a++;
	if (!strcmp(a, "tun=userspace-networking"))
		return true;
	return !strcmp(a, "tun") && argv[i + 1] &&
	    !strcmp(argv[i + 1], "userspace-networking");
}

/* Same over a whitespace-separated string (TS_TAILSCALED_EXTRA_ARGS). */
static bool
str_has_userspace_tun(const char *s)
{
	char	*copy = strdup(s), *tok, *save, *v[64];
	int	 n = 0;
	bool	 r = false;

	if (!copy)
		return false;
	for (tok = strtok_r(copy, " \t\n", &save); tok && n < 63;
	    tok = strtok_r(NULL, " \t\n", &save))
		v[n++] = tok;
	v[n] = NULL;
	for (int i = 0; i < n && !r; i++)
		r = is_userspace_tun(v, i);
	free(copy);
	return r;
}

/* tailscale up's --accept-dns, bare or =true, in S (TS_EXTRA_ARGS). */
static bool
str_has_accept_dns(const char *s)
{
	char	*copy = strdup(s), *tok, *save;
	bool	 r = false;

	if (!copy)
		return false;
	for (tok = strtok_r(copy, " \t\n", &save); tok && !r;
	    tok = strtok_r(NULL, " \t\n", &save)) {
		tok += strspn(tok, "-");
		if (!strcmp(tok, "accept-dns"))
			r = true;
		else if (!strncmp(tok, "accept-dns=", 11))
			r = parse_go_bool(tok + 11) == 1;
	}
	free(copy);
	return r;
}

/*
 * Resolvers that tailscaled upgrades to DNS-over-HTTPS when it finds them in
 * resolv.conf (tailscale net/dns/publicdns: Google, Cloudflare, Quad9,
 * Mullvad, NextDNS, Control D). Its DoH flows are tcp/443 from its own
 * sockets: control class, out of the LAN, a DNS leak port 53 rules never
 * see. Prefixes cover the providers' anycast ranges.
 */
static const char *doh_resolvers[] = {
	"8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844",
	"1.1.1.1", "1.0.0.1", "1.1.1.2", "1.0.0.2", "1.1.1.3", "1.0.0.3",
	"2606:4700:4700::1111", "2606:4700:4700::1001", "2606:4700:4700::1112",
	"2606:4700:4700::1002", "2606:4700:4700::1113", "2606:4700:4700::1003",
	"9.9.9.9", "149.112.112.112", "9.9.9.10", "149.112.112.10", "9.9.9.11",
	"149.112.112.11", "2620:fe::fe", "2620:fe::9", "2620:fe::10",
	"2620:fe::fe:10", "2620:fe::11", "2620:fe::fe:11",
	"194.242.2.2", "194.242.2.3", "194.242.2.4", "194.242.2.5",
	"194.242.2.6", "194.242.2.9",
	NULL
};
static const char *doh_prefixes[] = {
	"45.90.28.", "45.90.30.", "2a07:a8c0:", "2a07:a8c1:",	/* NextDNS */
	"76.76.2.", "76.76.10.", "2606:1a40:",			/* Control D */
	"2a07:e340:",						/* Mullvad */
	NULL
};

/* The first nameserver of PATH that tailscaled would use over DoH, or NULL. */
static const char *
resolv_doh(const char *path, char *buf, size_t n)
{
	FILE	*f = fopen(path, "re");
	char	 line[512];
	const char *hit = NULL;

	if (!f)
		return NULL;
	while (!hit && fgets(line, sizeof(line), f)) {
		char	*save, *k = strtok_r(line, " \t\n", &save);
		char	*v = k ? strtok_r(NULL, " \t\n", &save) : NULL;
		if (!k || !v || strcmp(k, "nameserver"))
			continue;
		for (int i = 0; doh_resolvers[i] && !hit; i++)
			if (!strcasecmp(v, doh_resolvers[i]))
				hit = v;
		for (int i = 0; doh_prefixes[i] && !hit; i++)
			if (!strncasecmp(v, doh_prefixes[i], strlen(doh_prefixes[i])))
				hit = v;
		if (hit) {
			snprintf(buf, n, "%s", hit);
			hit = buf;
		}
	}
	fclose(f);
	return hit;
}

static int
refuse(const char *what, const char *why)
{
	fprintf(stderr, "vnoded: refusing %s: %s\n", what, why);
	return -1;
}

/*
 * Settings that would defeat the separation, checked before anything is
 * applied. May set TS_USERSPACE=false in the environment (the child
 * inherits it) when the command is containerboot, whose default is
 * userspace networking. Returns 0, or -1 after printing the reason (the
 * caller exits 2).
 */
int
supervise_check(const struct config *cfg, int argc, char **argv)
{
	const char *v, *base;
	int	 b;

	char	 rpath[64], ns[INET6_ADDRSTRLEN + 8];

	bool	 attach = cfg->attach_pid || cfg->attach_cgroup[0] ||
	    cfg->attach_name[0];

	if (attach && argc > 0)
		return refuse("a command in attach mode",
		    "--attach-pid/--attach-cgroup/--attach-name classify a tailscaled "
		    "started by someone else; give either them or a command after --");
	/* tailscaled's resolv.conf: ours when we start it, the target's in
	 * attach mode (through its root, since we share its PID namespace);
	 * --attach-name's target does not exist yet: ours, which a container
	 * sharing Gluetun's network namespace shares with it too */
	if (cfg->attach_pid)
		snprintf(rpath, sizeof(rpath), "/proc/%d/root/etc/resolv.conf", cfg->attach_pid);
	else
		snprintf(rpath, sizeof(rpath), "/etc/resolv.conf");
	if ((argc > 0 || attach) &&
	    cfg->dns == DNS_VPN && resolv_doh(rpath, ns, sizeof(ns))) {
		char	 what[sizeof(ns) + sizeof(rpath) + 16];
		snprintf(what, sizeof(what), "nameserver %s in %s", ns, rpath);
		return refuse(what, "tailscaled upgrades this resolver to DNS-over-HTTPS "
		    "(tcp/443 from its own sockets), which would leave by the LAN; name a "
		    "resolver reached through the VPN (Gluetun's 127.0.0.1, or the VPN "
		    "provider's), or set VNODE_DNS=lan to opt out");
	}
	if (argc == 0)
		return 0;
	base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

	if ((v = getenv("TS_USERSPACE")) != NULL) {
		b = parse_go_bool(v);
		/* containerboot reads a value it cannot parse as its default: true */
		if (b == 1 || (b < 0 && !strcmp(base, "containerboot"))) {
			char	 what[128];
			snprintf(what, sizeof(what), "TS_USERSPACE=%s", v);
			return refuse(what, "in userspace-networking mode tailscaled dials "
			    "client connections from its own sockets, which are classified "
			    "as its own traffic and would leave by the LAN; use "
			    "TS_USERSPACE=false (kernel tun, needs /dev/net/tun and NET_ADMIN)");
		}
	} else if (!strcmp(base, "containerboot")) {
		/* containerboot defaults to userspace networking */
		log_info("supervise: containerboot without TS_USERSPACE: setting "
		    "TS_USERSPACE=false");
		setenv("TS_USERSPACE", "false", 1);
	}
	for (int i = 0; i < argc; i++)
		if (is_userspace_tun(argv, i))
			return refuse("--tun=userspace-networking", "tailscaled would dial "
			    "client connections from its own sockets, which are classified "
			    "as its own traffic and would leave by the LAN");
	if ((v = getenv("TS_TAILSCALED_EXTRA_ARGS")) && str_has_userspace_tun(v))
		return refuse("--tun=userspace-networking in TS_TAILSCALED_EXTRA_ARGS",
		    "tailscaled would dial client connections from its own sockets, "
		    "which are classified as its own traffic and would leave by the LAN");
	if (((v = getenv("TS_ACCEPT_DNS")) && parse_go_bool(v) == 1) ||
	    ((v = getenv("TS_EXTRA_ARGS")) && str_has_accept_dns(v))) {
		return refuse("TS_ACCEPT_DNS=true", "tailscaled would rewrite the "
		    "resolv.conf it shares with the VPN container and send lookups to "
		    "the tailnet's resolvers; leave TS_ACCEPT_DNS unset or false");
	}
	(void)cfg;
	return 0;
}

/* In the child: report ERR through FD and exit with CODE. */
static void __attribute__((noreturn))
child_fail(int fd, int err, int code)
{
	ssize_t	 w = write(fd, &err, sizeof(err));

	(void)w;
	_exit(code);
}

/*
 * Fork and exec ARGV inside cgroup CGFD (OWN: the agent already sits in it,
 * so the child inherits it; otherwise the child writes itself into its
 * cgroup.procs). Every signal is reset to its default and unblocked before
 * exec: a process started in the background by a non-interactive shell
 * inherits SIGINT and SIGQUIT ignored, and libev blocks what it watches.
 * Returns the child's pid once it has exec'd, or -errno when it could not
 * (then supervise_exit_code() holds 126/127/1 and the child is reaped).
 */
pid_t
supervise_start(char **argv, int cgfd, bool own)
{
	int	 p[2], err = 0, ret;
	pid_t	 pid;
	ssize_t	 n;

	/* Orphans of the command come to us to be reaped: as PID 1 by nature,
	 * elsewhere (tests, a plain host) as subreaper, like tini -s. */
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("supervise: PR_SET_CHILD_SUBREAPER");
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if ((pid = fork()) < 0) {
		ret = -errno;
		close(p[0]);
		close(p[1]);
		return ret;
	}
	if (pid == 0) {
		sigset_t all;
		close(p[0]);
		if (!own && (ret = cgroup_enter(cgfd)) < 0)
			child_fail(p[1], -ret, 1);
		/* exec only from inside the classified cgroup */
		if ((ret = cgroup_self_in(cgfd, true)) != 1)
			child_fail(p[1], ret < 0 ? -ret : EXDEV, 1);
		/*
		 * Every signal back to its default, glibc's internal ones (32,
		 * 33) too: a supervisor started with those ignored (seen under
		 * a CI runner) would pass them on, and glibc's sigaction()
		 * refuses to touch them, so ask the kernel directly.
		 */
		for (int s = 1; s <= 64; s++) {
			struct { void *h; unsigned long flags; void *restorer; uint64_t mask; }
			    ksa = { .h = SIG_DFL };
			syscall(SYS_rt_sigaction, s, &ksa, NULL, sizeof(ksa.mask));
		}
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		execvp(argv[0], argv);
		err = errno;
		child_fail(p[1], err, err == ENOENT || err == ENOTDIR ? 127 : 126);
	}
	close(p[1]);
	do
		n = read(p[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	sup.pid = pid;
	vstate.child_pid = pid;
	vstate.ok_child = true;
	if (n == (ssize_t)sizeof(err)) {
		/* it never exec'd: collect it now */
		while (waitpid(pid, &sup.status, 0) < 0 && errno == EINTR)
			;
		sup.done = true;
		sup.exec_errno = err;
		vstate.ok_child = false;
		if (WIFEXITED(sup.status) && WEXITSTATUS(sup.status) == 1)
			log_warnx("supervise: %s not started: could not enter the classified "
			    "cgroup: %s", argv[0], strerror(err));
		else
			log_warnx("supervise: %s: %s", argv[0], strerror(err));
		return -err;
	}
	log_info("supervise: started %s as pid %d", argv[0], (int)pid);
	return pid;
}

/* Forward SIG to the command, if it runs. Returns 0 or -errno. */
int
supervise_forward(int sig)
{
	if (sup.pid <= 0 || sup.done)
		return -ESRCH;
	log_debug("supervise: forwarding signal %d to pid %d", sig, (int)sup.pid);
	return kill(sup.pid, sig) < 0 ? -errno : 0;
}

/*
 * For a loop that reaps itself (libev's default loop does, and hands each
 * status to an ev_child watcher for pid 0): note that PID ended with wait
 * STATUS. Returns true when PID was the command.
 */
bool
supervise_child_exited(pid_t pid, int status)
{
	if (pid != sup.pid || sup.pid <= 0) {
		log_debug("supervise: reaped pid %d (not the command: an orphan or a check process)", (int)pid);
		return false;
	}
	sup.done = true;
	sup.status = status;
	vstate.ok_child = false;
	if (WIFSIGNALED(status))
		log_info("supervise: pid %d killed by signal %d", (int)pid, WTERMSIG(status));
	else
		log_info("supervise: pid %d exited with %d", (int)pid, WEXITSTATUS(status));
	return true;
}

/*
 * Reap every zombie (as PID 1 or subreaper the agent inherits orphans).
 * Call on SIGCHLD. Returns true once the command itself has exited.
 */
bool
supervise_reap(void)
{
	pid_t	 pid;
	int	 st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		supervise_child_exited(pid, st);
	return sup.done;
}

bool
supervise_done(void)
{
	return sup.done;
}

/* The agent's exit status for the command's end: its code, or 128+signal. */
int
supervise_exit_code(void)
{
	if (!sup.done)
		return 1;
	if (WIFEXITED(sup.status))
		return WEXITSTATUS(sup.status);
	if (WIFSIGNALED(sup.status))
		return 128 + WTERMSIG(sup.status);
	return 1;
}
