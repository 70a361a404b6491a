//! Server host key verification for the SFTP destination: an OpenSSH `known_hosts` file (plain
//! and hashed `|1|` host names, `[host]:port`, wildcards, negation, `@revoked`) or a pinned
//! SHA256 fingerprint. There is deliberately no accept-anything mode.
//!
//! An SSH server shows one host key per handshake, of the type the client asks for first. A
//! known_hosts file says which types to ask for; a fingerprint does not (it is a hash), so a pin
//! is matched by asking for each key type the server has in turn ([`HostKeyPolicy::key_order`]
//! and the handshake loop in `session.rs`), then remembering the type that matched.
//!
//! We parse known_hosts ourselves rather than use `russh::keys::check_known_hosts_path`: that
//! helper treats a missing file as "no keys", splits on single spaces only, ignores wildcards,
//! negation and `@revoked`, and aborts on the first unparsable matching line.

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::{Algorithm, HashAlg, PublicKey};
use sha1::Sha1;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How the server's host key is trusted.
#[derive(Debug, Clone)]
pub(crate) enum HostKeyPolicy {
    KnownHosts(KnownHosts),
    Fingerprint(Pin),
}

/// A pinned fingerprint, and the key type that last matched it (asked for first next time, so
/// later connections need one handshake again).
#[derive(Debug, Clone)]
pub(crate) struct Pin {
    /// `SHA256:<unpadded base64>` as `ssh-keygen -lf` prints it.
    fingerprint: String,
    matched: Arc<Mutex<Option<Algorithm>>>,
}

/// Why a host key was refused; rendered into the permanent error by [`HostKeyProblem::explain`].
#[derive(Debug, Clone)]
pub(crate) enum HostKeyProblem {
    /// No entry for this host (or only entries for other key types).
    Unknown {
        offered: Box<PublicKey>,
        path: PathBuf,
        other_types: Vec<String>,
    },
    /// An entry of the same key type holds a different key: possible interception.
    Changed {
        offered: Box<PublicKey>,
        path: PathBuf,
        lines: Vec<usize>,
    },
    /// The key is listed under `@revoked`.
    Revoked {
        offered: Box<PublicKey>,
        path: PathBuf,
        line: usize,
    },
    /// No host key the server showed has the pinned fingerprint. `offered` holds every key it
    /// showed, one per type (each handshake shows one); `complete` is true when every type the
    /// server has was tried.
    FingerprintMismatch {
        offered: Vec<PublicKey>,
        pinned: String,
        complete: bool,
    },
}

pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The host field of a known_hosts line for this address, as OpenSSH writes and matches it: the
/// bare host on port 22, `[host]:port` otherwise.
pub(crate) fn host_field(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// The key as a known_hosts key field (`ssh-ed25519 AAAA...`), without a comment.
fn openssh_key(key: &PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh()
        .unwrap_or_else(|_| key.algorithm().to_string())
}

impl HostKeyProblem {
    /// A complete, actionable message: what the server offered and exactly what to add or change
    /// to trust it. `host`/`port` are the configured address.
    pub(crate) fn explain(&self, host: &str, port: u16) -> String {
        let field = host_field(host, port);
        match self {
            HostKeyProblem::Unknown {
                offered,
                path,
                other_types,
            } => {
                let others = if other_types.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (it only has {} key(s) for this host)",
                        other_types.join(", ")
                    )
                };
                format!(
                    "host key verification failed: the server's {alg} key is not in known_hosts_file {path}{others}. \
                     The server offered {fp}. Check that fingerprint with the server's administrator \
                     (on the server: `ssh-keygen -lf /etc/ssh/ssh_host_{kind}_key.pub`); if it matches, add this line \
                     to {path}:\n{field} {line}\nor set host_key_fingerprint = \"{fp}\" instead of known_hosts_file",
                    alg = offered.algorithm(),
                    path = path.display(),
                    fp = fingerprint(offered),
                    kind = key_file_kind(offered),
                    line = openssh_key(offered),
                )
            }
            HostKeyProblem::Changed {
                offered,
                path,
                lines,
            } => format!(
                "HOST KEY CHANGED: known_hosts_file {path} line {lines} holds a different {alg} key for {field}, \
                 but the server offered {fp}. Someone may be intercepting the connection, or the server was \
                 reinstalled. Do not trust the new key until the server's administrator confirms that \
                 fingerprint; then replace line {lines} of {path} with:\n{field} {line}",
                path = path.display(),
                lines = join_lines(lines),
                alg = offered.algorithm(),
                fp = fingerprint(offered),
                line = openssh_key(offered),
            ),
            HostKeyProblem::Revoked {
                offered,
                path,
                line,
            } => format!(
                "host key verification failed: the server offered {fp}, which known_hosts_file {path} line {line} \
                 marks @revoked. Ask the server's administrator for the server's current key",
                fp = fingerprint(offered),
                path = path.display(),
            ),
            HostKeyProblem::FingerprintMismatch {
                offered,
                pinned,
                complete,
            } => {
                let keys = offered
                    .iter()
                    .map(|k| format!("{} key {}", family_name(&k.algorithm()), fingerprint(k)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let scope = if *complete {
                    "every host key type the server has was tried"
                } else {
                    "not every host key type could be tried"
                };
                let (fp, line) = offered
                    .first()
                    .map(|k| (fingerprint(k), openssh_key(k)))
                    .unwrap_or_default();
                format!(
                    "HOST KEY MISMATCH: host_key_fingerprint is {pinned}, but no host key of the server has that \
                     fingerprint; the server offered {keys} ({scope}). Someone may be intercepting the connection, \
                     or the server's keys changed. Do not trust them until the server's administrator confirms a \
                     fingerprint (on the server: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`, or _rsa_ / \
                     _ecdsa_); then set host_key_fingerprint to it, e.g. host_key_fingerprint = \"{fp}\" (or add \
                     `{field} {line}` to a known_hosts_file)"
                )
            }
        }
    }
}

fn join_lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A key type as OpenSSH names host keys, with RSA named once whatever signature hash the
/// handshake used (`rsa` rather than `rsa-sha2-512`).
fn family_name(alg: &Algorithm) -> String {
    match alg {
        Algorithm::Rsa { .. } => "ssh-rsa".to_owned(),
        other => other.to_string(),
    }
}

/// The `<kind>` in `/etc/ssh/ssh_host_<kind>_key.pub`, for the hint in errors.
fn key_file_kind(key: &PublicKey) -> &'static str {
    match key.algorithm() {
        Algorithm::Ed25519 => "ed25519",
        Algorithm::Rsa { .. } => "rsa",
        Algorithm::Ecdsa { .. } => "ecdsa",
        _ => "*",
    }
}

/// Checks a `SHA256:...` fingerprint's form; returns it normalised (no base64 padding).
pub(crate) fn parse_fingerprint(value: &str) -> Result<String, String> {
    let value = value.trim();
    let Some(b64) = value.strip_prefix("SHA256:") else {
        return Err(format!(
            "{value:?} is not a SHA256 fingerprint; it must look like \"SHA256:...\" as `ssh-keygen -lf <host key>.pub` prints it"
        ));
    };
    let b64 = b64.trim_end_matches('=');
    let decoded = data_encoding::BASE64_NOPAD.decode(b64.as_bytes());
    match decoded {
        Ok(bytes) if bytes.len() == 32 => Ok(format!("SHA256:{b64}")),
        _ => Err(format!(
            "{value:?} is not a valid SHA256 fingerprint (expected 43 base64 characters after \"SHA256:\")"
        )),
    }
}

impl HostKeyPolicy {
    /// Trust the key with this (already checked, normalised) fingerprint.
    pub(crate) fn pinned(fingerprint: String) -> Self {
        HostKeyPolicy::Fingerprint(Pin {
            fingerprint,
            matched: Arc::default(),
        })
    }

    /// Accepts or refuses the key the server offered for `host:port`.
    pub(crate) fn verify(
        &self,
        host: &str,
        port: u16,
        offered: &PublicKey,
    ) -> Result<(), HostKeyProblem> {
        match self {
            HostKeyPolicy::Fingerprint(pin) => {
                if fingerprint(offered) == pin.fingerprint {
                    if let Ok(mut matched) = pin.matched.lock() {
                        *matched = Some(offered.algorithm());
                    }
                    Ok(())
                } else {
                    Err(HostKeyProblem::FingerprintMismatch {
                        offered: vec![offered.clone()],
                        pinned: pin.fingerprint.clone(),
                        complete: false,
                    })
                }
            }
            HostKeyPolicy::KnownHosts(kh) => kh.verify(host, port, offered),
        }
    }

    /// Key algorithms known for this host, so the client can ask the server for one of those first
    /// (as OpenSSH does) instead of a type the file has no entry for; for a pin, the type that
    /// matched last time.
    pub(crate) fn known_algorithms(&self, host: &str, port: u16) -> Vec<Algorithm> {
        match self {
            HostKeyPolicy::Fingerprint(pin) => pin
                .matched
                .lock()
                .ok()
                .and_then(|m| m.clone())
                .into_iter()
                .collect(),
            HostKeyPolicy::KnownHosts(kh) => kh.algorithms_for(host, port),
        }
    }

    /// The host key algorithms to offer in a handshake, most wanted first: `ours` with the types
    /// known for this host first, less the types of `refused` (keys the server already showed
    /// that did not match a pin). Empty when every type was tried.
    pub(crate) fn key_order(
        &self,
        host: &str,
        port: u16,
        ours: &[Algorithm],
        refused: &[PublicKey],
    ) -> Vec<Algorithm> {
        let known = self.known_algorithms(host, port);
        let mut keys: Vec<Algorithm> = ours
            .iter()
            .filter(|a| !refused.iter().any(|k| same_family(&k.algorithm(), a)))
            .cloned()
            .collect();
        // Stable: within each group our own preference order stays.
        keys.sort_by_key(|a| !known.iter().any(|k| same_family(k, a)));
        keys
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    marker: Marker,
    hosts: String,
    key: PublicKey,
}

/// A parsed known_hosts file.
#[derive(Debug, Clone)]
pub(crate) struct KnownHosts {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl KnownHosts {
    /// Reads and parses the file. A missing or unreadable file is an error (silently trusting
    /// nothing would only move the failure to connect time with a vaguer message). Lines that do
    /// not parse (unknown key types, garbage) are skipped, as OpenSSH does.
    pub(crate) fn load(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(Self::parse(path, &text))
    }

    pub(crate) fn parse(path: &Path, text: &str) -> Self {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if let Some(entry) = parse_line(i + 1, raw) {
                entries.push(entry);
            }
        }
        KnownHosts {
            path: path.to_path_buf(),
            entries,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn verify(&self, host: &str, port: u16, offered: &PublicKey) -> Result<(), HostKeyProblem> {
        let name = host_field(host, port);
        // A revoked key is refused whatever host line it sits on.
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.marker == Marker::Revoked && same_key(&e.key, offered))
        {
            return Err(HostKeyProblem::Revoked {
                offered: Box::new(offered.clone()),
                path: self.path.clone(),
                line: e.line,
            });
        }
        let mut changed = Vec::new();
        let mut other_types = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| e.marker == Marker::None && hosts_match(&e.hosts, &name))
        {
            if same_key(&e.key, offered) {
                return Ok(());
            }
            if same_family(&e.key.algorithm(), &offered.algorithm()) {
                changed.push(e.line);
            } else {
                let alg = e.key.algorithm().to_string();
                if !other_types.contains(&alg) {
                    other_types.push(alg);
                }
            }
        }
        if !changed.is_empty() {
            return Err(HostKeyProblem::Changed {
                offered: Box::new(offered.clone()),
                path: self.path.clone(),
                lines: changed,
            });
        }
        Err(HostKeyProblem::Unknown {
            offered: Box::new(offered.clone()),
            path: self.path.clone(),
            other_types,
        })
    }

    fn algorithms_for(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let name = host_field(host, port);
        let mut algs: Vec<Algorithm> = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| e.marker == Marker::None && hosts_match(&e.hosts, &name))
        {
            let alg = e.key.algorithm();
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        algs
    }
}

fn parse_line(line: usize, raw: &str) -> Option<Entry> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    let mut fields = trimmed.split_ascii_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let key_type = fields.next()?;
    let key_b64 = fields.next()?;
    let key = PublicKey::from_openssh(&format!("{key_type} {key_b64}")).ok()?;
    Some(Entry {
        line,
        marker,
        hosts: first.to_owned(),
        key,
    })
}

/// Equal key material; comments and the RSA signature hash do not matter.
fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

/// Same key type, so that a different key is a *change*, not merely another type. RSA keys are
/// one type whatever signature hash the connection negotiated.
pub(crate) fn same_family(a: &Algorithm, b: &Algorithm) -> bool {
    match (a, b) {
        (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
        _ => a == b,
    }
}

/// OpenSSH host-list semantics: comma-separated patterns with `*`/`?` wildcards; a matching
/// negated (`!`) pattern makes the whole line not match; a `|1|salt|hash` entry matches when
/// HMAC-SHA1(salt, name) equals hash. Names compare case-insensitively.
fn hosts_match(hosts: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in hosts.split(',') {
        if let Some(hashed) = pattern.strip_prefix("|1|") {
            if hashed_matches(hashed, name) {
                matched = true;
            }
            continue;
        }
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if wildcard_match(&pattern.to_ascii_lowercase(), name) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

fn hashed_matches(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        data_encoding::BASE64.decode(salt.as_bytes()),
        data_encoding::BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// `*` matches any run of characters, `?` exactly one.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two real ed25519 public keys and an ECDSA key (generated with ssh-keygen for these tests).
    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILepvS+9RqdbtEvynwFrCQdwCnydMrR60kMUHPGLcVvZ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDAhDP9w4iNzm392gbidU5LUAX84xHIIVi8BRFfAh5de";
    const KEY_EC: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBF0zcXXWaxGGeOhd5RJyLST/jahOa69o/GJFLVaau3DWJWWIdlVVec1nfIPSsBQV/F0o5/yS+6jlnU+/hkE4GsQ=";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    fn kh(text: &str) -> KnownHosts {
        KnownHosts::parse(Path::new("/kh"), text)
    }

    /// The hashed form of `name` with a fixed salt, as `ssh-keygen -H` would write it.
    fn hashed(name: &str) -> String {
        let salt = [7u8; 20];
        let mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt)
            .unwrap()
            .chain_update(name.as_bytes());
        let hash = mac.finalize().into_bytes();
        format!(
            "|1|{}|{}",
            data_encoding::BASE64.encode(&salt),
            data_encoding::BASE64.encode(&hash)
        )
    }

    #[test]
    fn plain_entry_with_port_matches_only_that_port() {
        let k = kh(&format!("# comment\n\n[127.0.0.1]:2222 {KEY_A}\n"));
        assert!(k.verify("127.0.0.1", 2222, &key(KEY_A)).is_ok());
        // Port 22 uses the bare name; a `[host]:port` entry must not match it.
        assert!(matches!(
            k.verify("127.0.0.1", 22, &key(KEY_A)),
            Err(HostKeyProblem::Unknown { .. })
        ));
        assert!(matches!(
            k.verify("127.0.0.1", 2223, &key(KEY_A)),
            Err(HostKeyProblem::Unknown { .. })
        ));
    }

    #[test]
    fn bare_name_is_port_22_and_case_insensitive() {
        let k = kh(&format!("sftp.example.org,10.0.0.5 {KEY_A} comment here\n"));
        assert!(k.verify("SFTP.Example.org", 22, &key(KEY_A)).is_ok());
        assert!(k.verify("10.0.0.5", 22, &key(KEY_A)).is_ok());
        assert!(k.verify("sftp.example.org", 2222, &key(KEY_A)).is_err());
    }

    #[test]
    fn hashed_entries_match_host_and_port_form() {
        let k = kh(&format!(
            "{} {KEY_A}\n{} {KEY_B}\n",
            hashed("[127.0.0.1]:2222"),
            hashed("sftp.example.org")
        ));
        assert!(k.verify("127.0.0.1", 2222, &key(KEY_A)).is_ok());
        assert!(k.verify("sftp.example.org", 22, &key(KEY_B)).is_ok());
        assert!(matches!(
            k.verify("127.0.0.1", 2223, &key(KEY_A)),
            Err(HostKeyProblem::Unknown { .. })
        ));
    }

    #[test]
    fn hashed_line_written_by_ssh_keygen() {
        // `ssh-keygen -H` output for "[127.0.0.1]:2222" and KEY_A.
        let line =
            format!("|1|7fdocfWrHy+oqG2xY46iKVgsC6E=|fMn8cllyPYMJ7EjLwfOhYgAwaU0= {KEY_A}\n");
        assert!(kh(&line).verify("127.0.0.1", 2222, &key(KEY_A)).is_ok());
    }

    #[test]
    fn different_key_of_same_type_is_a_change_with_line_number() {
        let k = kh(&format!("# c\n[h]:2222 {KEY_B}\n"));
        match k.verify("h", 2222, &key(KEY_A)) {
            Err(HostKeyProblem::Changed { lines, .. }) => assert_eq!(lines, vec![2]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_other_types_known_is_unknown_and_says_so() {
        let k = kh(&format!("[h]:2222 {KEY_EC}\n"));
        match k.verify("h", 2222, &key(KEY_A)) {
            Err(HostKeyProblem::Unknown { other_types, .. }) => {
                assert_eq!(other_types, vec!["ecdsa-sha2-nistp256"])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(k.algorithms_for("h", 2222).len(), 1);
    }

    #[test]
    fn wildcards_and_negation() {
        let k = kh(&format!("*.example.org,!bad.example.org {KEY_A}\n"));
        assert!(k.verify("a.example.org", 22, &key(KEY_A)).is_ok());
        assert!(k.verify("bad.example.org", 22, &key(KEY_A)).is_err());
        let k = kh(&format!("[10.0.0.?]:2222 {KEY_A}\n"));
        assert!(k.verify("10.0.0.7", 2222, &key(KEY_A)).is_ok());
        assert!(k.verify("10.0.0.17", 2222, &key(KEY_A)).is_err());
    }

    #[test]
    fn revoked_key_is_refused_even_if_also_listed() {
        let k = kh(&format!("[h]:2222 {KEY_A}\n@revoked * {KEY_A}\n"));
        assert!(matches!(
            k.verify("h", 2222, &key(KEY_A)),
            Err(HostKeyProblem::Revoked { line: 2, .. })
        ));
    }

    #[test]
    fn cert_authority_and_garbage_lines_are_not_trusted_keys() {
        let k = kh(&format!(
            "@cert-authority [h]:2222 {KEY_A}\n[h]:2222 ssh-ed25519 notbase64!!\nnonsense\n"
        ));
        assert!(k.verify("h", 2222, &key(KEY_A)).is_err());
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn tabs_and_multiple_spaces_separate_fields() {
        let k = kh(&format!("[h]:2222\t \t{}\n", KEY_A.replace(' ', "   ")));
        assert!(k.verify("h", 2222, &key(KEY_A)).is_ok());
    }

    #[test]
    fn fingerprint_pin() {
        let fp = fingerprint(&key(KEY_A));
        assert_eq!(fp, "SHA256:6dZjzlodo5tf6Om1SjCJ5dItU0lgzXe9++eagCdMo7Y");
        assert_eq!(parse_fingerprint(&format!("{fp}=")).unwrap(), fp);
        assert!(parse_fingerprint("6dZjzlodo5tf6Om1SjCJ5dItU0lgzXe9++eagCdMo7Y").is_err());
        assert!(parse_fingerprint("SHA256:abc").is_err());
        let policy = HostKeyPolicy::pinned(fp.clone());
        assert!(policy.verify("h", 22, &key(KEY_A)).is_ok());
        let err = policy
            .verify("h", 22, &key(KEY_B))
            .unwrap_err()
            .explain("h", 22);
        assert!(err.contains(&fingerprint(&key(KEY_B))), "{err}");
        assert!(err.contains(&fp), "{err}");
    }

    #[test]
    fn a_pin_remembers_the_type_that_matched_and_tries_the_others() {
        let ours = [
            Algorithm::Ed25519,
            key(KEY_EC).algorithm(),
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
        ];
        let policy = HostKeyPolicy::pinned(fingerprint(&key(KEY_EC)));
        assert_eq!(policy.key_order("h", 22, &ours, &[]), ours.to_vec());
        // The Ed25519 key was shown and did not match: ask for the other types.
        assert!(policy.verify("h", 22, &key(KEY_A)).is_err());
        assert_eq!(
            policy.key_order("h", 22, &ours, &[key(KEY_A)]),
            ours[1..].to_vec()
        );
        // The ECDSA key matched: asked for first from now on.
        policy.verify("h", 22, &key(KEY_EC)).unwrap();
        assert_eq!(policy.key_order("h", 22, &ours, &[])[0], ours[1]);
        assert!(
            policy
                .key_order("h", 22, &ours, &[key(KEY_A), key(KEY_EC), key(KEY_B)])
                .len()
                == 1
        );
    }

    #[test]
    fn a_pin_mismatch_lists_every_key_offered_and_the_pin() {
        let problem = HostKeyProblem::FingerprintMismatch {
            offered: vec![key(KEY_A), key(KEY_EC)],
            pinned: "SHA256:pinnedpinnedpinnedpinnedpinnedpinnedpinned".into(),
            complete: true,
        };
        let msg = problem.explain("h", 2222);
        for needle in [
            "HOST KEY MISMATCH",
            "SHA256:pinnedpinnedpinnedpinnedpinnedpinnedpinned",
            "ssh-ed25519 key SHA256:6dZjzlodo5tf6Om1SjCJ5dItU0lgzXe9++eagCdMo7Y",
            "ecdsa-sha2-nistp256 key SHA256:",
            "every host key type the server has was tried",
        ] {
            assert!(msg.contains(needle), "lacks {needle:?}: {msg}");
        }
    }

    #[test]
    fn unknown_key_message_gives_the_line_to_add() {
        let msg = kh("")
            .verify("127.0.0.1", 2222, &key(KEY_A))
            .unwrap_err()
            .explain("127.0.0.1", 2222);
        assert!(msg.contains(&format!("[127.0.0.1]:2222 {KEY_A}")), "{msg}");
        assert!(
            msg.contains("SHA256:6dZjzlodo5tf6Om1SjCJ5dItU0lgzXe9++eagCdMo7Y"),
            "{msg}"
        );
        assert!(msg.contains("host_key_fingerprint"), "{msg}");
    }
}
