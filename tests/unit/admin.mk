# tests/unit/admin.mk - unit tests of admin/ modules.
UNIT_TESTS += test_webform
test_webform_SRCS := tests/unit/test_webform.c admin/webform.c
test_webform_PKGS :=
