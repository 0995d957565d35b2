/*
 * agent.c: placeholder until the core lands. On the classify branch it
 * wires classification and supervision into a libev loop the way the core
 * is meant to, so that tests/classify drives vnoded itself; with the
 * nftables classifier it installs the output-chain rule the core's table
 * will carry. Replaced by the core's agent.c on merge.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>
#include <nftables/libnftables.h>

#include "vnoded.h"

struct vstate vstate;
static int exit_code;

static void
on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	if (vstate.child_pid) {
		supervise_forward(w->signum);
		return;
	}
	ev_break(loop, EVBREAK_ALL);
}

static void
on_child(struct ev_loop *loop, ev_child *w, int revents)
{
	if (supervise_child_exited(w->rpid, w->rstatus)) {
		exit_code = supervise_exit_code();
		ev_break(loop, EVBREAK_ALL);
	}
}

static int
nft_apply(const struct config *cfg)
{
	char	 buf[8192];
	struct nft_ctx *ctx;
	int	 ret;

	snprintf(buf, sizeof(buf),
	    "table inet vnode {}\n"
	    "delete table inet vnode\n"
	    "table inet vnode {\n"
	    "  chain output { type route hook output priority mangle; %s; }\n"
	    "  chain postrouting { type nat hook postrouting priority srcnat; %s; }\n"
	    "}\n", classify_nft_output_rule(), classify_nft_postrouting_rule(cfg->lan_if));
	log_cmd("nft -f - <<< '%s'", buf);
	if ((ctx = nft_ctx_new(NFT_CTX_DEFAULT)) == NULL)
		return -1;
	ret = nft_run_cmd_from_buffer(ctx, buf);
	nft_ctx_free(ctx);
	return ret;
}

int
agent_run(const struct config *cfg, int argc, char **argv)
{
	struct ev_loop *loop;
	ev_signal sigw[8];
	ev_child  cw;
	int	  i;

	if (supervise_check(cfg, argc, argv) < 0)
		return 2;
	if (classify_start(cfg) < 0)
		return 1;
	if (classify_need_nft() && nft_apply(cfg) < 0) {
		log_warnx("nft: cannot install the classifier rule");
		return 1;
	}
	loop = ev_default_loop(0);
	for (i = 0; supervise_signals[i]; i++) {
		ev_signal_init(&sigw[i], on_signal, supervise_signals[i]);
		ev_signal_start(loop, &sigw[i]);
	}
	ev_child_init(&cw, on_child, 0, 0);
	ev_child_start(loop, &cw);
	if (argc > 0 && supervise_start(argv, classify_cgroup_fd(),
	    classify_cgroup_own()) < 0) {
		classify_stop();
		return supervise_exit_code();
	}
	/* readiness for tests: the classifier is in place */
	log_info("ready: classifier %s", vstate.classifier);
	ev_run(loop, 0);
	classify_stop();
	return exit_code;
}

int
agent_cleanup(const struct config *cfg)
{
	return classify_detach(cfg) < 0 ? -1 : 0;
}
