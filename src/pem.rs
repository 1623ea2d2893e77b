//! PEM, the one text encoding of certificates and keys lookout reads: CA bundles and client
//! certificates of the probers, certificate files of `prober: file`, and the certificate, key
//! and client CAs of lookout's own TLS endpoint. Errors name the file, for configuration
//! errors and probe failures alike.

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Whether `bytes` hold PEM blocks rather than one DER certificate.
pub fn is_pem(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"-----BEGIN").is_some()
}

/// The certificate blocks of a PEM bundle, each decoded or not; other blocks (keys,
/// parameters) are skipped.
pub fn certificates(
    bytes: &[u8],
) -> impl Iterator<Item = Result<CertificateDer<'static>, pem::Error>> + '_ {
    CertificateDer::pem_slice_iter(bytes)
}

/// Every certificate of the PEM file at `path`, at least one.
pub fn read_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = crate::files::read(path.as_ref(), crate::files::MAX_CONFIG_BYTES)
        .map_err(|e| format!("{path}: {e}"))?;
    parse_certificates(&bytes, path)
}

/// Every certificate of PEM text, at least one; `what` names it in errors.
pub fn parse_certificates(
    bytes: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = certificates(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no PEM certificate found"));
    }
    Ok(certs)
}

/// The first private key of the PEM file at `path`.
pub fn read_private_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = crate::files::read(path.as_ref(), crate::files::MAX_CONFIG_BYTES)
        .map_err(|e| format!("{path}: {e}"))?;
    parse_private_key(&bytes, path)
}

/// The first private key of PEM text; `what` names it in errors (never its contents).
pub fn parse_private_key(bytes: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| format!("{what}: no private key: {e}"))
}
