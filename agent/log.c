/*
 * log.c: the daemon's small logging vocabulary (after OpenBSD ntpd's log.c).
 * Everything goes to stderr, as a container entrypoint's output should.
 * log_cmd() prints a change the agent makes as a command a person could
 * type ("[#] ip rule add ..."), as wg-quick does; shown in verbose mode.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vnoded.h"

static enum log_level	level = LL_INFO;
static enum log_fmt	fmt = LOG_TEXT;

void
log_init(enum log_level l, enum log_fmt f)
{
	level = l;
	fmt = f;
}

void
log_setlevel(enum log_level l)
{
	level = l;
}

bool
log_enabled(enum log_level l)
{
	return l <= level;
}

static void
json_escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

static void __attribute__((format(printf, 3, 0)))
vlog(enum log_level l, const char *tag, const char *f, va_list ap, int err)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	char	 msg[8192];
	int	 n;

	if (l > level)
		return;
	n = vsnprintf(msg, sizeof(msg), f, ap);
	if (err && n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(err));
	if (fmt == LOG_JSON) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		fprintf(stderr, "{\"ts\":%lld.%03ld,\"level\":\"%s\",\"msg\":\"",
		    (long long)ts.tv_sec, ts.tv_nsec / 1000000, names[l]);
		json_escape(stderr, msg);
		fputs("\"}\n", stderr);
	} else if (tag)
		fprintf(stderr, "vnoded: %s%s\n", tag, msg);
	else
		fprintf(stderr, "vnoded: %s\n", msg);
}

#define LOGFN(name, lvl, tag, witherr)			\
void							\
name(const char *f, ...)				\
{							\
	int	 e = errno;				\
	va_list	 ap;					\
	va_start(ap, f);				\
	vlog(lvl, tag, f, ap, witherr ? e : 0);		\
	va_end(ap);					\
	errno = e;					\
}

LOGFN(log_warn, LL_WARN, "warning: ", 1)
LOGFN(log_warnx, LL_WARN, "warning: ", 0)
LOGFN(log_info, LL_INFO, NULL, 0)
LOGFN(log_debug, LL_DEBUG, NULL, 0)
LOGFN(log_cmd, LL_DEBUG, "[#] ", 0)

void
fatal(const char *f, ...)
{
	int	 e = errno;
	va_list	 ap;

	va_start(ap, f);
	vlog(LL_ERROR, "fatal: ", f, ap, e);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *f, ...)
{
	va_list	 ap;

	va_start(ap, f);
	vlog(LL_ERROR, "fatal: ", f, ap, 0);
	va_end(ap);
	exit(1);
}
