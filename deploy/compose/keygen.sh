#!/bin/sh
# One-shot key generation for the demo stack (the `keygen` service of docker-compose.yml).
#
# Creates, once, into three named volumes:
#   /out/sftp-server  ssh_host_ed25519_key, ssh_host_rsa_key (+ .pub): the SFTP server's host
#                     keys; sds-sync.pub: sds-sync's public key, for the server's authorized_keys
#   /out/sds-sync     sftp_ed25519: sds-sync's SFTP client key (owner 10001, mode 0400);
#                     known_hosts: the server's host keys, so sds-sync verifies the server it
#                     talks to; mail-ca.crt: the CA that signed Mailpit's certificate
#   /out/mailpit      server.crt + server.key: Mailpit's STARTTLS certificate for the name
#                     "mailpit" (a CA:FALSE leaf signed by a throwaway CA, as rustls requires)
# Existing keys are kept, so the host key stays the same across `docker compose up`; remove
# the volumes (`docker compose down -v`) to start over.
#
# In production the host key is the SFTP server's and never leaves it: take its fingerprint
# from the server's administrator (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) and
# put it in known_hosts_file or host_key_fingerprint; see docs/operations.md.
#
# Outside the container, OUT=/some/dir sh keygen.sh does the same into OUT/{sftp-server,
# sds-sync,mailpit} (needs ssh-keygen and openssl; no chown unless run as root).
set -eu
umask 077
OUT=${OUT:-/out}
S=$OUT/sftp-server
C=$OUT/sds-sync
M=$OUT/mailpit
SDS_UID=${SDS_UID:-10001}
mkdir -p "$S" "$C" "$M"

if ! command -v ssh-keygen >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
    apk add --no-cache openssh-keygen openssl >/dev/null
fi

# --- SFTP: server host keys, client key, authorized key, known_hosts --------------------------
for type in ed25519 rsa; do
    if [ ! -s "$S/ssh_host_${type}_key" ]; then
        rm -f "$S/ssh_host_${type}_key" "$S/ssh_host_${type}_key.pub"
        ssh-keygen -q -t "$type" -N '' -C "sftp-demo-host" -f "$S/ssh_host_${type}_key"
    fi
done
if [ ! -s "$C/sftp_ed25519" ]; then
    rm -f "$C/sftp_ed25519" "$C/sftp_ed25519.pub"
    ssh-keygen -q -t ed25519 -N '' -C "sds-sync" -f "$C/sftp_ed25519"
fi
rm -f "$S/sds-sync.pub" "$C/known_hosts" "$C/mail-ca.crt"
cp "$C/sftp_ed25519.pub" "$S/sds-sync.pub"
# sds-sync connects to host "sftp" on port 22, so the entries are for the bare name "sftp"
# (another port would be written "[sftp]:2222").
for type in ed25519 rsa; do
    printf 'sftp %s\n' "$(cut -d' ' -f1,2 "$S/ssh_host_${type}_key.pub")" >> "$C/known_hosts"
done

# --- Mailpit: a throwaway CA and a server certificate for "mailpit" ---------------------------
if [ ! -s "$M/server.crt" ] || [ ! -s "$M/ca.crt" ]; then
    tmp=$(mktemp -d)
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=sds-sync demo CA" \
        -keyout "$tmp/ca.key" -out "$M/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=mailpit" \
        -keyout "$M/server.key" -out "$tmp/server.csr" 2>/dev/null
    printf '%s\n' 'subjectAltName=DNS:mailpit' 'basicConstraints=critical,CA:FALSE' \
        'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' > "$tmp/server.ext"
    openssl x509 -req -in "$tmp/server.csr" -CA "$M/ca.crt" -CAkey "$tmp/ca.key" \
        -CAcreateserial -CAserial "$tmp/ca.srl" -days 825 -extfile "$tmp/server.ext" \
        -out "$M/server.crt" 2>/dev/null
    # The CA key is not kept: nothing else is ever signed with it.
    rm -rf "$tmp"
fi
cp "$M/ca.crt" "$C/mail-ca.crt"

# --- Ownership and modes -----------------------------------------------------------------------
# sshd and Mailpit run as root and read their keys as root; sds-sync runs as UID 10001.
chmod 0755 "$S" "$M"
chmod 0600 "$S"/ssh_host_*_key "$M/server.key"
chmod 0644 "$S"/*.pub "$M/server.crt" "$M/ca.crt"
chmod 0700 "$C"
chmod 0400 "$C/sftp_ed25519"
chmod 0444 "$C/sftp_ed25519.pub" "$C/known_hosts" "$C/mail-ca.crt"
if [ "$(id -u)" = 0 ]; then
    chown -R "$SDS_UID:$SDS_UID" "$C"
fi

echo "keygen: SFTP host key fingerprints (what sds-sync's known_hosts trusts):"
for type in ed25519 rsa; do
    ssh-keygen -lf "$S/ssh_host_${type}_key.pub"
done
echo "keygen: Mailpit certificate:"
openssl x509 -in "$M/server.crt" -noout -subject -ext subjectAltName -enddate
