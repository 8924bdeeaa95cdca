/* admin/webform.h - the few browser formats the console reads from
 * outside: a Cookie header, an application/x-www-form-urlencoded body and
 * an asset path.  Pure functions over bounded input, no allocation, so
 * they can be fuzzed alone (tests/fuzz/fuzz_webform.c). */
#ifndef ADMIN_WEBFORM_H
#define ADMIN_WEBFORM_H
#include <stdbool.h>
#include <stddef.h>

#define WEBFORM_HEADER_MAX	8192	/* longest Cookie header read */
#define WEBFORM_BODY_MAX	4096	/* longest form body read */

/* Copies the value of the first cookie called name in a Cookie header
 * ("a=1; b=2") into out (NUL-terminated).  -1 if header is NULL, longer
 * than WEBFORM_HEADER_MAX, has no such cookie, or the value does not fit
 * in outsz. */
int	webform_cookie(const char *header, const char *name, char *out,
	    size_t outsz);
/* Copies the decoded value ('+' is a space, %XX a byte) of the first
 * field called name of a urlencoded body of len bytes (not
 * NUL-terminated) into out.  -1 if len > WEBFORM_BODY_MAX, the field is
 * missing, its encoding is malformed, it decodes to a NUL byte or it does
 * not fit in outsz. */
int	webform_field(const char *body, size_t len, const char *name,
	    char *out, size_t outsz);
/* Is this path component safe to name a file of the asset tree: 1-64
 * characters from [A-Za-z0-9._-], not starting with a dot (so neither
 * "." nor ".." nor hidden files)? */
bool	webform_asset_part(const char *);
#endif
