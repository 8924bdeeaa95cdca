/* admin/webform.c - see webform.h.  Every loop is bounded by the length
 * checked at entry; nothing here allocates. */
#include <string.h>

#include "admin/webform.h"

static int	hexval(char);

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
webform_cookie(const char *header, const char *name, char *out,
    size_t outsz)
{
	size_t		 hlen, nlen, vlen;
	const char	*p, *end, *eq, *semi;

	if (header == NULL || outsz == 0 ||
	    (hlen = strnlen(header, WEBFORM_HEADER_MAX + 1)) >
	    WEBFORM_HEADER_MAX)
		return -1;
	nlen = strlen(name);
	end = header + hlen;
	for (p = header; p < end; p = semi + 1) {
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if ((semi = memchr(p, ';', (size_t)(end - p))) == NULL)
			semi = end;
		eq = memchr(p, '=', (size_t)(semi - p));
		if (eq != NULL && (size_t)(eq - p) == nlen &&
		    memcmp(p, name, nlen) == 0) {
			vlen = (size_t)(semi - eq - 1);
			/* RFC 6265 allows trailing blanks before ';' */
			while (vlen > 0 && (eq[vlen] == ' ' ||
			    eq[vlen] == '\t'))
				vlen--;
			if (vlen >= outsz)
				return -1;
			memcpy(out, eq + 1, vlen);
			out[vlen] = '\0';
			return 0;
		}
		if (semi == end)
			break;
	}
	return -1;
}

int
webform_field(const char *body, size_t len, const char *name, char *out,
    size_t outsz)
{
	const char	*p, *end, *amp, *eq;
	size_t		 nlen = strlen(name), o;
	int		 hi, lo;

	if (body == NULL || len > WEBFORM_BODY_MAX || outsz == 0)
		return -1;
	end = body + len;
	for (p = body; p < end; p = amp + 1) {
		if ((amp = memchr(p, '&', (size_t)(end - p))) == NULL)
			amp = end;
		eq = memchr(p, '=', (size_t)(amp - p));
		if (eq == NULL || (size_t)(eq - p) != nlen ||
		    memcmp(p, name, nlen) != 0) {
			if (amp == end)
				break;
			continue;
		}
		for (p = eq + 1, o = 0; p < amp; p++) {
			char	c = *p;

			if (c == '+')
				c = ' ';
			else if (c == '%') {
				if (amp - p < 3 || (hi = hexval(p[1])) < 0 ||
				    (lo = hexval(p[2])) < 0)
					return -1;
				c = (char)(hi << 4 | lo);
				p += 2;
			}
			if (c == '\0' || o + 1 >= outsz)
				return -1;
			out[o++] = c;
		}
		out[o] = '\0';
		return 0;
	}
	return -1;
}

bool
webform_asset_part(const char *s)
{
	size_t	n;

	if (s == NULL || (n = strnlen(s, 65)) == 0 || n > 64 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char	c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-'))
			return false;
	}
	return true;
}
