# scheduler/module.mk - deployments, replica pools, queues, supervisor.
SCHED_SRCS := scheduler/sched.c scheduler/replica.c
