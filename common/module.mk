# common/module.mk - code every process shares.
COMMON_SRCS := common/log.c common/xmalloc.c common/wire.c common/tensor.c \
	common/ipc.c
