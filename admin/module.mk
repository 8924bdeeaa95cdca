# admin/module.mk - admin REST API.
ADMIN_SRCS := admin/admin.c admin/issuers.c admin/tenancy.c
