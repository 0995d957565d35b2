/* agent.c: placeholder until the core lands in the next commit. */
#include "vnoded.h"
int agent_run(const struct config *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; log_warnx("agent not built yet"); return 1; }
int agent_cleanup(const struct config *c) { (void)c; return 0; }
struct vstate vstate;
