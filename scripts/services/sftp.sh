#!/usr/bin/env bash
# Test SFTP server for the sftp destination tests: a real OpenSSH sshd on 127.0.0.1 with its own
# host key, a chrooted user that may log in by key (ed25519, RSA, ECDSA, a passphrase-protected
# ed25519) or by password, a writable `/upload` and a read-only `/readonly` inside the chroot, and
# known_hosts files (plain, hashed, and one holding a wrong key).
#
#   scripts/services/sftp.sh start   # idempotent; installs openssh-server when missing
#   scripts/services/sftp.sh stop    # kills the sshd it started, by pid
#
# State lives under /tmp/sds-test-services/sftp/. The chroot cannot: sshd demands that every
# component of a ChrootDirectory is root-owned and not group/other-writable, and /tmp is 1777.
# Tests learn everything from /tmp/sds-test-services/sftp.env. Runs as root (useradd, chroot).
set -euo pipefail
# Servers started below inherit the working directory: never leave them in a checkout that may be
# deleted while they run (pyftpdlib then fails every CWD).
cd /

PORT="${SDS_SFTP_TEST_PORT:-2222}"
BASE=/tmp/sds-test-services
W="$BASE/sftp"
ENV_FILE="$BASE/sftp.env"
USER_NAME=sdssftp
PASSWORD='sds-sftp-pass-8712'
PASSPHRASE='sds-key-passphrase-3141'
CHROOT_BASE=/srv/sds-sftp-test
CHROOT="$CHROOT_BASE/$USER_NAME"
SSHD=/usr/sbin/sshd

log() { echo "sftp test service: $*"; }

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "sftp test service: port $1 did not open; see $W/sshd.log" >&2
  return 1
}

running() {
  [ -f "$W/sshd.bgpid" ] && kill -0 "$(cat "$W/sshd.bgpid")" 2>/dev/null
}

install_packages() {
  if [ -x "$SSHD" ] && command -v ssh-keygen >/dev/null && command -v sftp >/dev/null; then
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Keep apt from starting the stock sshd on 0.0.0.0:22 (Docker-style images ship this file).
  if [ ! -x /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
  fi
  log "installing openssh-server"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openssh-server openssh-client openssh-sftp-server >/dev/null
}

setup_user_and_chroot() {
  id -u "$USER_NAME" >/dev/null 2>&1 || useradd -M -d / -s /usr/sbin/nologin "$USER_NAME"
  # Setting a password also unlocks the account: with UsePAM no, sshd refuses a locked ('!')
  # account even for key authentication.
  echo "$USER_NAME:$PASSWORD" | chpasswd
  install -d -o root -g root -m 755 "$CHROOT_BASE" "$CHROOT"
  # Tests make their own folder under upload/ as whatever user they run as, so it is open to all;
  # the chroot rule only covers the path down to $CHROOT.
  install -d -o "$USER_NAME" -g "$USER_NAME" -m 1777 "$CHROOT/upload"
  # Owned by root and not writable by the test user: the "read-only remote_dir" case.
  install -d -o root -g root -m 755 "$CHROOT/readonly"
}

make_keys() {
  mkdir -p "$W"
  chmod 755 "$W" # sshd reads AuthorizedKeysFile as the target user
  [ -f "$W/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C sds-test-host -f "$W/host_ed25519"
  # A key of the same type that the server does NOT have: the "changed host key" case.
  [ -f "$W/other_host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C other-host -f "$W/other_host_ed25519"
  [ -f "$W/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C sds-test -f "$W/client_ed25519"
  [ -f "$W/client_rsa" ] || ssh-keygen -q -t rsa -b 3072 -N '' -C sds-test -f "$W/client_rsa"
  [ -f "$W/client_ecdsa" ] || ssh-keygen -q -t ecdsa -b 256 -N '' -C sds-test -f "$W/client_ecdsa"
  [ -f "$W/client_ed25519_enc" ] || ssh-keygen -q -t ed25519 -N "$PASSPHRASE" -C sds-test -f "$W/client_ed25519_enc"
  # A key the server does not accept: the "authentication failure" case.
  [ -f "$W/unknown_client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C nobody -f "$W/unknown_client_ed25519"
  mkdir -p "$W/authorized_keys"
  cat "$W/client_ed25519.pub" "$W/client_rsa.pub" "$W/client_ecdsa.pub" "$W/client_ed25519_enc.pub" \
    > "$W/authorized_keys/$USER_NAME"
  chmod 755 "$W/authorized_keys"
  chmod 644 "$W/authorized_keys/$USER_NAME"
  umask 077
  printf '%s\n' "$PASSWORD" > "$W/password"
  printf '%s\n' "$PASSPHRASE" > "$W/passphrase"
  umask 022

  local hostkey otherkey
  hostkey="$(cut -d' ' -f1,2 "$W/host_ed25519.pub")"
  otherkey="$(cut -d' ' -f1,2 "$W/other_host_ed25519.pub")"
  # Non-22 port: OpenSSH writes and matches the `[host]:port` form.
  printf '# sds-sync test server\n[127.0.0.1]:%s %s\n' "$PORT" "$hostkey" > "$W/known_hosts"
  # Hashed form, as `HashKnownHosts yes` (Debian's default) writes it.
  printf '[127.0.0.1]:%s %s\n' "$PORT" "$hostkey" > "$W/known_hosts_hashed"
  ssh-keygen -q -H -f "$W/known_hosts_hashed" >/dev/null 2>&1
  rm -f "$W/known_hosts_hashed.old"
  grep -q '^|1|' "$W/known_hosts_hashed" || { echo "ssh-keygen -H did not hash $W/known_hosts_hashed" >&2; return 1; }
  printf '[127.0.0.1]:%s %s\n' "$PORT" "$otherkey" > "$W/known_hosts_wrong"
}

write_config() {
  cat > "$W/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $W/host_ed25519
PidFile $W/sshd.pid
UsePAM no
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
AuthorizedKeysFile $W/authorized_keys/%u
StrictModes no
AllowUsers $USER_NAME
# Tests open many connections at once.
MaxStartups 100:30:200
LogLevel VERBOSE
Subsystem sftp internal-sftp
Match User $USER_NAME
    ChrootDirectory $CHROOT_BASE/%u
    ForceCommand internal-sftp
    AllowTcpForwarding no
    X11Forwarding no
CONF
}

write_env() {
  local fp tmp
  fp="$(ssh-keygen -lf "$W/host_ed25519.pub" | cut -d' ' -f2)"
  tmp="$(mktemp "$BASE/.sftp.env.XXXXXX")"
  cat > "$tmp" <<ENV
export SDS_TEST_SFTP_HOST=127.0.0.1
export SDS_TEST_SFTP_PORT=$PORT
export SDS_TEST_SFTP_USER=$USER_NAME
export SDS_TEST_SFTP_PASSWORD_FILE=$W/password
export SDS_TEST_SFTP_KEY_ED25519=$W/client_ed25519
export SDS_TEST_SFTP_KEY_RSA=$W/client_rsa
export SDS_TEST_SFTP_KEY_ECDSA=$W/client_ecdsa
export SDS_TEST_SFTP_KEY_ED25519_ENCRYPTED=$W/client_ed25519_enc
export SDS_TEST_SFTP_KEY_PASSPHRASE_FILE=$W/passphrase
export SDS_TEST_SFTP_KEY_UNKNOWN=$W/unknown_client_ed25519
export SDS_TEST_SFTP_KNOWN_HOSTS=$W/known_hosts
export SDS_TEST_SFTP_KNOWN_HOSTS_HASHED=$W/known_hosts_hashed
export SDS_TEST_SFTP_KNOWN_HOSTS_WRONG=$W/known_hosts_wrong
export SDS_TEST_SFTP_HOST_FINGERPRINT=$fp
export SDS_TEST_SFTP_UPLOAD_DIR=/upload
export SDS_TEST_SFTP_UPLOAD_LOCAL=$CHROOT/upload
export SDS_TEST_SFTP_READONLY_DIR=/readonly
export SDS_TEST_SFTP_SSHD=$SSHD
export SDS_TEST_SFTP_SSHD_CONFIG=$W/sshd_config
ENV
  mv "$tmp" "$ENV_FILE"
}

start() {
  mkdir -p "$BASE"
  install_packages
  setup_user_and_chroot
  make_keys
  write_config
  if running; then
    log "already running (pid $(cat "$W/sshd.bgpid")) on 127.0.0.1:$PORT"
  else
    mkdir -p /run/sshd # privilege separation dir; sshd refuses to start without it
    "$SSHD" -t -f "$W/sshd_config"
    # -D -e: foreground with the log on stderr, so $! is the pid to stop. sshd re-execs itself,
    # hence the absolute path.
    "$SSHD" -D -e -f "$W/sshd_config" > "$W/sshd.log" 2>&1 &
    echo $! > "$W/sshd.bgpid"
    wait_port "$PORT"
    log "started (pid $(cat "$W/sshd.bgpid")) on 127.0.0.1:$PORT"
  fi
  write_env
  # Prove the setup with the stock client: key auth, strict host key checking.
  if ! echo 'ls /upload' | sftp -q -b - -P "$PORT" -i "$W/client_ed25519" \
      -o UserKnownHostsFile="$W/known_hosts" -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes \
      "$USER_NAME@127.0.0.1" >/dev/null; then
    echo "sftp test service: OpenSSH sftp client could not log in; see $W/sshd.log" >&2
    return 1
  fi
  log "env in $ENV_FILE"
}

stop() {
  if running; then
    local pid
    pid="$(cat "$W/sshd.bgpid")"
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    log "stopped (pid $pid)"
  else
    log "not running"
  fi
  rm -f "$W/sshd.bgpid" "$ENV_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|stop|restart" >&2; exit 2 ;;
esac
