# tests/fuzz/admin.mk - admin API input parsers (admin/).
FUZZ_TARGETS += fuzz_period
fuzz_period_SRCS := tests/fuzz/fuzz_period.c admin/period.c
fuzz_period_PKGS := jansson
FUZZ_TARGETS += fuzz_webform
fuzz_webform_SRCS := tests/fuzz/fuzz_webform.c admin/webform.c
fuzz_webform_PKGS :=
