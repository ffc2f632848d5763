#!/bin/sh
# One-shot (temporal-admin-tools): the temporal and temporal_visibility databases and their
# schemas, as Temporal's compose samples make them. Idempotent: `create` of an existing
# database fails and is ignored, `update-schema` applies only what is missing.
# The password comes from the compose secret, never from the compose file.
set -eu
SQL_PASSWORD="$(cat /run/secrets/temporal_db_password)"
export SQL_PASSWORD
nc -z -w 10 postgresql 5432
for db in temporal temporal_visibility; do
  case $db in temporal) dir=temporal ;; *) dir=visibility ;; esac
  temporal-sql-tool --plugin postgres12 --ep postgresql -u temporal -p 5432 --db "$db" create || true
  temporal-sql-tool --plugin postgres12 --ep postgresql -u temporal -p 5432 --db "$db" setup-schema -v 0.0 || true
  temporal-sql-tool --plugin postgres12 --ep postgresql -u temporal -p 5432 --db "$db" \
    update-schema -d "/etc/temporal/schema/postgresql/v12/$dir/versioned"
done
echo 'temporal schemas ready'
