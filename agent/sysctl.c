/*
 * sysctl.c: what the shared namespace needs. Forwarding for both families;
 * rp_filter=2, since replies to control traffic arrive on eth0 unmarked
 * while the reverse route points at tun0 and strict mode drops them;
 * src_valid_mark=1, so marks take part in that reverse lookup; no ICMP
 * redirects. In Docker only the container that owns the namespace may
 * write net.*: then we say which value is wrong and the line that fixes it.
 * The values found before the first change are saved so that --cleanup can
 * put them back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vnoded.h"

static const struct {
	const char	*key;
	const char	*val;
} want[] = {
	{ "net.ipv4.ip_forward", "1" },
	{ "net.ipv6.conf.all.forwarding", "1" },
	{ "net.ipv4.conf.all.rp_filter", "2" },
	{ "net.ipv4.conf.default.rp_filter", "2" },
	{ "net.ipv4.conf.all.src_valid_mark", "1" },
	{ "net.ipv4.conf.all.accept_redirects", "0" },
	{ "net.ipv4.conf.default.accept_redirects", "0" },
	{ "net.ipv6.conf.all.accept_redirects", "0" },
	{ "net.ipv6.conf.default.accept_redirects", "0" },
};
#define NWANT (sizeof(want) / sizeof(want[0]))

static void
key_path(const char *key, char *path, size_t n)
{
	snprintf(path, n, "/proc/sys/%s", key);
	for (char *p = path + 10; *p; p++)
		if (*p == '.')
			*p = '/';
}

static int
read_val(const char *key, char *buf, size_t n)
{
	char	 path[256];
	FILE	*f;

	key_path(key, path, sizeof(path));
	if ((f = fopen(path, "r")) == NULL)
		return -errno;
	if (!fgets(buf, n, f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int
write_val(const char *key, const char *val)
{
	char	 path[256];
	int	 fd, ret = 0;

	key_path(key, path, sizeof(path));
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* One file per network namespace, named after its inode. */
static void
saved_path(char *buf, size_t n)
{
	struct stat st;

	if (stat("/proc/self/ns/net", &st) < 0)
		st.st_ino = 0;
	snprintf(buf, n, "/run/vnoded/sysctl-%lu", (unsigned long)st.st_ino);
}

static void
save_originals(void)
{
	char	 path[128], v[64];
	FILE	*f;

	saved_path(path, sizeof(path));
	if (access(path, F_OK) == 0)
		return;		/* keep the first, pre-agent values */
	mkdir("/run/vnoded", 0700);
	if ((f = fopen(path, "w")) == NULL)
		return;
	for (size_t i = 0; i < NWANT; i++)
		if (read_val(want[i].key, v, sizeof(v)) == 0)
			fprintf(f, "%s=%s\n", want[i].key, v);
	fclose(f);
}

/* Returns the number of settings that are wrong and could not be fixed. */
int
sysctl_apply(void)
{
	char	 v[64];
	int	 bad = 0;

	save_originals();
	for (size_t i = 0; i < NWANT; i++) {
		int	 ret;
		if (read_val(want[i].key, v, sizeof(v)) < 0)
			continue;	/* e.g. IPv6 disabled in this kernel */
		if (!strcmp(v, want[i].val))
			continue;
		log_cmd("sysctl -w %s=%s", want[i].key, want[i].val);
		if ((ret = write_val(want[i].key, want[i].val)) < 0) {
			log_warnx("%s is %s, must be %s, and cannot be set here (%s). "
			    "On the container that owns the network namespace (the VPN container), add:\n"
			    "    sysctls:\n      - %s=%s",
			    want[i].key, v, want[i].val, strerror(-ret), want[i].key, want[i].val);
			bad++;
		}
	}
	return bad;
}

void
sysctl_restore(void)
{
	char	 path[128], line[256];
	FILE	*f;

	saved_path(path, sizeof(path));
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f)) {
		char	*eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		eq[1 + strcspn(eq + 1, "\n")] = '\0';
		log_cmd("sysctl -w %s=%s", line, eq + 1);
		write_val(line, eq + 1);
	}
	fclose(f);
	unlink(path);
}
