#!/bin/sh
# The Temporal server's entrypoint, with its database password read from the compose secret
# (the server image takes it only as POSTGRES_PWD in its environment).
set -eu
POSTGRES_PWD="$(cat /run/secrets/temporal_db_password)"
export POSTGRES_PWD
exec /etc/temporal/entrypoint.sh "$@"
