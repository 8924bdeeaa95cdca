/* tests/fuzz/fuzz_apikey.c - the credential parsers of the tenant and
 * admin APIs on arbitrary Authorization header values: API key parsing
 * (prefix and hash) and the admin token check.  No database is reached:
 * a well-formed key stops at the parser here. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/auth.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t	 admin_hash[32] = { 1 };
	char			 prefix[AUTH_PREFIX_LEN + 1];
	uint8_t			 hash[32];
	char			*s;

	if (size > AUTH_HEADER_MAX + 16)
		return 0;
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (auth_key_parse(s, prefix, hash) == 0 &&
	    (strlen(prefix) != AUTH_PREFIX_LEN || strlen(s) != AUTH_KEY_LEN))
		abort();
	(void)auth_admin(admin_hash, s);
	free(s);
	return 0;
}
