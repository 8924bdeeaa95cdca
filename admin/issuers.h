/* admin/issuers.h - /admin/v1/issuers: the keys that sign tenants' JWTs.
 *
 *   POST   /admin/v1/issuers {"kid","alg","key","iss","aud","tenant_claim",
 *          "tenant_id"} -> 201 the issuer; "key" is never shown,
 *          "key_fingerprint" is; with "tenant_id" (an existing tenant)
 *          the issuer is bound to it: its tokens naming another tenant
 *          are refused (401), as one customer's identity provider must
 *          not sign for another
 *   GET    /admin/v1/issuers[?limit=&after=]	issuers not deleted, paged
 *   GET    /admin/v1/issuers/{id}		one issuer, deleted or not
 *   DELETE /admin/v1/issuers/{id}		-> 200; its tokens fail at once
 *
 * Every change is durable and audited (without the key) before the reply,
 * and is applied to the gateway's keyring (gateway/jwt.h) in the same
 * completion, so that a deleted key verifies nothing once DELETE has
 * answered. */
#ifndef ADMIN_ISSUERS_H
#define ADMIN_ISSUERS_H

struct req;

/* Handles a request whose path starts /admin/v1/issuers; the caller has
 * checked the admin credential.  Replies exactly once. */
void	admin_issuers_handle(struct req *);
#endif
