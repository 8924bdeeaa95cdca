/* tests/unit/test_sandbox.c - maas-runtime's sandbox, proved against a
 * runtime that attacks it: hostile_runtime enters the same sandbox_enter()
 * with the same configuration, then makes one forbidden call (or, for
 * "ok", only what serving needs).  Each forbidden call must kill it with
 * SIGSYS or fail with the errno the design gives it; the allowed path must
 * still work.
 *
 * The binary is MAAS_HOSTILE from the environment, or the one of this
 * build.  Its log goes to /dev/null unless MAAS_TEST_VERBOSE is set. */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ipc.h"

#ifndef HOSTILE_BIN
#define HOSTILE_BIN	"build/tests/hostile_runtime"
#endif

#define HOSTILE_MEM_MB	"512"

struct outcome {
	int	status;		/* exit status, 128 + signal if killed */
	char	out[256];	/* what it reported on stdout */
};

static char	bin[512];

/* Runs hostile_runtime ACTION with its IPC socket on fd 3 (the peer
 * answers the "ok" path's byte), a shared window made as maasd makes it
 * (holding "maasd") on fd 4, and the report on a pipe. */
static void
run(const char *action, struct outcome *o)
{
	uint8_t	*win;
	char	c;
	int	sv[2], pp[2], null, st, w;
	size_t	got = 0;
	ssize_t	n;
	pid_t	pid;

	memset(o, 0, sizeof(*o));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	assert_true((w = ipc_shm_create(IPC_SHM_SIZE, &win)) >= 0);
	memcpy(win, "maasd", 5);
	assert_true((pid = fork()) != -1);
	if (pid == 0) {
		null = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(sv[1], 3);
		dup2(w, 4);
		dup2(null, 0);
		dup2(pp[1], 1);
		if (getenv("MAAS_TEST_VERBOSE") == NULL)
			dup2(null, 2);
		execl(bin, bin, "--fd", "3", "--model", "/dev/null",
		    "--mem-limit-mb", HOSTILE_MEM_MB, "--shm-fd", "4", action,
		    (char *)NULL);
		_exit(127);
	}
	close(w);
	close(sv[1]);
	close(pp[1]);
	if (strcmp(action, "ok") == 0) {
		assert_int_equal(read(sv[0], &c, 1), 1);
		assert_int_equal(write(sv[0], &c, 1), 1);
	}
	while (got < sizeof(o->out) - 1 &&
	    (n = read(pp[0], o->out + got, sizeof(o->out) - 1 - got)) > 0)
		got += (size_t)n;
	o->out[strcspn(o->out, "\n")] = '\0';
	close(pp[0]);
	close(sv[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	o->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	munmap(win, IPC_SHM_SIZE);
}

/* The call never returned: the filter killed the process. */
static void
assert_killed(const char *action)
{
	struct outcome	o;

	run(action, &o);
	if (o.status != 128 + SIGSYS)
		fail_msg("%s: status %d, reported \"%s\"; want SIGSYS",
		    action, o.status, o.out);
	assert_string_equal(o.out, "");
}

/* The call returned the error it is designed to. */
static void
assert_refused(const char *action, const char *want)
{
	struct outcome	o;

	run(action, &o);
	assert_int_equal(o.status, 0);
	assert_string_equal(o.out, want);
}

static void
test_allowed(void **state)
{
	(void)state;
	assert_refused("ok", "ok: ok");
}

static void
test_socket(void **state)
{
	(void)state;
	assert_killed("socket");
}

static void
test_exec(void **state)
{
	(void)state;
	assert_killed("exec");
}

static void
test_ptrace(void **state)
{
	(void)state;
	assert_killed("ptrace");
}

static void
test_mmap_exec(void **state)
{
	(void)state;
	assert_killed("mmapx");
}

/* open/openat fail softly (EPERM), by design. */
static void
test_open(void **state)
{
	(void)state;
	assert_refused("open", "open: -1 EPERM");
}

/* No process may be made: clone without CLONE_THREAD is not allowed. */
static void
test_fork(void **state)
{
	(void)state;
	assert_killed("fork");
}

/* The shared window reads as maasd wrote it and cannot be made
 * writable: what one request's input holds, a runtime cannot change for
 * the next (F_SEAL_FUTURE_WRITE). */
static void
test_window(void **state)
{
	(void)state;
	assert_refused("shmread", "shmread: ok");
	assert_refused("shmwrite", "shmwrite: -1 EACCES");
}

/* RLIMIT_AS holds: an allocation of the whole limit fails with NULL. */
static void
test_alloc(void **state)
{
	(void)state;
#ifdef __SANITIZE_ADDRESS__	/* no RLIMIT_AS under ASan */
	skip();
#else
	assert_refused("alloc", "alloc: -1 ENOMEM");
#endif
}

static int
setup(void **state)
{
	const char	*e;

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	snprintf(bin, sizeof(bin), "%s",
	    (e = getenv("MAAS_HOSTILE")) ? e : HOSTILE_BIN);
	return access(bin, X_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_socket),
		cmocka_unit_test(test_exec),
		cmocka_unit_test(test_ptrace),
		cmocka_unit_test(test_mmap_exec),
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_fork),
		cmocka_unit_test(test_alloc),
		cmocka_unit_test(test_window),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
