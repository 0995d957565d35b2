/*
 * counters.c: reads the named counters of table inet vnode (nft.c creates
 * them) over netfilter netlink, without shelling out to nft: one dump of
 * the table's counter objects plus one GETTABLE, a few tens of microseconds.
 *
 * The core replaces the table as a whole when tun0's address or MTU
 * changes, and a new table starts its counters at zero. Prometheus counters
 * must not go backwards, so each counter keeps a base: whenever the counter
 * object we read is a different object from the last one (the table's
 * handle or the object's handle changed: handles are never reused within a
 * netns' table generator, and a new table gets a new handle) or its value
 * went down, the last value seen is folded into the base. What the old
 * object counted after our last read and before its deletion is lost; the
 * core calls counters_sync() right before it replaces the table to make
 * that window empty.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* glibc's netinet/in.h (via vnoded.h) before the kernel's linux/in.h */
#include "vnoded.h"

#include <libmnl/libmnl.h>
#include <libnftnl/object.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

/* a dump's messages come in skbs of up to 32 KiB (libmnl's
 * MNL_SOCKET_DUMP_SIZE); a smaller buffer would truncate them */
#define NL_BUFSZ	32768

const char *const ctr_names[CTR_MAX] = {
	[CTR_FWD_OUT] = "fwd_client_out",
	[CTR_FWD_IN] = "fwd_client_in",
	[CTR_DROP_FORWARD] = "drop_forward",
	[CTR_DROP_INPUT] = "drop_input",
	[CTR_LEAK_FLOW] = "drop_leak_flow",
	[CTR_LEAK_DNS] = "drop_leak_dns",
	[CTR_LEAK_CONTROL] = "drop_leak_control",
	[CTR_LEAK_SOURCE] = "drop_leak_source",
};

struct ctr {
	bool		 known;		/* an object was read at least once */
	uint64_t	 table_handle, handle;	/* identity of that object */
	struct ctr_val	 last;		/* its value at the last read */
	struct ctr_val	 base;		/* totals of objects gone before it */
	/* this round */
	bool		 seen;
	uint64_t	 r_handle;
	struct ctr_val	 r_val;
};

static struct ctr	 ctrs[CTR_MAX];
static struct mnl_socket *nl;
static uint32_t		 nl_portid, nl_seq;
static double		 last_read = -1e18;
static bool		 all_present;
static uint64_t		 r_table_handle;
static bool		 r_table_seen;

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
nl_open(void)
{
	if (nl)
		return 0;
	/* CLOEXEC: the first read happens before the supervised command is
	 * forked, which must not inherit it */
	if ((nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC)) == NULL)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = -errno;
		mnl_socket_close(nl);
		nl = NULL;
		return e;
	}
	nl_portid = mnl_socket_get_portid(nl);
	return 0;
}

static int
obj_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct nftnl_obj *o;
	const char	*name, *table;

	if ((o = nftnl_obj_alloc()) == NULL)
		return MNL_CB_ERROR;
	if (nftnl_obj_nlmsg_parse(nlh, o) < 0)
		goto out;
	if (nftnl_obj_get_u32(o, NFTNL_OBJ_TYPE) != NFT_OBJECT_COUNTER ||
	    nftnl_obj_get_u32(o, NFTNL_OBJ_FAMILY) != NFPROTO_INET)
		goto out;
	table = nftnl_obj_get_str(o, NFTNL_OBJ_TABLE);
	name = nftnl_obj_get_str(o, NFTNL_OBJ_NAME);
	if (!table || !name || strcmp(table, NFT_TABLE))
		goto out;
	for (int i = 0; i < CTR_MAX; i++)
		if (!strcmp(name, ctr_names[i])) {
			ctrs[i].seen = true;
			ctrs[i].r_handle = nftnl_obj_get_u64(o, NFTNL_OBJ_HANDLE);
			ctrs[i].r_val.packets = nftnl_obj_get_u64(o, NFTNL_OBJ_CTR_PKTS);
			ctrs[i].r_val.bytes = nftnl_obj_get_u64(o, NFTNL_OBJ_CTR_BYTES);
		}
out:
	nftnl_obj_free(o);
	return MNL_CB_OK;
}

static int
table_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct nftnl_table *t;

	if ((t = nftnl_table_alloc()) == NULL)
		return MNL_CB_ERROR;
	if (nftnl_table_nlmsg_parse(nlh, t) == 0) {
		r_table_seen = true;
		r_table_handle = nftnl_table_get_u64(t, NFTNL_TABLE_HANDLE);
	}
	nftnl_table_free(t);
	return MNL_CB_OK;
}

/* One request and its answer(s). 0, or -errno (ENOENT: no such table). */
static int
nl_request(char *buf, size_t bufsz, struct nlmsghdr *nlh, mnl_cb_t cb)
{
	uint32_t seq = nlh->nlmsg_seq;
	int	 ret;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ret = (int)mnl_socket_recvfrom(nl, buf, bufsz);
		if (ret < 0)
			return -errno;
		ret = mnl_cb_run(buf, (size_t)ret, seq, nl_portid, cb, NULL);
		if (ret < 0)
			return -errno;
		if (ret == MNL_CB_STOP)
			return 0;
	}
}

static int
read_once(void)
{
	static char	 buf[NL_BUFSZ];
	struct nlmsghdr	*nlh;
	struct nftnl_obj *o;
	struct nftnl_table *t;
	int		 ret;

	for (int i = 0; i < CTR_MAX; i++)
		ctrs[i].seen = false;
	r_table_seen = false;

	/* The table's handle first: a replaced table has a new one. */
	if ((t = nftnl_table_alloc()) == NULL)
		return -ENOMEM;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, NFT_TABLE);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET,
	    NLM_F_ACK, ++nl_seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	ret = nl_request(buf, sizeof(buf), nlh, table_cb);
	if (ret == -ENOENT)
		return 0;		/* no table: nothing seen */
	if (ret < 0)
		return ret;

	if ((o = nftnl_obj_alloc()) == NULL)
		return -ENOMEM;
	nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, NFT_TABLE);
	nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETOBJ, NFPROTO_INET,
	    NLM_F_DUMP, ++nl_seq);
	nftnl_obj_nlmsg_build_payload(nlh, o);
	nftnl_obj_free(o);
	return nl_request(buf, sizeof(buf), nlh, obj_cb);
}

int
counters_refresh(double max_age)
{
	double	 now = mono_now();
	int	 ret, tries = 0;

	if (now - last_read < max_age)
		return 0;
	last_read = now;
	if ((ret = nl_open()) < 0)
		goto fail;
	/* A dump interrupted by a ruleset change (EINTR) is retried. */
	while ((ret = read_once()) == -EINTR && ++tries < 3)
		;
	if (ret < 0)
		goto fail;

	all_present = true;
	for (int i = 0; i < CTR_MAX; i++) {
		struct ctr *c = &ctrs[i];
		if (!c->seen) {
			all_present = false;
			continue;	/* gone for now: keep last, base */
		}
		if (c->known && (c->table_handle != r_table_handle ||
		    c->handle != c->r_handle ||
		    c->r_val.packets < c->last.packets ||
		    c->r_val.bytes < c->last.bytes)) {
			c->base.packets += c->last.packets;
			c->base.bytes += c->last.bytes;
		}
		c->known = true;
		c->table_handle = r_table_handle;
		c->handle = c->r_handle;
		c->last = c->r_val;
	}
	return 0;
fail:
	all_present = false;
	if (nl) {
		/* a desynchronised socket would answer the next request with
		 * the rest of this one: start afresh */
		mnl_socket_close(nl);
		nl = NULL;
	}
	return ret;
}

void
counters_sync(void)
{
	counters_refresh(0);
	/* this read is of the table about to go: the next scrape must see
	 * the new one, not this cached view */
	last_read = -1e18;
}

struct ctr_val
counters_get(enum ctr_id id)
{
	struct ctr_val v = ctrs[id].base;

	v.packets += ctrs[id].last.packets;
	v.bytes += ctrs[id].last.bytes;
	return v;
}

bool
counters_present(void)
{
	return all_present;
}
