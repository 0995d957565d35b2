/*
 * exitip.c: the node's two faces, learned without linking them.
 *
 * - VPN path: the address the internet sees for clients. Asked from
 *   Gluetun's control server (its own check through the tunnel) or from a
 *   VNODE_EXIT_IP_URL service through tun0: the socket is bound to the
 *   device and its mark cleared, so that even inside tailscaled's
 *   classified cgroup it is no control-class socket.
 * - LAN path: the address Tailscale sees. Taken from tailscaled's LocalAPI
 *   (the endpoints it learned by STUN and advertises), so that no extra
 *   party hears from the LAN side; or from a VNODE_LAN_IP_URL service with
 *   a control-class socket (SO_MARK = VNODE_MARK), whose host config.c
 *   refuses if the VPN list names it too.
 *
 * Every HTTP transfer runs in a short-lived child made with fork() (no
 * exec), which loads libcurl, performs the one transfer and writes a
 * result record and the body to a pipe. The agent never maps libcurl: it
 * brings OpenSSL, GnuTLS, Kerberos and some forty libraries, ~5 MiB of
 * resident pages plus relocations, which would be most of the agent's
 * memory (target 4 MiB) for a check made every few minutes. The child
 * inherits the agent's cgroup, so its sockets are classified as the
 * agent's were; it dies with the agent (PR_SET_PDEATHSIG), and the agent
 * kills it when a check overruns EXITIP_TIMEOUT.
 *
 * Nothing is shared between the paths: each check is a fresh process with
 * a fresh easy handle, connection reuse, DNS caching and TLS session
 * caching off. Their timers are independent and jittered, and two checks
 * that both reach a third party are kept apart in time, so that a watcher
 * of both services sees no common rhythm.
 *
 * An address that could not be learned is unknown (family 0), never the
 * previous one. Equal addresses mean the VPN is not carrying client
 * traffic: a warning at every check, vstate.exit_linked, the metric, and a
 * failed readiness check under VNODE_REQUIRE_UNLINKABLE=1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* plain prototypes: the calls go through function pointers (below) */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <ev.h>
#include <jansson.h>

#include "vnoded.h"

/*
 * libcurl, loaded by a check's child only (see above): never call these
 * in the agent itself.
 */
static struct {
	void		*dl;
	CURLcode	 (*global_init)(long);
	CURL		*(*easy_init)(void);
	CURLcode	 (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode	 (*easy_perform)(CURL *);
	CURLcode	 (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char	*(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
} C;

/* curl.h maps these onto themselves (for type checks): not here */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_global_init	(*C.global_init)
#define curl_easy_init		(*C.easy_init)
#define curl_easy_setopt	(*C.easy_setopt)
#define curl_easy_perform	(*C.easy_perform)
#define curl_easy_getinfo	(*C.easy_getinfo)
#define curl_easy_strerror	(*C.easy_strerror)
#define curl_slist_append	(*C.slist_append)

/* In a check's child: loads libcurl; 0, or -1 with the reason in ERR. */
static int
curl_load(char *err, size_t n)
{
	void	**fp[] = { (void **)&C.global_init, (void **)&C.easy_init,
	    (void **)&C.easy_setopt, (void **)&C.easy_perform,
	    (void **)&C.easy_getinfo, (void **)&C.easy_strerror,
	    (void **)&C.slist_append };
	static const char *names[] = { "curl_global_init", "curl_easy_init",
	    "curl_easy_setopt", "curl_easy_perform", "curl_easy_getinfo",
	    "curl_easy_strerror", "curl_slist_append" };

	if ((C.dl = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL)) == NULL) {
		snprintf(err, n, "%s", dlerror());
		return -1;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((*fp[i] = dlsym(C.dl, names[i])) == NULL) {
			snprintf(err, n, "libcurl lacks %s", names[i]);
			return -1;
		}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		snprintf(err, n, "curl_global_init failed");
		return -1;
	}
	return 0;
}

#define GLUETUN_URL	"http://127.0.0.1:8000/v1/publicip/ip"
/* tailscaled's own default, and containerboot's (cmd/containerboot:
 * defaultEnv("TS_SOCKET", "/tmp/tailscaled.sock")) */
#define TS_SOCKET	"/var/run/tailscale/tailscaled.sock"
#define TS_SOCKET_CB	"/tmp/tailscaled.sock"
/* LocalAPI accepts this Host (ipn/localapi: validHost, apitype.LocalAPIHost) */
#define TS_STATUS_URL	"http://local-tailscaled.sock/localapi/v0/status?peers=false"
#define EXITIP_BODY_MAX	(256 * 1024)	/* bytes: tailscaled's status, no peers */
#define EXITIP_TIMEOUT	15L		/* s: a whole check */
#define EXITIP_CONNECT	8L		/* s: connecting */
#define EXITIP_REAP	5.0		/* s: a killed child's wait for its reaping */
#define EXITIP_MAX_CANDS 8		/* tailscaled endpoints remembered */

/*
 * What a check's child writes to the pipe before the body. The result
 * travels here, not in the exit status: a reaper other than our ev_child
 * watcher could collect that status first.
 */
struct xfer_res {
	int		 rc;		/* CURLcode */
	int		 toolong;	/* the body passed EXITIP_BODY_MAX */
	long		 code;		/* HTTP status */
	char		 err[CURL_ERROR_SIZE];	/* why rc is not CURLE_OK */
};

struct path {
	int		 id;		/* EXIT_VPN, EXIT_LAN */
	const char	*name;
	const char	(*urls)[EXITIP_URL_LEN];
	int		 nurls;
	int		 cur;		/* source being tried this round */
	bool		 resume;	/* the timer continues a round at cur */
	bool		 busy;		/* a check is in flight */
	pid_t		 pid;		/* its child, until reaped; or 0 */
	int		 fd;		/* the pipe from it, or -1 */
	bool		 killed;	/* we sent the child SIGKILL */
	bool		 timedout;	/* ... because it overran EXITIP_TIMEOUT */
	bool		 overflow;	/* it sent more than a record and a body */
	int		 status;	/* its wait status */
	ev_io		 rio;		/* the pipe */
	ev_child	 cw;		/* the child's end */
	ev_timer	 tmo;		/* EXITIP_TIMEOUT, then EXITIP_REAP */
	ev_timer	 sched;		/* next round */
	unsigned	 fails;		/* rounds in a row without an address */
	bool		 warned;	/* this streak of failures was logged */
	bool		 third_party;	/* the source in flight is on the network */
	ev_tstamp	 last_third;	/* when a third-party check last began */
	struct xfer_res	 res;		/* read so far: hlen bytes */
	size_t		 hlen;
	char		*body;
	size_t		 blen;
};

static struct path	 paths[2];
static struct ev_loop	*loop;
static const struct config *cfg;
static bool		 started;
/* tailscaled's public endpoints, all of them: linked if any equals VPN's */
static struct addr	 lan_cands[EXITIP_MAX_CANDS];
static int		 n_lan_cands;

static void path_try(struct path *);

/* ---- timing ------------------------------------------------------------- */

/* Uniform in [lo, hi) seconds. */
static double
rnd(double lo, double hi)
{
	return lo + (hi - lo) * (arc4random() / 4294967296.0);
}

static void
schedule(struct path *p, double after)
{
	ev_timer_stop(loop, &p->sched);
	ev_timer_set(&p->sched, after, 0);
	ev_timer_start(loop, &p->sched);
}

/* After a round: the interval ±20 %, or a backoff from 5 s after failures. */
static void
schedule_next(struct path *p)
{
	double	 iv = cfg->exit_ip_interval, d;

	if (p->fails == 0)
		d = iv;
	else {
		d = 5.0 * (double)(1u << (p->fails > 10 ? 10 : p->fails - 1));
		if (d > iv)
			d = iv;
	}
	schedule(p, d * rnd(0.8, 1.2));
}

/* Minimum time between the starts of two third-party checks. */
static double
separation(void)
{
	double	 s = cfg->exit_ip_interval / 15.0;
	return s > 20.0 ? 20.0 : s;
}

/* ---- results ------------------------------------------------------------ */

static bool
addr_eq(const struct addr *a, const struct addr *b)
{
	if (a->family != b->family || !a->family)
		return false;
	return a->family == AF_INET ? !memcmp(&a->v4, &b->v4, sizeof(a->v4)) :
	    !memcmp(&a->v6, &b->v6, sizeof(a->v6));
}

/*
 * An address the internet can see: not private, shared (CGNAT, where the
 * tailnet lives), loopback, link-local, multicast or unspecified.
 */
static bool
addr_public(const struct addr *a)
{
	if (a->family == AF_INET) {
		const uint8_t *b = (const uint8_t *)&a->v4;
		return !(b[0] == 0 || b[0] == 10 || b[0] == 127 ||
		    (b[0] == 100 && (b[1] & 0xc0) == 64) ||
		    (b[0] == 169 && b[1] == 254) ||
		    (b[0] == 172 && (b[1] & 0xf0) == 16) ||
		    (b[0] == 192 && b[1] == 168) || b[0] >= 224);
	}
	if (a->family == AF_INET6) {
		const uint8_t *b = a->v6.s6_addr;
		if (IN6_IS_ADDR_UNSPECIFIED(&a->v6) || IN6_IS_ADDR_LOOPBACK(&a->v6) ||
		    IN6_IS_ADDR_V4MAPPED(&a->v6))
			return false;
		return !((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||
		    b[0] == 0xff);
	}
	return false;
}

static void
evaluate(void)
{
	char	 a[INET6_ADDRSTRLEN];
	bool	 was = vstate.exit_linked, linked = false, comparable = false;

	/* an IPv6 answer on one path and an IPv4 one on the other prove
	 * nothing: unlinkable needs two addresses of one family */
	if (vstate.exit_vpn.family && vstate.exit_lan.family) {
		comparable = vstate.exit_vpn.family == vstate.exit_lan.family;
		linked = addr_eq(&vstate.exit_vpn, &vstate.exit_lan);
		for (int i = 0; i < n_lan_cands; i++) {
			comparable |= lan_cands[i].family == vstate.exit_vpn.family;
			linked |= addr_eq(&vstate.exit_vpn, &lan_cands[i]);
		}
	}
	vstate.exit_linked = linked;
	vstate.exit_comparable = comparable;
	addr_str(&vstate.exit_vpn, a, sizeof(a));
	if (linked)
		log_warnx("!!! exit addresses are EQUAL: clients (%s) and tailscaled "
		    "(%s) both leave from %s; the VPN is not carrying client "
		    "traffic and the two identities are linked", vstate.exit_vpn_src,
		    vstate.exit_lan_src, a);
	else if (was)
		log_info("exitip: exit addresses differ again");
}

static void
set_addr(struct path *p, const struct addr *a, const char *src)
{
	struct addr *dst = p->id == EXIT_VPN ? &vstate.exit_vpn : &vstate.exit_lan;
	char	*sdst = p->id == EXIT_VPN ? vstate.exit_vpn_src : vstate.exit_lan_src;
	int64_t	*at = p->id == EXIT_VPN ? &vstate.exit_vpn_at : &vstate.exit_lan_at;
	char	 b[INET6_ADDRSTRLEN], old[INET6_ADDRSTRLEN];
	struct timespec ts;

	addr_str(dst, old, sizeof(old));
	if (a) {
		clock_gettime(CLOCK_REALTIME, &ts);
		*at = ts.tv_sec;
		*dst = *a;
		snprintf(sdst, sizeof(vstate.exit_vpn_src), "%s", src);
		if (strcmp(old, addr_str(a, b, sizeof(b))))
			log_info("exitip: %s address %s (from %s)", p->name, b, src);
	} else {
		if (dst->family)
			log_info("exitip: %s address unknown (was %s)", p->name, old);
		memset(dst, 0, sizeof(*dst));
		sdst[0] = '\0';
		if (p->id == EXIT_LAN)
			n_lan_cands = 0;
	}
	evaluate();
}

/* Host part of an http(s) URL, for logs and labels. */
static void
src_label(const char *url, char *out, size_t n)
{
	if (!strcmp(url, "gluetun") || !strncmp(url, "tailscaled", 10)) {
		snprintf(out, n, "%.*s", !strcmp(url, "gluetun") ? 7 : 10, url);
		return;
	}
	if (url_host(url, out, n) < 0)
		snprintf(out, n, "?");
}

/* Text: the address alone, surrounding whitespace allowed. */
static int
parse_plain(const char *s, size_t n, struct addr *a)
{
	char	 buf[INET6_ADDRSTRLEN + 1];

	while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
	    s[n - 1] == '\n'))
		n--;
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return addr_parse(a, buf);
}

/* {"public_ip": "..."} (Gluetun) or {"ip": "..."} (most IP services). */
static int
parse_json_ip(const char *s, size_t n, struct addr *a)
{
	json_t	*root, *v;
	int	 ret = -1;

	if ((root = json_loadb(s, n, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return -1;
	if (!(v = json_object_get(root, "public_ip")))
		v = json_object_get(root, "ip");
	if (json_is_string(v))
		ret = addr_parse(a, json_string_value(v));
	json_decref(root);
	return ret;
}

/* "203.0.113.5:41641" or "[2001:db8::1]:41641" */
static int
parse_endpoint(const char *ep, struct addr *a)
{
	char	 buf[INET6_ADDRSTRLEN + 8];
	const char *colon;
	size_t	 n;

	if (ep[0] == '[') {
		const char *rb = strchr(ep, ']');
		if (!rb || (n = (size_t)(rb - ep - 1)) >= sizeof(buf))
			return -1;
		memcpy(buf, ep + 1, n);
	} else {
		if (!(colon = strrchr(ep, ':')) || (n = (size_t)(colon - ep)) >= sizeof(buf))
			return -1;
		memcpy(buf, ep, n);
	}
	buf[n] = '\0';
	return addr_parse(a, buf);
}

/*
 * tailscaled's status: Self.Addrs lists the endpoints it advertises, its
 * interfaces' addresses and what STUN told it. The public ones (minus
 * tun0's own, which tailscaled also lists as a local endpoint) are what
 * Tailscale's peers and control see. Prefers the VPN address' family.
 */
static int
parse_ts_status(const char *s, size_t n, struct addr *best)
{
	json_t	*root, *self, *addrs, *v;
	const char *state;
	size_t	 i;
	int	 want = vstate.exit_vpn.family ? vstate.exit_vpn.family : AF_INET;

	n_lan_cands = 0;
	if ((root = json_loadb(s, n, 0, NULL)) == NULL)
		return -1;
	state = json_string_value(json_object_get(root, "BackendState"));
	self = json_object_get(root, "Self");
	addrs = json_object_get(self, "Addrs");
	if (!state || strcmp(state, "Running") || !json_is_array(addrs)) {
		json_decref(root);
		return -1;
	}
	json_array_foreach(addrs, i, v) {
		struct addr a;
		if (!json_is_string(v) || parse_endpoint(json_string_value(v), &a) < 0 ||
		    !addr_public(&a) || addr_eq(&a, &vstate.tun_addr4) ||
		    addr_eq(&a, &vstate.tun_addr6))
			continue;
		bool dup = false;
		for (int k = 0; k < n_lan_cands; k++)
			dup |= addr_eq(&a, &lan_cands[k]);
		if (!dup && n_lan_cands < EXITIP_MAX_CANDS)
			lan_cands[n_lan_cands++] = a;
	}
	json_decref(root);
	if (n_lan_cands == 0)
		return -1;
	*best = lan_cands[0];
	for (int k = 0; k < n_lan_cands; k++)
		if (lan_cands[k].family == want) {
			*best = lan_cands[k];
			break;
		}
	return 0;
}

/* The first failures of a streak are warnings, the rest debug lines: a
 * source that is simply absent must not fill the log every few minutes. */
static void fail_log(struct path *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
fail_log(struct path *p, const char *f, ...)
{
	char	 msg[512];
	va_list	 ap;

	va_start(ap, f);
	vsnprintf(msg, sizeof(msg), f, ap);
	va_end(ap);
	if (p->warned)
		log_debug("%s", msg);
	else
		log_warnx("%s", msg);
}

/* Why a check that produced no usable answer failed, for the log. */
static const char *
fail_reason(struct path *p, char *buf, size_t n)
{
	if (p->timedout)
		snprintf(buf, n, "no answer within %ld s (check process killed)",
		    EXITIP_TIMEOUT);
	else if (p->overflow || (p->hlen == sizeof(p->res) && p->res.toolong))
		snprintf(buf, n, "answer too long");
	else if (p->hlen < sizeof(p->res)) {
		if (WIFSIGNALED(p->status))
			snprintf(buf, n, "check process killed by signal %d",
			    WTERMSIG(p->status));
		else
			snprintf(buf, n, "check process ended without an answer");
	} else
		snprintf(buf, n, "%s", p->res.err[0] ? p->res.err : "error");
	return buf;
}

static void
finish(struct path *p)
{
	const char *url = p->urls[p->cur];
	char	 label[EXITIP_URL_LEN], why[CURL_ERROR_SIZE + 64];
	bool	 got = p->hlen == sizeof(p->res) && !p->timedout && !p->overflow;
	long	 code = got ? p->res.code : 0;
	struct addr a;
	int	 ok = -1;

	src_label(url, label, sizeof(label));
	p->res.err[sizeof(p->res.err) - 1] = '\0';

	if (!got || p->res.rc != CURLE_OK || p->res.toolong)
		fail_log(p, "exitip: %s check via %s failed: %s", p->name, label,
		    fail_reason(p, why, sizeof(why)));
	else if (code != 200)
		fail_log(p, "exitip: %s check via %s: HTTP %ld%s", p->name, label,
		    code, code == 401 || code == 403 ? " (authentication "
		    "required: allow the route in the service's settings)" : "");
	else {
		if (!strncmp(url, "tailscaled", 10))
			ok = parse_ts_status(p->body, p->blen, &a);
		else if (parse_plain(p->body, p->blen, &a) == 0)
			ok = 0;
		else
			ok = parse_json_ip(p->body, p->blen, &a);
		if (ok < 0)
			fail_log(p, "exitip: %s check via %s: no address in the answer%s",
			    p->name, label, !strncmp(url, "tailscaled", 10) ?
			    " (tailscaled not running or no public endpoint yet)" : "");
	}
	vstate.exit_checks[p->id][ok == 0 ? 0 : 1]++;
	if (ok == 0) {
		if (p->warned)
			log_info("exitip: %s check via %s works again", p->name, label);
		p->warned = false;
		set_addr(p, &a, label);
		p->fails = 0;
		p->cur = 0;
		schedule_next(p);
		return;
	}
	/* next source of this round, right away */
	if (++p->cur < p->nurls) {
		path_try(p);
		return;
	}
	set_addr(p, NULL, NULL);
	p->fails++;
	p->cur = 0;
	if (!p->warned)
		log_warnx("exitip: %s exit address unknown; retrying in the background "
		    "(further failures at debug level)", p->name);
	p->warned = true;
	schedule_next(p);
}

/* ---- the check's child -------------------------------------------------- */

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct path *p = userp;
	size_t	 n = size * nmemb;

	if (n > EXITIP_BODY_MAX - p->blen) {
		p->res.toolong = 1;
		return 0;	/* aborts the transfer */
	}
	memcpy(p->body + p->blen, data, n);
	p->blen += n;
	return n;
}

/* The VPN socket: mark cleared, so that no classifier makes it control
 * class; the LAN socket: the control-class mark, so rules send it to the
 * LAN table and the kill switch keeps it out of tun0. */
static int
sockopt_cb(void *userp, curl_socket_t fd, curlsocktype purpose)
{
	struct path *p = userp;
	uint32_t mark = p->id == EXIT_VPN ? 0 : cfg->mark;

	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKOPT_OK;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
		log_warn("exitip: %s check: SO_MARK 0x%x", p->name, mark);
		return CURL_SOCKOPT_ERROR;	/* never let it leave unclassified */
	}
	return CURL_SOCKOPT_OK;
}

/*
 * tailscaled's LocalAPI socket: the one named (tailscaled:/path), else
 * TS_SOCKET as containerboot reads it from the same environment, else
 * whichever of containerboot's and tailscaled's defaults exists.
 */
static const char *
ts_socket(const char *src)
{
	const char *env = getenv("TS_SOCKET");
	struct stat st;

	if (src[10] == ':')
		return src + 11;
	if (env && *env)
		return env;
	if (stat(TS_SOCKET_CB, &st) == 0 && S_ISSOCK(st.st_mode))
		return TS_SOCKET_CB;
	return TS_SOCKET;
}

static int
write_all(int fd, const void *buf, size_t n)
{
	const char *b = buf;
	ssize_t	 w;

	while (n > 0) {
		if ((w = write(fd, b, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * A check's child: the one transfer of source p->cur, then the result
 * record and the body on FD, then _exit. Only async-signal-safe calls
 * would be strictly allowed after fork() in a threaded program; the agent
 * has one thread, so the child may load libcurl and use stdio.
 */
static void __attribute__((noreturn))
child_run(struct path *p, int fd, pid_t parent)
{
	const char *src = p->urls[p->cur];
	struct xfer_res *r = &p->res;
	struct curl_slist *hdrs = NULL;
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;
	char	 err[CURL_ERROR_SIZE] = "";
	CURL	*e;

	/* the loop's handlers (a non-signalfd libev writes to its own pipe
	 * from them) and blocked set are the agent's, not ours */
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);	/* a reader gone: EPIPE, then exit */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(1);
	/* nothing of the agent's (loop, netlink, the other path's pipe) */
	if (fd > 3)
		close_range(3, (unsigned)fd - 1, 0);
	close_range((unsigned)fd + 1, ~0U, 0);

	memset(r, 0, sizeof(*r));
	p->blen = 0;
	if (curl_load(r->err, sizeof(r->err)) < 0 || (e = curl_easy_init()) == NULL) {
		r->rc = CURLE_FAILED_INIT;
		if (!r->err[0])
			snprintf(r->err, sizeof(r->err), "curl_easy_init failed");
		goto out;
	}
	if (!strcmp(src, "gluetun")) {
		/* Gluetun's own check went through the tunnel; we only talk
		 * to it over loopback */
		curl_easy_setopt(e, CURLOPT_URL, GLUETUN_URL);
	} else if (!strncmp(src, "tailscaled", 10)) {
		curl_easy_setopt(e, CURLOPT_URL, TS_STATUS_URL);
		curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, ts_socket(src));
		hdrs = curl_slist_append(NULL, "Sec-Tailscale: localapi");
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	} else {
		char	 ifbuf[IFNAMSIZ + 4];
		curl_easy_setopt(e, CURLOPT_URL, src);
		curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
		curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, p);
		if (p->id == EXIT_VPN) {
			/* "if!": the device, never an address or host name */
			snprintf(ifbuf, sizeof(ifbuf), "if!%s", cfg->vpn_if);
			curl_easy_setopt(e, CURLOPT_INTERFACE, ifbuf);
		}
	}
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	/* an HTTP(S)_PROXY in the environment would carry both paths */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
	curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, EXITIP_TIMEOUT);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, EXITIP_CONNECT);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
	r->rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->code);
	if (r->rc != CURLE_OK)
		snprintf(r->err, sizeof(r->err), "%s", r->toolong ? "answer too long" :
		    err[0] ? err : curl_easy_strerror(r->rc));
out:
	if (r->rc != CURLE_OK)
		p->blen = 0;
	if (write_all(fd, r, sizeof(*r)) < 0 || write_all(fd, p->body, p->blen) < 0)
		_exit(1);
	_exit(0);
}

/* ---- the check, seen from the agent ------------------------------------- */

static void
pipe_close(struct path *p)
{
	if (p->fd < 0)
		return;
	ev_io_stop(loop, &p->rio);
	close(p->fd);
	p->fd = -1;
}

/* SIGKILL to the check's child, once (it stays a zombie until reaped). */
static void
check_kill(struct path *p)
{
	if (p->pid && !p->killed)
		kill(p->pid, SIGKILL);
	p->killed = true;
}

/* The check is over once its pipe is closed and its child reaped. */
static void
check_done(struct path *p)
{
	if (!p->busy || p->fd >= 0 || p->pid)
		return;
	ev_timer_stop(loop, &p->tmo);
	p->busy = false;
	finish(p);
}

static void
pipe_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct path *p = w->data;
	char	*dst, extra;
	size_t	 room;
	ssize_t	 n;

	for (;;) {
		if (p->hlen < sizeof(p->res)) {
			dst = (char *)&p->res + p->hlen;
			room = sizeof(p->res) - p->hlen;
		} else if (p->blen < EXITIP_BODY_MAX) {
			dst = p->body + p->blen;
			room = EXITIP_BODY_MAX - p->blen;
		} else {
			dst = &extra;
			room = 1;
		}
		if ((n = read(p->fd, dst, room)) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			break;		/* as end of file: the answer is short */
		}
		if (n == 0)
			break;
		if (dst == &extra) {
			/* the child caps the body: this is no check's answer */
			p->overflow = true;
			check_kill(p);
			break;
		}
		if (p->hlen < sizeof(p->res))
			p->hlen += (size_t)n;
		else
			p->blen += (size_t)n;
	}
	pipe_close(p);
	check_done(p);
}

static void
child_cb(struct ev_loop *l, ev_child *w, int revents)
{
	struct path *p = w->data;

	ev_child_stop(loop, w);
	if (w->rpid != p->pid)
		return;
	p->status = w->rstatus;
	p->pid = 0;
	check_done(p);
}

/* EXITIP_TIMEOUT passed: kill the child; EXITIP_REAP more: stop waiting. */
static void
tmo_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct path *p = w->data;

	if (p->pid && !p->killed) {
		check_kill(p);
		p->timedout = true;
		pipe_close(p);
		ev_timer_set(&p->tmo, EXITIP_REAP, 0);
		ev_timer_start(loop, &p->tmo);
		return;
	}
	if (p->pid) {
		/* someone else collected it (a waitpid(-1) outside libev) */
		log_warnx("exitip: %s check process %d killed but not reaped by us",
		    p->name, (int)p->pid);
		ev_child_stop(loop, &p->cw);
		p->pid = 0;
	}
	p->timedout = true;
	pipe_close(p);
	check_done(p);
}

/*
 * Ends the check in flight without a result (the tunnel changed, or the
 * agent stops): its child is killed; WAIT collects it here, otherwise the
 * loop's reaper does and p->pid stays set until then.
 */
static void
check_abort(struct path *p, bool wait)
{
	ev_timer_stop(loop, &p->tmo);
	pipe_close(p);
	p->busy = false;
	if (!p->pid)
		return;
	check_kill(p);
	if (wait) {
		ev_child_stop(loop, &p->cw);
		while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
			;
		p->pid = 0;
	}
}

/* ---- rounds ------------------------------------------------------------- */

static bool
is_third_party(const char *src)
{
	return strcmp(src, "gluetun") && strncmp(src, "tailscaled", 10);
}

static void
path_begin(struct path *p)
{
	const char *src = p->urls[p->cur];
	char	 label[EXITIP_URL_LEN];
	pid_t	 parent = getpid(), pid;
	int	 fds[2] = { -1, -1 };

	src_label(src, label, sizeof(label));
	p->third_party = is_third_party(src);
	if (p->third_party)
		p->last_third = ev_now(loop);
	if (pipe2(fds, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		log_warn("exitip: %s check via %s: cannot start it", p->name, label);
		if (fds[0] >= 0) {
			close(fds[0]);
			close(fds[1]);
		}
		p->fails++;
		schedule_next(p);
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		child_run(p, fds[1], parent);
	}
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	memset(&p->res, 0, sizeof(p->res));
	p->hlen = p->blen = 0;
	p->killed = p->timedout = p->overflow = false;
	p->status = 0;
	p->busy = true;
	p->pid = pid;
	p->fd = fds[0];
	/* the loop reaps only between callbacks: no exit slips by before this */
	ev_child_set(&p->cw, pid, 0);
	ev_child_start(loop, &p->cw);
	ev_io_set(&p->rio, p->fd, EV_READ);
	ev_io_start(loop, &p->rio);
	ev_timer_set(&p->tmo, EXITIP_TIMEOUT, 0);
	ev_timer_start(loop, &p->tmo);
	log_debug("exitip: %s check via %s (pid %d)", p->name, label, (int)pid);
}

/*
 * Starts the check of source p->cur, unless it is a third party and the
 * other path began a third-party check too recently: then later.
 */
static void
path_try(struct path *p)
{
	struct path *o = &paths[!p->id];

	if (is_third_party(p->urls[p->cur]) && ((o->busy && o->third_party) ||
	    (o->last_third > 0 && ev_now(loop) - o->last_third < separation()))) {
		p->resume = true;
		schedule(p, separation() * rnd(1.0, 2.0));
		return;
	}
	path_begin(p);
}

static void
sched_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct path *p = w->data;

	if (p->busy || p->nurls == 0)
		return;
	if (p->pid) {
		/* an aborted check's child is not reaped yet: one at a time */
		schedule(p, 0.5);
		return;
	}
	if (p->id == EXIT_VPN && !vstate.vpn_up) {
		/* nothing to learn through a tunnel that is down; the core's
		 * exitip_kick() brings us back when it comes up */
		p->resume = false;
		set_addr(p, NULL, NULL);
		schedule_next(p);
		return;
	}
	if (!p->resume)
		p->cur = 0;
	p->resume = false;
	path_try(p);
}

void
exitip_kick(void)
{
	struct path *p = &paths[EXIT_VPN];

	if (!started)
		return;
	/* the old address may not be true any more: forget it, never guess */
	if (p->busy)
		check_abort(p, false);
	set_addr(p, NULL, NULL);
	p->fails = 0;
	p->resume = false;
	if (vstate.vpn_up)
		schedule(p, rnd(1.0, 3.0));	/* the tunnel needs a moment */
	else
		schedule_next(p);
}

void
exitip_start(struct ev_loop *l, const struct config *c)
{
	static char bodies[2][EXITIP_BODY_MAX];

	loop = l;
	cfg = c;
	if (c->n_exit_ip_url == 0 && c->n_lan_ip_url == 0)
		return;		/* both "none": no checks */
	for (int i = 0; i < 2; i++) {
		struct path *p = &paths[i];
		p->id = i;
		p->name = i == EXIT_VPN ? "vpn" : "lan";
		p->urls = i == EXIT_VPN ? c->exit_ip_url : c->lan_ip_url;
		p->nurls = i == EXIT_VPN ? c->n_exit_ip_url : c->n_lan_ip_url;
		p->body = bodies[i];
		p->fd = -1;
		ev_init(&p->rio, pipe_cb);
		p->rio.data = p;
		ev_init(&p->cw, child_cb);
		p->cw.data = p;
		ev_init(&p->tmo, tmo_cb);
		p->tmo.data = p;
		ev_init(&p->sched, sched_cb);
		p->sched.data = p;
	}
	started = true;
	schedule(&paths[EXIT_VPN], rnd(1.0, 5.0));
	schedule(&paths[EXIT_LAN], rnd(2.0, 10.0));
}

void
exitip_stop(void)
{
	if (!started)
		return;
	for (int i = 0; i < 2; i++) {
		struct path *p = &paths[i];
		ev_timer_stop(loop, &p->sched);
		check_abort(p, true);
	}
	started = false;
}
