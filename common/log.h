/* common/log.h - process logging to stderr, OpenBSD log.c style.
 * Every line names the process (log_init). Never pass secrets, prompts or
 * model outputs to these functions: log sizes or hashes instead. */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H
#include <stdarg.h>
#include <stdbool.h>

void	log_init(const char *procname, bool debug);
void	log_set_procname(const char *procname);
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
/* fatal() adds strerror(errno); both exit(1). For start-up failures and
 * for a sibling process that broke protocol. */
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
#endif
