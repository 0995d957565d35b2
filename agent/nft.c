/*
 * nft.c: the kill switch, NAT and MSS clamp, as one nftables table `inet
 * vnode` built from text (the same text `nft -f` takes, so verbose mode
 * can show it) and replaced in one transaction through libnftables. The
 * rules name interfaces as strings, so they hold whether or not tun0
 * exists and whether or not the agent runs; the table stays when the agent
 * exits. A libmnl socket on NFNLGRP_NFTABLES tells us when someone else
 * touches the table, and we put it back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <endian.h>
#include <malloc.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <nftables/libnftables.h>	/* types and flags; the code is dlopen'ed */

#include "vnoded.h"

static struct mnl_socket *ev;
static char		*applied;	/* text of the table we last applied */
static bool		 touched;	/* the current batch touches our table */
/* Rule handles of our table right after we applied it. A handle is never
 * reused, so any rule or chain added, removed or replaced by anyone shows as
 * a different set. (Events name the sender by its pid in the host's PID
 * namespace, which a containerised PID 1 cannot compare with its own.) */
#define MAX_HANDLES	256
static uint64_t		 handles[MAX_HANDLES];
static int		 nhandles = -1;	/* -1: unknown */

struct buf {
	char	*p;
	size_t	 len, cap;
};

static void __attribute__((format(printf, 2, 3)))
bp(struct buf *b, const char *f, ...)
{
	va_list	 ap;
	int	 n;

	for (;;) {
		va_start(ap, f);
		n = vsnprintf(b->p + b->len, b->cap - b->len, f, ap);
		va_end(ap);
		if (n >= 0 && b->len + n < b->cap)
			break;
		b->cap = (b->cap + n + 1) * 2;
		if ((b->p = realloc(b->p, b->cap)) == NULL)
			fatal("realloc");
	}
	b->len += n;
}

/* Selectors of the control class: the configured mark and Tailscale's. */
static int
ctl_marks(const struct config *cfg, char sel[2][64])
{
	int	 n = 0;

	snprintf(sel[n++], 64, "meta mark & 0x%x == 0x%x", cfg->mark_mask, cfg->mark);
	if (cfg->mark != TS_BYPASS_MARK || cfg->mark_mask != TS_FWMARK_MASK)
		snprintf(sel[n++], 64, "meta mark & 0x%x == 0x%x", TS_FWMARK_MASK, TS_BYPASS_MARK);
	return n;
}

/* MSS for a family: the configured value, or the smaller MTU minus headers. */
static int
mss_for(const struct config *cfg, const struct view *v, int family)
{
	unsigned mtu = 0;

	if (cfg->mss > 0)
		return cfg->mss - (family == AF_INET6 ? 20 : 0);
	if (v->ts.mtu)
		mtu = v->ts.mtu;
	if (v->vpn.mtu && (!mtu || v->vpn.mtu < mtu))
		mtu = v->vpn.mtu;
	if (!mtu)
		mtu = 1280;	/* tailscale0's default */
	return (int)mtu - (family == AF_INET6 ? 60 : 40);
}

/*
 * The whole table as nft text. Depends only on the settings and on tun0's
 * addresses and the two MTUs, so it changes rarely; the caller re-applies
 * only when the text differs.
 */
char *
nft_render(const struct config *cfg, const struct view *v, const struct nft_extra *x)
{
	struct buf b = { 0 };
	char	 ctl[2][64], a[INET6_ADDRSTRLEN + 8];
	int	 nctl = ctl_marks(cfg, ctl);
	const char *L = cfg->lan_if, *V = cfg->vpn_if, *T = cfg->ts_if;
	bool	 v6 = view_vpn6_ok(cfg, v);
	const char *tail4 = "100.64.0.0/10", *tail6 = "fd7a:115c:a1e0::/48";

	b.cap = 8192;
	b.p = malloc(b.cap);
	b.p[0] = '\0';
	bp(&b, "table inet %s {\n", NFT_TABLE);
	bp(&b, "\tcounter fwd_client_out { }\n\tcounter fwd_client_in { }\n"
	    "\tcounter drop_forward { }\n\tcounter drop_input { }\n"
	    "\tcounter drop_leak_flow { }\n\tcounter drop_leak_dns { }\n"
	    "\tcounter drop_leak_control { }\n\tcounter drop_leak_source { }\n");

	/* forward: clients into the tunnel, and only established back */
	bp(&b, "\tchain forward {\n\t\ttype filter hook forward priority filter - 10; policy accept;\n");
	if (cfg->mss) {
		bp(&b, "\t\tiifname { \"%s\", \"%s\" } oifname { \"%s\", \"%s\" } meta nfproto ipv4 "
		    "tcp flags & (syn | rst) == syn tcp option maxseg size > %d tcp option maxseg size set %d\n",
		    T, V, T, V, mss_for(cfg, v, AF_INET), mss_for(cfg, v, AF_INET));
		bp(&b, "\t\tiifname { \"%s\", \"%s\" } oifname { \"%s\", \"%s\" } meta nfproto ipv6 "
		    "tcp flags & (syn | rst) == syn tcp option maxseg size > %d tcp option maxseg size set %d\n",
		    T, V, T, V, mss_for(cfg, v, AF_INET6), mss_for(cfg, v, AF_INET6));
	}
	bp(&b, "\t\tct state invalid counter name drop_forward drop\n");
	if (!v6)
		bp(&b, "\t\tmeta nfproto ipv6 iifname \"%s\" oifname \"%s\" counter name drop_forward drop\n", T, V);
	bp(&b, "\t\tiifname \"%s\" oifname \"%s\" ct mark set ct mark | 0x%x counter name fwd_client_out accept\n",
	    T, V, FLOW_MARK);
	bp(&b, "\t\tiifname \"%s\" oifname \"%s\" ct state established,related counter name fwd_client_in accept\n", V, T);
	bp(&b, "\t\tiifname \"%s\" oifname \"%s\" accept\n", T, T);
	for (int i = 0; i < cfg->n_allow_lan; i++) {
		const struct cidr *c = &cfg->allow_lan[i];
		const char *fam = c->a.family == AF_INET ? "ip" : "ip6";
		cidr_str(c, a, sizeof(a));
		bp(&b, "\t\tiifname \"%s\" oifname \"%s\" %s daddr %s accept\n", T, L, fam, a);
		bp(&b, "\t\tiifname \"%s\" oifname \"%s\" %s saddr %s ct state established,related accept\n", L, T, fam, a);
	}
	bp(&b, "\t\tiifname \"%s\" counter name drop_forward drop\n", T);
	bp(&b, "\t\toifname \"%s\" counter name drop_forward drop\n\t}\n", T);

	/*
	 * Flows that arrive through the tunnel belong with the client flows:
	 * what the node answers them (a TCP reset, port unreachable after a
	 * conntrack flush, a port-forwarded service's replies) must leave by
	 * the tunnel or nowhere, never by the LAN with the VPN's address inside.
	 */
	bp(&b, "\tchain prerouting {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n");
	bp(&b, "\t\tiifname \"%s\" ct state new ct mark set ct mark | 0x%x\n\t}\n", V, FLOW_MARK);

	/* input: the tailnet reaches nothing of the node but replies and ping */
	bp(&b, "\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n");
	if (x && x->input)
		bp(&b, "%s", x->input);
	bp(&b, "\t\tiifname \"%s\" ct state established,related accept\n", T);
	bp(&b, "\t\tiifname \"%s\" ip daddr %s meta l4proto icmp accept\n", T, tail4);
	bp(&b, "\t\tiifname \"%s\" ip6 daddr %s meta l4proto ipv6-icmp accept\n", T, tail6);
	/* neighbour discovery, where tailscale0 is not a point-to-point tun */
	bp(&b, "\t\tiifname \"%s\" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n", T);
	bp(&b, "\t\tiifname \"%s\" counter name drop_input drop\n", T);
	/* CVE-2019-14899: the LAN must not probe the tunnel's or tailnet's addresses */
	bp(&b, "\t\tiifname != \"%s\" ip daddr %s counter name drop_input drop\n", T, tail4);
	bp(&b, "\t\tiifname != \"%s\" ip6 daddr %s counter name drop_input drop\n", T, tail6);
	if (v->vpn.a4.family)
		bp(&b, "\t\tiifname != { \"%s\", \"lo\" } ip daddr %s counter name drop_input drop\n",
		    V, addr_str(&v->vpn.a4, a, sizeof(a)));
	if (v->vpn.a6.family)
		bp(&b, "\t\tiifname != { \"%s\", \"lo\" } ip6 daddr %s counter name drop_input drop\n",
		    V, addr_str(&v->vpn.a6, a, sizeof(a)));
	bp(&b, "\t}\n");

	/*
	 * output, type route: packets the node sends about client flows (ICMP
	 * errors such as packet-too-big) carry the flow's conntrack mark; make
	 * it the packet mark so the rules re-route them into the tunnel.
	 * Filters on the outgoing device belong in postrouting: here oifname
	 * still names the device chosen before this re-route.
	 */
	bp(&b, "\tchain output {\n\t\ttype route hook output priority mangle; policy accept;\n");
	bp(&b, "\t\tct mark & 0x%x == 0x%x meta mark set meta mark | 0x%x\n", FLOW_MARK, FLOW_MARK, FLOW_MARK);
	if (x && x->output)
		bp(&b, "%s", x->output);
	bp(&b, "\t}\n");

	/* DNS of the control class onto a resolver reached through the tunnel */
	if (cfg->dns == DNS_VPN && cfg->dns_server.family) {
		const char *fam = cfg->dns_server.family == AF_INET ? "ip" : "ip6";
		addr_str(&cfg->dns_server, a, sizeof(a));
		bp(&b, "\tchain output_nat {\n\t\ttype nat hook output priority -100; policy accept;\n");
		for (int m = 0; m < nctl; m++)
			bp(&b, "\t\t%s meta l4proto { udp, tcp } th dport 53 %s daddr != %s dnat %s to %s\n",
			    ctl[m], fam, cfg->dns_server.family == AF_INET ? "127.0.0.0/8" : "::1", fam, a);
		bp(&b, "\t}\n");
	}

	bp(&b, "\tchain postrouting_nat {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
	bp(&b, "\t\toifname \"%s\" masquerade\n", V);
	if (x && x->postrouting_nat)
		bp(&b, "%s", x->postrouting_nat);
	if (cfg->n_allow_lan)
		bp(&b, "\t\tiifname \"%s\" oifname \"%s\" masquerade\n", T, L);
	bp(&b, "\t}\n");

	/* after NAT: what may leave by which device */
	bp(&b, "\tchain postrouting {\n\t\ttype filter hook postrouting priority srcnat + 10; policy accept;\n");
	if (v->vpn.a4.family)
		bp(&b, "\t\toifname \"%s\" ip saddr != %s counter name drop_leak_source drop\n",
		    V, addr_str(&v->vpn.a4, a, sizeof(a)));
	else
		bp(&b, "\t\toifname \"%s\" meta nfproto ipv4 counter name drop_leak_source drop\n", V);
	if (v->vpn.a6.family)
		bp(&b, "\t\toifname \"%s\" ip6 saddr != %s counter name drop_leak_source drop\n",
		    V, addr_str(&v->vpn.a6, a, sizeof(a)));
	else
		bp(&b, "\t\toifname \"%s\" meta nfproto ipv6 counter name drop_leak_source drop\n", V);
	bp(&b, "\t\tip saddr %s oifname != { \"%s\", \"lo\" } counter name drop_leak_source drop\n", tail4, T);
	bp(&b, "\t\tip6 saddr %s oifname != { \"%s\", \"lo\" } counter name drop_leak_source drop\n", tail6, T);
	bp(&b, "\t\tct mark & 0x%x == 0x%x oifname != { \"%s\", \"%s\" } counter name drop_leak_flow drop\n",
	    FLOW_MARK, FLOW_MARK, V, T);
	for (int m = 0; m < nctl; m++) {
		if (cfg->dns == DNS_VPN) {
			bp(&b, "\t\t%s meta l4proto { udp, tcp } th dport 53 oifname { \"%s\", \"lo\" } accept\n", ctl[m], V);
			bp(&b, "\t\t%s meta l4proto { udp, tcp } th dport 53 counter name drop_leak_dns drop\n", ctl[m]);
		}
		bp(&b, "\t\t%s oifname \"%s\" counter name drop_leak_control drop\n", ctl[m], V);
	}
	bp(&b, "\t}\n}\n");
	return b.p;
}

/*
 * libnftables keeps a parser and a ruleset cache per context, a megabyte and
 * more of heap, and with its dependencies (gmp, jansson, xtables) another
 * megabyte of mapped code. The table changes rarely: the library is loaded
 * for one command and unloaded after it, so the idle agent carries none of
 * it (resident memory 4.9 -> see the README's benchmarks).
 */
struct nftlib {
	void		*dl;
	struct nft_ctx	*(*ctx_new)(uint32_t);
	void		 (*ctx_free)(struct nft_ctx *);
	int		 (*buffer_output)(struct nft_ctx *);
	int		 (*buffer_error)(struct nft_ctx *);
	const char	*(*get_error)(struct nft_ctx *);
	const char	*(*get_output)(struct nft_ctx *);
	int		 (*run)(struct nft_ctx *, const char *);
};

static int
lib_open(struct nftlib *l)
{
	if ((l->dl = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL)) == NULL) {
		log_warnx("nft: %s", dlerror());
		return -ENOENT;
	}
	l->ctx_new = (struct nft_ctx *(*)(uint32_t))dlsym(l->dl, "nft_ctx_new");
	l->ctx_free = (void (*)(struct nft_ctx *))dlsym(l->dl, "nft_ctx_free");
	l->buffer_output = (int (*)(struct nft_ctx *))dlsym(l->dl, "nft_ctx_buffer_output");
	l->buffer_error = (int (*)(struct nft_ctx *))dlsym(l->dl, "nft_ctx_buffer_error");
	l->get_error = (const char *(*)(struct nft_ctx *))dlsym(l->dl, "nft_ctx_get_error_buffer");
	l->get_output = (const char *(*)(struct nft_ctx *))dlsym(l->dl, "nft_ctx_get_output_buffer");
	l->run = (int (*)(struct nft_ctx *, const char *))dlsym(l->dl, "nft_run_cmd_from_buffer");
	if (!l->ctx_new || !l->ctx_free || !l->buffer_output || !l->buffer_error ||
	    !l->get_error || !l->get_output || !l->run) {
		log_warnx("nft: libnftables lacks a symbol we use");
		dlclose(l->dl);
		return -ENOENT;
	}
	return 0;
}

/*
 * Runs nft commands; with `out`, their output is copied there. Returns 0 or
 * -EIO; a failure is logged as a warning naming `what`, or at debug level
 * when `what` is NULL (a probe that may fail).
 */
int
nft_exec(const char *cmds, char *out, size_t n, const char *what)
{
	struct nftlib	 l;
	struct nft_ctx	*c;
	int		 ret = 0;

	if ((ret = lib_open(&l)) < 0)
		return ret;
	if ((c = l.ctx_new(NFT_CTX_DEFAULT)) == NULL) {
		dlclose(l.dl);
		return -ENOMEM;
	}
	l.buffer_output(c);
	l.buffer_error(c);
	if (l.run(c, cmds) != 0) {
		const char *e = l.get_error(c);
		if (what)
			log_warnx("nft: %s failed: %s", what, e ? e : "?");
		else
			log_debug("nft: %s", e ? e : "?");
		ret = -EIO;
	}
	if (out && n)
		snprintf(out, n, "%s", l.get_output(c));
	l.ctx_free(c);
	dlclose(l.dl);
	malloc_trim(0);
	return ret;
}

static struct nlmsghdr *
req_header(char *buf, int type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *g;

	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = 1;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->nfgen_family = NFPROTO_INET;
	g->version = NFNETLINK_V0;
	return nlh;
}

/* Sends one request about our table and runs cb over the answer. */
static int
request(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char	 buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *s;
	ssize_t	 n;
	int	 ret;

	mnl_attr_put_strz(nlh, 1 /* NFTA_TABLE_NAME, NFTA_RULE_TABLE */, NFT_TABLE);
	if ((s = mnl_socket_open(NETLINK_NETFILTER)) == NULL)
		return -errno;
	if (mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_sendto(s, nlh, nlh->nlmsg_len) < 0) {
		ret = -errno;
		goto out;
	}
	while ((n = mnl_socket_recvfrom(s, buf, sizeof(buf))) > 0)
		if ((ret = mnl_cb_run(buf, n, 1, mnl_socket_get_portid(s), cb, data)) <= 0)
			break;
	if (n < 0)
		ret = -errno;
	else if (ret < 0)
		ret = -errno;
	else
		ret = 0;
out:
	mnl_socket_close(s);
	return ret;
}

/* Whether table inet vnode exists: 1, 0, or a negative errno. */
static int
table_exists(void)
{
	char	 buf[MNL_SOCKET_BUFFER_SIZE];
	int	 ret = request(req_header(buf, NFT_MSG_GETTABLE, NLM_F_ACK), NULL, NULL);

	return ret == 0 ? 1 : ret == -ENOENT ? 0 : ret;
}

struct hlist {
	uint64_t *h;
	int	  n;
};

static int
handle_attr(const struct nlattr *a, void *data)
{
	struct hlist *l = data;

	if (mnl_attr_get_type(a) == NFTA_RULE_HANDLE &&
	    mnl_attr_get_payload_len(a) == 8 && l->n < MAX_HANDLES)
		l->h[l->n++] = be64toh(mnl_attr_get_u64(a));
	return MNL_CB_OK;
}

static int
handle_msg(const struct nlmsghdr *nlh, void *data)
{
	mnl_attr_parse(nlh, sizeof(struct nfgenmsg), handle_attr, data);
	return MNL_CB_OK;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Our table's rule handles, sorted, into h; returns how many or -errno. */
static int
table_handles(uint64_t *h)
{
	char	 buf[MNL_SOCKET_BUFFER_SIZE];
	struct hlist l = { h, 0 };
	int	 ret = request(req_header(buf, NFT_MSG_GETRULE, NLM_F_DUMP), handle_msg, &l);

	if (ret < 0)
		return ret;
	qsort(h, l.n, sizeof(*h), cmp_u64);
	return l.n;
}

/*
 * Replaces table inet vnode with `text` in one transaction (delete and add
 * in one batch: there is no moment without a kill switch), or adds it when
 * there is none yet: skipping the delete saves the hook unregistration's
 * RCU grace period at start. Returns 0 or -EIO (error logged).
 */
int
nft_apply(const char *text)
{
	struct buf b = { 0 };
	int	 ret;

	b.cap = strlen(text) + 128;
	b.p = malloc(b.cap);
	b.p[0] = '\0';
	if (table_exists() != 0)
		bp(&b, "table inet %s\ndelete table inet %s\n", NFT_TABLE, NFT_TABLE);
	bp(&b, "%s", text);
	if (log_enabled(LL_DEBUG))
		log_cmd("nft -f - <<EOF\n%sEOF", text);
	ret = nft_exec(b.p, NULL, 0, "applying table inet " NFT_TABLE);
	free(b.p);
	if (ret < 0)
		return ret;
	free(applied);
	applied = strdup(text);
	nhandles = table_handles(handles);
	return 0;
}

bool
nft_same(const char *text)
{
	return applied && !strcmp(applied, text);
}

void
nft_forget(void)
{
	free(applied);
	applied = NULL;
}

/* Whether table inet vnode exists now (readiness). */
bool
nft_present(void)
{
	return table_exists() == 1;
}

int
nft_cleanup(void)
{
	log_cmd("nft delete table inet %s", NFT_TABLE);
	if (table_exists() == 0)
		return 0;
	return nft_exec("delete table inet " NFT_TABLE "\n", NULL, 0, "deleting table inet " NFT_TABLE);
}

/* ---- events ---- */

int
nft_events_open(void)
{
	unsigned grp = NFNLGRP_NFTABLES;

	if ((ev = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC)) == NULL)
		return -errno;
	if (mnl_socket_bind(ev, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_setsockopt(ev, NETLINK_ADD_MEMBERSHIP, &grp, sizeof(grp)) < 0)
		return -errno;
	return mnl_socket_get_fd(ev);
}

static int
name_attr(const struct nlattr *attr, void *data)
{
	/* NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE
	 * and NFTA_OBJ_TABLE are all attribute 1 */
	if (mnl_attr_get_type(attr) == 1 &&
	    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0)
		*(const char **)data = mnl_attr_get_str(attr);
	return MNL_CB_OK;
}

static int
msg_cb(const struct nlmsghdr *nlh, void *data)
{
	int	*check = data;
	struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);
	const char *name = NULL;

	if (NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWGEN) {
		/* end of a transaction */
		if (touched)
			*check = 1;
		touched = false;
		return MNL_CB_OK;
	}
	mnl_attr_parse(nlh, sizeof(*g), name_attr, &name);
	if (g->nfgen_family == NFPROTO_INET && name && !strcmp(name, NFT_TABLE))
		touched = true;
	return MNL_CB_OK;
}

/*
 * Drains nftables events. Returns 1 when our table is no longer what we
 * applied (or events were lost), 0 otherwise.
 */
int
nft_events_read(void)
{
	char	 buf[MNL_SOCKET_BUFFER_SIZE * 4];
	uint64_t now[MAX_HANDLES];
	int	 check = 0, n2;
	ssize_t	 n;

	while ((n = mnl_socket_recvfrom(ev, buf, sizeof(buf))) > 0)
		mnl_cb_run(buf, n, 0, 0, msg_cb, &check);
	if (n < 0 && errno == ENOBUFS)
		check = 1;
	if (!check)
		return 0;
	n2 = table_handles(now);
	return n2 != nhandles || memcmp(now, handles, sizeof(now[0]) * (n2 > 0 ? n2 : 0));
}
