//! The rustls client configuration every TLS transport of this crate builds its connections
//! from: Mozilla's roots (webpki-roots, the same set lettre uses) plus an optional `ca_file`, the
//! ring provider, TLS 1.2 and 1.3.

use rustls::client::Resumption;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// How many TLS sessions the per-destination cache holds. One destination talks to one server,
/// so a handful is plenty; TLS 1.3 tickets are single-use, and each data connection takes one.
const SESSION_CACHE_SIZE: usize = 64;

static TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
static TLS13_AND_12: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Builds the rustls config: Mozilla's roots (webpki-roots) plus the PEM certificates of
/// `ca_file`, the ring provider (not the process default, so a test binary that links two
/// providers cannot make this ambiguous), TLS 1.2 and 1.3, and an in-memory session cache.
///
/// `ca_file_key` is the config key named in errors.
/// `tls12_only` leaves TLS 1.3 out: some FTPS servers accept a resumed TLS 1.2 session (by
/// session id) on data connections but do not issue or honour TLS 1.3 tickets. `resume = false`
/// disables session resumption altogether (only for tests of the refusal path).
pub(crate) fn client_config(
    ca_file: Option<&Path>,
    ca_file_key: &str,
    tls12_only: bool,
    resume: bool,
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("{ca_file_key} {}: cannot read it: {e}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                format!(
                    "{ca_file_key} {}: not a valid PEM certificate file: {e}",
                    path.display()
                )
            })?;
        if certs.is_empty() {
            return Err(format!(
                "{ca_file_key} {}: no PEM certificate (-----BEGIN CERTIFICATE-----) found in it",
                path.display()
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                format!(
                    "{ca_file_key} {}: a certificate in it is not usable as a CA: {e}",
                    path.display()
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(if tls12_only { TLS12_ONLY } else { TLS13_AND_12 })
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The default cache already works this way; spelled out because FTPS data connections
    // depend on it (see the module comment).
    config.resumption = if resume {
        Resumption::in_memory_sessions(SESSION_CACHE_SIZE)
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}
