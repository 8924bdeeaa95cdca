# admin/module.mk - admin REST API.
ADMIN_SRCS := admin/admin.c admin/issuers.c admin/tenancy.c admin/billing.c \
	admin/openapi.c admin/idem.c admin/period.c admin/webform.c \
	admin/console.c
