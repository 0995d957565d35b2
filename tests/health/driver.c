/*
 * driver.c: test-only host for health.c and exitip.c, never linked into
 * vnoded. Runs them on a libev default loop the way the core does, with
 * vstate read from a file instead of the kernel:
 *
 *   HDRIVER_STATE=/path build/health-driver [vnoded settings as flags]
 *
 * The file holds KEY=VALUE lines (vpn_up, ok_tun ... ok_child, transitions,
 * repairs_route|rule|nft, ct_flushed, sockets_marked, child_pid,
 * classifier, tun_addr4, lan_addr4, repair=TEXT appends to the ring).
 * SIGHUP re-reads it, SIGUSR1 calls exitip_kick() as the core does on a
 * tunnel transition, SIGTERM/SIGINT stop the loop.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "vnoded.h"

struct vstate vstate;
static const char *state_path;

static bool
b(const char *v)
{
	return !strcmp(v, "1") || !strcmp(v, "true");
}

static void
load_state(void)
{
	static char classifier[32];
	char	 line[512];
	FILE	*f;

	if (!state_path || (f = fopen(state_path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f)) {
		char	*eq = strchr(line, '='), *v;
		line[strcspn(line, "\n")] = '\0';
		if (!eq)
			continue;
		*eq = '\0';
		v = eq + 1;
#define BOOL(k) if (!strcmp(line, #k)) vstate.k = b(v);
#define U64(k) if (!strcmp(line, #k)) vstate.k = strtoull(v, NULL, 0);
		BOOL(vpn_up) BOOL(ok_tun) BOOL(ok_vpn_route) BOOL(ok_rules)
		BOOL(ok_nft) BOOL(ok_ts_if) BOOL(ok_classifier) BOOL(ok_child)
		U64(transitions) U64(ct_flushed) U64(sockets_marked)
		U64(vpn_since)
		if (!strcmp(line, "repairs_route"))
			vstate.repairs[REPAIR_ROUTE] = strtoull(v, NULL, 0);
		if (!strcmp(line, "repairs_rule"))
			vstate.repairs[REPAIR_RULE] = strtoull(v, NULL, 0);
		if (!strcmp(line, "repairs_nft"))
			vstate.repairs[REPAIR_NFT] = strtoull(v, NULL, 0);
		if (!strcmp(line, "child_pid"))
			vstate.child_pid = atoi(v);
		if (!strcmp(line, "classifier")) {
			snprintf(classifier, sizeof(classifier), "%s", v);
			vstate.classifier = classifier;
		}
		if (!strcmp(line, "tun_addr4"))
			addr_parse(&vstate.tun_addr4, v);
		if (!strcmp(line, "lan_addr4"))
			addr_parse(&vstate.lan_addr4, v);
		if (!strcmp(line, "repair")) {
			snprintf(vstate.last_repairs[vstate.n_repairs_logged %
			    STATE_LAST_REPAIRS], sizeof(vstate.last_repairs[0]), "%s", v);
			vstate.n_repairs_logged++;
		}
	}
	fclose(f);
}

static void
sig_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	switch (w->signum) {
	case SIGHUP:
		load_state();
		break;
	case SIGUSR1:
		exitip_kick();
		break;
	default:
		ev_break(loop, EVBREAK_ALL);
	}
}

int
main(int argc, char **argv)
{
	struct config	 cfg;
	struct ev_loop	*loop = ev_default_loop(0);
	static ev_signal sigs[4];
	static const int signums[] = { SIGHUP, SIGUSR1, SIGTERM, SIGINT };

	config_defaults(&cfg);
	if (config_load_env(&cfg) < 0)
		return 2;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *key = config_flag_key(argv[i]);
		if (!key || config_set(&cfg, key, argv[i + 1], "option") < 0)
			return 2;
	}
	if (config_validate(&cfg) < 0)
		return 2;
	log_init(cfg.log_level, cfg.log_format);
	signal(SIGPIPE, SIG_IGN);
	vstate.started = time(NULL);
	vstate.ok_child = true;
	state_path = getenv("HDRIVER_STATE");
	load_state();
	for (int i = 0; i < 4; i++) {
		ev_signal_init(&sigs[i], sig_cb, signums[i]);
		ev_signal_start(loop, &sigs[i]);
	}
	if (health_start(loop, &cfg) < 0)
		return 1;
	exitip_start(loop, &cfg);
	ev_run(loop, 0);
	exitip_stop();
	health_stop();
	return 0;
}
