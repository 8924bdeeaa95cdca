/* admin/tenancy.h - admin routes for what limits a tenant: quotas (per
 * tenant and per key), suspension, key rotation, prices.  Handlers take
 * the "*" path segments of their route in arg (see admin.c's table). */
#ifndef ADMIN_TENANCY_H
#define ADMIN_TENANCY_H
struct req;

void	admin_tenant_quota_put(struct req *, char **arg);
void	admin_key_quota_put(struct req *, char **arg);
/* GET: the quota row set by PUT, or one with every limit null (and
 * "set": false) when none is. */
void	admin_tenant_quota_get(struct req *, char **arg);
void	admin_key_quota_get(struct req *, char **arg);
void	admin_tenant_suspend(struct req *, char **arg);
void	admin_tenant_resume(struct req *, char **arg);
void	admin_key_rotate(struct req *, char **arg);
void	admin_price_list(struct req *, char **arg);
void	admin_price_add(struct req *, char **arg);
#endif
