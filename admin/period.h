/* admin/period.h - billing periods named by the API as "YYYY-MM" (a UTC
 * calendar month).  No state, no allocation: also built into the fuzz
 * target fuzz_period. */
#ifndef ADMIN_PERIOD_H
#define ADMIN_PERIOD_H
#include <stdint.h>

struct db_period;

/* Parses s (exactly "YYYY-MM", 1970-01 to 9999-12) into p: its name, idx
 * (year * 12 + month - 1) and [start, end) in microseconds.  -1 if
 * malformed (p is then unspecified). */
int	period_parse(const char *s, struct db_period *p);
/* The period holding Unix time t (seconds, >= 0). */
void	period_of(int64_t t, struct db_period *p);
#endif
