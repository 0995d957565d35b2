/*
 * nlbench: timings of the agent seen from outside, through netlink.
 *   nlbench repair-rule PRIO N    delete the first rule of priority PRIO N
 *                                 times; time until it is back (median, p90)
 *   nlbench repair-route TABLE N  the same for the default route of TABLE
 *   nlbench start PRIO FAM -- CMD start CMD; time until a rule of priority
 *                                 PRIO (family 4 or 6) exists
 *   nlbench wait-exit -- CMD      start CMD; time until it exits (a recipe)
 * Times are CLOCK_MONOTONIC microseconds printed as one line of key=value.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>

static double
now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static struct mnl_socket *
mon_open(unsigned groups)
{
	struct mnl_socket *m = mnl_socket_open(NETLINK_ROUTE);
	if (!m || mnl_socket_bind(m, groups, MNL_SOCKET_AUTOPID) < 0) {
		perror("netlink");
		exit(1);
	}
	return m;
}

struct want {
	int	 type;		/* RTM_NEWRULE / RTM_NEWROUTE */
	int	 family;	/* 0: any */
	uint32_t prio;		/* rules */
	uint32_t table;		/* routes */
	int	 found;
};

static int
attr_u32(const struct nlmsghdr *nlh, size_t hdr, int type, uint32_t *out)
{
	const struct nlattr *a;
	mnl_attr_for_each(a, nlh, hdr)
		if (mnl_attr_get_type(a) == type) {
			*out = mnl_attr_get_u32(a);
			return 1;
		}
	return 0;
}

static int
msg_cb(const struct nlmsghdr *nlh, void *data)
{
	struct want *w = data;
	uint32_t v = 0;

	if (nlh->nlmsg_type != w->type)
		return MNL_CB_OK;
	if (w->type == RTM_NEWRULE) {
		struct fib_rule_hdr *h = mnl_nlmsg_get_payload(nlh);
		if ((!w->family || h->family == w->family) &&
		    attr_u32(nlh, sizeof(*h), FRA_PRIORITY, &v) && v == w->prio)
			w->found = 1;
	} else {
		struct rtmsg *r = mnl_nlmsg_get_payload(nlh);
		uint32_t t = r->rtm_table;
		attr_u32(nlh, sizeof(*r), RTA_TABLE, &t);
		if (t == w->table && r->rtm_dst_len == 0 &&
		    (!w->family || r->rtm_family == w->family))
			w->found = 1;
	}
	return MNL_CB_OK;
}

/* Waits up to timeout_ms for the wanted event; returns 1 if seen. */
static int
wait_event(struct mnl_socket *m, struct want *w, int timeout_ms)
{
	char	 buf[65536];
	double	 end = now_us() + timeout_ms * 1000.0;
	struct pollfd p = { .fd = mnl_socket_get_fd(m), .events = POLLIN };

	w->found = 0;
	while (!w->found) {
		int left = (int)((end - now_us()) / 1000);
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return 0;
		ssize_t n = mnl_socket_recvfrom(m, buf, sizeof(buf));
		if (n > 0)
			mnl_cb_run(buf, n, 0, 0, msg_cb, w);
	}
	return 1;
}

static void
request(struct mnl_socket *s, int type, int family, uint32_t prio, uint32_t table)
{
	char	 buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = (unsigned)time(NULL);
	if (type == RTM_DELRULE) {
		struct fib_rule_hdr *h = mnl_nlmsg_put_extra_header(nlh, sizeof(*h));
		h->family = family;
		mnl_attr_put_u32(nlh, FRA_PRIORITY, prio);
	} else {
		struct rtmsg *r = mnl_nlmsg_put_extra_header(nlh, sizeof(*r));
		r->rtm_family = family;
		r->rtm_table = RT_TABLE_UNSPEC;
		r->rtm_scope = RT_SCOPE_NOWHERE;
		mnl_attr_put_u32(nlh, RTA_TABLE, table);
	}
	if (mnl_socket_sendto(s, nlh, nlh->nlmsg_len) < 0) {
		perror("sendto");
		exit(1);
	}
	ssize_t n = mnl_socket_recvfrom(s, buf, sizeof(buf));
	if (n < 0 || mnl_cb_run(buf, n, 0, 0, NULL, NULL) < 0) {
		perror("delete");
		exit(1);
	}
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
report(const char *what, double *v, int n, int lost)
{
	qsort(v, n, sizeof(*v), cmp);
	printf("%s n=%d lost=%d median_us=%.0f p90_us=%.0f max_us=%.0f\n", what, n, lost,
	    n ? v[n / 2] : -1, n ? v[n * 9 / 10] : -1, n ? v[n - 1] : -1);
}

static pid_t
spawn(char **argv)
{
	pid_t pid = fork();
	if (pid == 0) {
		/* the child outlives us: it must not hold our stdout open */
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int
main(int argc, char **argv)
{
	if (argc >= 4 && (!strcmp(argv[1], "repair-rule") || !strcmp(argv[1], "repair-route"))) {
		int	 rule = !strcmp(argv[1], "repair-rule"), n = atoi(argv[3]), got = 0, lost = 0;
		uint32_t key = strtoul(argv[2], NULL, 0);
		struct mnl_socket *s = mon_open(0);
		struct mnl_socket *m = mon_open(rule ? (1 << (RTNLGRP_IPV4_RULE - 1)) :
		    (1 << (RTNLGRP_IPV4_ROUTE - 1)));
		struct want w = { .type = rule ? RTM_NEWRULE : RTM_NEWROUTE,
		    .family = AF_INET, .prio = key, .table = key };
		double	*v = calloc(n, sizeof(double));
		for (int i = 0; i < n; i++) {
			double t0;
			request(s, rule ? RTM_DELRULE : RTM_DELROUTE, AF_INET, key, key);
			t0 = now_us();
			if (wait_event(m, &w, 1000))
				v[got++] = now_us() - t0;
			else
				lost++;
			usleep(2000);
		}
		report(argv[1], v, got, lost);
		return lost ? 1 : 0;
	}
	if (argc >= 5 && !strcmp(argv[1], "start") && !strcmp(argv[4], "--")) {
		struct mnl_socket *m = mon_open((1 << (RTNLGRP_IPV4_RULE - 1)) |
		    (1 << (RTNLGRP_IPV6_RULE - 1)));
		struct want w = { .type = RTM_NEWRULE, .prio = strtoul(argv[2], NULL, 0),
		    .family = atoi(argv[3]) == 6 ? AF_INET6 : AF_INET };
		double	 t0 = now_us();
		pid_t	 pid = spawn(argv + 5);
		int	 ok = wait_event(m, &w, 5000);
		printf("start_us=%.0f pid=%d%s\n", now_us() - t0, pid, ok ? "" : " timeout");
		return ok ? 0 : 1;
	}
	if (argc >= 4 && !strcmp(argv[1], "wait-exit") && !strcmp(argv[2], "--")) {
		double	 t0 = now_us();
		int	 st;
		pid_t	 pid = spawn(argv + 3);
		waitpid(pid, &st, 0);
		printf("start_us=%.0f status=%d\n", now_us() - t0, WEXITSTATUS(st));
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of nlbench.c\n");
	return 2;
}
