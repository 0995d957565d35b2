/*
 * config.c: settings from defaults, an optional KEY=VALUE file (-c), the
 * environment and command-line flags, in that order of precedence (a flag
 * wins). Every key is VNODE_*; its flag is the key without the prefix, in
 * lower case with dashes: VNODE_LAN_IF <-> --lan-if. An unknown VNODE_* key
 * anywhere is an error, so a typo never silently falls back to a default.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vnoded.h"

extern char **environ;

typedef int (*set_fn)(struct config *, const char *);
typedef void (*print_fn)(const struct config *, FILE *);

struct key {
	const char	*name;
	set_fn		 set;
	print_fn	 print;
	const char	*help;
};

static int
parse_u32(const char *s, uint32_t *out, uint32_t max)
{
	char	*end;
	unsigned long long v;

	if (*s == '\0' || *s == '-' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end != '\0' || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int
set_ifname(char *dst, const char *v)
{
	if (*v == '\0' || strlen(v) >= IFNAMSIZ || strchr(v, '/') ||
	    strpbrk(v, " \t\n\"'") || !strcmp(v, ".") || !strcmp(v, ".."))
		return -1;
	strcpy(dst, v);
	return 0;
}

int
addr_parse(struct addr *a, const char *s)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &a->v4) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, s, &a->v6) == 1)
		a->family = AF_INET6;
	else
		return -1;
	return 0;
}

int
cidr_parse(struct cidr *c, const char *s)
{
	char	 buf[INET6_ADDRSTRLEN + 8], *slash;
	uint32_t len;
	int	 max;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	if (addr_parse(&c->a, buf) < 0)
		return -1;
	max = c->a.family == AF_INET ? 32 : 128;
	if (!slash)
		len = max;
	else if (parse_u32(slash, &len, max) < 0 || !isdigit((unsigned char)*slash))
		return -1;
	c->len = len;
	/* Host bits must be zero: "10.0.0.1/8" is almost always a typo. */
	{
		uint8_t	*p = c->a.family == AF_INET ? (uint8_t *)&c->a.v4 :
		    (uint8_t *)&c->a.v6;
		int	 bytes = max / 8;
		for (int i = 0; i < bytes; i++) {
			int	 keep = (int)len - i * 8;
			uint8_t	 m = keep >= 8 ? 0xff : keep <= 0 ? 0 :
			    (uint8_t)(0xff << (8 - keep));
			if (p[i] & ~m)
				return -1;
		}
	}
	return 0;
}

const char *
addr_str(const struct addr *a, char *buf, size_t n)
{
	if (a->family == 0) {
		snprintf(buf, n, "none");
		return buf;
	}
	return inet_ntop(a->family, a->family == AF_INET ? (void *)&a->v4 :
	    (void *)&a->v6, buf, n);
}

const char *
cidr_str(const struct cidr *c, char *buf, size_t n)
{
	char	 a[INET6_ADDRSTRLEN];

	addr_str(&c->a, a, sizeof(a));
	snprintf(buf, n, "%s/%u", a, c->len);
	return buf;
}

/* RFC 1918, RFC 4193 ULA and link-local: what a home LAN is made of. */
static bool
cidr_is_private(const struct cidr *c)
{
	static const char *priv[] = { "10.0.0.0/8", "172.16.0.0/12",
	    "192.168.0.0/16", "169.254.0.0/16", "fc00::/7", "fe80::/10" };
	for (size_t i = 0; i < sizeof(priv) / sizeof(priv[0]); i++) {
		struct cidr p;
		cidr_parse(&p, priv[i]);
		if (p.a.family != c->a.family || c->len < p.len)
			continue;
		const uint8_t *x = (const uint8_t *)&c->a.v4, *y = (const uint8_t *)&p.a.v4;
		if (c->a.family == AF_INET6) {
			x = (const uint8_t *)&c->a.v6;
			y = (const uint8_t *)&p.a.v6;
		}
		int	 bits = p.len, i2 = 0;
		for (; bits >= 8; bits -= 8, i2++)
			if (x[i2] != y[i2])
				goto next;
		if (bits && ((x[i2] ^ y[i2]) & (0xff << (8 - bits))))
			goto next;
		return true;
next:		;
	}
	return false;
}

/* Setters: return 0, or -1 for a bad value (the caller names key and value). */
#define IFSET(field) \
static int set_##field(struct config *c, const char *v) { return set_ifname(c->field, v); } \
static void print_##field(const struct config *c, FILE *f) { fputs(c->field, f); }
IFSET(lan_if)
IFSET(vpn_if)
IFSET(ts_if)

static int
set_gw_family(struct addr *dst, const char *v, int family)
{
	if (*v == '\0' || !strcmp(v, "auto")) {
		memset(dst, 0, sizeof(*dst));
		return 0;
	}
	if (addr_parse(dst, v) < 0 || dst->family != family)
		return -1;
	return 0;
}
static void
print_gw_addr(const struct addr *a, FILE *f)
{
	char	 b[INET6_ADDRSTRLEN];
	fputs(a->family ? addr_str(a, b, sizeof(b)) : "auto", f);
}
static int set_gw(struct config *c, const char *v) { return set_gw_family(&c->gw, v, AF_INET); }
static int set_gw6(struct config *c, const char *v) { return set_gw_family(&c->gw6, v, AF_INET6); }
static void print_gw(const struct config *c, FILE *f) { print_gw_addr(&c->gw, f); }
static void print_gw6(const struct config *c, FILE *f) { print_gw_addr(&c->gw6, f); }

static int
set_table(uint32_t *dst, const char *v)
{
	uint32_t t;
	/* 0 and 253-255 are the kernel's unspec/default/main/local. */
	if (parse_u32(v, &t, UINT32_MAX) < 0 || t == 0 || (t >= 253 && t <= 255))
		return -1;
	*dst = t;
	return 0;
}
static int set_lan_table(struct config *c, const char *v) { return set_table(&c->lan_table, v); }
static int set_vpn_table(struct config *c, const char *v) { return set_table(&c->vpn_table, v); }
static void print_lan_table(const struct config *c, FILE *f) { fprintf(f, "%u", c->lan_table); }
static void print_vpn_table(const struct config *c, FILE *f) { fprintf(f, "%u", c->vpn_table); }

static int
set_mark(struct config *c, const char *v)
{
	char	 buf[64], *slash;
	uint32_t m, mask = 0xffffffffu;

	if (strlen(v) >= sizeof(buf))
		return -1;
	strcpy(buf, v);
	if ((slash = strchr(buf, '/')) != NULL) {
		*slash++ = '\0';
		if (parse_u32(slash, &mask, UINT32_MAX) < 0)
			return -1;
	}
	if (parse_u32(buf, &m, UINT32_MAX) < 0 || m == 0 || mask == 0 ||
	    (m & ~mask))
		return -1;
	c->mark = m;
	c->mark_mask = mask;
	return 0;
}
static void print_mark(const struct config *c, FILE *f) { fprintf(f, "0x%x/0x%x", c->mark, c->mark_mask); }

static int
set_rule_prio(struct config *c, const char *v)
{
	uint32_t p;
	if (parse_u32(v, &p, UINT32_MAX) < 0 || p < 1 ||
	    p + RULE_SLOTS - 1 >= GLUETUN_FIRST_PRIO)
		return -1;
	c->rule_prio = p;
	return 0;
}
static void print_rule_prio(const struct config *c, FILE *f) { fprintf(f, "%u", c->rule_prio); }

static int
set_dns(struct config *c, const char *v)
{
	if (!strcmp(v, "vpn"))
		c->dns = DNS_VPN;
	else if (!strcmp(v, "lan"))
		c->dns = DNS_LAN;
	else
		return -1;
	return 0;
}
static void print_dns(const struct config *c, FILE *f) { fputs(c->dns == DNS_VPN ? "vpn" : "lan", f); }

static int
set_dns_server(struct config *c, const char *v)
{
	if (*v == '\0') {
		memset(&c->dns_server, 0, sizeof(c->dns_server));
		return 0;
	}
	return addr_parse(&c->dns_server, v);
}
static void
print_dns_server(const struct config *c, FILE *f)
{
	char	 b[INET6_ADDRSTRLEN];
	if (c->dns_server.family)
		fputs(addr_str(&c->dns_server, b, sizeof(b)), f);
}

static int
set_tri(enum tri *t, const char *v)
{
	if (!strcmp(v, "auto"))
		*t = TRI_AUTO;
	else if (!strcmp(v, "on") || !strcmp(v, "1") || !strcmp(v, "true"))
		*t = TRI_ON;
	else if (!strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "false"))
		*t = TRI_OFF;
	else
		return -1;
	return 0;
}
static int set_ipv6(struct config *c, const char *v) { return set_tri(&c->ipv6, v); }
static void print_ipv6(const struct config *c, FILE *f) { fputs(c->ipv6 == TRI_AUTO ? "auto" : c->ipv6 == TRI_ON ? "on" : "off", f); }

static int
set_bool(bool *b, const char *v)
{
	if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"))
		*b = true;
	else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !*v)
		*b = false;
	else
		return -1;
	return 0;
}

static int
set_allow_lan(struct config *c, const char *v)
{
	char	 buf[1024], *tok, *save;
	int	 n = 0;
	struct cidr tmp[MAX_ALLOW_LAN];

	if (strlen(v) >= sizeof(buf))
		return -1;
	strcpy(buf, v);
	for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (n == MAX_ALLOW_LAN || cidr_parse(&tmp[n], tok) < 0)
			return -1;
		n++;
	}
	memcpy(c->allow_lan, tmp, sizeof(tmp));
	c->n_allow_lan = n;
	return 0;
}
static void
print_allow_lan(const struct config *c, FILE *f)
{
	char	 b[INET6_ADDRSTRLEN + 8];
	for (int i = 0; i < c->n_allow_lan; i++)
		fprintf(f, "%s%s", i ? "," : "", cidr_str(&c->allow_lan[i], b, sizeof(b)));
}
static int set_allow_lan_force(struct config *c, const char *v) { return set_bool(&c->allow_lan_force, v); }
static void print_allow_lan_force(const struct config *c, FILE *f) { fputs(c->allow_lan_force ? "1" : "0", f); }

static int
set_mss(struct config *c, const char *v)
{
	uint32_t m;
	if (!strcmp(v, "auto"))
		c->mss = -1;
	else if (!strcmp(v, "off"))
		c->mss = 0;
	/* 536 is IPv4's minimum MSS (RFC 879); 1220 is IPv6's at 1280 MTU. */
	else if (parse_u32(v, &m, 65495) == 0 && m >= 536)
		c->mss = (int)m;
	else
		return -1;
	return 0;
}
static void
print_mss(const struct config *c, FILE *f)
{
	if (c->mss < 0)
		fputs("auto", f);
	else if (c->mss == 0)
		fputs("off", f);
	else
		fprintf(f, "%d", c->mss);
}

static int
set_log_level(struct config *c, const char *v)
{
	static const char *n[] = { "error", "warn", "info", "debug" };
	for (int i = 0; i < 4; i++)
		if (!strcmp(v, n[i])) {
			c->log_level = (enum log_level)i;
			return 0;
		}
	return -1;
}
static void
print_log_level(const struct config *c, FILE *f)
{
	static const char *n[] = { "error", "warn", "info", "debug" };
	fputs(n[c->log_level], f);
}

static int
set_log_format(struct config *c, const char *v)
{
	if (!strcmp(v, "text"))
		c->log_format = LOG_TEXT;
	else if (!strcmp(v, "json"))
		c->log_format = LOG_JSON;
	else
		return -1;
	return 0;
}
static void print_log_format(const struct config *c, FILE *f) { fputs(c->log_format == LOG_JSON ? "json" : "text", f); }

static int
set_health_listen(struct config *c, const char *v)
{
	if (strlen(v) >= sizeof(c->health_listen) || *v == '\0')
		return -1;
	if (strcmp(v, "none")) {
		/* host:port or [v6]:port, port 1-65535 */
		const char *colon = strrchr(v, ':');
		uint32_t port;
		if (!colon || parse_u32(colon + 1, &port, 65535) < 0 || port == 0)
			return -1;
	}
	strcpy(c->health_listen, v);
	return 0;
}
static void print_health_listen(const struct config *c, FILE *f) { fputs(c->health_listen, f); }

static int
set_classifier(struct config *c, const char *v)
{
	if (!strcmp(v, "auto"))
		c->classifier = CLS_AUTO;
	else if (!strcmp(v, "ebpf"))
		c->classifier = CLS_EBPF;
	else if (!strcmp(v, "nft"))
		c->classifier = CLS_NFT;
	else
		return -1;
	return 0;
}
static void
print_classifier(const struct config *c, FILE *f)
{
	fputs(c->classifier == CLS_AUTO ? "auto" : c->classifier == CLS_EBPF ?
	    "ebpf" : "nft", f);
}

static int
set_cgroup(struct config *c, const char *v)
{
	if (!strcmp(v, "self"))
		c->cgroup = CLS_SELF;
	else if (!strcmp(v, "child"))
		c->cgroup = CLS_CHILD;
	else
		return -1;
	return 0;
}
static void print_cgroup(const struct config *c, FILE *f) { fputs(c->cgroup == CLS_SELF ? "self" : "child", f); }

static int
set_attach_pid(struct config *c, const char *v)
{
	uint32_t p;
	if (*v == '\0') {
		c->attach_pid = 0;
		return 0;
	}
	/* pid_max is at most 2^22 (PID_MAX_LIMIT) */
	if (parse_u32(v, &p, 4194304) < 0 || p < 1)
		return -1;
	c->attach_pid = (int)p;
	return 0;
}
static void print_attach_pid(const struct config *c, FILE *f) { if (c->attach_pid) fprintf(f, "%d", c->attach_pid); }

static int
set_attach_cgroup(struct config *c, const char *v)
{
	if (strlen(v) >= sizeof(c->attach_cgroup) || (*v && *v != '/') ||
	    strstr(v, "/../") || strpbrk(v, "\n\""))
		return -1;
	strcpy(c->attach_cgroup, v);
	return 0;
}
static void print_attach_cgroup(const struct config *c, FILE *f) { fputs(c->attach_cgroup, f); }

/*
 * Names as /proc/PID/comm shows them: comma-separated, blanks around each
 * ignored, stored joined by single commas. The kernel cuts comm at 15
 * bytes, so a longer name could never match: refused rather than cut.
 */
static int
set_attach_name(struct config *c, const char *v)
{
	char	 buf[1024], out[sizeof(c->attach_name)], *tok, *rest = buf;
	int	 n = 0;

	if (strlen(v) >= sizeof(buf))
		return -1;
	strcpy(buf, v);
	out[0] = '\0';
	if (strspn(v, " \t") == strlen(v)) {
		c->attach_name[0] = '\0';	/* empty: none */
		return 0;
	}
	/* strsep, not strtok: "a,,b" is a mistake, not two names */
	while ((tok = strsep(&rest, ",")) != NULL) {
		char	*end;
		tok += strspn(tok, " \t");
		end = tok + strlen(tok);
		while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*tok == '\0' || strlen(tok) > ATTACH_COMM_LEN ||
		    strpbrk(tok, "\n\"") || n == ATTACH_NAMES)
			return -1;
		if (n++)
			strcat(out, ",");
		strcat(out, tok);
	}
	strcpy(c->attach_name, out);
	return 0;
}
static void print_attach_name(const struct config *c, FILE *f) { fputs(c->attach_name, f); }

/*
 * Host of an http(s) URL, lower-cased, into out. 0, or -1 when url is no
 * http(s) URL with a host (user info refused: it would be sent along).
 */
int
url_host(const char *url, char *out, size_t n)
{
	const char *p, *h, *he;
	size_t	 len;

	if (!strncasecmp(url, "http://", 7))
		p = url + 7;
	else if (!strncasecmp(url, "https://", 8))
		p = url + 8;
	else
		return -1;
	he = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(he - p)) || strpbrk(url, " \t\r\n\"'<>\\"))
		return -1;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(he - p));
		if (!rb)
			return -1;
		h = p + 1;
		len = (size_t)(rb - h);
		p = rb + 1;
	} else {
		h = p;
		for (p = h; p < he && *p != ':'; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
				return -1;
		len = (size_t)(p - h);
	}
	if (len == 0 || len >= n)
		return -1;
	if (p < he) {
		uint32_t port;
		char	 pb[8];
		if (*p != ':' || (size_t)(he - p - 1) >= sizeof(pb) || he - p < 2)
			return -1;
		memcpy(pb, p + 1, (size_t)(he - p - 1));
		pb[he - p - 1] = '\0';
		if (parse_u32(pb, &port, 65535) < 0 || port == 0)
			return -1;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)h[i]);
	out[len] = '\0';
	return 0;
}

/* A list of sources: comma or space separated; "none" or empty: none. */
static int
set_sources(char (*dst)[EXITIP_URL_LEN], int *ndst, const char *v,
    const char *local)
{
	char	 buf[EXITIP_MAX_URLS * EXITIP_URL_LEN], *tok, *save, host[EXITIP_URL_LEN];
	char	 tmp[EXITIP_MAX_URLS][EXITIP_URL_LEN];
	int	 n = 0;

	if (strlen(v) >= sizeof(buf))
		return -1;
	strcpy(buf, v);
	for (tok = strtok_r(buf, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (!strcmp(tok, "none") && n == 0 && !strtok_r(NULL, ", \t", &save)) {
			*ndst = 0;
			return 0;
		}
		if (n == EXITIP_MAX_URLS || strlen(tok) >= EXITIP_URL_LEN)
			return -1;
		if (!strcmp(local, "tailscaled") && !strncmp(tok, "tailscaled:/", 12)) {
			/* tailscaled:/path/to/tailscaled.sock (TS_SOCKET) */
			if (strlen(tok + 11) >= 108)	/* sun_path */
				return -1;
		} else if (strcmp(tok, local) && url_host(tok, host, sizeof(host)) < 0)
			return -1;
		strcpy(tmp[n++], tok);
	}
	memcpy(dst, tmp, sizeof(tmp));
	*ndst = n;
	return 0;
}
static void
print_sources(char (*src)[EXITIP_URL_LEN], int n, FILE *f)
{
	if (n == 0)
		fputs("none", f);
	for (int i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? "," : "", src[i]);
}
static int set_exit_ip_url(struct config *c, const char *v) { return set_sources(c->exit_ip_url, &c->n_exit_ip_url, v, "gluetun"); }
static void print_exit_ip_url(const struct config *c, FILE *f) { print_sources((char (*)[EXITIP_URL_LEN])c->exit_ip_url, c->n_exit_ip_url, f); }
static int set_lan_ip_url(struct config *c, const char *v) { return set_sources(c->lan_ip_url, &c->n_lan_ip_url, v, "tailscaled"); }
static void print_lan_ip_url(const struct config *c, FILE *f) { print_sources((char (*)[EXITIP_URL_LEN])c->lan_ip_url, c->n_lan_ip_url, f); }

/* seconds, or a number with s, m or h */
static int
set_exit_ip_interval(struct config *c, const char *v)
{
	char	 num[16];
	size_t	 l = strlen(v);
	uint32_t n, mul = 1;

	if (l == 0 || l >= sizeof(num))
		return -1;
	strcpy(num, v);
	switch (num[l - 1]) {
	case 's': mul = 1; num[--l] = '\0'; break;
	case 'm': mul = 60; num[--l] = '\0'; break;
	case 'h': mul = 3600; num[--l] = '\0'; break;
	}
	if (parse_u32(num, &n, 86400) < 0 || !isdigit((unsigned char)num[0]) ||
	    (uint64_t)n * mul < 10 || (uint64_t)n * mul > 86400)
		return -1;
	c->exit_ip_interval = n * mul;
	return 0;
}
static void print_exit_ip_interval(const struct config *c, FILE *f) { fprintf(f, "%u", c->exit_ip_interval); }
static int set_require_unlinkable(struct config *c, const char *v) { return set_bool(&c->require_unlinkable, v); }
static void print_require_unlinkable(const struct config *c, FILE *f) { fputs(c->require_unlinkable ? "1" : "0", f); }

static const struct key keys[] = {
	{ "VNODE_LAN_IF", set_lan_if, print_lan_if, "LAN interface (tailscaled's own traffic leaves here)" },
	{ "VNODE_LAN_GATEWAY", set_gw, print_gw, "IPv4 LAN gateway; auto: main table's default via VNODE_LAN_IF at start" },
	{ "VNODE_LAN_GATEWAY6", set_gw6, print_gw6, "IPv6 LAN router (link-local); auto: as above" },
	{ "VNODE_VPN_IF", set_vpn_if, print_vpn_if, "VPN tunnel interface (client traffic leaves here)" },
	{ "VNODE_TS_IF", set_ts_if, print_ts_if, "Tailscale interface" },
	{ "VNODE_LAN_TABLE", set_lan_table, print_lan_table, "routing table for the control class (LAN)" },
	{ "VNODE_VPN_TABLE", set_vpn_table, print_vpn_table, "routing table for client traffic (VPN); never 52" },
	{ "VNODE_MARK", set_mark, print_mark, "socket mark/mask of the control class" },
	{ "VNODE_RULE_PRIORITY", set_rule_prio, print_rule_prio, "first of the agent's 10 rule priorities (block below 98)" },
	{ "VNODE_DNS", set_dns, print_dns, "vpn: control-class DNS through the tunnel or nowhere; lan: opt out" },
	{ "VNODE_DNS_SERVER", set_dns_server, print_dns_server, "resolver through the tunnel that control-class port 53 is redirected to; empty: leave alone" },
	{ "VNODE_IPV6", set_ipv6, print_ipv6, "auto: forward client IPv6 only if the tunnel has IPv6; on; off" },
	{ "VNODE_ALLOW_LAN", set_allow_lan, print_allow_lan, "CIDRs clients may reach on the LAN (private ranges only unless forced)" },
	{ "VNODE_ALLOW_LAN_FORCE", set_allow_lan_force, print_allow_lan_force, "1: accept non-private VNODE_ALLOW_LAN ranges" },
	{ "VNODE_MSS", set_mss, print_mss, "auto, a number, or off: TCP MSS clamp for client flows" },
	{ "VNODE_HEALTH_LISTEN", set_health_listen, print_health_listen, "health/metrics endpoint: host:port, [v6]:port or none" },
	{ "VNODE_EXIT_IP_URL", set_exit_ip_url, print_exit_ip_url, "where to learn the VPN exit address: gluetun (its control server) and/or http(s) URLs answering the caller's address, tried in turn through the tunnel; none" },
	{ "VNODE_LAN_IP_URL", set_lan_ip_url, print_lan_ip_url, "where to learn the LAN exit address: tailscaled (its STUN endpoints, LocalAPI; tailscaled:/path for another socket) and/or URLs asked from the LAN; never a host of VNODE_EXIT_IP_URL; none" },
	{ "VNODE_EXIT_IP_INTERVAL", set_exit_ip_interval, print_exit_ip_interval, "seconds (or 5m, 1h) between exit address checks, jittered; 10-86400" },
	{ "VNODE_REQUIRE_UNLINKABLE", set_require_unlinkable, print_require_unlinkable, "1: not ready while both exit addresses are equal" },
	{ "VNODE_LOG_LEVEL", set_log_level, print_log_level, "error, warn, info or debug" },
	{ "VNODE_LOG_FORMAT", set_log_format, print_log_format, "text or json" },
	{ "VNODE_CLASSIFIER", set_classifier, print_classifier, "auto: eBPF, nftables socket cgroupv2 if BPF is refused; ebpf; nft" },
	{ "VNODE_CGROUP", set_cgroup, print_cgroup, "self: classify the agent's own cgroup (container); child: a child cgroup for the command (needs a writable cgroup2 mount)" },
	{ "VNODE_ATTACH_PID", set_attach_pid, print_attach_pid, "attach mode: classify the cgroup of this running process (its PID namespace shared)" },
	{ "VNODE_ATTACH_CGROUP", set_attach_cgroup, print_attach_cgroup, "attach mode: classify this cgroup (path as in /proc/PID/cgroup, or a cgroup2 directory)" },
	{ "VNODE_ATTACH_NAME", set_attach_name, print_attach_name, "attach mode: wait for a process with one of these comma-separated names (/proc/PID/comm, at most 15 characters each) in the agent's PID namespace, classify its cgroup, and again whenever it is restarted" },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

void
config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->lan_if, "eth0");
	strcpy(c->vpn_if, "tun0");
	strcpy(c->ts_if, "tailscale0");
	c->lan_table = 51;
	c->vpn_table = 53;
	c->mark = TS_BYPASS_MARK;
	c->mark_mask = TS_FWMARK_MASK;
	c->rule_prio = 40;
	c->dns = DNS_VPN;
	c->ipv6 = TRI_AUTO;
	c->mss = -1;
	c->log_level = LL_INFO;
	c->log_format = LOG_TEXT;
	strcpy(c->health_listen, "127.0.0.1:9911");
	strcpy(c->exit_ip_url[0], "gluetun");
	c->n_exit_ip_url = 1;
	strcpy(c->lan_ip_url[0], "tailscaled");
	c->n_lan_ip_url = 1;
	c->exit_ip_interval = 300;
}

/*
 * Same operator: equal hosts, one a subdomain of the other, or names that
 * share their last two labels (ipv4.icanhazip.com, icanhazip.com).
 */
static bool
same_operator(const char *a, const char *b)
{
	const char *ta, *tb;
	size_t	 la = strlen(a), lb = strlen(b);
	int	 dots;

	if (!strcmp(a, b))
		return true;
	if ((la > lb && a[la - lb - 1] == '.' && !strcmp(a + la - lb, b)) ||
	    (lb > la && b[lb - la - 1] == '.' && !strcmp(b + lb - la, a)))
		return true;
	if (strchr(a, ':') || strchr(b, ':') || strspn(a, "0123456789.") == la ||
	    strspn(b, "0123456789.") == lb)
		return false;	/* an address is only itself */
	for (ta = a + la, dots = 0; ta > a && dots < 2; ta--)
		if (ta[-1] == '.' && ++dots == 2)
			break;
	for (tb = b + lb, dots = 0; tb > b && dots < 2; tb--)
		if (tb[-1] == '.' && ++dots == 2)
			break;
	return strchr(ta, '.') && !strcmp(ta, tb);
}

static unsigned
edit_distance(const char *a, const char *b)
{
	size_t	 la = strlen(a), lb = strlen(b);
	unsigned d[64];

	if (lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		d[j] = j;
	for (size_t i = 1; i <= la; i++) {
		unsigned prev = d[0], tmp;
		d[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			tmp = d[j];
			unsigned sub = prev + (a[i - 1] != b[j - 1]);
			unsigned m = d[j] + 1 < d[j - 1] + 1 ? d[j] + 1 : d[j - 1] + 1;
			d[j] = m < sub ? m : sub;
			prev = tmp;
		}
	}
	return d[lb];
}

static const struct key *
key_find(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

int
config_set(struct config *c, const char *name, const char *val, const char *origin)
{
	const struct key *k = key_find(name);

	if (!k) {
		const struct key *best = NULL;
		unsigned bd = 4;
		for (size_t i = 0; i < NKEYS; i++) {
			unsigned d = edit_distance(name, keys[i].name);
			if (d < bd) {
				bd = d;
				best = &keys[i];
			}
		}
		if (best)
			fprintf(stderr, "vnoded: %s: unknown key '%s' (did you mean %s?)\n",
			    origin, name, best->name);
		else
			fprintf(stderr, "vnoded: %s: unknown key '%s'\n", origin, name);
		return -1;
	}
	if (k->set(c, val) < 0) {
		fprintf(stderr, "vnoded: %s: bad value for %s: '%s' (%s)\n",
		    origin, name, val, k->help);
		return -1;
	}
	return 0;
}

int
config_load_file(struct config *c, const char *path)
{
	FILE	*f = fopen(path, "r");
	char	 line[2048], origin[PATH_MAX + 32];
	int	 lineno = 0, ret = 0;

	if (!f) {
		fprintf(stderr, "vnoded: config %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char	*p = line, *eq, *end, *v;
		lineno++;
		snprintf(origin, sizeof(origin), "config %s line %d", path, lineno);
		if (!strchr(line, '\n') && !feof(f)) {
			fprintf(stderr, "vnoded: %s: line too long\n", origin);
			ret = -1;
			break;
		}
		while (isspace((unsigned char)*p))
			p++;
		end = p + strlen(p);
		while (end > p && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (*p == '\0' || *p == '#')
			continue;
		if (!strncmp(p, "export ", 7))
			p += 7;
		if ((eq = strchr(p, '=')) == NULL) {
			fprintf(stderr, "vnoded: %s: expected KEY=VALUE, got '%s'\n", origin, p);
			ret = -1;
			continue;
		}
		*eq = '\0';
		v = eq + 1;
		/* Strip one level of matching quotes, as docker's env files allow. */
		size_t vl = strlen(v);
		if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
			v[vl - 1] = '\0';
			v++;
		}
		if (strncmp(p, "VNODE_", 6)) {
			/* Other keys (TS_*, WIREGUARD_*) share .env files; ignore. */
			continue;
		}
		if (config_set(c, p, v, origin) < 0)
			ret = -1;
	}
	fclose(f);
	return ret;
}

int
config_load_env(struct config *c)
{
	int	 ret = 0;

	for (char **e = environ; *e; e++) {
		char	 name[128];
		const char *eq;
		if (strncmp(*e, "VNODE_", 6) || (eq = strchr(*e, '=')) == NULL)
			continue;
		if ((size_t)(eq - *e) >= sizeof(name))
			continue;
		memcpy(name, *e, eq - *e);
		name[eq - *e] = '\0';
		if (config_set(c, name, eq + 1, "environment") < 0)
			ret = -1;
	}
	return ret;
}

/* "--lan-if" -> "VNODE_LAN_IF"; NULL when no key has that flag. */
const char *
config_flag_key(const char *flag)
{
	static char name[128];
	size_t	 n;

	if (strncmp(flag, "--", 2))
		return NULL;
	flag += 2;
	n = strlen(flag);
	if (n + 7 > sizeof(name))
		return NULL;
	strcpy(name, "VNODE_");
	for (size_t i = 0; i <= n; i++)
		name[6 + i] = flag[i] == '-' ? '_' : (char)toupper((unsigned char)flag[i]);
	return key_find(name) ? name : NULL;
}

static bool
mark_overlaps(const struct config *c, uint32_t m)
{
	/* Same bits under our mask would make the other mark look like ours. */
	return (m & c->mark_mask) == c->mark;
}

int
config_validate(const struct config *c)
{
	int	 ret = 0;
	char	 b[INET6_ADDRSTRLEN + 8];

	if (c->lan_table == c->vpn_table) {
		fprintf(stderr, "vnoded: VNODE_LAN_TABLE and VNODE_VPN_TABLE are both %u\n", c->lan_table);
		ret = -1;
	}
	if (c->lan_table == TS_TABLE || c->vpn_table == TS_TABLE) {
		fprintf(stderr, "vnoded: VNODE_%s_TABLE is %u: table 52 is Tailscale's and is never written\n",
		    c->lan_table == TS_TABLE ? "LAN" : "VPN", TS_TABLE);
		ret = -1;
	}
	if ((c->mark & (VPN_FWMARK | TS_SUBNET_MARK | FLOW_MARK)) ||
	    (c->mark_mask & FLOW_MARK) || mark_overlaps(c, VPN_FWMARK) ||
	    mark_overlaps(c, TS_SUBNET_MARK)) {
		fprintf(stderr, "vnoded: bad value for VNODE_MARK: '0x%x/0x%x' overlaps "
		    "the VPN's fwmark 0x%x, Tailscale's 0x%x or the client-flow mark 0x%x\n",
		    c->mark, c->mark_mask, VPN_FWMARK, TS_SUBNET_MARK, FLOW_MARK);
		ret = -1;
	}
	if (!strcmp(c->lan_if, c->vpn_if) || !strcmp(c->lan_if, c->ts_if) ||
	    !strcmp(c->vpn_if, c->ts_if)) {
		fprintf(stderr, "vnoded: VNODE_LAN_IF, VNODE_VPN_IF and VNODE_TS_IF must differ ('%s', '%s', '%s')\n",
		    c->lan_if, c->vpn_if, c->ts_if);
		ret = -1;
	}
	for (int i = 0; i < c->n_allow_lan; i++)
		if (!c->allow_lan_force && !cidr_is_private(&c->allow_lan[i])) {
			fprintf(stderr, "vnoded: bad value for VNODE_ALLOW_LAN: '%s' is not a private "
			    "range (RFC 1918, ULA, link-local); set VNODE_ALLOW_LAN_FORCE=1 to allow it\n",
			    cidr_str(&c->allow_lan[i], b, sizeof(b)));
			ret = -1;
		}
	/* One service asked for both addresses would link them. */
	for (int i = 0; i < c->n_lan_ip_url; i++) {
		char	 hl[EXITIP_URL_LEN], hv[EXITIP_URL_LEN];
		if (url_host(c->lan_ip_url[i], hl, sizeof(hl)) < 0)
			continue;
		for (int j = 0; j < c->n_exit_ip_url; j++)
			if (url_host(c->exit_ip_url[j], hv, sizeof(hv)) == 0 &&
			    same_operator(hl, hv)) {
				fprintf(stderr, "vnoded: VNODE_LAN_IP_URL names '%s', which "
				    "VNODE_EXIT_IP_URL also asks ('%s'): that service "
				    "would see both exit addresses; use different services\n",
				    hl, hv);
				ret = -1;
			}
	}
	if (c->attach_pid && c->attach_cgroup[0]) {
		fprintf(stderr, "vnoded: VNODE_ATTACH_PID and VNODE_ATTACH_CGROUP exclude each other\n");
		ret = -1;
	}
	if (c->attach_name[0] && (c->attach_pid || c->attach_cgroup[0])) {
		fprintf(stderr, "vnoded: VNODE_ATTACH_NAME and VNODE_ATTACH_%s exclude each other\n",
		    c->attach_pid ? "PID" : "CGROUP");
		ret = -1;
	}
	if (c->dns_server.family) {
		const uint8_t *p = (const uint8_t *)&c->dns_server.v4;
		/* Tailscale's ts-input drops 100.64.0.0/10 arriving off tailscale0. */
		if (c->dns_server.family == AF_INET && p[0] == 100 && (p[1] & 0xc0) == 64) {
			fprintf(stderr, "vnoded: bad value for VNODE_DNS_SERVER: '%s' is in 100.64.0.0/10, "
			    "which Tailscale drops unless it arrives on tailscale0; use another resolver of the VPN\n",
			    addr_str(&c->dns_server, b, sizeof(b)));
			ret = -1;
		}
		if (c->dns == DNS_LAN) {
			fprintf(stderr, "vnoded: VNODE_DNS_SERVER is set but VNODE_DNS=lan\n");
			ret = -1;
		}
	}
	return ret;
}

void
config_print(const struct config *c, FILE *f)
{
	for (size_t i = 0; i < NKEYS; i++) {
		fprintf(f, "%s=", keys[i].name);
		keys[i].print(c, f);
		fputc('\n', f);
	}
}

void
config_usage(FILE *f)
{
	fprintf(f, "settings (environment, -c FILE lines, or --flag VALUE):\n");
	for (size_t i = 0; i < NKEYS; i++) {
		char	 flag[64];
		size_t	 j;
		for (j = 0; keys[i].name[6 + j] && j < sizeof(flag) - 1; j++)
			flag[j] = keys[i].name[6 + j] == '_' ? '-' :
			    (char)tolower((unsigned char)keys[i].name[6 + j]);
		flag[j] = '\0';
		fprintf(f, "  %-22s --%-18s %s\n", keys[i].name, flag, keys[i].help);
	}
}
