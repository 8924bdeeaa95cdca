/* admin/period.c - see period.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admin/period.h"
#include "db/db.h"

int
period_parse(const char *s, struct db_period *p)
{
	struct tm	 tm;
	int		 y, m;

	if (s == NULL || strlen(s) != 7 || s[4] != '-')
		return -1;
	for (int i = 0; i < 7; i++)
		if (i != 4 && (s[i] < '0' || s[i] > '9'))
			return -1;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
	    (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	if (y < 1970 || m < 1 || m > 12)
		return -1;
	memset(p, 0, sizeof(*p));
	memcpy(p->period, s, 7);
	p->idx = (int64_t)y * 12 + m - 1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = 1;
	p->start_us = (int64_t)timegm(&tm) * 1000000;
	/* timegm normalises month 12 to January of the next year. */
	tm.tm_mon = m;
	p->end_us = (int64_t)timegm(&tm) * 1000000;
	return 0;
}

void
period_of(int64_t t, struct db_period *p)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;
	char		 s[32];

	gmtime_r(&tt, &tm);
	snprintf(s, sizeof(s), "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
	if (period_parse(s, p) == -1)
		(void)period_parse("1970-01", p);
}
