/*
 * ct.c: conntrack. On every tunnel transition (down, up, new address) and at
 * start, the client flows' entries go, so that no flow keeps a NAT binding
 * or a route decision of the old tunnel. Only entries carrying the
 * client-flow mark: flushing tailscaled's too would turn its packets into
 * new ones that a VPN container's INPUT policy drops.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include "vnoded.h"

struct flush {
	struct nfct_handle	*del;
	int			 n;
};

static int
del_cb(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *data)
{
	struct flush	*f = data;

	if ((nfct_get_attr_u32(ct, ATTR_MARK) & FLOW_MARK) != FLOW_MARK)
		return NFCT_CB_CONTINUE;
	if (nfct_query(f->del, NFCT_Q_DESTROY, ct) == 0)
		f->n++;
	return NFCT_CB_CONTINUE;
}

/* Returns the number of entries removed, or a negative errno. */
int
ct_flush_flows(void)
{
	struct nfct_handle	*dump;
	struct nfct_filter_dump	*fd;
	struct flush		 f = { 0 };
	struct nfct_filter_dump_mark m = { .val = FLOW_MARK, .mask = FLOW_MARK };
	int			 ret = 0;

	if ((dump = nfct_open(CONNTRACK, 0)) == NULL)
		return -errno;
	if ((f.del = nfct_open(CONNTRACK, 0)) == NULL) {
		ret = -errno;
		nfct_close(dump);
		return ret;
	}
	nfct_callback_register(dump, NFCT_T_ALL, del_cb, &f);
	for (int i = 0; i < 2; i++) {
		if ((fd = nfct_filter_dump_create()) == NULL) {
			ret = -ENOMEM;
			break;
		}
		nfct_filter_dump_set_attr(fd, NFCT_FILTER_DUMP_MARK, &m);
		nfct_filter_dump_set_attr_u8(fd, NFCT_FILTER_DUMP_L3NUM, i ? AF_INET6 : AF_INET);
		if (nfct_query(dump, NFCT_Q_DUMP_FILTER, fd) < 0 && errno != ENOENT)
			ret = -errno;
		nfct_filter_dump_destroy(fd);
	}
	nfct_close(f.del);
	nfct_close(dump);
	if (ret < 0)
		return ret;
	if (f.n)
		log_cmd("conntrack -D --mark 0x%x/0x%x  # %d entries", FLOW_MARK, FLOW_MARK, f.n);
	return f.n;
}
