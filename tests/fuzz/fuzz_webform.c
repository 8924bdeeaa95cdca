/* tests/fuzz/fuzz_webform.c - the console's parsers of browser input
 * (admin/webform.c): whatever the bytes, a Cookie header and a login form
 * are read within their bounds, and what they yield fits and holds no
 * NUL; an asset name that passes has no '/' and cannot climb up. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/webform.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*s, v[96];
	size_t	 n;

	if (size > WEBFORM_HEADER_MAX + 16)
		return 0;
	/* The form body as it arrives: exactly size bytes, no NUL. */
	if (webform_field((const char *)data, size, "token", v,
	    sizeof(v)) == 0) {
		n = strlen(v);
		assert(n < sizeof(v));
	}
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (webform_cookie(s, "maas_session", v, sizeof(v)) == 0)
		assert(strlen(v) < sizeof(v));
	if (webform_asset_part(s)) {
		assert(strchr(s, '/') == NULL && s[0] != '.');
		assert(strlen(s) <= 64);
	}
	free(s);
	return 0;
}
