#!/usr/bin/env bash
# Extra FTP servers for the FTP/FTPS interoperability tests (issue 16), next to the vsftpd
# instances of scripts/services/ftp.sh (which they leave alone):
#
#   proftpd   21031  ProFTPD 1.3.8 + mod_tls, explicit FTPS with its STOCK TLS settings: TLS 1.2
#                    and 1.3, and data connections must reuse the control connection's TLS
#                    session (no `TLSOptions NoSessionReuseRequired`). Passive 30300-30319.
#   pyftpdlib 21041  pyftpdlib's TLS_FTPHandler (pyOpenSSL): closes data connections without a TLS
#                    close_notify, which is what cut listings look like. Passive 30320-30339.
#
#   scripts/services/ftp-interop.sh start   # idempotent: installs, starts what is not running
#   scripts/services/ftp-interop.sh stop    # stops the servers it started, by pid
#
# ProFTPD and vsftpd conflict as Debian packages (both provide ftp-server), so ProFTPD runs from
# its .deb files unpacked (`apt-get download` + `dpkg -x`) under the state folder, with its own
# ModulePath; only its shared libraries are installed as packages. Both servers use one virtual
# user (ProFTPD: AuthUserFile; pyftpdlib: its authorizer) that maps to the system user
# sdsinterftp, and the test CA of this script. State: /tmp/sds-test-services/ftp-interop/; tests
# read /tmp/sds-test-services/ftp-interop.env.
set -euo pipefail

BASE=/tmp/sds-test-services
STATE=$BASE/ftp-interop
ENV_FILE=$BASE/ftp-interop.env
PKI=$STATE/pki
PREFIX=$STATE/proftpd-root       # the unpacked .deb files
PROFTPD=$PREFIX/usr/sbin/proftpd
ROOT=$STATE/root                 # the FTP user's home = "/" as the servers show it
VENV=$STATE/venv
HERE="$(cd "$(dirname "$0")" && pwd)"
# Servers started below inherit the working directory: never leave them in a checkout that may be
# deleted while they run (pyftpdlib then fails every CWD).
cd /
FTP_USER=sdsinterftp
PROFTPD_PORT=21031
PYFTPD_PORT=21041

log() { echo "ftp-interop.sh: $*" >&2; }

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
    # Started with setsid: the pid is its own process group (ProFTPD's session children too).
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
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null
}

install_proftpd() {
  if [ -x "$PROFTPD" ] && "$PROFTPD" -V >/dev/null 2>&1 && [ -f "$PREFIX/usr/lib/proftpd/mod_tls.so" ]; then
    return 0
  fi
  command -v openssl >/dev/null || apt_install openssl
  # The libraries proftpd-core and its mod_tls link against (what `apt-get install` would pull).
  apt_install libhiredis0.14 libmemcached11 libmemcachedutil2 libpcre2-posix3 libsodium23 \
    libssl3 libcap2 libacl1 libidn2-0 libpam0g
  log "unpacking proftpd-core + proftpd-mod-crypto into $PREFIX"
  local dl=$STATE/debs
  rm -rf "$dl" "$PREFIX"
  mkdir -p "$dl" "$PREFIX"
  chmod 777 "$dl" # apt-get download runs as _apt where it can
  (cd "$dl" && apt-get -o DPkg::Lock::Timeout=300 download -q proftpd-core proftpd-mod-crypto >/dev/null 2>&1) || {
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    (cd "$dl" && apt-get download -q proftpd-core proftpd-mod-crypto >/dev/null)
  }
  local deb
  for deb in "$dl"/*.deb; do dpkg -x "$deb" "$PREFIX"; done
  "$PROFTPD" -V >/dev/null || { log "unpacked proftpd does not run; missing libraries? (ldd $PROFTPD)"; exit 1; }
}

install_pyftpdlib() {
  if "$VENV/bin/python" -c 'import pyftpdlib, OpenSSL' 2>/dev/null; then
    return 0
  fi
  command -v python3 >/dev/null || apt_install python3 python3-venv
  rm -rf "$VENV"
  python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; rm -rf "$VENV"; python3 -m venv "$VENV"; }
  log "installing pyftpdlib + pyOpenSSL into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'pyftpdlib>=2,<3' 'pyopenssl>=24'
}

make_pki() {
  mkdir -p "$PKI"
  [ -s "$PKI/server.crt" ] && [ -s "$PKI/ca.crt" ] && return 0
  log "creating test CA and server certificate in $PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=sds-sync FTP interop test CA" \
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
  if [ ! -s "$STATE/password" ]; then
    # A random password per machine: it only guards loopback test servers.
    openssl rand -hex 12 > "$STATE/password"
  fi
  chmod 644 "$STATE/password"
  local uid gid
  uid=$(id -u "$FTP_USER")
  gid=$(id -g "$FTP_USER")
  # ProFTPD's AuthUserFile has /etc/passwd's format, with a crypt(3) hash.
  (umask 077; printf '%s:%s:%s:%s::%s:/usr/sbin/nologin\n' "$FTP_USER" \
    "$(openssl passwd -6 "$(cat "$STATE/password")")" "$uid" "$gid" "$ROOT" > "$STATE/ftpd.passwd")
  chmod 755 "$BASE" "$STATE"
  mkdir -p "$ROOT"
  chown "$FTP_USER:$FTP_USER" "$ROOT"
  # Tests create their own folders under the root as whatever user runs cargo test.
  chmod 1777 "$ROOT"
}

write_proftpd_config() {
  cat > "$STATE/proftpd.conf" <<CONF
# sds-sync interop test server. Everything about TLS except the certificate paths is ProFTPD's
# stock behaviour: the point is to test against what a district admin gets by default.
ServerName "sds-sync interop ProFTPD"
ServerType standalone
DefaultServer on
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
Port $PROFTPD_PORT
PassivePorts 30300 30319
PidFile $STATE/proftpd.pid
ScoreboardFile $STATE/proftpd.scoreboard
DelayTable none
WtmpLog off
UseReverseDNS off
TransferLog none
SystemLog $STATE/proftpd.log
MaxInstances 60
User nobody
Group nogroup
Umask 022
AllowOverwrite on
RequireValidShell off
AuthOrder mod_auth_file.c
AuthUserFile $STATE/ftpd.passwd
DefaultRoot ~
ModulePath $PREFIX/usr/lib/proftpd
<IfModule mod_dso.c>
  LoadModule mod_tls.c
</IfModule>
<IfModule mod_tls.c>
  TLSEngine on
  TLSLog $STATE/tls.log
  TLSRSACertificateFile $PKI/server.crt
  TLSRSACertificateKeyFile $PKI/server.key
  TLSRequired on
  TLSVerifyClient off
</IfModule>
CONF
}

start_proftpd() {
  if [ -f "$STATE/proftpd.bgpid" ] && kill -0 "$(cat "$STATE/proftpd.bgpid")" 2>/dev/null && wait_port "$PROFTPD_PORT"; then
    return 0
  fi
  stop_pid "$STATE/proftpd.bgpid"
  "$PROFTPD" -t -c "$STATE/proftpd.conf" >/dev/null 2>&1 || {
    "$PROFTPD" -t -c "$STATE/proftpd.conf" >&2 || true
    log "ProFTPD rejects $STATE/proftpd.conf"
    exit 1
  }
  # -n: stay in the foreground (so the pid is ours to stop); setsid: own process group.
  setsid "$PROFTPD" -n -c "$STATE/proftpd.conf" > "$STATE/proftpd.stdout" 2>&1 < /dev/null &
  echo $! > "$STATE/proftpd.bgpid"
  wait_port "$PROFTPD_PORT" || { log "ProFTPD did not come up on 127.0.0.1:$PROFTPD_PORT; see $STATE/proftpd.log and $STATE/proftpd.stdout"; exit 1; }
}

start_pyftpdlib() {
  if [ -f "$STATE/pyftpdlib.bgpid" ] && kill -0 "$(cat "$STATE/pyftpdlib.bgpid")" 2>/dev/null && wait_port "$PYFTPD_PORT"; then
    return 0
  fi
  stop_pid "$STATE/pyftpdlib.bgpid"
  env FTP_PORT="$PYFTPD_PORT" FTP_PASV_MIN=30320 FTP_PASV_MAX=30339 FTP_USER="$FTP_USER" \
    FTP_PASSWORD_FILE="$STATE/password" FTP_ROOT="$ROOT" FTP_CERT="$PKI/server.crt" FTP_KEY="$PKI/server.key" \
    setsid "$VENV/bin/python" "$HERE/ftp-interop/pyftpd.py" > "$STATE/pyftpdlib.log" 2>&1 < /dev/null &
  echo $! > "$STATE/pyftpdlib.bgpid"
  wait_port "$PYFTPD_PORT" || { log "pyftpdlib did not come up on 127.0.0.1:$PYFTPD_PORT; see $STATE/pyftpdlib.log"; exit 1; }
}

write_env() {
  local tmp=$ENV_FILE.tmp
  cat > "$tmp" <<ENV
# Written by scripts/services/ftp-interop.sh: the FTP interoperability servers.
export SDS_TEST_FTPI_HOST=127.0.0.1
export SDS_TEST_FTPI_PROFTPD_PORT=$PROFTPD_PORT
export SDS_TEST_FTPI_PYFTPDLIB_PORT=$PYFTPD_PORT
export SDS_TEST_FTPI_USER=$FTP_USER
export SDS_TEST_FTPI_PASSWORD_FILE=$STATE/password
export SDS_TEST_FTPI_CA_FILE=$PKI/ca.crt
export SDS_TEST_FTPI_ROOT=$ROOT
export SDS_TEST_FTPI_PROFTPD_TLS_LOG=$STATE/tls.log
ENV
  mv "$tmp" "$ENV_FILE"
}

# curl (OpenSSL) proves both servers take an FTPS login and a protected listing.
verify() {
  local port
  for port in $PROFTPD_PORT $PYFTPD_PORT; do
    curl -sS --max-time 20 --ssl-reqd --cacert "$PKI/ca.crt" \
      --user "$FTP_USER:$(cat "$STATE/password")" "ftp://127.0.0.1:$port/" >/dev/null \
      || { log "curl could not list over FTPS on 127.0.0.1:$port"; return 1; }
  done
}

start() {
  mkdir -p "$STATE"
  install_proftpd
  install_pyftpdlib
  make_pki
  make_user
  write_proftpd_config
  start_proftpd
  start_pyftpdlib
  write_env
  verify
  log "ProFTPD (stock mod_tls) up on 127.0.0.1:$PROFTPD_PORT, pyftpdlib (FTPS) on $PYFTPD_PORT; env in $ENV_FILE"
}

stop() {
  stop_pid "$STATE/proftpd.bgpid"
  stop_pid "$STATE/pyftpdlib.bgpid"
  rm -f "$ENV_FILE"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
