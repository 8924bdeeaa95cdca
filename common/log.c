/* common/log.c - see log.h.  Lines are written with a single write(2) so
 * that lines from threads and child processes do not interleave. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

static char	log_proc[32] = "maas";
static bool	log_debug_on;

static void	log_emit(const char *level, int errnum, const char *fmt,
		    va_list ap) __attribute__((format(printf, 3, 0)));

void
log_init(const char *procname, bool debug)
{
	log_set_procname(procname);
	log_debug_on = debug || getenv("MAAS_DEBUG") != NULL;
}

void
log_set_procname(const char *procname)
{
	snprintf(log_proc, sizeof(log_proc), "%s", procname);
}

static void
log_emit(const char *level, int errnum, const char *fmt, va_list ap)
{
	char		 line[1024];
	struct timespec	 ts;
	struct tm	 tm;
	size_t		 n;
	int		 r;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	r = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_proc,
	    (int)getpid(), level);
	n = r < 0 ? 0 : (size_t)r;
	if (n < sizeof(line)) {
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (errnum != 0) {
		r = snprintf(line + n, sizeof(line) - n, ": %s",
		    strerror(errnum));
		if (r > 0)
			n += (size_t)r;
		if (n > sizeof(line) - 2)
			n = sizeof(line) - 2;
	}
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

#define LOG_BODY(level, errnum) do {			\
	va_list ap;					\
	va_start(ap, fmt);				\
	log_emit(level, errnum, fmt, ap);		\
	va_end(ap);					\
} while (0)

void
log_warn(const char *fmt, ...)
{
	int	e = errno;

	LOG_BODY("warn", e);
	errno = e;
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY("warn", 0);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY("info", 0);
}

void
log_debug(const char *fmt, ...)
{
	if (!log_debug_on)
		return;
	LOG_BODY("debug", 0);
}

void
fatal(const char *fmt, ...)
{
	int	e = errno;

	LOG_BODY("fatal", e);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY("fatal", 0);
	exit(1);
}
