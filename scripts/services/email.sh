#!/usr/bin/env bash
# Test SMTP servers for the `email` destination tests: the aiosmtpd sink in
# scripts/services/email/smtp_sink.py, on 127.0.0.1 only.
#
#   scripts/services/email.sh start   # install if missing, start if not running, write /tmp/sds-test-services/email.env
#   scripts/services/email.sh stop    # stop every instance by its saved pid
#
# Instances (one Python process each, own output folder):
#   auth   25025  STARTTLS required + AUTH (PLAIN/LOGIN) required; also implicit TLS + AUTH on 25465
#   plain  25026  no TLS, no AUTH (for tls = "none")
# Every accepted message lands in <instance>/out/<n>.eml + <n>.json. Recipients containing
# "reject" get 550, those containing "tempfail" get 451. A test CA (own, under the state folder)
# signs the server certificate for 127.0.0.1/localhost.
set -euo pipefail

STATE=/tmp/sds-test-services/email
ENV_FILE=/tmp/sds-test-services/email.env
PKI=$STATE/pki
VENV=$STATE/venv
PY=$VENV/bin/python
SMTP_USER=sdsmailer
HERE="$(cd "$(dirname "$0")" && pwd)"
# Servers started below inherit the working directory: never leave them in a checkout that may be
# deleted while they run (pyftpdlib then fails every CWD).
cd /
SINK=$HERE/email/smtp_sink.py
AUTH_PORT=25025
SMTPS_PORT=25465
PLAIN_PORT=25026

log() { echo "email.sh: $*" >&2; }

wait_port() {
  for _ in $(seq 1 150); do
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
    # Started with setsid, so the pid is also its process group id.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

apt_install() {
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  [ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }
  # Other service scripts may run apt at the same time: wait for the lock instead of failing.
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null
}

install_packages() {
  local need=()
  command -v openssl >/dev/null || need+=(openssl)
  command -v python3 >/dev/null || need+=(python3 python3-venv)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
  if ! "$PY" -c 'import aiosmtpd' 2>/dev/null; then
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
      # Debian's python3 needs the separate venv package.
      apt_install python3-venv
      rm -rf "$VENV"
      python3 -m venv "$VENV"
    fi
    log "installing aiosmtpd into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check 'aiosmtpd>=1.4.4,<2'
  fi
}

make_pki() {
  mkdir -p "$PKI"
  [ -s "$PKI/server.crt" ] && [ -s "$PKI/ca.crt" ] && [ -s "$PKI/other-ca.crt" ] && return 0
  log "creating test CAs and server certificate in $PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=sds-sync SMTP test CA" \
      -keyout ca.key -out ca.crt 2>/dev/null
    # A CA that did NOT sign the server certificate: for the "wrong CA is permanent" test.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=sds-sync unrelated CA" \
      -keyout other-ca.key -out other-ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    # rustls/webpki rejects a self-signed CA:TRUE cert as a server cert, hence a real leaf.
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt 2>/dev/null
    chmod 644 ca.crt other-ca.crt server.crt server.key
    chmod 600 ca.key other-ca.key
  )
}

make_password() {
  if [ ! -s "$STATE/password" ]; then
    # A random password per machine: it only guards a loopback test server.
    openssl rand -hex 12 > "$STATE/password"
  fi
  chmod 644 "$STATE/password"
}

# start_instance NAME PORT [VAR=VALUE ...]: the sink with the given environment, if not up yet.
start_instance() {
  local name=$1 port=$2 dir=$STATE/$1
  shift 2
  mkdir -p "$dir/out"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null && wait_port "$port"; then
    return 0
  fi
  stop_pid "$dir/pid"
  # A fresh instance starts with an empty mailbox, so old runs' messages do not pile up.
  rm -rf "$dir/out"
  mkdir -p "$dir/out"
  # setsid: own process group, so `stop` ends exactly this listener.
  env SMTP_HOST=127.0.0.1 SMTP_PORT="$port" "$@" \
    setsid "$PY" "$SINK" "$dir/out" > "$dir/sink.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
  if ! wait_port "$port"; then
    log "SMTP sink '$name' did not come up on 127.0.0.1:$port; see $dir/sink.log"
    exit 1
  fi
}

write_env() {
  local tmp=$ENV_FILE.tmp
  cat > "$tmp" <<ENV
# Written by scripts/services/email.sh: how the email destination tests reach the test SMTP sinks.
export SDS_TEST_SMTP_HOST=127.0.0.1
export SDS_TEST_SMTP_PORT=$AUTH_PORT
export SDS_TEST_SMTPS_PORT=$SMTPS_PORT
export SDS_TEST_SMTP_PLAIN_PORT=$PLAIN_PORT
export SDS_TEST_SMTP_USER=$SMTP_USER
export SDS_TEST_SMTP_PASSWORD=$(cat "$STATE/password")
export SDS_TEST_SMTP_PASSWORD_FILE=$STATE/password
export SDS_TEST_SMTP_CA_FILE=$PKI/ca.crt
export SDS_TEST_SMTP_OTHER_CA_FILE=$PKI/other-ca.crt
export SDS_TEST_SMTP_OUT=$STATE/auth/out
export SDS_TEST_SMTP_PLAIN_OUT=$STATE/plain/out
export SDS_TEST_SMTP_PYTHON=$PY
export SDS_TEST_SMTP_SINK=$SINK
export SDS_TEST_SMTP_CERT=$PKI/server.crt
export SDS_TEST_SMTP_KEY=$PKI/server.key
ENV
  mv "$tmp" "$ENV_FILE"
}

start() {
  mkdir -p "$STATE"
  install_packages
  make_pki
  make_password
  start_instance auth "$AUTH_PORT" SMTPS_PORT="$SMTPS_PORT" \
    SMTP_CERT="$PKI/server.crt" SMTP_KEY="$PKI/server.key" SMTP_REQUIRE_TLS=1 \
    SMTP_USER="$SMTP_USER" SMTP_PASS="$(cat "$STATE/password")"
  wait_port "$SMTPS_PORT" || { log "implicit TLS listener not up on 127.0.0.1:$SMTPS_PORT; see $STATE/auth/sink.log"; exit 1; }
  start_instance plain "$PLAIN_PORT"
  write_env
  log "SMTP sinks up on 127.0.0.1:$AUTH_PORT (STARTTLS+AUTH), $SMTPS_PORT (implicit TLS+AUTH), $PLAIN_PORT (plain); env in $ENV_FILE"
}

stop() {
  stop_pid "$STATE/auth/pid"
  stop_pid "$STATE/plain/pid"
  rm -f "$ENV_FILE"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
