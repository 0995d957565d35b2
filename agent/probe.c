/*
 * probe.c: `vnoded probe [--live|--ready|--armed]`, for a Docker
 * HEALTHCHECK or a Kubernetes exec probe. Asks the running agent's
 * endpoint for /healthz (--live) or /readyz (--ready, the default), prints
 * the answer's body and exits 0 on 200, 1 on anything else (no answer
 * within 3 s included). --armed asks /readyz too and also exits 0 on a 503
 * whose failing checks (one `name: reason` line each) health_armed()
 * excuses: the sidecar's Docker health, on which the Tailscale container
 * waits, while /readyz cannot hold before tailscaled runs (tailscale0).
 * Plain sockets, no libcurl: it runs every few seconds in every container.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vnoded.h"

#define PROBE_TIMEOUT_MS	3000

static long
ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Waits for events on fd until the deadline; 0 when they came. */
static int
wait_fd(int fd, short events, const struct timespec *deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	long	 left;
	int	 n;

	for (;;) {
		if ((left = ms_left(deadline)) <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

int
probe_run(const struct config *c, enum probe_kind kind)
{
	char	 host[64], req[128], resp[8192];
	const char *colon, *path = kind == PROBE_LIVE ? "/healthz" : "/readyz";
	const char *body;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICSERV }, *ai = NULL;
	struct timespec deadline;
	size_t	 hl, got = 0;
	int	 fd = -1, e, code = 0, ret = 1;
	socklen_t elen = sizeof(e);

	if (!strcmp(c->health_listen, "none")) {
		fprintf(stderr, "vnoded: probe: VNODE_HEALTH_LISTEN is none: no endpoint to ask\n");
		return 1;
	}
	colon = strrchr(c->health_listen, ':');
	hl = (size_t)(colon - c->health_listen);
	if (hl >= sizeof(host))
		return 1;
	memcpy(host, c->health_listen, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	/* a wildcard listener is asked on loopback */
	if (!host[0] || !strcmp(host, "0.0.0.0"))
		strcpy(host, "127.0.0.1");
	else if (!strcmp(host, "::"))
		strcpy(host, "::1");
	if ((e = getaddrinfo(host, colon + 1, &hints, &ai)) != 0) {
		fprintf(stderr, "vnoded: probe: %s: %s\n", c->health_listen, gai_strerror(e));
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += PROBE_TIMEOUT_MS / 1000;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto syserr;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			goto syserr;
		if ((e = wait_fd(fd, POLLOUT, &deadline)) < 0) {
			errno = -e;
			goto syserr;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0 || e) {
			errno = e ? e : errno;
			goto syserr;
		}
	}
	/* HTTP/1.0: the agent closes after answering, EOF ends the body */
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: vnoded\r\n\r\n", path);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
		goto syserr;
	for (;;) {
		ssize_t n;
		if ((e = wait_fd(fd, POLLIN, &deadline)) < 0) {
			errno = -e;
			goto syserr;
		}
		n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			goto syserr;
		if (n == 0 || (got += (size_t)n) == sizeof(resp) - 1)
			break;
	}
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1) {
		fprintf(stderr, "vnoded: probe: %s: not an HTTP answer\n", c->health_listen);
		goto out;
	}
	if ((body = strstr(resp, "\r\n\r\n")) != NULL)
		fputs(body + 4, stdout);
	ret = code == 200 ? 0 : 1;
	if (kind == PROBE_ARMED && code == 503 && body && health_armed(body + 4)) {
		printf("armed\n");
		ret = 0;
	}
	goto out;
syserr:
	fprintf(stderr, "vnoded: probe: %s%s: %s\n", c->health_listen, path,
	    strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return ret;
}
