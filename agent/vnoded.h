/*
 * vnoded: the vNode agent. Shared structs, tunables and prototypes.
 * One file per thing the agent talks to; each file's public functions carry
 * its name as prefix (route_*, nft_*, ...). See shared DESIGN notes in the
 * README for the traffic paths these pieces implement.
 */
#ifndef VNODED_H
#define VNODED_H

#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdarg.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/types.h>

struct ev_loop;

#define VNODE_VERSION "0.1.0"

/* Tailscale's own routing table: routed through, never written (a default
 * dev tun0 there loops the VPN's own UDP back into tun0). */
#define TS_TABLE		52
/* Tailscale's bypass mark (wgengine/router: linuxfw.TailscaleBypassMark). */
#define TS_BYPASS_MARK		0x80000u
#define TS_FWMARK_MASK		0xff0000u
/* Tailscale marks forwarded packets with this in ts-forward. */
#define TS_SUBNET_MARK		0x40000u
/* Gluetun's WireGuard socket mark (its rule 101 skips it). */
#define VPN_FWMARK		51820u
/* Conntrack and packet mark of client flows: bit 24, outside Tailscale's
 * 0xff0000 and outside Gluetun's 0xffff. */
#define FLOW_MARK		0x1000000u
/* The agent's rule block spans this many priorities. */
#define RULE_SLOTS		10
/* Gluetun's first rule; our block stays strictly below it. */
#define GLUETUN_FIRST_PRIO	98

#define MAX_ALLOW_LAN		16
#define EXITIP_MAX_URLS		4
#define EXITIP_URL_LEN		256
#define NFT_TABLE		"vnode"
/* VNODE_ATTACH_NAME: at most this many names of at most this many bytes
 * (the kernel's TASK_COMM_LEN is 16, NUL included) */
#define ATTACH_NAMES		8
#define ATTACH_COMM_LEN		15

struct addr {
	int		 family;	/* 0: unset, AF_INET, AF_INET6 */
	union {
		struct in_addr	v4;
		struct in6_addr	v6;
	};
};

struct cidr {
	struct addr	 a;
	uint8_t		 len;
};

enum dns_mode { DNS_VPN, DNS_LAN };
enum tri { TRI_AUTO, TRI_ON, TRI_OFF };
enum log_fmt { LOG_TEXT, LOG_JSON };
enum log_level { LL_ERROR, LL_WARN, LL_INFO, LL_DEBUG };
/* VNODE_CLASSIFIER: eBPF with nftables fallback, or one of them only. */
enum cls_kind { CLS_AUTO, CLS_EBPF, CLS_NFT };
/* VNODE_CGROUP: which cgroup supervise mode classifies (see classify.c). */
enum cls_where { CLS_SELF, CLS_CHILD };

struct config {
	char		 lan_if[IFNAMSIZ];
	char		 vpn_if[IFNAMSIZ];
	char		 ts_if[IFNAMSIZ];
	struct addr	 gw;		/* family 0: learn from main at start */
	struct addr	 gw6;
	uint32_t	 lan_table;
	uint32_t	 vpn_table;
	uint32_t	 mark;
	uint32_t	 mark_mask;
	uint32_t	 rule_prio;	/* first of RULE_SLOTS priorities */
	enum dns_mode	 dns;
	struct addr	 dns_server;	/* family 0: leave destinations alone */
	enum tri	 ipv6;
	struct cidr	 allow_lan[MAX_ALLOW_LAN];
	int		 n_allow_lan;
	bool		 allow_lan_force;
	int		 mss;		/* -1 auto, 0 off, else bytes */
	enum log_level	 log_level;
	enum log_fmt	 log_format;
	char		 health_listen[64];	/* "none" or host:port */
	/* classify.c: what gets the mark, and how */
	enum cls_kind	 classifier;
	enum cls_where	 cgroup;
	int		 attach_pid;		/* 0: none */
	char		 attach_cgroup[256];	/* "": none */
	/* names compared with /proc/PID/comm, comma-separated ("": none) */
	char		 attach_name[ATTACH_NAMES * (ATTACH_COMM_LEN + 1)];
	/* exit-address sources, tried in turn; "gluetun" and "tailscaled"
	 * name the local services, anything else is an http(s) URL */
	char		 exit_ip_url[EXITIP_MAX_URLS][EXITIP_URL_LEN];
	int		 n_exit_ip_url;
	char		 lan_ip_url[EXITIP_MAX_URLS][EXITIP_URL_LEN];
	int		 n_lan_ip_url;
	unsigned	 exit_ip_interval;	/* seconds between checks */
	bool		 require_unlinkable;	/* equal exit addresses: not ready */
};

/*
 * What the agent knows about itself, for health, readiness, metrics and
 * status. The core (agent.c) keeps the network fields current; classify.c
 * and supervise.c keep theirs. Readers never write.
 */
enum repair_obj { REPAIR_ROUTE, REPAIR_RULE, REPAIR_NFT, REPAIR_MAX };
/* --attach-name: no such mode, waiting for a process, classifying its
 * cgroup, or watching one whose cgroup cannot be classified */
enum attach_state { ATTACH_OFF, ATTACH_WAITING, ATTACH_ON, ATTACH_REFUSED };
#define STATE_LAST_REPAIRS	8

struct vstate {
	int64_t		 started;	/* CLOCK_REALTIME seconds */
	bool		 vpn_up;	/* tun0 up, addressed, VPN route in place */
	int64_t		 vpn_since;	/* last transition, CLOCK_REALTIME s */
	uint64_t	 transitions;
	uint64_t	 repairs[REPAIR_MAX];
	uint64_t	 ct_flushed;	/* client-flow conntrack entries removed */
	struct addr	 tun_addr4, tun_addr6;	/* tun0's own addresses */
	struct addr	 lan_addr4, lan_addr6;	/* eth0's own addresses */
	/* readiness checks, each true when it holds */
	bool		 ok_tun;	/* tun0 up with an address */
	bool		 ok_vpn_route;	/* default route in the VPN table */
	bool		 ok_rules;	/* the whole rule block in place */
	bool		 ok_nft;	/* table inet vnode in place */
	bool		 ok_ts_if;	/* tailscale0 exists */
	bool		 ok_classifier;	/* sockets of tailscaled get the mark */
	const char	*classifier;	/* "ebpf", "nft" or "none" */
	bool		 ok_child;	/* supervised child alive (true if none) */
	int		 child_pid;	/* 0: none */
	/* attach.c: --attach-name's state, process and its comm */
	enum attach_state attach;
	int		 attach_pid;	/* 0: none */
	char		 attach_comm[ATTACH_COMM_LEN + 1];
	char		 last_repairs[STATE_LAST_REPAIRS][128];	/* ring */
	unsigned	 n_repairs_logged;
	/* classify.c: sockets the classifier stamped; health.c prefers
	 * classify_sockets_marked() when it is linked in */
	uint64_t	 sockets_marked;
	/* exitip.c: the two faces of the node. family 0: unknown (never a
	 * guess). *_at: CLOCK_REALTIME s of the last successful check. */
	struct addr	 exit_vpn, exit_lan;
	int64_t		 exit_vpn_at, exit_lan_at;
	char		 exit_vpn_src[32], exit_lan_src[32];	/* "gluetun", host */
	bool		 exit_linked;	/* both known and equal */
	bool		 exit_comparable; /* both known, in a common family */
	uint64_t	 exit_checks[2][2];	/* [EXIT_VPN/LAN][0 ok, 1 failed] */
};
extern struct vstate vstate;

/* log.c */
void	log_init(enum log_level, enum log_fmt);
void	log_setlevel(enum log_level);
bool	log_enabled(enum log_level);
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_cmd(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

/* config.c */
void	config_defaults(struct config *);
/* Each returns 0 or -1 after printing the offending key and value. */
int	config_load_file(struct config *, const char *path);
int	config_load_env(struct config *);
int	config_set(struct config *, const char *key, const char *val,
	    const char *origin);
int	config_validate(const struct config *);
void	config_print(const struct config *, FILE *);
const char *config_flag_key(const char *flag);
void	config_usage(FILE *);
int	addr_parse(struct addr *, const char *);
int	cidr_parse(struct cidr *, const char *);
const char *addr_str(const struct addr *, char *, size_t);
const char *cidr_str(const struct cidr *, char *, size_t);
int	url_host(const char *url, char *host, size_t n);

/* http.c */
#define HTTP_MAX_REQUEST	4096	/* bytes: request line and headers */
#define HTTP_MAX_LINE		1024	/* bytes: request line alone */
enum http_method { HTTP_GET, HTTP_HEAD, HTTP_OTHER };
struct http_req {
	enum http_method method;
	const char	*path;		/* into the buffer, query cut off */
	size_t		 path_len;
	bool		 keep_alive;
};
/* Length of the complete request at the start of buf (blank line
 * included), 0 if more bytes are needed, or -status (400, 413, 414, 431,
 * 501, 505) for a request to answer with that status and close. */
int	http_parse(const char *buf, size_t len, struct http_req *);

/* counters.c: the kill switch's named nftables counters, kept monotonic
 * across replacements of the table */
enum ctr_id { CTR_FWD_OUT, CTR_FWD_IN, CTR_DROP_FORWARD, CTR_DROP_INPUT,
	CTR_LEAK_FLOW, CTR_LEAK_DNS, CTR_LEAK_CONTROL, CTR_LEAK_SOURCE, CTR_MAX };
struct ctr_val { uint64_t packets, bytes; };
extern const char *const ctr_names[CTR_MAX];
/* Reads the counters unless the last read is younger than max_age s
 * (CLOCK_MONOTONIC). 0, or -errno when the kernel could not be asked
 * (totals stay as they were). */
int	counters_refresh(double max_age);
/* Called by the core right before it replaces table inet vnode, so the
 * old table's last increments are not lost. */
void	counters_sync(void);
struct ctr_val counters_get(enum ctr_id);
bool	counters_present(void);	/* the table had the counters at last read */

/* health.c */
/* Listens on cfg->health_listen ("none": nothing). 0, or -errno when the
 * address cannot be bound (the caller treats that as fatal). */
int	health_start(struct ev_loop *, const struct config *);
void	health_stop(void);
/* Failing readiness checks, one line each, into buf; returns their count. */
int	health_failures(const struct config *, char *buf, size_t n);
/* The readiness line of --attach-name while no process has the names
 * (followed by them); `vnoded probe --armed` recognises it. */
#define READY_WAITING		"classifier: waiting for a process named "
/* Whether the failing checks FAILS (health_failures' lines, or the body of
 * a 503 from /readyz) leave the guard in place for tailscaled to start. */
bool	health_armed(const char *fails);

/* exitip.c */
enum { EXIT_VPN, EXIT_LAN };
void	exitip_start(struct ev_loop *, const struct config *);
/* The core calls this on every tunnel transition (down, up, new address):
 * forgets the VPN address and asks again soon if the tunnel is up. */
void	exitip_kick(void);
void	exitip_stop(void);

/* probe.c: `vnoded probe`; exit status 0 when the endpoint answers 200
 * (PROBE_ARMED: or a 503 whose failures health_armed() excuses) */
enum probe_kind { PROBE_LIVE, PROBE_READY, PROBE_ARMED };
int	probe_run(const struct config *, enum probe_kind);

/* The link-level view the agent acts on, read afresh on every sync. */
struct ifview {
	int		 index;		/* 0: absent */
	bool		 up;
	unsigned	 mtu;
	struct addr	 a4;		/* first IPv4 address */
	struct addr	 a6;		/* first global IPv6 address */
};
struct view {
	struct ifview	 lan, vpn, ts;
};
/* Gateways in force: configured, or learned from main's defaults. */
struct gateways {
	struct addr	 gw, gw6;
};
/* Protocol number on every route and rule the agent installs ("V"). */
#define VNODE_RTPROT	86

static inline bool
view_vpn_ok(const struct view *v)
{
	return v->vpn.index && v->vpn.up && v->vpn.a4.family;
}

static inline bool
view_vpn6_ok(const struct config *c, const struct view *v)
{
	return v->vpn.index && v->vpn.up && c->ipv6 != TRI_OFF &&
	    (c->ipv6 == TRI_ON || v->vpn.a6.family);
}

/* route.c */
int	route_init(void);
int	route_event_fd(void);
int	route_drain_events(void);
int	route_view(const struct config *, struct view *);
int	route_sync(const struct config *, const struct view *, struct gateways *,
	    int *rules_fixed, int *routes_fixed);
int	route_rules_expected(const struct config *);
int	route_cleanup(const struct config *);

/* nft.c */
/* Rules other parts add to table inet vnode (full lines, or NULL). */
struct nft_extra {
	const char	*output;	/* type route hook output */
	const char	*input;		/* first in the input chain */
	const char	*postrouting_nat; /* type nat hook postrouting, srcnat */
};
char	*nft_render(const struct config *, const struct view *, const struct nft_extra *);
int	 nft_apply(const char *text);
int	 nft_exec(const char *cmds, char *out, size_t n, const char *what);
bool	 nft_same(const char *text);
void	 nft_forget(void);
bool	 nft_present(void);
int	 nft_cleanup(void);
int	 nft_events_open(void);
int	 nft_events_read(void);

/* ct.c */
int	ct_flush_flows(void);

/* sysctl.c */
int	sysctl_apply(void);
void	sysctl_restore(void);

/*
 * cgroup.c: cgroup v2 paths are as /proc/PID/cgroup shows them (relative to
 * the reader's cgroup namespace); directories are where they are mounted
 * here. Each returns 0 or a negative errno unless said otherwise.
 */
int	cgroup_of_pid(pid_t pid, char *out, size_t n);	/* pid 0: self */
int	cgroup_dir(const char *cg, char *out, size_t n);
int	cgroup_open(const char *dir);			/* fd or -errno */
bool	cgroup_is_root(int dirfd);
int	cgroup_mkchild(int parentfd, const char *name);	/* fd or -errno */
int	cgroup_enter(int dirfd);
int	cgroup_self_in(int dirfd, bool below);		/* 1, 0, -errno */
uint64_t cgroup_id(int dirfd);

/*
 * classify.c: the control class. The core calls, in this order:
 *   supervise_check(cfg, argc, argv)  first of all; -1: exit 2
 *   classify_start(cfg, argc > 0) before anything else is applied; -1: exit 1
 *                                (it logged why: never run unclassified)
 *   supervise_start(argv, classify_cgroup_fd(), classify_cgroup_own())
 *   classify_nft_*_rule()        when building table inet vnode: each is ""
 *                                unless the nftables classifier is in use
 *                                (BPF refused, or attach mode's sockets that
 *                                predate the attach); see each for its chain
 *   classify_attach(pid)         --attach-name (attach.c): classify the
 *                                cgroup of the process found; -1: it cannot
 *   classify_release()           --attach-name: that process exited
 *   classify_sockets_marked()    for metrics, any time
 *   classify_stop()              at exit: closes fds, leaves the program
 *                                attached (it must outlive the agent)
 *   classify_detach(cfg)         --cleanup only
 * vstate.classifier and vstate.ok_classifier are set by classify_start(),
 * and in --attach-name mode by classify_attach() and classify_release().
 */
int	classify_start(const struct config *, bool command);
int	classify_attach(pid_t);
void	classify_release(void);
int	classify_cgroup_fd(void);
bool	classify_cgroup_own(void);
bool	classify_need_nft(void);
const char *classify_nft_output_rule(void);
const char *classify_nft_postrouting_rule(const char *lan_if);
const char *classify_nft_input_rule(const char *lan_if);
uint64_t classify_sockets_marked(void);
void	classify_stop(void);
int	classify_detach(const struct config *);

/*
 * supervise.c: PID-1 supervisor. supervise_check() before anything is
 * applied (-1: exit 2); supervise_start() after classify_start(); then on
 * each of supervise_signals[] (0-terminated) supervise_forward(signum), and
 * on SIGCHLD either supervise_reap() (a loop that does not reap) or, with
 * libev's default loop, an ev_child watcher for pid 0 that calls
 * supervise_child_exited(w->rpid, w->rstatus). Once the command has exited
 * (either returns true) the agent exits with supervise_exit_code(), leaving
 * routes, rules and nftables in place.
 */
extern const int supervise_signals[];
int	supervise_check(const struct config *, int argc, char **argv);
pid_t	supervise_start(char **argv, int cgfd, bool own);
int	supervise_forward(int sig);
bool	supervise_reap(void);
bool	supervise_child_exited(pid_t pid, int status);
bool	supervise_done(void);
int	supervise_exit_code(void);

/*
 * attach.c: --attach-name. attach_start() after the first sync: waits for
 * a process with one of the names (polling /proc: every ATTACH_FAST_S for
 * the first ATTACH_FAST_FOR s of each wait, then every ATTACH_SLOW_S),
 * has classify_attach() classify its cgroup, watches it through a pidfd
 * (no timer while it runs), and waits again when it exits. CHANGED is
 * called after each attach and release: the nftables classifier's rule
 * names another cgroup, or none.
 */
#define ATTACH_FAST_S		0.05	/* s between scans, early in a wait */
#define ATTACH_FAST_FOR		60.0	/* s of a wait scanned that often */
#define ATTACH_SLOW_S		1.0	/* s between scans afterwards */
void	attach_start(struct ev_loop *, const struct config *, void (*changed)(void));
void	attach_stop(void);
/* The first live process with one of the names, other than the agent:
 * its pid, or 0. */
pid_t	attach_find(const struct config *);

/* agent.c */
int	agent_run(const struct config *, int argc, char **argv);
int	agent_cleanup(const struct config *);

#endif
