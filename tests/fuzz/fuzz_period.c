/* tests/fuzz/fuzz_period.c - the billing period names of the admin API
 * (admin/period.c): whatever the bytes, parsing never reads past them,
 * and a period it accepts is a whole calendar month that names itself. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/period.h"
#include "db/db.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct db_period	 p, q;
	char			 s[16];
	int64_t			 days;

	if (size >= sizeof(s))
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (period_parse(s, &p) == -1)
		return 0;
	assert(strcmp(p.period, s) == 0);
	assert(p.start_us >= 0 && p.end_us > p.start_us);
	days = (p.end_us - p.start_us) / (86400LL * 1000000);
	assert(days >= 28 && days <= 31);
	assert((p.end_us - p.start_us) % (86400LL * 1000000) == 0);
	period_of(p.start_us / 1000000, &q);
	assert(memcmp(&p, &q, sizeof(p)) == 0);
	period_of(p.end_us / 1000000 - 1, &q);
	assert(memcmp(&p, &q, sizeof(p)) == 0);
	return 0;
}
