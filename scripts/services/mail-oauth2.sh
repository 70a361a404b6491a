#!/usr/bin/env bash
# SMTP submission with OAuth2 (XOAUTH2) for the email destination tests (issue 16), next to the
# aiosmtpd sinks of scripts/services/email.sh (which it leaves alone). A real server checks the
# tokens, not a mock:
#
#   oauth2 token endpoint  https://127.0.0.1:25480/token   client-credentials grant (a small
#                          Python server, scripts/services/mail-oauth2/oauth2_server.py, standing
#                          in for Microsoft Entra ID / login.microsoftonline.com)
#   token introspection    http://127.0.0.1:25481/introspect (RFC 7662; same Python server)
#   Dovecot submission     127.0.0.1:25587 STARTTLS, 127.0.0.1:25467 implicit TLS; AUTH
#                          XOAUTH2/OAUTHBEARER only, verified by Dovecot's `oauth2` passdb
#                          against the introspection endpoint; relays accepted mail to
#   aiosmtpd sink          127.0.0.1:25027 (scripts/services/email/smtp_sink.py), which writes
#                          each message to out/<n>.eml for the tests to read
#
#   scripts/services/mail-oauth2.sh start   # idempotent: installs, starts what is not running
#   scripts/services/mail-oauth2.sh stop    # stops what it started, by pid
#
# Dovecot runs as its own instance (own base_dir, config and ports; the Debian package's default
# instance is never started). State: /tmp/sds-test-services/mail-oauth2/; tests read
# /tmp/sds-test-services/mail-oauth2.env.
set -euo pipefail

BASE=/tmp/sds-test-services
STATE=$BASE/mail-oauth2
ENV_FILE=$BASE/mail-oauth2.env
PKI=$STATE/pki
VENV=$STATE/venv
HERE="$(cd "$(dirname "$0")" && pwd)"
# Servers started below inherit the working directory: never leave them in a checkout that may be
# deleted while they run (pyftpdlib then fails every CWD).
cd /
TOKEN_PORT=25480
INTROSPECT_PORT=25481
SUBMISSION_PORT=25587
SUBMISSIONS_PORT=25467
SINK_PORT=25027
MAILBOX=sds-export@district.test
SCOPE=https://outlook.office365.com/.default
CLIENT_ID=sds-sync-test
SHORT_CLIENT_ID=sds-sync-short   # its tokens live 3 s: the refresh test
CACHE_CLIENT_ID=sds-sync-cache   # used by one test only, which counts its token requests
MAIL_USER=sdsoauthmail           # the system user Dovecot's submission process runs as

log() { echo "mail-oauth2.sh: $*" >&2; }

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
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

apt_install() {
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  # Never let apt start the stock dovecot on 0.0.0.0 (Docker-style images ship this file).
  [ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null
}

install_packages() {
  local need=()
  command -v dovecot >/dev/null || need+=(dovecot-core)
  [ -x /usr/lib/dovecot/submission ] || need+=(dovecot-submissiond)
  command -v openssl >/dev/null || need+=(openssl)
  command -v python3 >/dev/null || need+=(python3 python3-venv)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
  if ! "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    rm -rf "$VENV"
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; rm -rf "$VENV"; python3 -m venv "$VENV"; }
    log "installing aiosmtpd into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check 'aiosmtpd>=1.4.4,<2'
  fi
}

make_pki() {
  mkdir -p "$PKI"
  [ -s "$PKI/server.crt" ] && [ -s "$PKI/ca.crt" ] && return 0
  log "creating test CA and server certificate in $PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=sds-sync OAuth2 mail test CA" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt 2>/dev/null
    chmod 644 ca.crt server.crt
    chmod 600 server.key ca.key
  )
}

make_secrets() {
  chmod 755 "$BASE" "$STATE"
  if [ ! -s "$STATE/client_secret" ]; then
    # Random per machine: it only guards a loopback test server.
    (umask 077; openssl rand -hex 16 > "$STATE/client_secret")
  fi
  chmod 644 "$STATE/client_secret"
  local secret
  secret=$(cat "$STATE/client_secret")
  printf '%s %s %s %s %s\n' \
    "$CLIENT_ID" "$secret" "$MAILBOX" 3600 "$SCOPE" \
    "$CACHE_CLIENT_ID" "$secret" "$MAILBOX" 3600 "$SCOPE" \
    "$SHORT_CLIENT_ID" "$secret" "$MAILBOX" 3 "$SCOPE" > "$STATE/clients.new"
  chmod 600 "$STATE/clients.new"
  if cmp -s "$STATE/clients.new" "$STATE/clients"; then
    rm -f "$STATE/clients.new"
  else
    # The endpoint reads its clients at start: a changed list needs a restart.
    mv "$STATE/clients.new" "$STATE/clients"
    stop_pid "$STATE/oauth2.pid"
  fi
  id -u "$MAIL_USER" >/dev/null 2>&1 || useradd -M -d "$STATE/home" -s /usr/sbin/nologin "$MAIL_USER"
  install -d -o "$MAIL_USER" -g "$MAIL_USER" -m 700 "$STATE/home"
}

write_dovecot_config() {
  mkdir -p "$STATE/run" "$STATE/state"
  cat > "$STATE/oauth2.conf.ext" <<CONF
introspection_mode = post
introspection_url = http://127.0.0.1:$INTROSPECT_PORT/introspect
username_attribute = username
active_attribute = active
active_value = true
CONF
  cat > "$STATE/dovecot.conf" <<CONF
# sds-sync XOAUTH2 test instance: submission only, 127.0.0.1 only.
instance_name = sds-oauth2
base_dir = $STATE/run
state_dir = $STATE/state
protocols = submission
listen = 127.0.0.1
log_path = $STATE/dovecot.log
hostname = localhost
ssl = required
ssl_cert = <$PKI/server.crt
ssl_key = <$PKI/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = xoauth2 oauthbearer
auth_verbose = yes
mail_location = maildir:$STATE/home/Maildir
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $STATE/oauth2.conf.ext
}
userdb {
  driver = static
  args = uid=$MAIL_USER gid=$MAIL_USER home=$STATE/home
}
submission_relay_host = 127.0.0.1
submission_relay_port = $SINK_PORT
submission_relay_trusted = yes
submission_relay_ssl = no
submission_max_mail_size = 50M
service submission-login {
  inet_listener submission {
    address = 127.0.0.1
    port = $SUBMISSION_PORT
  }
  inet_listener submissions {
    address = 127.0.0.1
    port = $SUBMISSIONS_PORT
    ssl = yes
  }
}
service anvil {
  chroot =
}
CONF
  doveconf -c "$STATE/dovecot.conf" -n >/dev/null
}

start_sink() {
  local dir=$STATE/sink
  mkdir -p "$dir/out"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null && wait_port "$SINK_PORT"; then
    return 0
  fi
  stop_pid "$dir/pid"
  rm -rf "$dir/out"
  mkdir -p "$dir/out"
  # SMTP_REQUIRE_TLS=1 without a certificate: no TLS and, above all, no AUTH in the EHLO reply.
  # A sink that advertises AUTH gets Dovecot's `MAIL FROM:<..> AUTH=<>`, which aiosmtpd refuses (555).
  env SMTP_HOST=127.0.0.1 SMTP_PORT="$SINK_PORT" SMTP_REQUIRE_TLS=1 \
    setsid "$VENV/bin/python" "$HERE/email/smtp_sink.py" "$dir/out" > "$dir/sink.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
  wait_port "$SINK_PORT" || { log "SMTP sink did not come up on 127.0.0.1:$SINK_PORT; see $dir/sink.log"; exit 1; }
}

start_oauth2() {
  if [ -f "$STATE/oauth2.pid" ] && kill -0 "$(cat "$STATE/oauth2.pid")" 2>/dev/null \
     && wait_port "$TOKEN_PORT" && wait_port "$INTROSPECT_PORT"; then
    return 0
  fi
  stop_pid "$STATE/oauth2.pid"
  rm -f "$STATE/issued.json"
  env CLIENTS_FILE="$STATE/clients" ISSUED_FILE="$STATE/issued.json" TOKEN_PORT="$TOKEN_PORT" INTROSPECT_PORT="$INTROSPECT_PORT" \
    TLS_CERT="$PKI/server.crt" TLS_KEY="$PKI/server.key" \
    setsid python3 "$HERE/mail-oauth2/oauth2_server.py" > "$STATE/oauth2.log" 2>&1 < /dev/null &
  echo $! > "$STATE/oauth2.pid"
  wait_port "$TOKEN_PORT" && wait_port "$INTROSPECT_PORT" \
    || { log "OAuth2 endpoint did not come up on 127.0.0.1:$TOKEN_PORT/$INTROSPECT_PORT; see $STATE/oauth2.log"; exit 1; }
}

start_dovecot() {
  if [ -f "$STATE/dovecot.bgpid" ] && kill -0 "$(cat "$STATE/dovecot.bgpid")" 2>/dev/null \
     && wait_port "$SUBMISSION_PORT"; then
    return 0
  fi
  stop_pid "$STATE/dovecot.bgpid"
  # -F: foreground, so the pid is the master's; setsid: its own process group with its children.
  setsid dovecot -F -c "$STATE/dovecot.conf" > "$STATE/dovecot.stdout" 2>&1 < /dev/null &
  echo $! > "$STATE/dovecot.bgpid"
  wait_port "$SUBMISSION_PORT" && wait_port "$SUBMISSIONS_PORT" \
    || { log "Dovecot did not come up on 127.0.0.1:$SUBMISSION_PORT; see $STATE/dovecot.log and $STATE/dovecot.stdout"; exit 1; }
}

write_env() {
  local tmp=$ENV_FILE.tmp
  cat > "$tmp" <<ENV
# Written by scripts/services/mail-oauth2.sh: Dovecot submission with XOAUTH2 + a local token endpoint.
export SDS_TEST_OAUTH2_SMTP_HOST=127.0.0.1
export SDS_TEST_OAUTH2_SMTP_PORT=$SUBMISSION_PORT
export SDS_TEST_OAUTH2_SMTPS_PORT=$SUBMISSIONS_PORT
export SDS_TEST_OAUTH2_CA_FILE=$PKI/ca.crt
export SDS_TEST_OAUTH2_TOKEN_URL=https://127.0.0.1:$TOKEN_PORT/token
export SDS_TEST_OAUTH2_ISSUED_FILE=$STATE/issued.json
export SDS_TEST_OAUTH2_CLIENT_ID=$CLIENT_ID
export SDS_TEST_OAUTH2_SHORT_CLIENT_ID=$SHORT_CLIENT_ID
export SDS_TEST_OAUTH2_CACHE_CLIENT_ID=$CACHE_CLIENT_ID
export SDS_TEST_OAUTH2_CLIENT_SECRET_FILE=$STATE/client_secret
export SDS_TEST_OAUTH2_SCOPE=$SCOPE
export SDS_TEST_OAUTH2_MAILBOX=$MAILBOX
export SDS_TEST_OAUTH2_OUT=$STATE/sink/out
ENV
  mv "$tmp" "$ENV_FILE"
}

# curl proves the chain: a token from the endpoint, then XOAUTH2 login at Dovecot and a message
# that reaches the sink.
verify() {
  local token
  token=$(curl -sS --max-time 10 --cacert "$PKI/ca.crt" \
    --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$CLIENT_ID" \
    --data-urlencode "client_secret=$(cat "$STATE/client_secret")" --data-urlencode "scope=$SCOPE" \
    "https://127.0.0.1:$TOKEN_PORT/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') \
    || { log "no token from https://127.0.0.1:$TOKEN_PORT/token; see $STATE/oauth2.log"; return 1; }
  local before after
  before=$(find "$STATE/sink/out" -name '*.eml' | wc -l)
  printf 'Subject: mail-oauth2.sh self-check\r\n\r\nok\r\n' | curl -sS --max-time 20 --ssl-reqd \
    --cacert "$PKI/ca.crt" --login-options AUTH=XOAUTH2 --user "$MAILBOX" --oauth2-bearer "$token" \
    --mail-from "$MAILBOX" --mail-rcpt selfcheck@district.test --upload-file - \
    "smtp://127.0.0.1:$SUBMISSION_PORT" \
    || { log "XOAUTH2 submission through Dovecot failed; see $STATE/dovecot.log"; return 1; }
  for _ in $(seq 1 50); do
    after=$(find "$STATE/sink/out" -name '*.eml' | wc -l)
    [ "$after" -gt "$before" ] && return 0
    sleep 0.1
  done
  log "Dovecot accepted the self-check message but it did not reach the sink; see $STATE/dovecot.log"
  return 1
}

start() {
  mkdir -p "$STATE"
  install_packages
  make_pki
  make_secrets
  write_dovecot_config
  start_sink
  start_oauth2
  start_dovecot
  write_env
  verify
  log "XOAUTH2 submission up on 127.0.0.1:$SUBMISSION_PORT (STARTTLS) and $SUBMISSIONS_PORT (TLS), token endpoint https://127.0.0.1:$TOKEN_PORT/token; env in $ENV_FILE"
}

stop() {
  stop_pid "$STATE/dovecot.bgpid"
  stop_pid "$STATE/oauth2.pid"
  stop_pid "$STATE/sink/pid"
  rm -f "$ENV_FILE"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
