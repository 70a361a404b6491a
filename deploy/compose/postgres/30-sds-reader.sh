#!/bin/sh
# docker-entrypoint-initdb.d step of the demo stack: runs once, when the PostgreSQL data volume
# is first initialised, after 10-schema.sql and 20-demo-data.sql. Creates the account sds-sync
# reads the SIS with: it can log in and SELECT, nothing else, and its sessions are read-only.
# The password comes from the Compose secret sis_reader_password (never from the command line
# or the environment).
set -e
password=$(cat "${SIS_READER_PASSWORD_FILE:-/run/secrets/sis_reader_password}")
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" \
     --dbname "${POSTGRES_DB:-sis}" -v reader_password="$password" <<'SQL'
CREATE ROLE sds_reader LOGIN PASSWORD :'reader_password';
ALTER ROLE sds_reader SET default_transaction_read_only = on;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO sds_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO sds_reader;
SQL
echo "30-sds-reader.sh: role sds_reader created (SELECT only, read-only sessions)"
