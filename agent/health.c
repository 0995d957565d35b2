/*
 * health.c: the agent's HTTP endpoint on VNODE_HEALTH_LISTEN, inside the
 * libev loop: /healthz, /readyz, /metrics (Prometheus text format 0.0.4),
 * /status (JSON). Everything it serves comes from vstate, the kill
 * switch's counters (counters.c) and the exit addresses (exitip.c).
 *
 * A hostile or broken client must not stall the loop or grow memory:
 * - all sockets are non-blocking; a response is written as far as the
 *   socket takes it, and the connection waits for POLLOUT for the rest;
 * - each connection has a fixed request buffer (HTTP_MAX_REQUEST) and a
 *   fixed response buffer (HEALTH_OUT_MAX) in a static table of
 *   HEALTH_MAX_CONNS slots: nothing is allocated per request or connection;
 * - a request must be complete HEALTH_HEADER_TIMEOUT s after its first
 *   byte (slowloris), an idle keep-alive connection lives
 *   HEALTH_IDLE_TIMEOUT s, a stalled reader HEALTH_WRITE_TIMEOUT s;
 * - when every slot is taken, a new connection evicts the least recently
 *   active idle one (or, if none is idle, the least recently active), so
 *   a flood of idle connections cannot lock the probes out.
 * Pipelined requests are answered in order, one at a time: the next is
 * parsed only once the previous response has left.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "vnoded.h"

#define HEALTH_MAX_CONNS	64
#define HEALTH_OUT_MAX		16384	/* bytes: largest response */
#define HEALTH_HEADER_TIMEOUT	5.0	/* s: first byte to blank line */
#define HEALTH_IDLE_TIMEOUT	15.0	/* s: keep-alive wait for a request */
#define HEALTH_WRITE_TIMEOUT	10.0	/* s: a response may take to leave */
#define HEALTH_SOCKBUF		16384	/* bytes: SO_SNDBUF and SO_RCVBUF asked */
#define HEALTH_LINGER		2.0	/* s: discarding input after a final response */
#define HEALTH_LINGER_BYTES	65536	/* bytes: ... or until this much came */
#define HEALTH_COUNTER_AGE	1.0	/* s: nft counters cached this long */

/*
 * Readers of classify.c's count: weak, so the agent links (and reports
 * vstate.sockets_marked) while the classifier is not part of the build.
 */
uint64_t classify_sockets_marked(void) __attribute__((weak));

enum cstate { C_FREE, C_READ, C_WRITE, C_DRAIN };

struct hconn {
	enum cstate	 st;
	int		 fd;
	ev_io		 io;
	ev_tstamp	 deadline;	/* closed when the loop passes it */
	ev_tstamp	 last;		/* last activity, for eviction */
	bool		 close_after;	/* after the pending response */
	bool		 eof;		/* the client sent FIN */
	size_t		 inlen;
	size_t		 outlen, outoff;
	char		 in[HTTP_MAX_REQUEST];
	char		 out[HEALTH_OUT_MAX];
};

static struct hconn	 conns[HEALTH_MAX_CONNS];
static int		 nconns;
static struct ev_loop	*loop;
static const struct config *cfg;
static int		 lfd = -1;
static ev_io		 accept_w;
static ev_timer		 sweep_w, backoff_w;

/* self-observation, in /metrics */
static uint64_t		 n_evicted, n_timeouts;
static const int	 codes[] = { 200, 400, 404, 405, 413, 414, 431, 500,
				    501, 503, 505 };
static uint64_t		 n_by_code[sizeof(codes) / sizeof(codes[0])];

/* A bounded writer: snprintf into a fixed buffer, remember overflow. */
struct out {
	char	*p;
	size_t	 len, cap;
	bool	 over;
};

static void out_printf(struct out *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
out_printf(struct out *o, const char *f, ...)
{
	va_list	 ap;
	int	 n;

	if (o->over)
		return;
	va_start(ap, f);
	n = vsnprintf(o->p + o->len, o->cap - o->len, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		o->over = true;
	else
		o->len += (size_t)n;
}

/* s with \ " and newline escaped, for label values and JSON strings. */
static void
out_escaped(struct out *o, const char *s, bool json)
{
	for (; *s && !o->over; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			out_printf(o, "\\%c", c);
		else if (c == '\n')
			out_printf(o, "\\n");
		else if (c < 0x20)
			out_printf(o, json ? "\\u%04x" : "?", c);
		else
			out_printf(o, "%c", c);
	}
}

static const char *
reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default:  return "Internal Server Error";
	}
}

static void
count_code(int code)
{
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i] == code)
			n_by_code[i]++;
}

/* ---- readiness ---------------------------------------------------------- */

int
health_failures(const struct config *c, char *buf, size_t n)
{
	struct out o = { buf, 0, n, false };
	int	 bad = 0;
	char	 a[INET6_ADDRSTRLEN];

	if (n)
		buf[0] = '\0';
#define FAIL(...) do { out_printf(&o, __VA_ARGS__); out_printf(&o, "\n"); bad++; } while (0)
	if (!vstate.ok_tun)
		FAIL("tun: %s is down or has no address", c->vpn_if);
	if (!vstate.ok_vpn_route)
		FAIL("vpn_route: no default route via %s in table %u",
		    c->vpn_if, c->vpn_table);
	if (!vstate.ok_rules)
		FAIL("rules: the rule block at priorities %u-%u is incomplete",
		    c->rule_prio, c->rule_prio + RULE_SLOTS - 1);
	if (!vstate.ok_nft)
		FAIL("nft: table inet %s is missing or incomplete", NFT_TABLE);
	if (!vstate.ok_classifier && vstate.attach == ATTACH_WAITING)
		FAIL(READY_WAITING "%s", c->attach_name);
	else if (!vstate.ok_classifier && vstate.attach == ATTACH_REFUSED)
		FAIL("classifier: the cgroup of pid %d (%s) cannot be classified "
		    "(see the log)", vstate.attach_pid, vstate.attach_comm);
	else if (!vstate.ok_classifier)
		FAIL("classifier: tailscaled's sockets are not being marked (%s)",
		    vstate.classifier ? vstate.classifier : "none");
	if (!vstate.ok_ts_if)
		FAIL("ts_if: %s does not exist", c->ts_if);
	if (!vstate.ok_child)
		FAIL("child: the supervised command is not running");
	if (c->require_unlinkable && vstate.exit_linked)
		FAIL("unlinkable: clients and tailscaled both leave from %s "
		    "(VNODE_REQUIRE_UNLINKABLE=1)",
		    addr_str(&vstate.exit_vpn, a, sizeof(a)));
#undef FAIL
	return bad;
}

/*
 * The guard is in place for tailscaled to start when nothing fails but:
 * the tunnel (tun, vpn_route: the kill switch holds while it is down),
 * tailscale0 (ts_if: tailscaled makes it), and --attach-name's classifier
 * waiting for its process (the attach follows within ATTACH_FAST_S of the
 * process's start). Anything else, a refused cgroup included, is not.
 */
bool
health_armed(const char *fails)
{
	static const char *const excused[] = { "tun: ", "vpn_route: ", "ts_if: ",
	    READY_WAITING, NULL };
	const char *l = fails;

	while (*l) {
		size_t	 len = strcspn(l, "\n");
		int	 i;

		for (i = 0; len && excused[i]; i++)
			if (!strncmp(l, excused[i], strlen(excused[i])))
				break;
		if (len && !excused[i])
			return false;
		l += len + (l[len] == '\n');
	}
	return true;
}

/* ---- pages -------------------------------------------------------------- */

static uint64_t
sockets_marked(void)
{
	return classify_sockets_marked ? classify_sockets_marked() :
	    vstate.sockets_marked;
}

static void
metric_head(struct out *o, const char *name, const char *type,
    const char *help)
{
	out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
page_metrics(struct out *o)
{
	static const char *const repair_names[REPAIR_MAX] = {
		[REPAIR_ROUTE] = "route", [REPAIR_RULE] = "rule",
		[REPAIR_NFT] = "nft" };
	static const struct { enum ctr_id id; const char *label; } fwd[] = {
		{ CTR_FWD_OUT, "client_out" }, { CTR_FWD_IN, "client_in" } };
	static const struct { enum ctr_id id; const char *label; } drops[] = {
		{ CTR_DROP_FORWARD, "forward" }, { CTR_DROP_INPUT, "input" },
		{ CTR_LEAK_FLOW, "leak_flow" }, { CTR_LEAK_DNS, "leak_dns" },
		{ CTR_LEAK_CONTROL, "leak_control" },
		{ CTR_LEAK_SOURCE, "leak_source" } };
	const struct { const char *name; bool ok; } checks[] = {
		{ "tun", vstate.ok_tun }, { "vpn_route", vstate.ok_vpn_route },
		{ "rules", vstate.ok_rules }, { "nft", vstate.ok_nft },
		{ "classifier", vstate.ok_classifier },
		{ "ts_if", vstate.ok_ts_if }, { "child", vstate.ok_child } };
	const struct addr *ex[2] = { &vstate.exit_vpn, &vstate.exit_lan };
	const char *exsrc[2] = { vstate.exit_vpn_src, vstate.exit_lan_src };
	const int64_t exat[2] = { vstate.exit_vpn_at, vstate.exit_lan_at };
	const char *paths[2] = { "vpn", "lan" };
	char	 a[INET6_ADDRSTRLEN], fails[1024];
	size_t	 i;

	counters_refresh(HEALTH_COUNTER_AGE);

	metric_head(o, "vnode_build_info", "gauge", "vnoded's version, as a label.");
	out_printf(o, "vnode_build_info{version=\"%s\"} 1\n", VNODE_VERSION);
	metric_head(o, "vnode_start_time_seconds", "gauge",
	    "When vnoded started, in seconds since the epoch.");
	out_printf(o, "vnode_start_time_seconds %" PRId64 "\n", vstate.started);
	metric_head(o, "vnode_ready", "gauge",
	    "1 when every readiness check holds (GET /readyz answers 200).");
	out_printf(o, "vnode_ready %d\n",
	    health_failures(cfg, fails, sizeof(fails)) == 0);
	metric_head(o, "vnode_armed", "gauge",
	    "1 when tailscaled may start: every readiness check holds but the "
	    "tunnel, tailscale0 and --attach-name's wait (vnoded probe --armed).");
	out_printf(o, "vnode_armed %d\n", health_armed(fails));
	metric_head(o, "vnode_check", "gauge",
	    "Each readiness check: 1 holds, 0 fails.");
	for (i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		out_printf(o, "vnode_check{check=\"%s\"} %d\n", checks[i].name,
		    checks[i].ok);
	metric_head(o, "vnode_vpn_up", "gauge",
	    "1 while the tunnel is up, addressed and routed.");
	out_printf(o, "vnode_vpn_up %d\n", vstate.vpn_up);
	metric_head(o, "vnode_vpn_last_transition_timestamp_seconds", "gauge",
	    "When the tunnel last went up or down, in seconds since the epoch.");
	out_printf(o, "vnode_vpn_last_transition_timestamp_seconds %" PRId64 "\n",
	    vstate.vpn_since);
	metric_head(o, "vnode_tunnel_transitions_total", "counter",
	    "Tunnel transitions seen (down, up, new address).");
	out_printf(o, "vnode_tunnel_transitions_total %" PRIu64 "\n",
	    vstate.transitions);
	metric_head(o, "vnode_repairs_total", "counter",
	    "Objects someone else deleted or changed and vnoded put back.");
	for (i = 0; i < REPAIR_MAX; i++)
		out_printf(o, "vnode_repairs_total{object=\"%s\"} %" PRIu64 "\n",
		    repair_names[i], vstate.repairs[i]);
	metric_head(o, "vnode_conntrack_flushed_total", "counter",
	    "Client-flow conntrack entries removed on tunnel transitions.");
	out_printf(o, "vnode_conntrack_flushed_total %" PRIu64 "\n",
	    vstate.ct_flushed);
	metric_head(o, "vnode_sockets_classified_total", "counter",
	    "Sockets of tailscaled's cgroup the classifier marked as control class.");
	out_printf(o, "vnode_sockets_classified_total %" PRIu64 "\n",
	    sockets_marked());
	metric_head(o, "vnode_nft_counters_present", "gauge",
	    "1 when the last read found every named counter of table inet vnode.");
	out_printf(o, "vnode_nft_counters_present %d\n", counters_present());
	metric_head(o, "vnode_forwarded_packets_total", "counter",
	    "Client packets forwarded between tailscale0 and tun0.");
	for (i = 0; i < 2; i++)
		out_printf(o, "vnode_forwarded_packets_total{direction=\"%s\"} %" PRIu64 "\n",
		    fwd[i].label, counters_get(fwd[i].id).packets);
	metric_head(o, "vnode_forwarded_bytes_total", "counter",
	    "Client bytes forwarded between tailscale0 and tun0.");
	for (i = 0; i < 2; i++)
		out_printf(o, "vnode_forwarded_bytes_total{direction=\"%s\"} %" PRIu64 "\n",
		    fwd[i].label, counters_get(fwd[i].id).bytes);
	metric_head(o, "vnode_killswitch_dropped_packets_total", "counter",
	    "Packets the kill switch dropped, by reason.");
	for (i = 0; i < sizeof(drops) / sizeof(drops[0]); i++)
		out_printf(o, "vnode_killswitch_dropped_packets_total{reason=\"%s\"} %" PRIu64 "\n",
		    drops[i].label, counters_get(drops[i].id).packets);
	metric_head(o, "vnode_killswitch_dropped_bytes_total", "counter",
	    "Bytes the kill switch dropped, by reason.");
	for (i = 0; i < sizeof(drops) / sizeof(drops[0]); i++)
		out_printf(o, "vnode_killswitch_dropped_bytes_total{reason=\"%s\"} %" PRIu64 "\n",
		    drops[i].label, counters_get(drops[i].id).bytes);

	metric_head(o, "vnode_exit_address_info", "gauge",
	    "The address the internet sees: path vpn for clients, lan for tailscaled. Absent while unknown.");
	for (i = 0; i < 2; i++) {
		if (!ex[i]->family)
			continue;
		out_printf(o, "vnode_exit_address_info{path=\"%s\",address=\"%s\",source=\"",
		    paths[i], addr_str(ex[i], a, sizeof(a)));
		out_escaped(o, exsrc[i], false);
		out_printf(o, "\"} 1\n");
	}
	metric_head(o, "vnode_exit_address_known", "gauge",
	    "1 when the path's exit address was learned at the last check.");
	for (i = 0; i < 2; i++)
		out_printf(o, "vnode_exit_address_known{path=\"%s\"} %d\n",
		    paths[i], ex[i]->family != 0);
	metric_head(o, "vnode_exit_address_last_success_timestamp_seconds", "gauge",
	    "When the path's exit address was last learned (0: never).");
	for (i = 0; i < 2; i++)
		out_printf(o, "vnode_exit_address_last_success_timestamp_seconds{path=\"%s\"} %" PRId64 "\n",
		    paths[i], exat[i]);
	metric_head(o, "vnode_exit_address_checks_total", "counter",
	    "Exit address checks by path and result.");
	for (i = 0; i < 2; i++) {
		out_printf(o, "vnode_exit_address_checks_total{path=\"%s\",result=\"ok\"} %" PRIu64 "\n",
		    paths[i], vstate.exit_checks[i][0]);
		out_printf(o, "vnode_exit_address_checks_total{path=\"%s\",result=\"error\"} %" PRIu64 "\n",
		    paths[i], vstate.exit_checks[i][1]);
	}
	metric_head(o, "vnode_unlinkable", "gauge",
	    "1 when both exit addresses are known, of one family, and differ; 0 when equal or not comparable.");
	out_printf(o, "vnode_unlinkable %d\n", vstate.exit_comparable &&
	    !vstate.exit_linked);
	metric_head(o, "vnode_exit_addresses_equal", "gauge",
	    "1 when clients and tailscaled leave from the same address: the VPN is not carrying client traffic.");
	out_printf(o, "vnode_exit_addresses_equal %d\n", vstate.exit_linked);

	metric_head(o, "vnode_health_connections", "gauge",
	    "Open connections to this endpoint.");
	out_printf(o, "vnode_health_connections %d\n", nconns);
	metric_head(o, "vnode_health_connections_closed_total", "counter",
	    "Connections this endpoint closed early, by reason.");
	out_printf(o, "vnode_health_connections_closed_total{reason=\"evicted\"} %" PRIu64 "\n",
	    n_evicted);
	out_printf(o, "vnode_health_connections_closed_total{reason=\"timeout\"} %" PRIu64 "\n",
	    n_timeouts);
	metric_head(o, "vnode_health_responses_total", "counter",
	    "Responses of this endpoint by status code.");
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		out_printf(o, "vnode_health_responses_total{code=\"%d\"} %" PRIu64 "\n",
		    codes[i], n_by_code[i]);
}

static void
json_str(struct out *o, const char *key, const char *v, bool comma)
{
	out_printf(o, "\"%s\":\"", key);
	out_escaped(o, v ? v : "", true);
	out_printf(o, "\"%s", comma ? "," : "");
}

static void
json_src(struct out *o, const char *src)
{
	if (src[0])
		json_str(o, "source", src, true);
	else
		out_printf(o, "\"source\":null,");
}

static void
json_addr(struct out *o, const char *key, const struct addr *a, bool comma)
{
	char	 b[INET6_ADDRSTRLEN];

	if (a->family)
		out_printf(o, "\"%s\":\"%s\"", key, addr_str(a, b, sizeof(b)));
	else
		out_printf(o, "\"%s\":null", key);
	out_printf(o, "%s", comma ? "," : "");
}

static void
json_time(struct out *o, const char *key, int64_t t, bool comma)
{
	char	 b[32];
	struct tm tm;
	time_t	 tt = (time_t)t;

	if (t <= 0) {
		out_printf(o, "\"%s\":null%s", key, comma ? "," : "");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm);
	out_printf(o, "\"%s\":\"%s\"%s", key, b, comma ? "," : "");
}

static void
page_status(struct out *o)
{
	static const struct { enum ctr_id id; const char *key; } ctr_keys[] = {
		{ CTR_FWD_OUT, "forwarded_client_out" },
		{ CTR_FWD_IN, "forwarded_client_in" },
		{ CTR_DROP_FORWARD, "dropped_forward" },
		{ CTR_DROP_INPUT, "dropped_input" },
		{ CTR_LEAK_FLOW, "dropped_leak_flow" },
		{ CTR_LEAK_DNS, "dropped_leak_dns" },
		{ CTR_LEAK_CONTROL, "dropped_leak_control" },
		{ CTR_LEAK_SOURCE, "dropped_leak_source" } };
	char	 fails[1024], *line, *save;
	int	 nfail;
	unsigned nrep, first;
	struct timespec now;
	bool	 firstf = true, armed;
	static const char *const attach_states[] = { [ATTACH_OFF] = "off",
	    [ATTACH_WAITING] = "waiting", [ATTACH_ON] = "attached",
	    [ATTACH_REFUSED] = "refused" };

	counters_refresh(HEALTH_COUNTER_AGE);
	clock_gettime(CLOCK_REALTIME, &now);
	nfail = health_failures(cfg, fails, sizeof(fails));
	armed = health_armed(fails);	/* before strtok_r cuts the lines */

	out_printf(o, "{\"version\":\"%s\",", VNODE_VERSION);
	out_printf(o, "\"state\":\"%s\",", vstate.vpn_up ? "up" : "down");
	out_printf(o, "\"ready\":%s,", nfail ? "false" : "true");
	out_printf(o, "\"armed\":%s,", armed ? "true" : "false");
	/* --attach-name: what the agent waits for or watches */
	out_printf(o, "\"attach\":{\"state\":\"%s\",", attach_states[vstate.attach]);
	json_str(o, "names", cfg->attach_name, true);
	if (vstate.attach_pid > 0) {
		out_printf(o, "\"pid\":%d,", vstate.attach_pid);
		json_str(o, "comm", vstate.attach_comm, false);
	} else
		out_printf(o, "\"pid\":null,\"comm\":null");
	out_printf(o, "},");
	out_printf(o, "\"failing\":[");
	for (line = strtok_r(fails, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save)) {
		out_printf(o, "%s\"", firstf ? "" : ",");
		out_escaped(o, line, true);
		out_printf(o, "\"");
		firstf = false;
	}
	out_printf(o, "],");
	out_printf(o, "\"checks\":{\"tun\":%s,\"vpn_route\":%s,\"rules\":%s,"
	    "\"nft\":%s,\"classifier\":%s,\"ts_if\":%s,\"child\":%s},",
	    vstate.ok_tun ? "true" : "false", vstate.ok_vpn_route ? "true" : "false",
	    vstate.ok_rules ? "true" : "false", vstate.ok_nft ? "true" : "false",
	    vstate.ok_classifier ? "true" : "false", vstate.ok_ts_if ? "true" : "false",
	    vstate.ok_child ? "true" : "false");
	out_printf(o, "\"now\":%lld,", (long long)now.tv_sec);
	json_time(o, "started", vstate.started, true);
	out_printf(o, "\"started_unix\":%" PRId64 ",", vstate.started);
	json_time(o, "since", vstate.vpn_since, true);
	out_printf(o, "\"since_unix\":%" PRId64 ",", vstate.vpn_since);
	out_printf(o, "\"interfaces\":{");
	json_str(o, "lan", cfg->lan_if, true);
	json_str(o, "vpn", cfg->vpn_if, true);
	json_str(o, "tailscale", cfg->ts_if, false);
	out_printf(o, "},\"addresses\":{");
	json_addr(o, "tun4", &vstate.tun_addr4, true);
	json_addr(o, "tun6", &vstate.tun_addr6, true);
	json_addr(o, "lan4", &vstate.lan_addr4, true);
	json_addr(o, "lan6", &vstate.lan_addr6, false);
	out_printf(o, "},\"exit\":{\"vpn\":{");
	json_addr(o, "address", &vstate.exit_vpn, true);
	json_src(o, vstate.exit_vpn_src);
	json_time(o, "checked", vstate.exit_vpn_at, false);
	out_printf(o, "},\"lan\":{");
	json_addr(o, "address", &vstate.exit_lan, true);
	json_src(o, vstate.exit_lan_src);
	json_time(o, "checked", vstate.exit_lan_at, false);
	/* unlinkable: null while not both known in one family; never a guess */
	out_printf(o, "},\"unlinkable\":%s,\"require_unlinkable\":%s},",
	    vstate.exit_linked ? "false" : !vstate.exit_comparable ? "null" : "true",
	    cfg->require_unlinkable ? "true" : "false");
	out_printf(o, "\"transitions\":%" PRIu64 ",", vstate.transitions);
	out_printf(o, "\"repairs\":{\"route\":%" PRIu64 ",\"rule\":%" PRIu64
	    ",\"nft\":%" PRIu64 "},", vstate.repairs[REPAIR_ROUTE],
	    vstate.repairs[REPAIR_RULE], vstate.repairs[REPAIR_NFT]);
	out_printf(o, "\"conntrack_flushed\":%" PRIu64 ",", vstate.ct_flushed);
	json_str(o, "classifier", vstate.classifier ? vstate.classifier : "none", true);
	out_printf(o, "\"sockets_classified\":%" PRIu64 ",", sockets_marked());
	out_printf(o, "\"counters_present\":%s,\"counters\":{",
	    counters_present() ? "true" : "false");
	for (size_t i = 0; i < sizeof(ctr_keys) / sizeof(ctr_keys[0]); i++) {
		struct ctr_val v = counters_get(ctr_keys[i].id);
		out_printf(o, "%s\"%s\":{\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
		    i ? "," : "", ctr_keys[i].key, v.packets, v.bytes);
	}
	out_printf(o, "},");
	if (vstate.child_pid > 0)
		out_printf(o, "\"child_pid\":%d,", vstate.child_pid);
	else
		out_printf(o, "\"child_pid\":null,");
	/* the ring, oldest first */
	out_printf(o, "\"last_repairs\":[");
	nrep = vstate.n_repairs_logged < STATE_LAST_REPAIRS ?
	    vstate.n_repairs_logged : STATE_LAST_REPAIRS;
	first = vstate.n_repairs_logged - nrep;
	for (unsigned k = 0; k < nrep; k++) {
		char	 tmp[sizeof(vstate.last_repairs[0])];
		/* copy: a slot may be unterminated if a writer forgot */
		memcpy(tmp, vstate.last_repairs[(first + k) % STATE_LAST_REPAIRS],
		    sizeof(tmp));
		tmp[sizeof(tmp) - 1] = '\0';
		out_printf(o, "%s\"", k ? "," : "");
		out_escaped(o, tmp, true);
		out_printf(o, "\"");
	}
	out_printf(o, "]}\n");
}

/* ---- connections -------------------------------------------------------- */

static void conn_io_cb(struct ev_loop *, ev_io *, int);

static void
conn_close(struct hconn *c)
{
	ev_io_stop(loop, &c->io);
	close(c->fd);
	c->fd = -1;
	c->st = C_FREE;
	c->inlen = c->outlen = c->outoff = 0;
	if (--nconns == 0)
		ev_timer_stop(loop, &sweep_w);
}

static void
conn_watch(struct hconn *c, int events)
{
	if (c->io.events == events && ev_is_active(&c->io))
		return;
	ev_io_stop(loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(loop, &c->io);
}

/* Fills c->out with a response: headers, then body unless HEAD. */
static void
respond(struct hconn *c, int code, bool head, const char *ctype,
    const char *extra_hdr, const char *body, size_t blen)
{
	struct out o = { c->out, 0, sizeof(c->out), false };

	count_code(code);
	out_printf(&o, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "%s"
	    "Connection: %s\r\n\r\n",
	    code, reason(code), ctype, blen, extra_hdr ? extra_hdr : "",
	    c->close_after ? "close" : "keep-alive");
	if (!head && !o.over) {
		if (blen > o.cap - o.len)
			o.over = true;
		else {
			memcpy(o.p + o.len, body, blen);
			o.len += blen;
		}
	}
	c->outlen = o.over ? 0 : o.len;
	c->outoff = 0;
}

static void
respond_text(struct hconn *c, int code, bool head, const char *text)
{
	respond(c, code, head, "text/plain; charset=utf-8", code == 405 ?
	    "Allow: GET, HEAD\r\n" : NULL, text, strlen(text));
}

/*
 * Renders a page into a scratch buffer, then copies it behind the headers.
 * One static scratch buffer serves every connection: a page is rendered
 * and copied out before anything else runs.
 */
static void
respond_page(struct hconn *c, bool head, const char *ctype,
    void (*render)(struct out *))
{
	static char	 scratch[HEALTH_OUT_MAX - 512];
	struct out	 o = { scratch, 0, sizeof(scratch), false };

	render(&o);
	if (o.over) {
		log_warnx("health: response larger than %zu bytes, not sent",
		    sizeof(scratch));
		c->close_after = true;
		respond_text(c, 500, head, "response too large\n");
		return;
	}
	respond(c, 200, head, ctype, NULL, scratch, o.len);
}

static void
handle(struct hconn *c, const struct http_req *r)
{
	enum { P_HEALTHZ, P_READYZ, P_METRICS, P_STATUS, P_NONE } page = P_NONE;
	static const char *const names[] = { "/healthz", "/readyz", "/metrics",
	    "/status" };
	bool	 head = r->method == HTTP_HEAD;

	for (int i = 0; i < 4; i++)
		if (r->path_len == strlen(names[i]) &&
		    !memcmp(r->path, names[i], r->path_len))
			page = i;
	if (page == P_NONE) {
		respond_text(c, 404, head, "not found\n");
		return;
	}
	if (r->method == HTTP_OTHER) {
		respond_text(c, 405, false, "method not allowed\n");
		return;
	}
	switch (page) {
	case P_HEALTHZ:
		respond_text(c, 200, head, "ok\n");
		break;
	case P_READYZ: {
		char	 fails[1024];
		if (health_failures(cfg, fails, sizeof(fails)) == 0)
			respond_text(c, 200, head, "ok\n");
		else
			respond_text(c, 503, head, fails);
		break;
	}
	case P_METRICS:
		respond_page(c, head, "text/plain; version=0.0.4; charset=utf-8",
		    page_metrics);
		break;
	case P_STATUS:
		respond_page(c, head, "application/json", page_status);
		break;
	default:
		break;
	}
}

/*
 * Sends what is pending. Returns 1 when all of it left, 0 when the socket
 * is full (the connection now waits for EV_WRITE), -1 when it was closed.
 */
static int
conn_flush(struct hconn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
		    MSG_NOSIGNAL);
		if (n > 0) {
			c->outoff += (size_t)n;
			c->last = ev_now(loop);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->st != C_WRITE)
				c->deadline = ev_now(loop) + HEALTH_WRITE_TIMEOUT;
			c->st = C_WRITE;
			conn_watch(c, EV_WRITE);
			return 0;
		}
		conn_close(c);
		return -1;
	}
	c->outlen = c->outoff = 0;
	return 1;
}

/*
 * Closing a socket with unread bytes makes the kernel send RST, which can
 * destroy the response still in flight (RFC 9112 §9.6). So stop writing,
 * let the client read our answer and its EOF, and discard what it still
 * sends for a short while before closing.
 */
static void
conn_linger(struct hconn *c)
{
	shutdown(c->fd, SHUT_WR);
	c->st = C_DRAIN;
	c->inlen = 0;
	c->deadline = ev_now(loop) + HEALTH_LINGER;
	conn_watch(c, EV_READ);
}

static void
conn_drain(struct hconn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->in, sizeof(c->in), 0);
		if (n > 0) {
			c->inlen += (size_t)n;	/* here: bytes discarded */
			if (c->inlen > HEALTH_LINGER_BYTES)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break;
	}
	conn_close(c);
}

/*
 * Answers the complete requests in the buffer one at a time, in order,
 * until one is incomplete, a response waits for the socket, or the
 * connection is done. Entered with nothing pending to send.
 */
static void
conn_process(struct hconn *c)
{
	struct http_req r;
	int	 n;

	for (;;) {
		if (c->close_after) {
			conn_linger(c);
			return;
		}
		n = c->inlen ? http_parse(c->in, c->inlen, &r) : 0;
		if (n == 0 && c->eof) {
			conn_close(c);
			return;
		}
		if (n == 0) {
			c->st = C_READ;
			conn_watch(c, EV_READ);
			return;
		}
		if (n < 0) {
			char	 t[64];
			snprintf(t, sizeof(t), "%s\n", reason(-n));
			c->close_after = true;
			c->inlen = 0;
			respond_text(c, -n, false, t);
		} else {
			if (!r.keep_alive)
				c->close_after = true;
			handle(c, &r);
			memmove(c->in, c->in + n, c->inlen - (size_t)n);
			c->inlen -= (size_t)n;
		}
		/* the next request's clock: idle if none has begun, else the
		 * header timeout from now (a pipelined one) */
		c->st = C_READ;
		c->deadline = ev_now(loop) + (c->inlen ? HEALTH_HEADER_TIMEOUT :
		    HEALTH_IDLE_TIMEOUT);
		if (conn_flush(c) <= 0)
			return;
	}
}

static void
conn_read(struct hconn *c)
{
	for (;;) {
		size_t	 room = sizeof(c->in) - c->inlen;
		ssize_t	 n;

		if (room == 0)
			break;	/* full: the parser answers 431 */
		n = recv(c->fd, c->in + c->inlen, room, 0);
		if (n > 0) {
			if (c->inlen == 0)
				c->deadline = ev_now(loop) + HEALTH_HEADER_TIMEOUT;
			c->inlen += (size_t)n;
			c->last = ev_now(loop);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* EOF or error. Complete requests already read are still
		 * answered (a client may half-close after sending); an
		 * incomplete one never can be. */
		c->eof = true;
		break;
	}
	conn_process(c);
}

static void
conn_io_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct hconn *c = w->data;

	switch (c->st) {
	case C_WRITE:
		if (conn_flush(c) == 1)
			conn_process(c);
		break;
	case C_READ:
		conn_read(c);
		break;
	case C_DRAIN:
		conn_drain(c);
		break;
	default:
		break;
	}
}

static void
sweep_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	ev_tstamp now = ev_now(loop);

	for (int i = 0; i < HEALTH_MAX_CONNS; i++)
		if (conns[i].st != C_FREE && now >= conns[i].deadline) {
			n_timeouts++;
			conn_close(&conns[i]);
		}
}

static struct hconn *
conn_slot(void)
{
	struct hconn *victim = NULL, *idle = NULL;

	for (int i = 0; i < HEALTH_MAX_CONNS; i++) {
		struct hconn *c = &conns[i];
		if (c->st == C_FREE)
			return c;
		if (!victim || c->last < victim->last)
			victim = c;
		if (c->st == C_READ && c->inlen == 0 &&
		    (!idle || c->last < idle->last))
			idle = c;
	}
	if (idle)
		victim = idle;
	n_evicted++;
	conn_close(victim);
	return victim;
}

static void
backoff_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	ev_io_start(loop, &accept_w);
}

static void
accept_cb(struct ev_loop *l, ev_io *w, int revents)
{
	for (int k = 0; k < HEALTH_MAX_CONNS; k++) {
		struct hconn *c;
		int	 fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* out of descriptors: the pending connection
				 * stays queued and the watcher would spin */
				log_warn("health: accept");
				ev_io_stop(loop, &accept_w);
				ev_timer_set(&backoff_w, 0.5, 0);
				ev_timer_start(loop, &backoff_w);
			}
			return;
		}
		/* Kernel buffers count too: without a cap, TCP autotuning lets
		 * each of the 64 connections pin megabytes of socket memory
		 * (tcp_wmem) that a client never reads. The kernel doubles
		 * these values. */
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ HEALTH_SOCKBUF }, sizeof(int));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){ HEALTH_SOCKBUF }, sizeof(int));
		c = conn_slot();
		c->fd = fd;
		c->st = C_READ;
		c->close_after = c->eof = false;
		c->inlen = c->outlen = c->outoff = 0;
		c->last = ev_now(loop);
		/* a fresh connection gets the header timeout, not idle's */
		c->deadline = c->last + HEALTH_HEADER_TIMEOUT;
		ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
		c->io.data = c;
		ev_io_start(loop, &c->io);
		if (nconns++ == 0)
			ev_timer_again(loop, &sweep_w);
	}
}

/* "127.0.0.1:9911", "[::]:9911", "0.0.0.0:9911", "localhost:9911" */
static int
listen_addr(const char *spec, struct addrinfo **res)
{
	char	 host[64];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	size_t	 hl;

	if (!colon)
		return EAI_NONAME;
	hl = (size_t)(colon - spec);
	if (hl >= sizeof(host))
		return EAI_NONAME;
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	return getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, res);
}

int
health_start(struct ev_loop *l, const struct config *c)
{
	struct addrinfo *ai;
	int	 one = 1, e, ret;

	loop = l;
	cfg = c;
	if (!strcmp(c->health_listen, "none"))
		return 0;
	if ((e = listen_addr(c->health_listen, &ai)) != 0) {
		log_warnx("health: cannot resolve listen address '%s': %s",
		    c->health_listen, gai_strerror(e));
		return -EINVAL;
	}
	lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		ret = -errno;
		log_warn("health: socket");
		goto out;
	}
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    listen(lfd, 128) < 0) {
		ret = -errno;
		log_warn("health: listen on %s", c->health_listen);
		close(lfd);
		lfd = -1;
		goto out;
	}
	for (int i = 0; i < HEALTH_MAX_CONNS; i++)
		conns[i].fd = -1;
	ev_io_init(&accept_w, accept_cb, lfd, EV_READ);
	ev_io_start(loop, &accept_w);
	ev_init(&sweep_w, sweep_cb);
	sweep_w.repeat = 0.5;
	ev_init(&backoff_w, backoff_cb);
	log_info("health: listening on %s", c->health_listen);
	ret = 0;
out:
	freeaddrinfo(ai);
	return ret;
}

void
health_stop(void)
{
	if (lfd < 0)
		return;
	for (int i = 0; i < HEALTH_MAX_CONNS; i++)
		if (conns[i].st != C_FREE)
			conn_close(&conns[i]);
	ev_io_stop(loop, &accept_w);
	ev_timer_stop(loop, &sweep_w);
	ev_timer_stop(loop, &backoff_w);
	close(lfd);
	lfd = -1;
}
