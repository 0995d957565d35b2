/*
 * sockprobe: opens sockets of every kind on command, each sending one
 * packet, and keeps them open so that the tests can judge them from
 * outside: by where the packet went (counters on the lab's peers) and by
 * `ss -e` (fwmark, cgroup). It never reads its own marks back.
 *
 * Commands come from the arguments, or from standard input, one per line
 * (after "-"), so a test can act between them:
 *   open KIND ADDR PORT      KIND: tcp4 udp4 tcp6 udp6 raw4
 *   thread KIND ADDR PORT    the same from a new thread (which stays)
 *   fork KIND ADDR PORT      the same from a forked child (which stays)
 *   exec KIND ADDR PORT      the same from a fresh exec of sockprobe
 *   somark MARK KIND ADDR PORT   SO_MARK before sending (as tailscaled)
 *   accept4 / accept6        listen on loopback, connect, keep the accepted
 *   burst KIND ADDR PORT N MS  N sockets, one packet each, MS apart, closed
 *   resend N                 each UDP socket still open sends again, to
 *                            its port + N
 *   bench N KIND             N x socket()+close(); prints ns per socket
 *   ready                    print "ready" (flushed)
 *   sleep MS
 *   hold                     wait until stdin closes or SIGTERM
 * Each socket prints "KIND pid=P lport=L" on stdout. Exits 0, or 1 with a
 * message on the first failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *self;

/* UDP sockets kept open, for resend */
static struct { int fd; struct sockaddr_storage to; socklen_t tl; } kept[64];
static int nkept;

static void
die(const char *what)
{
	fprintf(stderr, "sockprobe: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Open one socket of KIND, send one packet to ADDR:PORT; returns the fd. */
static int
one(const char *kind, const char *addr, int port, unsigned mark, int close_it)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int	 v6 = strchr(kind, '6') != NULL, fd, type, proto = 0;

	memset(&ss, 0, sizeof(ss));
	if (v6) {
		struct sockaddr_in6 *s6 = (void *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			die("bad v6 address");
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (void *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			die("bad v4 address");
		sl = sizeof(*s4);
	}
	if (!strncmp(kind, "tcp", 3))
		type = SOCK_STREAM;
	else if (!strncmp(kind, "udp", 3))
		type = SOCK_DGRAM;
	else if (!strcmp(kind, "raw4")) {
		type = SOCK_RAW;
		proto = IPPROTO_ICMP;
	} else {
		errno = EINVAL;
		die(kind);
	}
	if ((fd = socket(v6 ? AF_INET6 : AF_INET, type, proto)) < 0)
		die("socket");
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		die("SO_MARK");
	if (type == SOCK_STREAM) {
		fcntl(fd, F_SETFL, O_NONBLOCK);
		if (connect(fd, (void *)&ss, sl) < 0 && errno != EINPROGRESS)
			die("connect");
	} else if (type == SOCK_DGRAM) {
		if (sendto(fd, "probe", 5, 0, (void *)&ss, sl) != 5)
			die("sendto");
		if (!close_it && nkept < 64) {
			kept[nkept].fd = fd;
			kept[nkept].to = ss;
			kept[nkept++].tl = sl;
		}
	} else {
		struct icmphdr h = { .type = ICMP_ECHO };
		h.un.echo.id = htons(port);
		/* RFC 792 checksum over type/code, id, seq (0) */
		unsigned sum = (ICMP_ECHO << 8) + (unsigned)port;
		sum = (sum & 0xffff) + (sum >> 16);
		h.checksum = htons((unsigned short)~sum);
		if (sendto(fd, &h, sizeof(h), 0, (void *)&ss, sl) < 0)
			die("sendto raw");
	}
	{
		struct sockaddr_storage l;
		socklen_t ll = sizeof(l);
		int	 lport = 0;
		getsockname(fd, (void *)&l, &ll);
		if (l.ss_family == AF_INET)
			lport = ntohs(((struct sockaddr_in *)&l)->sin_port);
		else if (l.ss_family == AF_INET6)
			lport = ntohs(((struct sockaddr_in6 *)&l)->sin6_port);
		if (!close_it) {
			printf("%s pid=%d lport=%d\n", kind, (int)getpid(), lport);
			fflush(stdout);
		}
	}
	if (close_it)
		close(fd);
	return fd;
}

struct targ { char kind[16], addr[64]; int port; };

static void *
thread_main(void *p)
{
	struct targ *t = p;

	one(t->kind, t->addr, t->port, 0, 0);
	pause();
	return NULL;
}

static void
accept_pair(int v6)
{
	struct sockaddr_storage ss;
	socklen_t sl = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int	 l, c, a;

	memset(&ss, 0, sizeof(ss));
	if (v6) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	} else {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	if ((l = socket(ss.ss_family, SOCK_STREAM, 0)) < 0 ||
	    bind(l, (void *)&ss, sl) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, (void *)&ss, &sl) < 0)
		die("listen");
	if ((c = socket(ss.ss_family, SOCK_STREAM, 0)) < 0 ||
	    connect(c, (void *)&ss, sl) < 0)
		die("connect loopback");
	if ((a = accept(l, NULL, NULL)) < 0)
		die("accept");
	{
		struct sockaddr_storage p;
		socklen_t pl = sizeof(p);
		getpeername(a, (void *)&p, &pl);
		int	 port = v6 ? ntohs(((struct sockaddr_in6 *)&p)->sin6_port) :
		    ntohs(((struct sockaddr_in *)&p)->sin_port);
		/* the accepted socket: local port = listener's, peer = client's */
		printf("accepted%d pid=%d lport=%d peerport=%d\n", v6 ? 6 : 4,
		    (int)getpid(), ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port), port);
		fflush(stdout);
	}
}

static void
msleep(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void
command(char **w, int n)
{
	if (n == 0)
		return;
	if (!strcmp(w[0], "open") && n == 4)
		one(w[1], w[2], atoi(w[3]), 0, 0);
	else if (!strcmp(w[0], "somark") && n == 5)
		one(w[2], w[3], atoi(w[4]), (unsigned)strtoul(w[1], NULL, 0), 0);
	else if (!strcmp(w[0], "thread") && n == 4) {
		static struct targ t;
		pthread_t th;
		snprintf(t.kind, sizeof(t.kind), "%s", w[1]);
		snprintf(t.addr, sizeof(t.addr), "%s", w[2]);
		t.port = atoi(w[3]);
		if (pthread_create(&th, NULL, thread_main, &t))
			die("pthread_create");
		msleep(100);
	} else if (!strcmp(w[0], "fork") && n == 4) {
		pid_t	 p = fork();
		if (p < 0)
			die("fork");
		if (p == 0) {
			one(w[1], w[2], atoi(w[3]), 0, 0);
			/* stay until the parent goes */
			while (getppid() != 1 && kill(getppid(), 0) == 0)
				msleep(100);
			_exit(0);
		}
		msleep(100);
	} else if (!strcmp(w[0], "exec") && n == 4) {
		pid_t	 p = fork();
		if (p < 0)
			die("fork");
		if (p == 0) {
			execl(self, "sockprobe", "open", w[1], w[2], w[3], "hold", (char *)NULL);
			die("exec");
		}
		msleep(200);
	} else if (!strcmp(w[0], "accept4") || !strcmp(w[0], "accept6"))
		accept_pair(w[0][6] == '6');
	else if (!strcmp(w[0], "burst") && n == 6) {
		int	 cnt = atoi(w[4]), ms = atoi(w[5]);
		for (int i = 0; i < cnt; i++) {
			one(w[1], w[2], atoi(w[3]), 0, 1);
			msleep(ms);
		}
		printf("burst %d done\n", cnt);
		fflush(stdout);
	} else if (!strcmp(w[0], "resend") && n == 2) {
		/* every kept UDP socket sends again, to its port + N */
		for (int i = 0; i < nkept; i++) {
			struct sockaddr_storage to = kept[i].to;
			in_port_t *pp = to.ss_family == AF_INET ?
			    &((struct sockaddr_in *)&to)->sin_port :
			    &((struct sockaddr_in6 *)&to)->sin6_port;
			*pp = htons(ntohs(*pp) + atoi(w[1]));
			if (sendto(kept[i].fd, "again", 5, 0, (void *)&to, kept[i].tl) != 5)
				die("resend");
		}
		printf("resent %d\n", nkept);
		fflush(stdout);
	} else if (!strcmp(w[0], "bench") && n == 3) {
		/* N x socket()+close() of KIND (udp4, tcp4, udp6, tcp6): ns each */
		int	 cnt = atoi(w[1]), fam = strchr(w[2], '6') ? AF_INET6 : AF_INET;
		int	 type = !strncmp(w[2], "tcp", 3) ? SOCK_STREAM : SOCK_DGRAM;
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (int i = 0; i < cnt; i++) {
			int	 fd = socket(fam, type, 0);
			if (fd < 0)
				die("socket");
			close(fd);
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / cnt);
		fflush(stdout);
	} else if (!strcmp(w[0], "ready")) {
		printf("ready\n");
		fflush(stdout);
	} else if (!strcmp(w[0], "sleep") && n == 2)
		msleep(atoi(w[1]));
	else if (!strcmp(w[0], "hold")) {
		char	 b[64];
		while (read(0, b, sizeof(b)) > 0)
			;
		/* stdin may be /dev/null: then wait for a signal */
		pause();
	} else {
		errno = EINVAL;
		die(w[0]);
	}
}

int
main(int argc, char **argv)
{
	char	*w[8];
	int	 n = 0;

	self = "/proc/self/exe";
	signal(SIGCHLD, SIG_IGN);	/* forked holders are reaped by init */
	if (argc > 1 && !strcmp(argv[1], "-")) {
		char	 line[512];
		while (fgets(line, sizeof(line), stdin)) {
			char	*save, *t;
			n = 0;
			for (t = strtok_r(line, " \t\n", &save); t && n < 8;
			    t = strtok_r(NULL, " \t\n", &save))
				w[n++] = t;
			command(w, n);
		}
		return 0;
	}
	/* arguments: commands separated by the command words themselves */
	for (int i = 1; i < argc; ) {
		static const struct { const char *c; int n; } arity[] = {
		    { "open", 4 }, { "thread", 4 }, { "fork", 4 }, { "exec", 4 },
		    { "somark", 5 }, { "accept4", 1 }, { "accept6", 1 },
		    { "burst", 6 }, { "resend", 2 }, { "bench", 3 }, { "ready", 1 }, { "sleep", 2 }, { "hold", 1 } };
		int	 k = -1;
		for (size_t j = 0; j < sizeof(arity) / sizeof(arity[0]); j++)
			if (!strcmp(argv[i], arity[j].c))
				k = arity[j].n;
		if (k < 0 || i + k > argc) {
			fprintf(stderr, "sockprobe: bad command '%s'\n", argv[i]);
			return 1;
		}
		command(argv + i, k);
		i += k;
	}
	return 0;
}
