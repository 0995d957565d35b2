/*
 * main.c: vnoded's entry point. Parses settings, then either prints them
 * (--check), removes what the agent installed (--cleanup), or runs the
 * agent (agent.c) in the foreground until SIGTERM. Exit codes: 0 ok, 1
 * runtime failure, 2 bad usage or configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vnoded.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: vnoded [options] [-- command [args...]]\n"
	    "       vnoded --check [options]\n"
	    "       vnoded --cleanup [options]\n"
	    "       vnoded probe [--live|--ready|--armed] [options]\n"
	    "\n"
	    "Keeps tailscaled's own traffic on the LAN and client traffic in the VPN,\n"
	    "fail closed both ways, in the current network namespace.\n"
	    "\n"
	    "options:\n"
	    "  -c FILE      read KEY=VALUE settings from FILE (environment and flags win)\n"
	    "  -v           verbose: print every change as a command ([#] lines)\n"
	    "  --check      validate and print the normalised settings, apply nothing\n"
	    "               (with -v also the nftables table it would install)\n"
	    "  --cleanup    remove the rules, routes and nftables table vnoded installs\n"
	    "  --version    print the version\n"
	    "  probe        ask the running agent's health endpoint (VNODE_HEALTH_LISTEN):\n"
	    "               --ready (default) /readyz, --live /healthz; exit 0 on 200, else 1;\n"
	    "               --armed: exit 0 also while only tun, vpn_route, ts_if or\n"
	    "               --attach-name's wait for its process fail (the guard is in\n"
	    "               place: tailscaled may start; a sidecar's Docker health)\n"
	    "  -h, --help   this text\n"
	    "\n");
	config_usage(f);
	fprintf(f, "\nexit status: 0 ok, 1 runtime failure, 2 bad usage or settings\n");
}

int
main(int argc, char **argv)
{
	struct config	 cfg;
	const char	*file = NULL;
	bool		 check = false, cleanup = false, verbose = false;
	bool		 probe = false;
	enum probe_kind	 probe_kind = PROBE_READY;
	int		 i = 1, bad = 0;
	/* flags are applied after file and environment: keep them aside */
	const char	*fkeys[64], *fvals[64];
	int		 nflags = 0;

	config_defaults(&cfg);
	if (argc > 1 && !strcmp(argv[1], "probe")) {
		probe = true;
		i = 2;
	}
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (probe && (!strcmp(a, "--live") || !strcmp(a, "--ready") ||
		    !strcmp(a, "--armed"))) {
			probe_kind = !strcmp(a, "--live") ? PROBE_LIVE :
			    !strcmp(a, "--armed") ? PROBE_ARMED : PROBE_READY;
			continue;
		}
		if (probe && !strcmp(a, "--")) {
			fprintf(stderr, "vnoded: probe takes no command\n");
			return 2;
		}
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--version")) {
			printf("vnoded %s\n", VNODE_VERSION);
			return 0;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			verbose = true;
		} else if (!strcmp(a, "--check")) {
			check = true;
		} else if (!strcmp(a, "--cleanup")) {
			cleanup = true;
		} else if (!strcmp(a, "-c")) {
			if (++i == argc) {
				fprintf(stderr, "vnoded: -c needs a file\n");
				return 2;
			}
			file = argv[i];
		} else if (!strncmp(a, "--", 2)) {
			char	 flag[128];
			const char *eq = strchr(a, '='), *key, *val;
			size_t	 n = eq ? (size_t)(eq - a) : strlen(a);
			if (n >= sizeof(flag)) {
				fprintf(stderr, "vnoded: unknown option '%s'\n", a);
				return 2;
			}
			memcpy(flag, a, n);
			flag[n] = '\0';
			if ((key = config_flag_key(flag)) == NULL) {
				fprintf(stderr, "vnoded: unknown option '%s' (see vnoded --help)\n", flag);
				return 2;
			}
			if (eq)
				val = eq + 1;
			else if (++i < argc)
				val = argv[i];
			else {
				fprintf(stderr, "vnoded: option '%s' needs a value\n", flag);
				return 2;
			}
			if (nflags == 64) {
				fprintf(stderr, "vnoded: too many options\n");
				return 2;
			}
			fkeys[nflags] = strdup(key);
			fvals[nflags++] = val;
		} else {
			fprintf(stderr, "vnoded: unexpected argument '%s' (a command goes after --)\n", a);
			return 2;
		}
	}

	if (file && config_load_file(&cfg, file) < 0)
		bad = 1;
	if (config_load_env(&cfg) < 0)
		bad = 1;
	for (int f = 0; f < nflags; f++) {
		char	 origin[160];
		snprintf(origin, sizeof(origin), "option --%s", fkeys[f] + 6);
		for (char *p = origin + 9; *p; p++)
			*p = *p == '_' ? '-' : (char)(*p | 0x20);
		if (config_set(&cfg, fkeys[f], fvals[f], origin) < 0)
			bad = 1;
	}
	if (verbose)
		cfg.log_level = LL_DEBUG;
	if (bad || config_validate(&cfg) < 0)
		return 2;
	if (probe && (check || cleanup)) {
		fprintf(stderr, "vnoded: probe excludes --check and --cleanup\n");
		return 2;
	}
	if (probe)
		return probe_run(&cfg, probe_kind);
	if (check && cleanup) {
		fprintf(stderr, "vnoded: --check and --cleanup exclude each other\n");
		return 2;
	}
	if (check) {
		config_print(&cfg, stdout);
		if (verbose) {
			/* the table as it would be with every interface absent */
			struct view none = { 0 };
			char	*t = nft_render(&cfg, &none, NULL);
			printf("# nft -f - (before the interfaces are read)\n%s", t);
			free(t);
		}
		return 0;
	}
	log_init(cfg.log_level, cfg.log_format);
	if (cleanup)
		return agent_cleanup(&cfg) < 0 ? 1 : 0;
	return agent_run(&cfg, argc - i, argv + i);
}
