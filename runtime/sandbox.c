/* runtime/sandbox.c - see sandbox.h.
 *
 * The allowlist is what serving needs once the model is loaded: frame I/O
 * on the IPC socket and stderr, memory for the arena and malloc (never
 * executable), OpenBLAS's worker threads synchronising with futexes, the
 * clock, and exiting.  Threads may still be created (clone with
 * CLONE_THREAD; clone3 reports ENOSYS so that glibc falls back to clone,
 * whose flags a filter can see), but processes may not. */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "runtime/sandbox.h"

/* AddressSanitizer builds (SAN=1) reserve terabytes of address space
 * and check for leaks at exit from a ptrace-ing helper process. */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN	1
#endif
#endif
#ifdef SANDBOX_ASAN
#include <sanitizer/lsan_interface.h>
#endif

static const int sandbox_allow[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(recvfrom), SCMP_SYS(recvmsg), SCMP_SYS(sendto),
	SCMP_SYS(sendmsg), SCMP_SYS(close), SCMP_SYS(fstat),
	SCMP_SYS(newfstatat), SCMP_SYS(lseek), SCMP_SYS(munmap),
	SCMP_SYS(mremap), SCMP_SYS(brk), SCMP_SYS(madvise), SCMP_SYS(futex),
	SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(nanosleep), SCMP_SYS(gettid), SCMP_SYS(getpid),
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(restart_syscall), SCMP_SYS(exit), SCMP_SYS(exit_group),
	/* A new thread registers these (glibc >= 2.35). */
	SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
	/* OpenBLAS binds the buffers it maps for its threads. */
	SCMP_SYS(mbind),
	/* glibc's qsort() asks for the machine's memory size (sysconf
	 * _SC_PHYS_PAGES) before sorting a large array, as the LLM
	 * sampler does; it reveals nothing worth hiding. */
	SCMP_SYS(sysinfo),
	/* The read-ahead thread waits for the socket or its wake-up
	 * eventfd (runtime/serve.c). */
	SCMP_SYS(poll), SCMP_SYS(ppoll),
};

static int	set_limit(int, rlim_t);
static int	close_fds(const struct sandbox_cfg *, int *);
static int	drop_root(const struct sandbox_cfg *);
static int	load_filter(void);

static int
set_limit(int res, rlim_t v)
{
	struct rlimit	rl;

	if (getrlimit(res, &rl) == -1)
		return -1;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < v)
		v = rl.rlim_max;
	rl.rlim_cur = rl.rlim_max = v;
	return setrlimit(res, &rl);
}

/* Closes every fd above 2 except cfg->keep_fds; *maxfd gets the highest
 * fd left open. */
static int
close_fds(const struct sandbox_cfg *cfg, int *maxfd)
{
	struct rlimit	rl;
	unsigned	lo = 3, hi;
	int		keep[SANDBOX_KEEP], n = 0, j;

	/* The ones above 2, in ascending order, each once. */
	for (int i = 0; i < SANDBOX_KEEP; i++) {
		int	fd = cfg->keep_fds[i];

		if (fd <= 2)
			continue;
		for (j = n; j > 0 && keep[j - 1] > fd; j--)
			keep[j] = keep[j - 1];
		if (j > 0 && keep[j - 1] == fd) {
			memmove(&keep[j], &keep[j + 1], (size_t)(n - j) *
			    sizeof(*keep));
			continue;
		}
		keep[j] = fd;
		n++;
	}
	*maxfd = n > 0 ? keep[n - 1] : 2;
	for (int i = 0; i <= n; i++) {
		hi = i < n ? (unsigned)keep[i] - 1 : ~0U;
		if (lo <= hi && close_range(lo, hi, 0) == -1) {
			if (errno != ENOSYS)
				return -1;
			/* Before Linux 5.9: one by one, up to the limit. */
			if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
				return -1;
			for (unsigned fd = lo; fd <= hi && fd < rl.rlim_cur &&
			    fd < (1U << 20); fd++)
				(void)close((int)fd);
		}
		if (i < n)
			lo = (unsigned)keep[i] + 1;
	}
	return 0;
}

static int
drop_root(const struct sandbox_cfg *cfg)
{
	uid_t	ru, eu, su;
	gid_t	rg, eg, sg;

	if (setgroups(0, NULL) == -1) {
		log_warn("setgroups");
		return -1;
	}
	if (setresgid(cfg->gid, cfg->gid, cfg->gid) == -1) {
		log_warn("setresgid %u", (unsigned)cfg->gid);
		return -1;
	}
	if (setresuid(cfg->uid, cfg->uid, cfg->uid) == -1) {
		log_warn("setresuid %u", (unsigned)cfg->uid);
		return -1;
	}
	/* Root must be gone for good, in every id. */
	if (setresuid(0, 0, 0) != -1 || setresgid(0, 0, 0) != -1 ||
	    getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1 ||
	    ru != cfg->uid || eu != cfg->uid || su != cfg->uid ||
	    rg != cfg->gid || eg != cfg->gid || sg != cfg->gid ||
	    getgroups(0, NULL) != 0) {
		log_warnx("privileges could be regained after dropping to "
		    "uid %u", (unsigned)cfg->uid);
		return -1;
	}
	return 0;
}

static int
load_filter(void)
{
	scmp_filter_ctx	 ctx;
	int		 r = -ENOMEM;

	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		goto out;
	/* OpenBLAS's threads exist already: filter them too. */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0)
		goto out;
	for (size_t i = 0; i < sizeof(sandbox_allow) / sizeof(int); i++)
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW,
		    sandbox_allow[i], 0)) < 0)
			goto out;
	/* Memory, but never executable memory. */
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0)
		goto out;
	/* Threads, not processes. */
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
	    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD))) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
	    SCMP_SYS(clone3), 0)) < 0)
		goto out;
#ifdef SANDBOX_ASAN
	/* ASan gives every thread an alternate signal stack and takes it
	 * down as the thread exits. */
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sigaltstack),
	    0)) < 0)
		goto out;
#endif
	/* abort() signals itself; no other process. */
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
	    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0))) < 0)
		goto out;
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(open),
	    0)) < 0 || (r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM),
	    SCMP_SYS(openat), 0)) < 0)
		goto out;
	r = seccomp_load(ctx);
 out:
	seccomp_release(ctx);
	if (r < 0) {
		log_warnx("cannot load the seccomp filter: %s", strerror(-r));
		return -1;
	}
	return 0;
}

long
sandbox_mapped_mib(void)
{
	FILE	*f;
	long	 pages = -1;

	if ((f = fopen("/proc/self/statm", "re")) == NULL)
		return -1;
	if (fscanf(f, "%ld", &pages) != 1)
		pages = -1;
	fclose(f);
	return pages < 0 ? -1 : pages * (sysconf(_SC_PAGESIZE) >> 10) >> 10;
}

int
sandbox_limit_memory(uint64_t bytes, char *err, size_t errlen)
{
#ifdef SANDBOX_ASAN
	(void)err;
	(void)errlen;
	log_warnx("AddressSanitizer build: memory limit of %llu MiB not set",
	    (unsigned long long)(bytes >> 20));
#else
	long	mib;

	/* OpenBLAS alone maps some 130 MiB per thread. */
	if ((mib = sandbox_mapped_mib()) >= 0 && (uint64_t)mib >= bytes >> 20) {
		snprintf(err, errlen, "memory limit of %llu MiB is below the "
		    "%ld MiB already mapped", (unsigned long long)(bytes >> 20),
		    mib);
		return -1;
	}
	if (set_limit(RLIMIT_AS, (rlim_t)bytes) == -1) {
		snprintf(err, errlen, "cannot set RLIMIT_AS: %s",
		    strerror(errno));
		return -1;
	}
#endif
	return 0;
}

int
sandbox_enter(const struct sandbox_cfg *cfg)
{
	bool	root = geteuid() == 0 || getuid() == 0;
	int	maxfd;

#ifdef SANDBOX_ASAN
	/* The exit-time leak check needs a new process, which neither the
	 * filter nor RLIMIT_NPROC allow: check now, which also turns the
	 * exit-time one off. */
	__lsan_do_leak_check();
#endif
	if (set_limit(RLIMIT_CORE, 0) == -1 ||
	    set_limit(RLIMIT_FSIZE, 0) == -1) {
		log_warn("setrlimit");
		return -1;
	}
#ifndef SANDBOX_ASAN
	if (cfg->mem_limit != 0 &&
	    set_limit(RLIMIT_AS, (rlim_t)cfg->mem_limit) == -1) {
		log_warn("setrlimit RLIMIT_AS");
		return -1;
	}
#endif
	if (close_fds(cfg, &maxfd) == -1 ||
	    set_limit(RLIMIT_NOFILE, (rlim_t)maxfd + 1) == -1) {
		log_warn("cannot close or limit fds");
		return -1;
	}
	if (root && (drop_root(cfg) == -1 ||
	    set_limit(RLIMIT_NPROC, 0) == -1))
		return -1;
	/* After the uid change, which clears the parent-death signal. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
	    prctl(PR_SET_DUMPABLE, 0) == -1 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		log_warn("prctl");
		return -1;
	}
	if (getppid() != cfg->parent) {
		log_warnx("parent %d is gone", (int)cfg->parent);
		return -1;
	}
	return load_filter();
}
