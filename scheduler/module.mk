# scheduler/module.mk - deployments, fair queues, batching, supervisor.
SCHED_SRCS := scheduler/sched.c scheduler/fairq.c scheduler/batch.c \
	scheduler/replica.c scheduler/memory.c
