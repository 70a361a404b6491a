#!/usr/bin/env bash
# Test SIS servers for the TLS tests of the source (crates/source/tests/tls.rs): a host name that
# is not "local" but resolves to 127.0.0.1, and TLS-only PostgreSQL and MariaDB instances with a
# certificate for that name from a test CA. The shared PostgreSQL (5432) and MariaDB (3306) are
# not touched.
#
#   scripts/services/sis.sh start   # idempotent: /etc/hosts entry, CA, both instances, sis.env
#   scripts/services/sis.sh stop    # stop both instances by their saved pids
#
#   name      sis.sds-sync.test -> 127.0.0.1 (one line appended to /etc/hosts, once)
#   pg-tls    127.0.0.1:55433  PostgreSQL, TLS only (hostssl + scram), user sds_tls
#   maria-tls 127.0.0.1:33307  MariaDB, require_secure_transport, user sds_tls
# Both only listen on 127.0.0.1; their certificate names sis.sds-sync.test and 127.0.0.1.
set -euo pipefail
# Servers started below inherit the working directory: never leave them in a checkout that may be
# deleted while they run (pyftpdlib then fails every CWD).
cd /

STATE=/tmp/sds-test-services/sis
ENV_FILE=/tmp/sds-test-services/sis.env
PKI=$STATE/pki
NAME=sis.sds-sync.test
PG_PORT=55433
MY_PORT=33307
USER_NAME=sds_tls
PASSWORD=tls-test-pass-7Q

log() { echo "sis.sh: $*" >&2; }

wait_port() {
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

stop_pid() {
  local pid=$1 sig=${2:-TERM}
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  log "pid $pid still alive"
}

hosts_entry() {
  # A name the tests treat as remote (only localhost/127.0.0.1/::1 are local) that still reaches
  # the fake and TLS servers on loopback. Appended once; nothing else in /etc/hosts changes.
  if ! grep -Eq "^[[:space:]]*127\.0\.0\.1[[:space:]].*\b${NAME//./\\.}\b" /etc/hosts; then
    printf '127.0.0.1 %s\n' "$NAME" >> /etc/hosts
    log "added $NAME to /etc/hosts"
  fi
  getent hosts "$NAME" | grep -q '^127\.0\.0\.1' || { log "$NAME does not resolve to 127.0.0.1"; exit 1; }
}

install_packages() {
  local need=()
  command -v openssl >/dev/null || need+=(openssl)
  [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  [ ${#need[@]} -eq 0 ] && return 0
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  [ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

make_pki() {
  mkdir -p "$PKI"
  [ -s "$PKI/server.crt" ] && [ -s "$PKI/ca.crt" ] && return 0
  log "creating test CA and server certificate for $NAME in $PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=sds-sync SIS test CA" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$NAME" -keyout server.key -out server.csr 2>/dev/null
    # A leaf (CA:FALSE): rustls refuses a CA certificate as a server certificate.
    printf 'subjectAltName=DNS:%s,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
      "$NAME" > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt 2>/dev/null
    chmod 644 ca.crt server.crt
    chmod 600 server.key ca.key
  )
}

start_postgres() {
  local dir=$STATE/pg bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  if [ -f "$dir/data/postmaster.pid" ] && kill -0 "$(head -n1 "$dir/data/postmaster.pid")" 2>/dev/null \
      && wait_port "$PG_PORT"; then
    return 0
  fi
  rm -rf "$dir"
  install -d -o postgres -g postgres "$dir"
  install -o postgres -g postgres -m 600 "$PKI/server.key" "$dir/server.key"
  install -o postgres -g postgres -m 644 "$PKI/server.crt" "$dir/server.crt"
  # initdb and postgres refuse to run as root.
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust \
    --auth-host=reject --encoding=UTF8 --locale=C.UTF-8 -N > "$dir/initdb.log"
  # TCP only with TLS (hostssl); plain TCP is rejected, so a client that fell back to clear text
  # would fail loudly.
  printf 'local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 reject\n' \
    > "$dir/data/pg_hba.conf"
  chown postgres:postgres "$dir/data/pg_hba.conf"
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $dir -c fsync=off -c shared_buffers=16MB -c max_connections=20 -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" \
    start >/dev/null
  "$bin/psql" -h "$dir" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE ROLE $USER_NAME LOGIN PASSWORD '$PASSWORD'" -c "CREATE DATABASE sis OWNER $USER_NAME"
  "$bin/psql" -h "$dir" -p "$PG_PORT" -U postgres -d sis -v ON_ERROR_STOP=1 -q \
    -c "SET ROLE $USER_NAME" \
    -c "CREATE TABLE schools (school_id text, name text); INSERT INTO schools VALUES ('001', 'North High')"
}

start_mariadb() {
  local dir=$STATE/maria
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null && wait_port "$MY_PORT"; then
    return 0
  fi
  [ -f "$dir/pid" ] && stop_pid "$(cat "$dir/pid")"
  rm -rf "$dir"
  install -d -o mysql -g mysql "$dir"
  install -o mysql -g mysql -m 600 "$PKI/server.key" "$dir/server.key"
  install -o mysql -g mysql -m 644 "$PKI/server.crt" "$dir/server.crt"
  install -o mysql -g mysql -m 644 "$PKI/ca.crt" "$dir/ca.crt"
  cat > "$dir/my.cnf" <<CONF
[mariadbd]
datadir=$dir/data
socket=$dir/mysqld.sock
pid-file=$dir/mysqld.pid
port=$MY_PORT
bind-address=127.0.0.1
skip-name-resolve
log-error=$dir/error.log
innodb_buffer_pool_size=16M
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
ssl-ca=$dir/ca.crt
ssl-cert=$dir/server.crt
ssl-key=$dir/server.key
require_secure_transport=ON
[client]
socket=$dir/mysqld.sock
CONF
  mariadb-install-db --defaults-file="$dir/my.cnf" --user=mysql \
    --auth-root-authentication-method=socket --skip-test-db > "$dir/install-db.log" 2>&1
  # --defaults-file must come first. setsid: not taken down with the caller's process group.
  setsid /usr/sbin/mariadbd --defaults-file="$dir/my.cnf" --user=mysql > "$dir/stdout.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
  for _ in $(seq 1 150); do
    mariadb-admin --defaults-file="$dir/my.cnf" -uroot ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  mariadb --defaults-file="$dir/my.cnf" -uroot -e "
    CREATE DATABASE sis;
    CREATE USER '$USER_NAME'@'%' IDENTIFIED BY '$PASSWORD' REQUIRE SSL;
    GRANT ALL ON sis.* TO '$USER_NAME'@'%';
    CREATE TABLE sis.schools (school_id VARCHAR(10), name VARCHAR(50));
    INSERT INTO sis.schools VALUES ('001', 'North High');"
}

write_env() {
  local tmp=$ENV_FILE.tmp
  cat > "$tmp" <<ENV
# Written by scripts/services/sis.sh: how the source TLS tests reach the test SIS servers.
export SDS_TEST_REMOTE_HOST=$NAME
export SDS_TEST_PG_TLS_URL=postgres://$USER_NAME:$PASSWORD@$NAME:$PG_PORT/sis
export SDS_TEST_MYSQL_TLS_URL=mysql://$USER_NAME:$PASSWORD@$NAME:$MY_PORT/sis
export SDS_TEST_SIS_CA_FILE=$PKI/ca.crt
ENV
  mv "$tmp" "$ENV_FILE"
}

start() {
  install_packages
  hosts_entry
  mkdir -p "$STATE"
  chmod 755 /tmp/sds-test-services "$STATE"
  make_pki
  start_postgres
  start_mariadb
  write_env
  log "TLS PostgreSQL on 127.0.0.1:$PG_PORT, TLS MariaDB on 127.0.0.1:$MY_PORT, as $NAME; env in $ENV_FILE"
}

stop() {
  local pidfile=$STATE/pg/data/postmaster.pid
  [ -f "$pidfile" ] && stop_pid "$(head -n1 "$pidfile")" INT
  [ -f "$STATE/maria/pid" ] && stop_pid "$(cat "$STATE/maria/pid")"
  rm -f "$ENV_FILE" "$STATE/maria/pid"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
