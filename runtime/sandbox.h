/* runtime/sandbox.h - confines maas-runtime once its model is loaded.
 *
 * sandbox_enter() is called once, after the model is loaded and a warm-up
 * inference has created OpenBLAS's threads and the activation arena, and
 * before the first byte from maasd is read.  In order it:
 *   - sets RLIMIT_CORE 0, RLIMIT_FSIZE 0 (SIGXFSZ must be ignored: see
 *     below), RLIMIT_AS to mem_limit if set (not in AddressSanitizer
 *     builds);
 *   - closes every fd but 0, 1, 2 and keep_fds, then sets RLIMIT_NOFILE
 *     just above the highest fd left;
 *   - when running as root: setgroups(0), setresgid, setresuid to gid/uid
 *     and checks that root cannot be regained; RLIMIT_NPROC 0 (no new
 *     processes or threads for that uid from here on);
 *   - PR_SET_PDEATHSIG(SIGKILL) (after the uid change, which clears it)
 *     and checks the parent is still cfg->parent; PR_SET_DUMPABLE 0 so
 *     that other runtimes under the same uid cannot ptrace this one;
 *   - PR_SET_NO_NEW_PRIVS, then a seccomp allowlist on every thread
 *     (TSYNC) that kills the process on anything else.
 * What the filter allows is listed in sandbox.c.  open/openat fail with
 * EPERM instead of killing: a library probing a file after the sandbox is
 * up gets an error it handles, and there is nothing to gain from it.
 *
 * With RLIMIT_FSIZE 0 a write to a regular file fails (EFBIG, SIGXFSZ):
 * the caller ignores SIGXFSZ and stderr should be a pipe, not a file. */
#ifndef RUNTIME_SANDBOX_H
#define RUNTIME_SANDBOX_H
#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SANDBOX_NOBODY		65534	/* default uid and gid for root */
#define SANDBOX_KEEP		3	/* fds kept open besides 0, 1, 2 */

struct sandbox_cfg {
	pid_t		parent;		/* getppid() at start */
	/* The IPC socket, the model file, serve.c's eventfd; -1 none. */
	int		keep_fds[SANDBOX_KEEP];
	uint64_t	mem_limit;	/* RLIMIT_AS bytes; 0 leaves it */
	uid_t		uid;		/* switched to when root */
	gid_t		gid;
};

/* 0, or -1 after logging what failed; the process must then exit. */
int	sandbox_enter(const struct sandbox_cfg *);
/* RLIMIT_AS alone, to bound loading a hostile model too.  0, or -1 with a
 * message in err, also when more than bytes is mapped already (every later
 * allocation would fail).  Not set in AddressSanitizer builds, which map
 * terabytes of shadow. */
int	sandbox_limit_memory(uint64_t bytes, char *err, size_t errlen);
/* Address space in use, in MiB (to size --mem-limit-mb); -1 if unknown. */
long	sandbox_mapped_mib(void);
#endif
