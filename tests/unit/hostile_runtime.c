/* tests/unit/hostile_runtime.c - a test-only runtime that misbehaves once
 * sandboxed, to prove the sandbox stops it.  Built into the test build
 * only (tests/unit/sandbox.mk), never installed.
 *
 *   hostile_runtime --fd N --model PATH [--mem-limit-mb M] [--shm-fd W]
 *	ACTION
 *
 * It sets up exactly as maas-runtime does (same struct sandbox_cfg, same
 * sandbox_limit_memory() and sandbox_enter()), then does ACTION:
 *   ok       what serving does: malloc, mmap, write and read the socket
 *   socket   socket(AF_INET)          exec     execve("/bin/sh")
 *   ptrace   ptrace(PTRACE_TRACEME)   open     open("/etc/passwd")
 *   alloc    malloc past RLIMIT_AS    fork     fork() in a loop
 *   mmapx    mmap(PROT_EXEC)
 *   shmread  the shared window (W, mapped as maas-runtime maps it) starts
 *            with "maasd"
 *   shmwrite mprotect() the window writable
 * and writes "ACTION: ok" or "ACTION: -1 ERRNO" to stdout when the call
 * returns.  A call the filter forbids never returns: SIGSYS kills it.
 * Exit 0 after reporting, 3 if the sandbox could not be entered. */
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/log.h"
#include "runtime/sandbox.h"

static void	report(const char *, long);
static long	act(const char *, uint64_t);
static int	fd_arg(const char *, const char *);

static const uint8_t	*shm;		/* the window, or NULL */
static size_t		 shm_len;

/* One line on stdout with a plain write(2): stdio buffers may need more
 * than the filter allows. */
static void
report(const char *what, long r)
{
	char	line[128];
	int	n;

	if (r == -1)
		n = snprintf(line, sizeof(line), "%s: -1 %s\n", what,
		    strerrorname_np(errno) ? strerrorname_np(errno) : "?");
	else
		n = snprintf(line, sizeof(line), "%s: ok\n", what);
	(void)!write(STDOUT_FILENO, line, (size_t)n);
}

static long
act(const char *what, uint64_t mem_limit)
{
	char *const	 sh_argv[] = { "/bin/sh", "-c", "exit 0", NULL };
	char		*p, c = 'x';
	int		 fd;

	if (strcmp(what, "ok") == 0) {
		if ((p = malloc(1 << 20)) == NULL)
			return -1;
		memset(p, 1, 1 << 20);
		free(p);
		if ((p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
			return -1;
		munmap(p, 1 << 20);
		if (write(3, &c, 1) != 1 || read(3, &c, 1) != 1)
			return -1;
		return 0;
	}
	if (strcmp(what, "socket") == 0)
		return socket(AF_INET, SOCK_STREAM, 0);
	if (strcmp(what, "exec") == 0)
		return execve(sh_argv[0], sh_argv, NULL);
	if (strcmp(what, "ptrace") == 0)
		return ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	if (strcmp(what, "open") == 0) {
		if ((fd = open("/etc/passwd", O_RDONLY)) != -1)
			close(fd);
		return fd;
	}
	if (strcmp(what, "alloc") == 0) {
		/* The whole limit: more than is left under it. */
		if ((p = malloc((size_t)mem_limit)) == NULL)
			return -1;
		memset(p, 1, (size_t)mem_limit);
		return 0;
	}
	if (strcmp(what, "fork") == 0) {
		for (int i = 0; i < 64; i++) {
			pid_t	pid = fork();

			if (pid == 0)
				_exit(0);
			if (pid == -1)
				return -1;
		}
		return 0;
	}
	if (strcmp(what, "shmread") == 0) {
		if (shm == NULL || memcmp(shm, "maasd", 5) != 0) {
			errno = ENODATA;
			return -1;
		}
		return 0;
	}
	if (strcmp(what, "shmwrite") == 0)
		return shm == NULL ? -1 : mprotect((void *)(uintptr_t)shm,
		    shm_len, PROT_READ | PROT_WRITE);
	if (strcmp(what, "mmapx") == 0)
		return mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE |
		    MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1 : 0;
	fatalx("unknown action '%s'", what);
}

/* A file descriptor number given as --opt, or the end of the test run. */
static int
fd_arg(const char *opt, const char *s)
{
	char	*end;
	long	 r;

	errno = 0;
	r = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || r < 0 || r > INT32_MAX)
		fatalx("bad --%s '%s'", opt, s);
	return (int)r;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "fd", required_argument, NULL, 'f' },
		{ "model", required_argument, NULL, 'm' },
		{ "mem-limit-mb", required_argument, NULL, 'M' },
		{ "shm-fd", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 }
	};
	struct sandbox_cfg	 sb;
	const char		*model = NULL;
	uint64_t		 mem_mb = 0;
	char			 err[1024];
	int			 ch, fd = -1, mfd;
	long			 r;

	log_init("hostile-runtime", false);
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			fd = fd_arg("fd", optarg);
			break;
		case 'm':
			model = optarg;
			break;
		case 'M':
			mem_mb = strtoull(optarg, NULL, 10);
			break;
		case 'w':
			/* As runtime/main.c maps it. */
			if ((shm = ipc_shm_map(fd_arg("shm-fd", optarg),
			    IPC_SHM_SIZE, &shm_len)) == NULL)
				fatalx("cannot map the shared window");
			break;
		default:
			return 1;
		}
	}
	if (optind != argc - 1 || fd < 0 || model == NULL)
		fatalx("usage: hostile_runtime --fd N --model PATH "
		    "[--mem-limit-mb M] ACTION");
	/* As runtime/main.c builds it. */
	sb = (struct sandbox_cfg){
		.parent = getppid(),
		.mem_limit = mem_mb << 20,
		.uid = SANDBOX_NOBODY,
		.gid = SANDBOX_NOBODY,
	};
	if (geteuid() != 0) {
		sb.uid = getuid();
		sb.gid = getgid();
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	if (mem_mb != 0 &&
	    sandbox_limit_memory(sb.mem_limit, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if ((mfd = open(model, O_RDONLY | O_CLOEXEC)) == -1)
		fatal("%s", model);
	sb.keep_fds[0] = fd;
	sb.keep_fds[1] = mfd;
	if (sandbox_enter(&sb) == -1)
		return 3;
	r = act(argv[optind], sb.mem_limit);
	report(argv[optind], r);
	return 0;
}
