/*
 * attach.c: attach mode by name (VNODE_ATTACH_NAME), for the sidecar of
 * compose/docker-compose.dropin.yml. The Tailscale container joins the
 * agent's PID namespace but is created only once the agent is armed, so
 * nobody can tell the agent a PID: it looks for the first process whose
 * /proc/PID/comm is one of the names, has classify.c classify that
 * process's cgroup, and watches the process through a pidfd. When the
 * process exits the agent waits again: Docker removes a stopped
 * container's cgroup and makes a new one (same path) when it starts again,
 * and the program attached to the old directory went with it.
 *
 * Waiting means reading /proc. The proc connector, which would announce
 * every exec, serves only the initial network and PID namespaces, and a
 * sidecar is in neither. So: every ATTACH_FAST_S for the first
 * ATTACH_FAST_FOR s of a wait (containerboot starts tailscaled within
 * milliseconds, and its first sockets should find the program in place;
 * any socket that beats the attach is still classified by nftables), then
 * every ATTACH_SLOW_S. While a process is watched there is no timer: its
 * pidfd becomes readable when it exits, so an attached agent stays at
 * zero wakeups when nothing happens.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ev.h>

#include "vnoded.h"

static struct {
	struct ev_loop	*loop;
	const struct config *cfg;
	void		(*changed)(void);
	char		 names[ATTACH_NAMES][ATTACH_COMM_LEN + 1];
	int		 n;
	ev_timer	 scan_w;
	ev_io		 exit_w;
	int		 pidfd;
	ev_tstamp	 since;		/* this wait began */
} at = { .pidfd = -1 };

/* cfg->attach_name ("a,b", normalised by config.c) into at.names. */
static void
names_load(const struct config *cfg)
{
	char	 buf[sizeof(cfg->attach_name)], *tok, *rest = buf;

	snprintf(buf, sizeof(buf), "%s", cfg->attach_name);
	at.n = 0;
	while ((tok = strsep(&rest, ",")) != NULL && at.n < ATTACH_NAMES)
		if (*tok)
			snprintf(at.names[at.n++], sizeof(at.names[0]), "%s", tok);
}

/* PID's comm into COMM (ATTACH_COMM_LEN + 1 bytes) if it is one of the
 * names. Returns true then. */
static bool
comm_matches(pid_t pid, char *comm)
{
	char	 path[32], buf[32];
	ssize_t	 n;
	int	 fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	for (int i = 0; i < at.n; i++)
		if (!strcmp(buf, at.names[i])) {
			strcpy(comm, at.names[i]);
			return true;
		}
	return false;
}

/*
 * A pidfd of PID if it is still alive (a zombie's comm is still readable,
 * and a pid can be reused between readdir and here). -1 if not; -2 when
 * the kernel has no pidfd_open (before 5.3): then it cannot be watched.
 */
static int
pidfd_live(pid_t pid)
{
	struct pollfd p = { .events = POLLIN };

	if ((p.fd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0)
		return errno == ENOSYS ? -2 : -1;
	if (poll(&p, 1, 0) != 0) {	/* readable: it has exited */
		close(p.fd);
		return -1;
	}
	return p.fd;
}

/*
 * The first live process with one of the names, other than the agent, in
 * /proc's order (by pid: containerboot before the tailscaled it starts).
 * Its pid, with its comm in COMM and a pidfd (or -2) in *PFD; 0 if none.
 */
static pid_t
scan(char *comm, int *pfd)
{
	DIR	*d;
	struct dirent *e;
	pid_t	 self = getpid(), pid, found = 0;
	char	*end;

	if ((d = opendir("/proc")) == NULL)
		return 0;
	while (!found && (e = readdir(d)) != NULL) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		pid = (pid_t)strtol(e->d_name, &end, 10);
		if (*end || pid == self || !comm_matches(pid, comm))
			continue;
		/* the comm again once pinned: the pid may have been reused */
		if ((*pfd = pidfd_live(pid)) == -1)
			continue;
		if (comm_matches(pid, comm))
			found = pid;
		else if (*pfd >= 0)
			close(*pfd);
	}
	closedir(d);
	return found;
}

pid_t
attach_find(const struct config *cfg)
{
	char	 comm[ATTACH_COMM_LEN + 1];
	int	 pfd = -1;
	pid_t	 pid;

	names_load(cfg);
	if ((pid = scan(comm, &pfd)) > 0 && pfd >= 0)
		close(pfd);
	return pid;
}

/* Start (or restart) a wait: scan at once, then on the fast timer. */
static void
wait_begin(void)
{
	vstate.attach = ATTACH_WAITING;
	vstate.attach_pid = 0;
	vstate.attach_comm[0] = '\0';
	log_info("attach: waiting for a process named %s", at.cfg->attach_name);
	at.since = ev_now(at.loop);
	ev_timer_stop(at.loop, &at.scan_w);
	ev_timer_set(&at.scan_w, 0., ATTACH_FAST_S);
	ev_timer_start(at.loop, &at.scan_w);
}

static void
exit_cb(struct ev_loop *l, ev_io *w, int revents)
{
	ev_io_stop(l, w);
	close(at.pidfd);
	at.pidfd = -1;
	log_info("attach: pid %d (%s) exited%s", vstate.attach_pid,
	    vstate.attach_comm, vstate.attach == ATTACH_ON ?
	    "; the program stays on its cgroup" : "");
	classify_release();
	at.changed();
	wait_begin();
}

/* Classify PID's cgroup and watch PID (through PFD) until it exits. */
static void
found(pid_t pid, int pfd, const char *comm)
{
	ev_timer_stop(at.loop, &at.scan_w);
	vstate.attach_pid = pid;
	snprintf(vstate.attach_comm, sizeof(vstate.attach_comm), "%s", comm);
	if (classify_attach(pid) == 0) {
		vstate.attach = ATTACH_ON;
		log_info("attach: pid %d (%s) found %.2f s into the wait: classifying "
		    "its cgroup", (int)pid, comm, ev_now(at.loop) - at.since);
	} else {
		/* watched all the same: when it goes, the next one may do */
		vstate.attach = ATTACH_REFUSED;
		log_warnx("attach: pid %d (%s): its cgroup cannot be classified (see "
		    "above); not ready until it exits and another one can be",
		    (int)pid, comm);
	}
	at.changed();
	if (pfd < 0) {
		log_warnx("attach: no pidfd_open (Linux 5.3): pid %d is not watched, "
		    "a restarted %s will not be classified", (int)pid, comm);
		return;
	}
	at.pidfd = pfd;
	ev_io_set(&at.exit_w, pfd, EV_READ);
	ev_io_start(at.loop, &at.exit_w);
}

static void
scan_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	char	 comm[ATTACH_COMM_LEN + 1];
	int	 pfd = -1;
	pid_t	 pid;

	if ((pid = scan(comm, &pfd)) > 0) {
		found(pid, pfd, comm);
		return;
	}
	if (w->repeat < ATTACH_SLOW_S && ev_now(l) - at.since >= ATTACH_FAST_FOR) {
		log_info("attach: no process named %s after %.0f s: looking every "
		    "%.0f s from now on", at.cfg->attach_name, ATTACH_FAST_FOR,
		    ATTACH_SLOW_S);
		w->repeat = ATTACH_SLOW_S;
		ev_timer_again(l, w);
	}
}

void
attach_start(struct ev_loop *loop, const struct config *cfg, void (*changed)(void))
{
	at.loop = loop;
	at.cfg = cfg;
	at.changed = changed;
	names_load(cfg);
	ev_init(&at.scan_w, scan_cb);
	ev_init(&at.exit_w, exit_cb);
	wait_begin();
}

void
attach_stop(void)
{
	if (!at.loop)
		return;
	ev_timer_stop(at.loop, &at.scan_w);
	ev_io_stop(at.loop, &at.exit_w);
	if (at.pidfd >= 0)
		close(at.pidfd);
	at.pidfd = -1;
}
