#!/usr/bin/env bash
# Extra OpenSSH servers for the SFTP interoperability tests (issue 16), next to the main test
# sshd of scripts/services/sftp.sh (which they leave alone):
#
#   allkeys  2232  host keys RSA + ECDSA + Ed25519 (the stock OpenSSH set): a pin or known_hosts
#                  line of any one type must work
#   rsaecdsa 2233  host keys RSA + ECDSA only (no Ed25519, as on older appliances)
#   kbdint   2234  PasswordAuthentication no, KbdInteractiveAuthentication yes, UsePAM yes: the
#                  password works only through PAM keyboard-interactive, as on many stock systems
#
#   scripts/services/ssh-interop.sh start   # idempotent; installs openssh-server when missing
#   scripts/services/ssh-interop.sh stop    # stops the instances it started, by pid
#
# One chrooted user (sdsinterop) that logs in by key on allkeys/rsaecdsa and by password
# (through PAM, service "sshd" as the openssh-server package ships it) on kbdint. State lives
# under /tmp/sds-test-services/ssh-interop/; the chroot under /srv (sshd wants every component
# root-owned and not group/other-writable, which /tmp is not). Tests read
# /tmp/sds-test-services/ssh-interop.env.
set -euo pipefail
# Servers started below inherit the working directory: never leave them in a checkout that may be
# deleted while they run (pyftpdlib then fails every CWD).
cd /

BASE=/tmp/sds-test-services
W=$BASE/ssh-interop
ENV_FILE=$BASE/ssh-interop.env
USER_NAME=sdsinterop
CHROOT_BASE=/srv/sds-sftp-interop
CHROOT=$CHROOT_BASE/$USER_NAME
SSHD=/usr/sbin/sshd
PORT_ALL=2232
PORT_RSAECDSA=2233
PORT_KBD=2234

log() { echo "ssh-interop.sh: $*" >&2; }

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
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

install_packages() {
  if [ -x "$SSHD" ] && command -v ssh-keygen >/dev/null && command -v sftp >/dev/null \
     && [ -f /etc/pam.d/sshd ]; then
    return 0
  fi
  log "installing openssh-server"
  export DEBIAN_FRONTEND=noninteractive
  [ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    openssh-server openssh-client openssh-sftp-server >/dev/null
}

setup_user() {
  mkdir -p "$W"
  chmod 755 "$BASE" "$W"
  id -u "$USER_NAME" >/dev/null 2>&1 || useradd -M -d / -s /usr/sbin/nologin "$USER_NAME"
  if [ ! -s "$W/password" ]; then
    # A random password per machine: it only guards loopback test servers.
    (umask 077; openssl rand -hex 12 > "$W/password")
  fi
  chmod 644 "$W/password"
  echo "$USER_NAME:$(cat "$W/password")" | chpasswd
  install -d -o root -g root -m 755 "$CHROOT_BASE" "$CHROOT"
  # Tests make their own folder under upload/ as whatever user runs cargo test.
  install -d -o "$USER_NAME" -g "$USER_NAME" -m 1777 "$CHROOT/upload"
}

make_keys() {
  [ -f "$W/host_rsa" ] || ssh-keygen -q -t rsa -b 3072 -N '' -C interop-host -f "$W/host_rsa"
  [ -f "$W/host_ecdsa" ] || ssh-keygen -q -t ecdsa -b 256 -N '' -C interop-host -f "$W/host_ecdsa"
  [ -f "$W/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C interop-host -f "$W/host_ed25519"
  [ -f "$W/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C sds-interop -f "$W/client_ed25519"
  mkdir -p "$W/authorized_keys"
  cp "$W/client_ed25519.pub" "$W/authorized_keys/$USER_NAME"
  chmod 755 "$W/authorized_keys"
  chmod 644 "$W/authorized_keys/$USER_NAME"
  chmod 600 "$W/client_ed25519"
  # One known_hosts file per key type, each listing only that type for every port (the
  # "known_hosts lists one key type" cases), and a combined one.
  local t port
  : > "$W/known_hosts_all"
  for t in rsa ecdsa ed25519; do
    : > "$W/known_hosts_$t"
    for port in $PORT_ALL $PORT_RSAECDSA $PORT_KBD; do
      printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$W/host_$t.pub")" >> "$W/known_hosts_$t"
    done
    cat "$W/known_hosts_$t" >> "$W/known_hosts_all"
  done
}

# write_config NAME PORT HOSTKEY-TYPES... : sshd_config for one instance.
write_config() {
  local name=$1 port=$2 t
  shift 2
  {
    echo "Port $port"
    echo "ListenAddress 127.0.0.1"
    for t in "$@"; do echo "HostKey $W/host_$t"; done
    echo "PidFile $W/$name.pid"
    echo "PermitRootLogin no"
    echo "AuthorizedKeysFile $W/authorized_keys/%u"
    echo "StrictModes no"
    echo "AllowUsers $USER_NAME"
    echo "MaxStartups 100:30:200"
    echo "LogLevel VERBOSE"
    if [ "$name" = kbdint ]; then
      # Passwords only through PAM keyboard-interactive (OpenSSH's `password` method is off).
      echo "UsePAM yes"
      echo "PubkeyAuthentication no"
      echo "PasswordAuthentication no"
      echo "KbdInteractiveAuthentication yes"
    else
      echo "UsePAM no"
      echo "PubkeyAuthentication yes"
      echo "PasswordAuthentication no"
      echo "KbdInteractiveAuthentication no"
    fi
    echo "Subsystem sftp internal-sftp"
    echo "Match User $USER_NAME"
    echo "    ChrootDirectory $CHROOT_BASE/%u"
    echo "    ForceCommand internal-sftp"
    echo "    AllowTcpForwarding no"
    echo "    X11Forwarding no"
  } > "$W/$name.sshd_config"
  "$SSHD" -t -f "$W/$name.sshd_config"
}

start_instance() {
  local name=$1 port=$2
  if [ -f "$W/$name.bgpid" ] && kill -0 "$(cat "$W/$name.bgpid")" 2>/dev/null && wait_port "$port"; then
    return 0
  fi
  stop_pid "$W/$name.bgpid"
  mkdir -p /run/sshd
  # -D -e: foreground, log on stderr; setsid: not tied to the caller's process group.
  setsid "$SSHD" -D -e -f "$W/$name.sshd_config" > "$W/$name.log" 2>&1 < /dev/null &
  echo $! > "$W/$name.bgpid"
  if ! wait_port "$port"; then
    log "sshd '$name' did not come up on 127.0.0.1:$port; see $W/$name.log"
    exit 1
  fi
}

fp() { ssh-keygen -lf "$W/host_$1.pub" | cut -d' ' -f2; }

write_env() {
  local tmp=$ENV_FILE.tmp
  cat > "$tmp" <<ENV
# Written by scripts/services/ssh-interop.sh: the SFTP interoperability servers.
export SDS_TEST_SSHI_HOST=127.0.0.1
export SDS_TEST_SSHI_ALLKEYS_PORT=$PORT_ALL
export SDS_TEST_SSHI_RSAECDSA_PORT=$PORT_RSAECDSA
export SDS_TEST_SSHI_KBDINT_PORT=$PORT_KBD
export SDS_TEST_SSHI_USER=$USER_NAME
export SDS_TEST_SSHI_PASSWORD_FILE=$W/password
export SDS_TEST_SSHI_KEY=$W/client_ed25519
export SDS_TEST_SSHI_FP_RSA=$(fp rsa)
export SDS_TEST_SSHI_FP_ECDSA=$(fp ecdsa)
export SDS_TEST_SSHI_FP_ED25519=$(fp ed25519)
export SDS_TEST_SSHI_KNOWN_HOSTS_RSA=$W/known_hosts_rsa
export SDS_TEST_SSHI_KNOWN_HOSTS_ECDSA=$W/known_hosts_ecdsa
export SDS_TEST_SSHI_KNOWN_HOSTS_ED25519=$W/known_hosts_ed25519
export SDS_TEST_SSHI_KNOWN_HOSTS_ALL=$W/known_hosts_all
export SDS_TEST_SSHI_UPLOAD_DIR=/upload
export SDS_TEST_SSHI_UPLOAD_LOCAL=$CHROOT/upload
ENV
  mv "$tmp" "$ENV_FILE"
}

# The stock OpenSSH client proves each server works as described before any test relies on it.
verify() {
  local port
  for port in $PORT_ALL $PORT_RSAECDSA; do
    echo 'ls /upload' | sftp -q -b - -P "$port" -i "$W/client_ed25519" -o IdentitiesOnly=yes \
      -o UserKnownHostsFile="$W/known_hosts_all" -o StrictHostKeyChecking=yes \
      "$USER_NAME@127.0.0.1" >/dev/null \
      || { log "OpenSSH sftp could not log in on port $port; see $W/*.log"; return 1; }
  done
  printf '#!/bin/sh\ncat %s\n' "$W/password" > "$W/askpass.sh"
  chmod 700 "$W/askpass.sh"
  # keyboard-interactive only: the `password` method must be refused, kbd-interactive accepted.
  if ! echo 'ls /upload' | SSH_ASKPASS="$W/askpass.sh" SSH_ASKPASS_REQUIRE=force \
      sftp -q -o BatchMode=no -b - -P "$PORT_KBD" -o PreferredAuthentications=keyboard-interactive \
      -o PubkeyAuthentication=no -o UserKnownHostsFile="$W/known_hosts_all" \
      -o StrictHostKeyChecking=yes "$USER_NAME@127.0.0.1" >/dev/null 2>&1; then
    log "OpenSSH sftp could not log in by keyboard-interactive on port $PORT_KBD; see $W/kbdint.log"
    return 1
  fi
  if echo 'ls /upload' | SSH_ASKPASS="$W/askpass.sh" SSH_ASKPASS_REQUIRE=force \
      sftp -q -o BatchMode=no -b - -P "$PORT_KBD" -o PreferredAuthentications=password \
      -o PubkeyAuthentication=no -o UserKnownHostsFile="$W/known_hosts_all" \
      -o StrictHostKeyChecking=yes "$USER_NAME@127.0.0.1" >/dev/null 2>&1; then
    log "port $PORT_KBD accepted the plain password method; it must take keyboard-interactive only"
    return 1
  fi
}

start() {
  install_packages
  setup_user
  make_keys
  write_config allkeys "$PORT_ALL" rsa ecdsa ed25519
  write_config rsaecdsa "$PORT_RSAECDSA" rsa ecdsa
  write_config kbdint "$PORT_KBD" ed25519
  start_instance allkeys "$PORT_ALL"
  start_instance rsaecdsa "$PORT_RSAECDSA"
  start_instance kbdint "$PORT_KBD"
  write_env
  verify
  log "sshd up on 127.0.0.1:$PORT_ALL (RSA+ECDSA+Ed25519), $PORT_RSAECDSA (RSA+ECDSA), $PORT_KBD (keyboard-interactive/PAM only); env in $ENV_FILE"
}

stop() {
  stop_pid "$W/allkeys.bgpid"
  stop_pid "$W/rsaecdsa.bgpid"
  stop_pid "$W/kbdint.bgpid"
  rm -f "$ENV_FILE"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
