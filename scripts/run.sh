#!/bin/sh
# scripts/run.sh - starts maasd on ./var with the demo tenant and models
# (demo-mlp on the KServe API, demo-llm on the OpenAI API at /v1); the
# banner prints a working curl line for each.
# The first start initializes var/; later starts reuse it.
set -eu
cd "$(dirname "$0")/.."
exec bin/maasd --data-dir var --listen 127.0.0.1:8443 \
    --admin-listen 127.0.0.1:8444 --demo "$@"
