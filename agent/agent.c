/*
 * agent.c: wires the parts to one libev loop. Netlink events (links,
 * addresses, routes, rules) and nftables events drive everything; there is
 * no timer, so an idle agent never wakes up. Every batch of events ends in
 * agent_sync(), which reads the kernel and makes it right: the same code
 * path serves start, tunnel transitions, repairs and resync after overflow.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "vnoded.h"

struct vstate vstate;

static const struct config *cfg;
static struct gateways gws;
static struct view	last_view;
static bool		have_view;
static struct nft_extra extra;	/* the fallback classifier's rules */
static int		 exit_code;	/* the supervised command's, or 0 */
static struct ev_loop	*agent_loop;

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

static void
note_repair(enum repair_obj o, const char *what)
{
	static const char *names[] = { "route", "rule", "nft" };
	char	*slot = vstate.last_repairs[vstate.n_repairs_logged++ % STATE_LAST_REPAIRS];

	vstate.repairs[o]++;
	snprintf(slot, sizeof(vstate.last_repairs[0]), "%lld %s %s",
	    (long long)now_s(), names[o], what);
	log_info("repaired %s: %s", names[o], what);
}

/* The tunnel's identity: a change in any of these is a transition. */
static bool
tunnel_changed(const struct view *a, const struct view *b)
{
	return view_vpn_ok(a) != view_vpn_ok(b) || a->vpn.index != b->vpn.index ||
	    memcmp(&a->vpn.a4, &b->vpn.a4, sizeof(a->vpn.a4)) ||
	    memcmp(&a->vpn.a6, &b->vpn.a6, sizeof(a->vpn.a6));
}

/*
 * Reads the kernel and makes the agent's part of it right: nft table first
 * (the kill switch never waits for routes), then routes and rules, then the
 * conntrack flush on a tunnel transition. `nft_force` re-applies the table
 * even when its text is unchanged (someone else touched it).
 */
static int
agent_sync(bool starting, bool nft_force)
{
	struct view v;
	char	*text;
	int	 rules_fixed, routes_fixed, ret, err = 0;

	if ((ret = route_view(cfg, &v)) < 0) {
		log_warnx("reading links: %s", strerror(-ret));
		return ret;
	}
	text = nft_render(cfg, &v, &extra);
	if (nft_force || !nft_same(text)) {
		/* the table is replaced as a whole and its counters restart
		 * at 0: take their last values first (metrics stay monotonic) */
		counters_sync();
		if (nft_apply(text) < 0)
			err = -EIO;
		else if (nft_force && !starting)
			note_repair(REPAIR_NFT, "table inet " NFT_TABLE);
	}
	free(text);
	if ((ret = route_sync(cfg, &v, &gws, &rules_fixed, &routes_fixed)) < 0)
		err = ret;
	if (!starting) {
		/* our own adds after a link change are not repairs: only
		 * count what changed while the tunnel did not */
		bool trans = have_view && tunnel_changed(&last_view, &v);
		if (rules_fixed)
			note_repair(REPAIR_RULE, "rule block");
		if (routes_fixed && !trans && have_view &&
		    !memcmp(&last_view.lan, &v.lan, sizeof(v.lan)))
			note_repair(REPAIR_ROUTE, "tables");
	}
	if (!have_view || tunnel_changed(&last_view, &v)) {
		char	 a[INET6_ADDRSTRLEN];
		if (have_view) {
			vstate.transitions++;
			/* the VPN exit address is no longer known: ask again */
			exitip_kick();
			log_info("tunnel %s is %s%s%s", cfg->vpn_if,
			    view_vpn_ok(&v) ? "up" : "down",
			    view_vpn_ok(&v) ? ", address " : "",
			    view_vpn_ok(&v) ? addr_str(&v.vpn.a4, a, sizeof(a)) : "");
		}
		vstate.vpn_since = now_s();
		if ((ret = ct_flush_flows()) > 0)
			vstate.ct_flushed += ret;
		else if (ret < 0)
			log_warnx("conntrack flush: %s", strerror(-ret));
	}
	last_view = v;
	have_view = true;

	vstate.vpn_up = view_vpn_ok(&v);
	vstate.tun_addr4 = v.vpn.a4;
	vstate.tun_addr6 = v.vpn.a6;
	vstate.lan_addr4 = v.lan.a4;
	vstate.lan_addr6 = v.lan.a6;
	vstate.ok_tun = view_vpn_ok(&v);
	vstate.ok_vpn_route = view_vpn_ok(&v) && err == 0;
	vstate.ok_rules = err == 0;
	vstate.ok_nft = err == 0;
	vstate.ok_ts_if = v.ts.index != 0;
	return err;
}

/*
 * A sync that failed (a route refused while a link was changing under us)
 * is retried on a backoff timer, armed only then: when nothing fails and
 * nothing changes, the agent never wakes up.
 */
static ev_timer		retry_w;
static double		retry_s;

static void
sync_or_retry(struct ev_loop *loop, bool nft_force)
{
	if (agent_sync(false, nft_force) < 0) {
		retry_s = retry_s ? (retry_s * 2 > 5 ? 5 : retry_s * 2) : 0.05;
		ev_timer_stop(loop, &retry_w);
		ev_timer_set(&retry_w, retry_s, 0);
		ev_timer_start(loop, &retry_w);
	} else {
		retry_s = 0;
		ev_timer_stop(loop, &retry_w);
	}
}

static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	log_info("retrying after a failed sync");
	sync_or_retry(loop, !nft_present());
}

static void
rtnl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	int	 n = route_drain_events();

	if (n == -ENOBUFS)
		log_warnx("netlink overflow: resynchronising in full");
	if (n != 0)
		sync_or_retry(loop, n == -ENOBUFS);
}

static void
nftev_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	if (nft_events_read()) {
		/* Our table was changed by someone else: make it ours again. */
		vstate.ok_nft = nft_present();
		sync_or_retry(loop, true);
	}
}

static void
stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_info("signal %d: exiting, kill switch stays in place", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

/* Supervise mode: the listed signals go to the command, not to us. */
static void
fwd_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	supervise_forward(w->signum);
}

/* libev's default loop reaps every child and hands each status here. */
static void
child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	if (supervise_child_exited(w->rpid, w->rstatus)) {
		exit_code = supervise_exit_code();
		log_info("command ended: exiting with %d, kill switch stays in place",
		    exit_code);
		ev_break(loop, EVBREAK_ALL);
	}
}

/*
 * The nftables classifier's rules (classify.c), when it is in use: BPF was
 * refused, or attach mode's sockets that predate the attach.
 */
static void
set_extra(void)
{
	static char out[PATH_MAX + 256], in[256], nat[256];

	memset(&extra, 0, sizeof(extra));
	if (!classify_need_nft())
		return;
	snprintf(out, sizeof(out), "\t\t%s\n", classify_nft_output_rule());
	snprintf(in, sizeof(in), "\t\t%s\n", classify_nft_input_rule(cfg->lan_if));
	snprintf(nat, sizeof(nat), "\t\t%s\n", classify_nft_postrouting_rule(cfg->lan_if));
	extra.output = out;
	extra.input = in;
	extra.postrouting_nat = nat;
}

/*
 * --attach-name attached to a cgroup or let one go: the nftables
 * classifier's rule names the new cgroup, or none (a path that is gone
 * would make the whole table fail to load).
 */
static void
attach_changed(void)
{
	set_extra();
	sync_or_retry(agent_loop, false);
}

int
agent_run(const struct config *c, int argc, char **argv)
{
	struct ev_loop	*loop = ev_default_loop(EVFLAG_NOENV | EVFLAG_SIGNALFD);
	ev_io		 rtnl_w, nft_w;
	ev_signal	 term_w, int_w, fwd_w[8];
	ev_child	 child_w;
	struct timespec	 t0, t1;
	int		 ret, nfd, badsys;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	agent_loop = loop;
	cfg = c;
	gws.gw = cfg->gw;
	gws.gw6 = cfg->gw6;
	vstate.started = now_s();
	vstate.classifier = "none";
	vstate.ok_child = true;
	/* refusals first: nothing is applied before them (exit 2) */
	if (supervise_check(cfg, argc, argv) < 0)
		return 2;
	/* then the classifier, before the command exists: never unclassified */
	if (classify_start(cfg, argc > 0) < 0)
		return 1;
	if ((ret = route_init()) < 0)
		fatalx("netlink: %s", strerror(-ret));
	/* subscribe before the first sync so no change slips between */
	if ((nfd = nft_events_open()) < 0)
		fatalx("nftables events: %s", strerror(-nfd));
	badsys = sysctl_apply();
	set_extra();
	if ((ret = agent_sync(true, true)) < 0 && !nft_present())
		fatalx("the kill switch (table inet %s) could not be installed", NFT_TABLE);
	if (ret < 0)
		log_warnx("first sync incomplete: %s", strerror(-ret));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	{
		char	 g4[INET6_ADDRSTRLEN], g6[INET6_ADDRSTRLEN];
		log_info("enforcing in %.1f ms: rules %u-%u, tables %u (LAN via %s%s%s) and %u (VPN: %s), "
		    "nft table inet %s%s",
		    (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6,
		    cfg->rule_prio, cfg->rule_prio + RULE_SLOTS - 1, cfg->lan_table,
		    gws.gw.family ? addr_str(&gws.gw, g4, sizeof(g4)) : "no IPv4 gateway",
		    gws.gw6.family ? ", " : "", gws.gw6.family ? addr_str(&gws.gw6, g6, sizeof(g6)) : "",
		    cfg->vpn_table, vstate.vpn_up ? "up" : "down", NFT_TABLE,
		    badsys ? "; some sysctls are wrong (see above)" : "");
	}

	/* the endpoint before the command: orchestrators gate on it */
	if (health_start(loop, cfg) < 0) {
		log_warnx("health endpoint: cannot listen on %s (VNODE_HEALTH_LISTEN)",
		    cfg->health_listen);
		classify_stop();
		return 1;
	}
	ev_init(&retry_w, retry_cb);
	ev_io_init(&rtnl_w, rtnl_cb, route_event_fd(), EV_READ);
	ev_io_start(loop, &rtnl_w);
	ev_io_init(&nft_w, nftev_cb, nfd, EV_READ);
	ev_io_start(loop, &nft_w);
	if (argc > 0) {
		/* PID 1: forward, reap, and end with the command */
		for (int i = 0; supervise_signals[i] && i < 8; i++) {
			ev_signal_init(&fwd_w[i], fwd_cb, supervise_signals[i]);
			ev_signal_start(loop, &fwd_w[i]);
		}
		ev_child_init(&child_w, child_cb, 0, 0);
		ev_child_start(loop, &child_w);
		if (supervise_start(argv, classify_cgroup_fd(), classify_cgroup_own()) < 0) {
			exitip_stop();
			health_stop();
			classify_stop();
			return supervise_exit_code();
		}
	} else {
		/*
		 * No command. As a sidecar's PID 1, other containers' orphans
		 * (tailscaled's children, once containerboot is gone) come to
		 * us: libev's default loop reaps every child on SIGCHLD with no
		 * watcher needed (its childcb; tests/classify/t_attach_name.sh).
		 */
		ev_signal_init(&term_w, stop_cb, SIGTERM);
		ev_signal_start(loop, &term_w);
		ev_signal_init(&int_w, stop_cb, SIGINT);
		ev_signal_start(loop, &int_w);
	}
	/* the checks last: nothing of theirs on the way to the kill switch
	 * or the command's start (each transfer is a child of its own) */
	exitip_start(loop, cfg);
	/* changes that happened during the first sync are in the queue; a
	 * first sync that failed is retried from here */
	route_drain_events();
	sync_or_retry(loop, false);
	/* rules, routes and the kill switch are in place: now look for it */
	if (cfg->attach_name[0])
		attach_start(loop, cfg, attach_changed);
	ev_run(loop, 0);
	attach_stop();
	exitip_stop();
	health_stop();
	classify_stop();
	return exit_code;
}

int
agent_cleanup(const struct config *c)
{
	int	 ret, n;

	if ((ret = route_init()) < 0) {
		log_warnx("cleanup: %s", strerror(-ret));
		return ret;
	}
	n = route_cleanup(c);
	nft_cleanup();
	if (classify_detach(c) < 0)
		log_warnx("cleanup: the classifier program could not be detached");
	sysctl_restore();
	log_info("cleanup: removed %d rules and routes and table inet %s", n < 0 ? 0 : n, NFT_TABLE);
	return n < 0 ? n : 0;
}
