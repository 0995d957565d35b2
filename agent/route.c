/*
 * route.c: the agent's routing tables (LAN, VPN) and its rule block, through
 * libnl-route. Level-triggered: route_sync() reads what the kernel has and
 * makes it equal to what the configuration and the links call for, whatever
 * event (or overflow) brought us here. Everything the agent installs carries
 * protocol VNODE_RTPROT so that --cleanup removes exactly that.
 *
 * Rule block, per family, lowest priority first (DESIGN.md, "Traffic paths"):
 *   P+0 to tailnet -> 52           P+5 client-flow mark -> VPN
 *   P+1 control dport 53 -> VPN    P+6 client-flow mark -> unreachable
 *   P+2 control dport 53 -> unr.   P+7 iif ts, to ALLOW_LAN -> LAN
 *   P+3 control -> LAN             P+8 iif ts -> VPN
 *   P+4 control -> unreachable     P+9 iif ts -> unreachable
 * Client traffic never reaches the main table: routes pushed into main from
 * the LAN (TunnelVision, CVE-2024-3661) cannot pull it out of the tunnel.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP	0x10000	/* linux/if.h, which clashes with net/if.h */
#endif
#include <string.h>

#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>

#include "vnoded.h"

static struct nl_sock	*sk;		/* requests */
static struct nl_sock	*esk;		/* events */

struct rl {
	int		 family;
	uint32_t	 prio;
	uint8_t		 action;	/* FR_ACT_TO_TBL or FR_ACT_UNREACHABLE */
	uint32_t	 table;
	uint32_t	 mark, mask;
	char		 iif[IFNAMSIZ];
	uint8_t		 dstlen;
	uint8_t		 dst[16];
	uint8_t		 ipproto;
	uint16_t	 dport;
};

struct rt {
	int		 family;
	uint32_t	 table;
	uint8_t		 dstlen;
	uint8_t		 dst[16];
	bool		 has_gw;
	uint8_t		 gw[16];
	int		 oif;
};

#define MAX_RULES	96
#define MAX_ROUTES	64

static int
alen(int family)
{
	return family == AF_INET ? 4 : 16;
}

static void
fmt_prefix(int family, const uint8_t *a, uint8_t len, char *buf, size_t n)
{
	char	 s[INET6_ADDRSTRLEN];

	if (len == 0) {
		snprintf(buf, n, "default");
		return;
	}
	inet_ntop(family, a, s, sizeof(s));
	if (len == alen(family) * 8)
		snprintf(buf, n, "%s", s);
	else
		snprintf(buf, n, "%s/%u", s, len);
}

/* A rule as the `ip rule` command that makes it. */
static void
rl_str(const struct rl *r, char *buf, size_t n)
{
	char	 dst[64] = "", mark[48] = "", iif[32] = "", proto[40] = "", act[32];

	if (r->dstlen) {
		char p[INET6_ADDRSTRLEN + 8];
		fmt_prefix(r->family, r->dst, r->dstlen, p, sizeof(p));
		snprintf(dst, sizeof(dst), " to %s", p);
	}
	if (r->mask)
		snprintf(mark, sizeof(mark), " fwmark 0x%x/0x%x", r->mark, r->mask);
	if (r->iif[0])
		snprintf(iif, sizeof(iif), " iif %s", r->iif);
	if (r->ipproto)
		snprintf(proto, sizeof(proto), " ipproto %s dport %u",
		    r->ipproto == IPPROTO_TCP ? "tcp" : "udp", r->dport);
	if (r->action == FR_ACT_TO_TBL)
		snprintf(act, sizeof(act), "lookup %u", r->table);
	else
		snprintf(act, sizeof(act), "unreachable");
	snprintf(buf, n, "ip %srule add priority %u%s%s%s%s %s",
	    r->family == AF_INET6 ? "-6 " : "", r->prio, iif, dst, mark, proto, act);
}

static bool
rl_eq(const struct rl *a, const struct rl *b)
{
	return a->family == b->family && a->prio == b->prio &&
	    a->action == b->action &&
	    (a->action != FR_ACT_TO_TBL || a->table == b->table) &&
	    a->mark == b->mark && a->mask == b->mask &&
	    !strcmp(a->iif, b->iif) && a->dstlen == b->dstlen &&
	    !memcmp(a->dst, b->dst, alen(a->family)) &&
	    a->ipproto == b->ipproto && a->dport == b->dport;
}

static void
rt_str(const struct rt *r, const char *verb, char *buf, size_t n)
{
	char	 dst[INET6_ADDRSTRLEN + 8], gw[INET6_ADDRSTRLEN + 6] = "", dev[IFNAMSIZ];

	fmt_prefix(r->family, r->dst, r->dstlen, dst, sizeof(dst));
	if (r->has_gw) {
		char	 s[INET6_ADDRSTRLEN];
		inet_ntop(r->family, r->gw, s, sizeof(s));
		snprintf(gw, sizeof(gw), " via %s", s);
	}
	if (!if_indextoname(r->oif, dev))
		snprintf(dev, sizeof(dev), "if%d", r->oif);
	snprintf(buf, n, "ip %sroute %s %s%s dev %s table %u",
	    r->family == AF_INET6 ? "-6 " : "", verb, dst, gw, dev, r->table);
}

static bool
rt_eq(const struct rt *a, const struct rt *b)
{
	return a->family == b->family && a->table == b->table &&
	    a->dstlen == b->dstlen && !memcmp(a->dst, b->dst, alen(a->family)) &&
	    a->has_gw == b->has_gw &&
	    (!a->has_gw || !memcmp(a->gw, b->gw, alen(a->family))) &&
	    a->oif == b->oif;
}

static int
nlerr(int e)
{
	/* libnl errors to negative errno, for the usual suspects */
	switch (-e) {
	case NLE_EXIST:		return -EEXIST;
	case NLE_OBJ_NOTFOUND:	return -ENOENT;
	case NLE_NOMEM:		return -ENOBUFS;
	case NLE_PERM:		return -EPERM;
	case NLE_NODEV:		return -ENODEV;
	case NLE_INVAL:		return -EINVAL;
	default:		return -EIO;
	}
}

int
route_init(void)
{
	int	 ret;

	if ((sk = nl_socket_alloc()) == NULL || (esk = nl_socket_alloc()) == NULL)
		return -ENOMEM;
	if ((ret = nl_connect(sk, NETLINK_ROUTE)) < 0)
		return nlerr(ret);
	nl_socket_disable_seq_check(esk);
	nl_socket_disable_auto_ack(esk);
	if ((ret = nl_connect(esk, NETLINK_ROUTE)) < 0)
		return nlerr(ret);
	if ((ret = nl_socket_add_memberships(esk, RTNLGRP_LINK,
	    RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE,
	    RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE, 0)) < 0)
		return nlerr(ret);
	nl_socket_set_nonblocking(esk);
	/* Large enough for a burst of flaps; overflow still resyncs in full. */
	nl_socket_set_buffer_size(esk, 4 << 20, 0);
	return 0;
}

int
route_event_fd(void)
{
	return esk ? nl_socket_get_fd(esk) : -1;
}

static int
count_msg(struct nl_msg *msg, void *arg)
{
	(*(int *)arg)++;
	return NL_OK;
}

/*
 * Drains the event socket. Returns the number of messages read (0 or more),
 * or -ENOBUFS when the kernel dropped events (the caller resyncs in full,
 * which it does after every batch anyway).
 */
int
route_drain_events(void)
{
	int	 n = 0, ret, overflow = 0;

	nl_socket_modify_cb(esk, NL_CB_VALID, NL_CB_CUSTOM, count_msg, &n);
	for (;;) {
		ret = nl_recvmsgs_default(esk);
		if (ret == -NLE_AGAIN || ret == 0)
			break;
		if (ret == -NLE_NOMEM || ret == -NLE_MSG_OVERFLOW) {
			overflow = 1;
			continue;
		}
		if (ret < 0)
			break;
	}
	return overflow ? -ENOBUFS : n;
}

/* ---- view of the links ---- */

static void
addr_from_nl(struct addr *a, struct nl_addr *na)
{
	memset(a, 0, sizeof(*a));
	a->family = nl_addr_get_family(na);
	memcpy(a->family == AF_INET ? (void *)&a->v4 : (void *)&a->v6,
	    nl_addr_get_binary_addr(na), alen(a->family));
}

int
route_view(const struct config *cfg, struct view *v)
{
	struct nl_cache	*links = NULL, *addrs = NULL;
	struct ifview	*ifs[3] = { &v->lan, &v->vpn, &v->ts };
	const char	*names[3] = { cfg->lan_if, cfg->vpn_if, cfg->ts_if };
	int		 ret;

	memset(v, 0, sizeof(*v));
	if ((ret = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links)) < 0)
		return nlerr(ret);
	for (int i = 0; i < 3; i++) {
		struct rtnl_link *l = rtnl_link_get_by_name(links, names[i]);
		if (!l)
			continue;
		ifs[i]->index = rtnl_link_get_ifindex(l);
		/* up and carrying: a tun whose VPN process died has no carrier */
		ifs[i]->up = (rtnl_link_get_flags(l) & (IFF_UP | IFF_LOWER_UP)) ==
		    (IFF_UP | IFF_LOWER_UP);
		ifs[i]->mtu = rtnl_link_get_mtu(l);
		rtnl_link_put(l);
	}
	nl_cache_free(links);
	if ((ret = rtnl_addr_alloc_cache(sk, &addrs)) < 0)
		return nlerr(ret);
	for (struct nl_object *o = nl_cache_get_first(addrs); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;
		struct nl_addr	*local = rtnl_addr_get_local(a);
		int		 idx = rtnl_addr_get_ifindex(a);
		if (!local)
			continue;
		for (int i = 0; i < 3; i++) {
			if (!ifs[i]->index || ifs[i]->index != idx)
				continue;
			if (rtnl_addr_get_family(a) == AF_INET && !ifs[i]->a4.family)
				addr_from_nl(&ifs[i]->a4, local);
			else if (rtnl_addr_get_family(a) == AF_INET6 &&
			    rtnl_addr_get_scope(a) == RT_SCOPE_UNIVERSE &&
			    !(rtnl_addr_get_flags(a) & IFA_F_TENTATIVE) &&
			    !ifs[i]->a6.family)
				addr_from_nl(&ifs[i]->a6, local);
		}
	}
	nl_cache_free(addrs);
	return 0;
}

/* ---- routes ---- */

static int
rt_from_nl(struct rtnl_route *r, struct rt *out)
{
	struct nl_addr	*dst = rtnl_route_get_dst(r);
	struct rtnl_nexthop *nh;

	memset(out, 0, sizeof(*out));
	out->family = rtnl_route_get_family(r);
	out->table = rtnl_route_get_table(r);
	if (dst) {
		out->dstlen = nl_addr_get_prefixlen(dst);
		if (nl_addr_get_len(dst))
			memcpy(out->dst, nl_addr_get_binary_addr(dst), alen(out->family));
	}
	if (rtnl_route_get_nnexthops(r) >= 1 && (nh = rtnl_route_nexthop_n(r, 0))) {
		struct nl_addr *gw = rtnl_route_nh_get_gateway(nh);
		out->oif = rtnl_route_nh_get_ifindex(nh);
		if (gw && nl_addr_get_len(gw)) {
			out->has_gw = true;
			memcpy(out->gw, nl_addr_get_binary_addr(gw), alen(out->family));
		}
	}
	return 0;
}

static int
rt_apply(const struct rt *r, bool add)
{
	struct rtnl_route *nr = rtnl_route_alloc();
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	struct nl_addr	*dst, *gw = NULL;
	char		 buf[160];
	int		 ret;

	rt_str(r, add ? "replace" : "del", buf, sizeof(buf));
	log_cmd("%s", buf);
	dst = nl_addr_build(r->family, r->dst, alen(r->family));
	nl_addr_set_prefixlen(dst, r->dstlen);
	rtnl_route_set_family(nr, r->family);
	rtnl_route_set_table(nr, r->table);
	rtnl_route_set_dst(nr, dst);
	rtnl_route_set_protocol(nr, VNODE_RTPROT);
	rtnl_route_set_type(nr, RTN_UNICAST);
	rtnl_route_set_scope(nr, r->has_gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
	rtnl_route_nh_set_ifindex(nh, r->oif);
	if (r->has_gw) {
		gw = nl_addr_build(r->family, r->gw, alen(r->family));
		rtnl_route_nh_set_gateway(nh, gw);
	}
	rtnl_route_add_nexthop(nr, nh);
	ret = add ? rtnl_route_add(sk, nr, NLM_F_CREATE | NLM_F_REPLACE) :
	    rtnl_route_delete(sk, nr, 0);
	rtnl_route_put(nr);
	nl_addr_put(dst);
	if (gw)
		nl_addr_put(gw);
	if (ret < 0) {
		int e = nlerr(ret);
		if (!add && e == -ENOENT)
			return 0;
		log_warnx("%s: %s", buf, nl_geterror(ret));
		ret = e;
	}
	return ret;
}

/* Desired routes of the LAN and VPN tables, from main's view of the LAN. */
static int
routes_desired(const struct config *cfg, const struct view *v,
    struct nl_cache *routes, struct gateways *gws, struct rt *want)
{
	int	 n = 0;

	for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *r = (struct rtnl_route *)o;
		struct rt x;
		if (rtnl_route_get_table(r) != RT_TABLE_MAIN ||
		    rtnl_route_get_type(r) != RTN_UNICAST)
			continue;
		rt_from_nl(r, &x);
		if (!v->lan.index || x.oif != v->lan.index)
			continue;
		if (x.dstlen == 0 && x.has_gw) {
			/* main's default via the LAN: remember its gateway */
			struct addr *g = x.family == AF_INET ? &gws->gw : &gws->gw6;
			const struct addr *fixed = x.family == AF_INET ? &cfg->gw : &cfg->gw6;
			if (!fixed->family) {
				g->family = x.family;
				memcpy(x.family == AF_INET ? (void *)&g->v4 : (void *)&g->v6,
				    x.gw, alen(x.family));
			}
			continue;
		}
		if (x.has_gw || x.dstlen == 0 || n == MAX_ROUTES - 4)
			continue;
		/* an on-link route of the LAN (both families, incl. fe80::/64) */
		x.table = cfg->lan_table;
		want[n++] = x;
	}
	for (int f = 0; f < 2 && v->lan.index; f++) {
		const struct addr *g = f == 0 ? &gws->gw : &gws->gw6;
		if (!g->family)
			continue;
		struct rt d = { .family = g->family, .table = cfg->lan_table,
		    .has_gw = true, .oif = v->lan.index };
		memcpy(d.gw, g->family == AF_INET ? (const void *)&g->v4 :
		    (const void *)&g->v6, alen(g->family));
		want[n++] = d;
	}
	if (view_vpn_ok(v)) {
		struct rt d = { .family = AF_INET, .table = cfg->vpn_table, .oif = v->vpn.index };
		want[n++] = d;
		if (view_vpn6_ok(cfg, v)) {
			d.family = AF_INET6;
			want[n++] = d;
		}
	}
	return n;
}

/* ---- rules ---- */

static void
rl_add(struct rl *want, int *n, struct rl r)
{
	if (*n < MAX_RULES)
		want[(*n)++] = r;
}

/* A rule of family FAM matching MARK/MASK (0/0: any), no action yet. */
static struct rl
rl_match(int fam, uint32_t mark, uint32_t mask)
{
	struct rl r;

	memset(&r, 0, sizeof(r));
	r.family = fam;
	r.mark = mark;
	r.mask = mask;
	return r;
}

/*
 * R at PRIO into TABLE and the same match at PRIO + 1 unreachable: the
 * table's route or nowhere (fail closed while the table has none).
 */
static void
rl_add_or_nowhere(struct rl *want, int *n, struct rl r, uint32_t prio, uint32_t table)
{
	r.prio = prio;
	r.action = FR_ACT_TO_TBL;
	r.table = table;
	rl_add(want, n, r);
	r.prio = prio + 1;
	r.action = FR_ACT_UNREACHABLE;
	r.table = 0;
	rl_add(want, n, r);
}

static int
rules_desired(const struct config *cfg, struct rl *want)
{
	static const uint8_t tailnet6[16] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0 };
	static const uint8_t tailnet4[4] = { 100, 64, 0, 0 };
	uint32_t marks[2][2] = { { cfg->mark, cfg->mark_mask }, { TS_BYPASS_MARK, TS_FWMARK_MASK } };
	int	 nmarks = (cfg->mark == TS_BYPASS_MARK && cfg->mark_mask == TS_FWMARK_MASK) ? 1 : 2;
	uint32_t P = cfg->rule_prio;
	int	 n = 0;

	for (int fi = 0; fi < 2; fi++) {
		int	 fam = fi == 0 ? AF_INET : AF_INET6;
		struct rl r;

		/* P+0: to the tailnet, Tailscale's table */
		r = rl_match(fam, 0, 0);
		r.prio = P;
		r.action = FR_ACT_TO_TBL;
		r.table = TS_TABLE;
		r.dstlen = fam == AF_INET ? 10 : 48;
		memcpy(r.dst, fam == AF_INET ? tailnet4 : tailnet6, alen(fam));
		rl_add(want, &n, r);

		for (int m = 0; m < nmarks; m++) {
			/* P+1, P+2: control-class DNS into the tunnel or nowhere */
			for (int p = 0; p < 2 && cfg->dns == DNS_VPN; p++) {
				r = rl_match(fam, marks[m][0], marks[m][1]);
				r.ipproto = p == 0 ? IPPROTO_UDP : IPPROTO_TCP;
				r.dport = 53;
				rl_add_or_nowhere(want, &n, r, P + 1, cfg->vpn_table);
			}
			/* P+3, P+4: control class to the LAN or nowhere */
			r = rl_match(fam, marks[m][0], marks[m][1]);
			rl_add_or_nowhere(want, &n, r, P + 3, cfg->lan_table);
		}
		/* P+5, P+6: client flows (locally generated: ICMP errors) */
		r = rl_match(fam, FLOW_MARK, FLOW_MARK);
		rl_add_or_nowhere(want, &n, r, P + 5, cfg->vpn_table);
		/* P+7: clients to the allowed LAN ranges */
		for (int i = 0; i < cfg->n_allow_lan; i++) {
			const struct cidr *c = &cfg->allow_lan[i];
			if (c->a.family != fam)
				continue;
			r = rl_match(fam, 0, 0);
			strcpy(r.iif, cfg->ts_if);
			r.dstlen = c->len;
			memcpy(r.dst, fam == AF_INET ? (const void *)&c->a.v4 :
			    (const void *)&c->a.v6, alen(fam));
			r.prio = P + 7;
			r.action = FR_ACT_TO_TBL;
			r.table = cfg->lan_table;
			rl_add(want, &n, r);
		}
		/* P+8, P+9: everything else from clients: the VPN or nowhere */
		r = rl_match(fam, 0, 0);
		strcpy(r.iif, cfg->ts_if);
		rl_add_or_nowhere(want, &n, r, P + 8, cfg->vpn_table);
	}
	return n;
}

static void
rl_from_nl(struct rtnl_rule *r, struct rl *out)
{
	struct nl_addr	*dst = rtnl_rule_get_dst(r);
	const char	*iif = rtnl_rule_get_iif(r);
	uint16_t	 lo, hi;

	memset(out, 0, sizeof(*out));
	out->family = rtnl_rule_get_family(r);
	out->prio = rtnl_rule_get_prio(r);
	out->action = rtnl_rule_get_action(r);
	out->table = rtnl_rule_get_table(r);
	out->mark = rtnl_rule_get_mark(r);
	out->mask = rtnl_rule_get_mask(r);
	/* libnl reports an absent mark as all ones */
	if (out->mark == 0xffffffffu)
		out->mark = 0;
	if (out->mark == 0 && out->mask == 0xffffffffu)
		out->mask = 0;
	if (iif)
		snprintf(out->iif, sizeof(out->iif), "%s", iif);
	if (dst && nl_addr_get_len(dst)) {
		out->dstlen = nl_addr_get_prefixlen(dst);
		memcpy(out->dst, nl_addr_get_binary_addr(dst), alen(out->family));
	}
	rtnl_rule_get_ipproto(r, &out->ipproto);
	if (rtnl_rule_get_dport(r, &lo, &hi) == 0)
		out->dport = lo;
}

static int
rl_apply(const struct rl *r, bool add)
{
	struct rtnl_rule *nr = rtnl_rule_alloc();
	char		 buf[200];
	int		 ret;

	rl_str(r, buf, sizeof(buf));
	if (!add)
		memcpy(strstr(buf, " add ") + 1, "del", 3);
	log_cmd("%s", buf);
	rtnl_rule_set_family(nr, r->family);
	rtnl_rule_set_prio(nr, r->prio);
	rtnl_rule_set_action(nr, r->action);
	if (r->action == FR_ACT_TO_TBL)
		rtnl_rule_set_table(nr, r->table);
	if (r->mask) {
		rtnl_rule_set_mark(nr, r->mark);
		rtnl_rule_set_mask(nr, r->mask);
	}
	if (r->iif[0])
		rtnl_rule_set_iif(nr, r->iif);
	if (r->dstlen) {
		struct nl_addr *d = nl_addr_build(r->family, r->dst, alen(r->family));
		nl_addr_set_prefixlen(d, r->dstlen);
		rtnl_rule_set_dst(nr, d);
		nl_addr_put(d);
	}
	if (r->ipproto) {
		rtnl_rule_set_ipproto(nr, r->ipproto);
		rtnl_rule_set_dport(nr, r->dport);
	}
	if (add)
		rtnl_rule_set_protocol(nr, VNODE_RTPROT);
	ret = add ? rtnl_rule_add(sk, nr, NLM_F_EXCL) : rtnl_rule_delete(sk, nr, 0);
	rtnl_rule_put(nr);
	if (ret < 0) {
		int e = nlerr(ret);
		if ((add && e == -EEXIST) || (!add && e == -ENOENT))
			return 0;
		log_warnx("%s: %s", buf, nl_geterror(ret));
		ret = e;
	}
	return ret;
}

static bool
in_block(const struct config *cfg, uint32_t prio)
{
	return prio >= cfg->rule_prio && prio < cfg->rule_prio + RULE_SLOTS;
}

/*
 * One kind of kernel object that route_sync() reconciles (a route or a
 * rule): its size and how to compare and write one.
 */
struct kind {
	size_t	 size;
	bool	(*eq)(const void *, const void *);
	int	(*apply)(const void *, bool);
};

static bool rt_eq_v(const void *a, const void *b) { return rt_eq(a, b); }
static int rt_apply_v(const void *r, bool add) { return rt_apply(r, add); }
static bool rl_eq_v(const void *a, const void *b) { return rl_eq(a, b); }
static int rl_apply_v(const void *r, bool add) { return rl_apply(r, add); }
static const struct kind route_kind = { sizeof(struct rt), rt_eq_v, rt_apply_v };
static const struct kind rule_kind = { sizeof(struct rl), rl_eq_v, rl_apply_v };

/*
 * Makes the kernel's objects HAVE (NHAVE, as read) equal to WANT (NWANT):
 * whatever is not wanted goes, duplicates too, then whatever is missing is
 * added. Returns the number of changes; sets *err to -EIO when one failed.
 */
static int
reconcile(const struct kind *k, const void *have, int nhave, const void *want,
    int nwant, int *err)
{
	const char *h = have, *w = want;
	int	 fixed = 0;

	for (int i = 0; i < nhave; i++) {
		bool keep = false;
		for (int j = 0; j < nwant && !keep; j++)
			keep = k->eq(h + i * k->size, w + j * k->size);
		for (int d = 0; d < i && keep; d++)
			if (k->eq(h + i * k->size, h + d * k->size))
				keep = false;	/* a duplicate */
		if (!keep) {
			if (k->apply(h + i * k->size, false) < 0)
				*err = -EIO;
			fixed++;
		}
	}
	for (int j = 0; j < nwant; j++) {
		bool have_it = false;
		for (int i = 0; i < nhave && !have_it; i++)
			have_it = k->eq(h + i * k->size, w + j * k->size);
		if (!have_it) {
			if (k->apply(w + j * k->size, true) < 0)
				*err = -EIO;
			fixed++;
		}
	}
	return fixed;
}

/*
 * Makes the kernel's rules in our priority block and the routes of the LAN
 * and VPN tables equal to the desired ones. Counts what it had to add or
 * remove in *rules_fixed / *routes_fixed. Returns 0, or a negative errno
 * when the kernel could not be read or an object could not be written.
 */
int
route_sync(const struct config *cfg, const struct view *v, struct gateways *gws,
    int *rules_fixed, int *routes_fixed)
{
	struct nl_cache	*cache = NULL;
	struct rl	 want[MAX_RULES], have[MAX_RULES * 2];
	struct rt	 rwant[MAX_ROUTES], rhave[MAX_ROUTES * 2];
	int		 nwant, nhave = 0, ret, err = 0;

	*rules_fixed = *routes_fixed = 0;

	/* routes */
	if ((ret = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &cache)) < 0)
		return nlerr(ret);
	nwant = routes_desired(cfg, v, cache, gws, rwant);
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *r = (struct rtnl_route *)o;
		uint32_t t = rtnl_route_get_table(r);
		if ((t != cfg->lan_table && t != cfg->vpn_table) ||
		    nhave == MAX_ROUTES * 2)
			continue;
		/* the kernel's own multicast/anycast entries are not ours */
		if (rtnl_route_get_type(r) != RTN_UNICAST &&
		    rtnl_route_get_type(r) != RTN_UNREACHABLE)
			continue;
		rt_from_nl(r, &rhave[nhave++]);
	}
	nl_cache_free(cache);
	*routes_fixed = reconcile(&route_kind, rhave, nhave, rwant, nwant, &err);

	/* rules: anything in our block that we do not want goes */
	nhave = 0;
	if ((ret = rtnl_rule_alloc_cache(sk, AF_UNSPEC, &cache)) < 0)
		return nlerr(ret);
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_rule *r = (struct rtnl_rule *)o;
		if (!in_block(cfg, rtnl_rule_get_prio(r)) || nhave == MAX_RULES * 2)
			continue;
		rl_from_nl(r, &have[nhave++]);
	}
	nl_cache_free(cache);
	nwant = rules_desired(cfg, want);
	*rules_fixed = reconcile(&rule_kind, have, nhave, want, nwant, &err);
	return err;
}

/* Number of rules the block holds when complete (for readiness). */
int
route_rules_expected(const struct config *cfg)
{
	struct rl want[MAX_RULES];
	return rules_desired(cfg, want);
}

/*
 * Removes every rule and route that carries our protocol in our block and
 * tables, and nothing else. Returns the number removed, or a negative errno.
 */
int
route_cleanup(const struct config *cfg)
{
	struct nl_cache	*cache = NULL;
	int		 ret, n = 0;

	if ((ret = rtnl_rule_alloc_cache(sk, AF_UNSPEC, &cache)) < 0)
		return nlerr(ret);
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_rule *r = (struct rtnl_rule *)o;
		uint8_t	 proto = 0;
		struct rl x;
		rtnl_rule_get_protocol(r, &proto);
		if (proto != VNODE_RTPROT || !in_block(cfg, rtnl_rule_get_prio(r)))
			continue;
		rl_from_nl(r, &x);
		if (rl_apply(&x, false) == 0)
			n++;
	}
	nl_cache_free(cache);
	if ((ret = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &cache)) < 0)
		return nlerr(ret);
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_route *r = (struct rtnl_route *)o;
		uint32_t t = rtnl_route_get_table(r);
		struct rt x;
		if ((t != cfg->lan_table && t != cfg->vpn_table) ||
		    rtnl_route_get_protocol(r) != VNODE_RTPROT)
			continue;
		rt_from_nl(r, &x);
		if (rt_apply(&x, false) == 0)
			n++;
	}
	nl_cache_free(cache);
	return n;
}
