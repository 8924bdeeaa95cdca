# tests/unit/module.mk - cmocka unit tests.  Each part lists its tests in
# its own tests/unit/<part>.mk:
#   UNIT_TESTS += test_foo
#   test_foo_SRCS := tests/unit/test_foo.c common/...   (objects to link)
#   test_foo_PKGS := jansson ...                        (pkg-config names)
# and, when a test compiles against the generated ONNX header,
#   TESTS_NEED_ONNX += tests/unit/test_foo.c
include $(filter-out tests/unit/module.mk,$(wildcard tests/unit/*.mk))
