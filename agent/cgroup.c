/*
 * cgroup.c: the cgroup v2 side of classification. Finds where cgroup2 is
 * mounted (from /proc/self/mountinfo: /sys/fs/cgroup on v2-only hosts,
 * /sys/fs/cgroup/unified on hybrid ones, anything a bind mount chose),
 * which cgroup a process is in (/proc/PID/cgroup, "0::" line), opens that
 * cgroup's directory (a read-only mount is enough for BPF_PROG_ATTACH),
 * makes child cgroups and moves processes.
 *
 * Nothing here touches a cgroup above the one the agent was started in:
 * several instances share one host hierarchy.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "vnoded.h"

/* Undo mountinfo's octal escapes (\040 for a space, etc.) in place. */
static void
unescape(char *s)
{
	char	*d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else
			*d++ = *s;
	}
	*d = '\0';
}

/*
 * Path of PID's cgroup v2 ("0::" line) relative to the reader's cgroup
 * namespace root, e.g. "/docker/<id>" or "/". pid 0 means self.
 * Returns 0, -ENOENT when the process has no v2 line, or another -errno.
 */
int
cgroup_of_pid(pid_t pid, char *out, size_t n)
{
	char	 path[64], line[PATH_MAX + 64];
	FILE	*f;
	int	 ret = -ENOENT;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/cgroup");
	if ((f = fopen(path, "re")) == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "0::", 3))
			continue;
		/* " (deleted)" would follow a path whose cgroup was removed */
		if (snprintf(out, n, "%s", line + 3) >= (int)n)
			ret = -ENAMETOOLONG;
		else
			ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/*
 * Directory of the cgroup at namespace-relative path CG in this mount
 * namespace: the cgroup2 mount whose root is the longest prefix of CG, plus
 * the rest of CG. Several cgroup2 mounts may exist (a bind of a subtree, a
 * namespace's own); any that covers CG reaches the same cgroup.
 * Returns 0, -ENOENT when no cgroup2 mount covers CG, or another -errno.
 */
int
cgroup_dir(const char *cg, char *out, size_t n)
{
	FILE	*f;
	char	 line[3 * PATH_MAX];
	size_t	 best = 0;
	int	 found = 0;

	if ((f = fopen("/proc/self/mountinfo", "re")) == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* id parent major:minor root mountpoint opts [tags] - fstype src sopts */
		char	*fld[6], *save = NULL, *p, *sep;
		int	 i;

		if ((sep = strstr(line, " - ")) == NULL)
			continue;
		if (strncmp(sep + 3, "cgroup2 ", 8))
			continue;
		*sep = '\0';
		for (i = 0, p = strtok_r(line, " ", &save); p && i < 6;
		    p = strtok_r(NULL, " ", &save))
			fld[i++] = p;
		if (i < 5)
			continue;
		unescape(fld[3]);
		unescape(fld[4]);
		const char *root = fld[3], *mnt = fld[4];
		size_t	 rl = strlen(root);
		/* "/" covers everything; otherwise a path prefix at a '/' */
		if (!strcmp(root, "/"))
			rl = 0;
		else if (strncmp(cg, root, rl) || (cg[rl] != '/' && cg[rl] != '\0'))
			continue;
		if (found && rl < best)
			continue;
		if (snprintf(out, n, "%s%s", mnt, cg + rl) >= (int)n) {
			fclose(f);
			return -ENAMETOOLONG;
		}
		/* "/sys/fs/cgroup" + "/" -> drop the trailing slash */
		size_t ol = strlen(out);
		if (ol > 1 && out[ol - 1] == '/')
			out[ol - 1] = '\0';
		best = rl;
		found = 1;
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

/*
 * True when DIR is the root of a cgroup2 hierarchy (the host's, or the
 * namespace root as seen from the init cgroup namespace): the kernel gives
 * the real root no cgroup.type file (CFTYPE_NOT_ON_ROOT). A namespace's
 * root is an ordinary cgroup and has one.
 */
bool
cgroup_is_root(int dirfd)
{
	struct stat st;

	return fstatat(dirfd, "cgroup.type", &st, 0) < 0 && errno == ENOENT;
}

/* Open cgroup directory DIR: O_DIRECTORY|O_CLOEXEC, read-only. */
int
cgroup_open(const char *dir)
{
	int	 fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/*
 * Make child cgroup NAME under PARENT (a directory fd) and open it.
 * An existing one (left by a previous run) is reused. Returns fd or -errno;
 * -EROFS on a read-only cgroup mount (the default in Docker and Kubernetes).
 */
int
cgroup_mkchild(int parent, const char *name)
{
	int	 fd;

	if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/*
 * Move the calling process into cgroup DIRFD by writing "0" to its
 * cgroup.procs (only open/write/close: fine between fork and exec).
 * Returns 0 or -errno.
 */
int
cgroup_enter(int dirfd)
{
	int	 fd, ret = 0;

	if ((fd = openat(dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (write(fd, "0", 1) != 1)
		ret = -errno;
	close(fd);
	return ret;
}

/* Cgroup id as the kernel and nftables know it: the directory's inode. */
uint64_t
cgroup_id(int dirfd)
{
	struct stat st;

	return fstat(dirfd, &st) < 0 ? 0 : (uint64_t)st.st_ino;
}

/*
 * Whether the calling process sits in cgroup DIRFD (or below it when
 * BELOW): compares the inode of its own cgroup's directory. Used by the
 * supervised child between fork and exec; it uses stdio, which is safe
 * there only because the agent is single-threaded (libev and libbpf start
 * no threads). Returns 1, 0, or -errno.
 */
int
cgroup_self_in(int dirfd, bool below)
{
	char	 cg[PATH_MAX], dir[PATH_MAX];
	struct stat want, got;
	int	 ret;

	if (fstat(dirfd, &want) < 0)
		return -errno;
	if ((ret = cgroup_of_pid(0, cg, sizeof(cg))) < 0)
		return ret;
	if ((ret = cgroup_dir(cg, dir, sizeof(dir))) < 0)
		return ret;
	for (;;) {
		if (stat(dir, &got) < 0)
			return -errno;
		if (got.st_dev == want.st_dev && got.st_ino == want.st_ino)
			return 1;
		if (!below)
			return 0;
		char	*slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			return 0;
		*slash = '\0';
	}
}
