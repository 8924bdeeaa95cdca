/* admin/openapi.h - GET /admin/v1/openapi.json: an OpenAPI 3.0 document
 * of the admin API, built at each request from admin.c's route table (so
 * a route cannot exist undocumented: one without a description here is
 * listed with "x-undocumented": true, which the tests refuse) and the
 * descriptions and schemas in openapi.c. */
#ifndef ADMIN_OPENAPI_H
#define ADMIN_OPENAPI_H
#include <jansson.h>

struct req;

void	 admin_openapi(struct req *, char **arg);
/* The document (new reference); NULL if the built-in schemas do not
 * parse (a bug, logged). */
json_t	*admin_openapi_doc(void);
#endif
