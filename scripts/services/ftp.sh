#!/usr/bin/env bash
# Test FTP/FTPS servers for the `ftp` destination tests: real vsftpd instances on 127.0.0.1.
#
#   scripts/services/ftp.sh start   # install if missing, (re)start, write /tmp/sds-test-services/ftp.env
#   scripts/services/ftp.sh stop    # stop every instance by its saved pid
#
# Instances (one vsftpd process each, own port and disjoint passive port range):
#   plain     21021  FTP, explicit FTPS optional (AUTH TLS), require_ssl_reuse=NO
#   ftpsonly  21022  explicit FTPS forced for login and data (force_local_*_ssl=YES)
#   reuse     21023  explicit FTPS with vsftpd's default require_ssl_reuse=YES
#   implicit  21024  implicit FTPS (TLS from the first byte), require_ssl_reuse=YES
#   notls     21025  plain FTP only (ssl_enable=NO): AUTH TLS is refused
# A test CA (own, under the state folder) signs the server certificate for 127.0.0.1/localhost.
set -euo pipefail

STATE=/tmp/sds-test-services/ftp
ENV_FILE=/tmp/sds-test-services/ftp.env
PKI=$STATE/pki
ROOT=$STATE/root            # the FTP user's home = what the server shows as "/"
FTP_USER=sdsftp
PAM_SERVICE=sds-vsftpd-test
VSFTPD=/usr/sbin/vsftpd
HERE="$(cd "$(dirname "$0")" && pwd)"
# Servers started below inherit the working directory: never leave them in a checkout that may be
# deleted while they run (pyftpdlib then fails every CWD).
cd /

# name port pasv_min pasv_max extra-config-file
INSTANCES=(
  "plain 21021 30100 30119 plain.conf"
  "ftpsonly 21022 30120 30139 ftpsonly.conf"
  "reuse 21023 30140 30159 reuse.conf"
  "implicit 21024 30160 30179 implicit.conf"
  "notls 21025 30180 30199 notls.conf"
)

log() { echo "ftp.sh: $*" >&2; }

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

stop_pid() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    # Only the listener: each session process vsftpd forks ends with its client's connection.
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

install_packages() {
  local need=()
  [ -x "$VSFTPD" ] || need+=(vsftpd)
  command -v openssl >/dev/null || need+=(openssl)
  [ ${#need[@]} -eq 0 ] && return 0
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Never let apt start vsftpd on 0.0.0.0:21 (Docker-style images ship this file; make sure).
  [ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }
  # Other service scripts may run apt at the same time: wait for the lock instead of failing.
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

make_pki() {
  mkdir -p "$PKI"
  [ -s "$PKI/server.crt" ] && [ -s "$PKI/ca.crt" ] && return 0
  log "creating test CA and server certificate in $PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=sds-sync FTP test CA" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    # rustls/webpki rejects a self-signed CA:TRUE cert as a server cert, hence a real leaf.
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt 2>/dev/null
    chmod 644 ca.crt server.crt
    chmod 600 server.key ca.key
  )
}

make_user() {
  id -u "$FTP_USER" >/dev/null 2>&1 || useradd -M -d "$ROOT" -s /usr/sbin/nologin "$FTP_USER"
  usermod -d "$ROOT" "$FTP_USER" >/dev/null 2>&1 || true
  if [ ! -s "$STATE/password" ]; then
    # A random password per machine: it only guards a loopback test server.
    openssl rand -hex 12 > "$STATE/password"
  fi
  # Readable: tests that run as another user read it (SDS_TEST_FTP_PASSWORD_FILE).
  chmod 644 "$STATE/password"
  echo "$FTP_USER:$(cat "$STATE/password")" | chpasswd
  # Own PAM service: without pam_shells (the stock one rejects /usr/sbin/nologin users with 530),
  # and with `nodelay`, so each wrong-password test does not wait pam_unix's ~2 s failure delay.
  printf 'auth required pam_unix.so nodelay\naccount required pam_unix.so\nsession required pam_unix.so\n' \
    > "/etc/pam.d/$PAM_SERVICE"
  # /tmp is 1777; the parents must be traversable by the FTP user.
  chmod 755 /tmp/sds-test-services "$STATE"
  mkdir -p "$ROOT"
  chown "$FTP_USER:$FTP_USER" "$ROOT"
  # Tests create their own folders under the root as whatever user runs cargo test.
  chmod 1777 "$ROOT"
  # A folder the FTP user can read but not write, for the permission-denied test.
  install -d -o root -g root -m 755 "$ROOT/readonly"
  # vsftpd needs an empty, root-owned, non-writable folder for its privilege separation.
  install -d -o root -g root -m 555 "$STATE/empty"
}

write_config() {
  local name=$1 port=$2 pmin=$3 pmax=$4 extra=$5 dir=$STATE/$1
  mkdir -p "$dir"
  sed -e "s#@PORT@#$port#g" -e "s#@PASV_MIN@#$pmin#g" -e "s#@PASV_MAX@#$pmax#g" \
      -e "s#@STATE@#$dir#g" -e "s#@EMPTY@#$STATE/empty#g" -e "s#@PKI@#$PKI#g" \
      -e "s#@PAM@#$PAM_SERVICE#g" "$HERE/ftp/base.conf" > "$dir/vsftpd.conf"
  cat "$HERE/ftp/$extra" >> "$dir/vsftpd.conf"
}

start_instance() {
  local name=$1 port=$2 dir=$STATE/$1
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null && wait_port "$port"; then
    return 0
  fi
  stop_pid "$dir/pid"
  # setsid: detached from the caller's session, so a signal to the calling terminal or CI step's
  # process group does not take the test server down. (Without job control bash does not make
  # the background job a group leader, so setsid execs in place and $! is vsftpd's pid.)
  setsid "$VSFTPD" "$dir/vsftpd.conf" > "$dir/stdout.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
  if ! wait_port "$port"; then
    # An unknown option makes vsftpd exit 2 without a word, so point at the config.
    log "vsftpd '$name' did not come up on 127.0.0.1:$port; see $dir/stdout.log and $dir/vsftpd.conf"
    exit 1
  fi
}

write_env() {
  local tmp=$ENV_FILE.tmp
  cat > "$tmp" <<ENV
# Written by scripts/services/ftp.sh: how the ftp destination tests reach the test vsftpd servers.
export SDS_TEST_FTP_HOST=127.0.0.1
export SDS_TEST_FTP_PORT=21021
export SDS_TEST_FTPS_ONLY_PORT=21022
export SDS_TEST_FTPS_REUSE_PORT=21023
export SDS_TEST_FTPS_IMPLICIT_PORT=21024
export SDS_TEST_FTP_NOTLS_PORT=21025
export SDS_TEST_FTP_USER=$FTP_USER
export SDS_TEST_FTP_PASSWORD=$(cat "$STATE/password")
export SDS_TEST_FTP_PASSWORD_FILE=$STATE/password
export SDS_TEST_FTP_CA_FILE=$PKI/ca.crt
export SDS_TEST_FTP_ROOT=$ROOT
ENV
  mv "$tmp" "$ENV_FILE"
}

start() {
  install_packages
  mkdir -p "$STATE"
  make_pki
  make_user
  for spec in "${INSTANCES[@]}"; do
    # shellcheck disable=SC2086
    set -- $spec
    write_config "$1" "$2" "$3" "$4" "$5"
  done
  for spec in "${INSTANCES[@]}"; do
    # shellcheck disable=SC2086
    set -- $spec
    start_instance "$1" "$2"
  done
  write_env
  log "vsftpd up on 127.0.0.1:21021 (plain/explicit), 21022 (FTPS only), 21023 (require_ssl_reuse), 21024 (implicit), 21025 (no TLS); env in $ENV_FILE"
}

stop() {
  for spec in "${INSTANCES[@]}"; do
    # shellcheck disable=SC2086
    set -- $spec
    stop_pid "$STATE/$1/pid"
  done
  rm -f "$ENV_FILE"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
