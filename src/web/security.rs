//! Securing lookout's own endpoint from `--web.config.file`: a TLS acceptor and basic auth.
//!
//! Passwords are checked with bcrypt (constant-time) on the blocking pool, never on the
//! threads that serve requests; a successful check is remembered (by a SHA-256 of user and
//! password) so a scraper does not pay bcrypt's cost on every scrape. An unknown user is checked
//! against a dummy hash, so its answer takes as long as a wrong password's.

use crate::config::web::{ClientAuth, WebConfigFile};
use crate::config::{ConfigError, Source};
use crate::pem::{read_certificates, read_private_key};
use crate::probe::tls::protocol_versions;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsAcceptor;

pub struct Security {
    pub tls: Option<TlsAcceptor>,
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
}

/// The bcrypt hash of a random string, for unknown users.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DSmS9Ej2X1sMk1aZfAb3y";

impl Security {
    pub fn load(path: &Path) -> Result<Security, ConfigError> {
        let source = Source::read(path)?;
        let file = WebConfigFile::load(&source)?;
        let tls = match &file.tls_server_config {
            None => None,
            Some(t) => {
                let chain = read_certificates(&t.cert_file.value)
                    .map_err(|e| source.error_at_span(&t.cert_file, e))?;
                let key = read_private_key(&t.key_file.value)
                    .map_err(|e| source.error_at_span(&t.key_file, e))?;
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let versions = protocol_versions(
                    t.min_version.as_ref().map(|v| v.value),
                    t.max_version.as_ref().map(|v| v.value),
                );
                let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(&versions)
                    .map_err(|e| {
                        source.error_at_span(&t.cert_file, format!("tls_server_config: {e}"))
                    })?;
                let auth =
                    t.client_auth_type.as_ref().map_or(ClientAuth::NoClientCert, |a| a.value);
                let builder = match (&t.client_ca_file, auth) {
                    (
                        Some(ca),
                        ClientAuth::VerifyClientCertIfGiven
                        | ClientAuth::RequireAndVerifyClientCert,
                    ) => {
                        let mut roots = rustls::RootCertStore::empty();
                        let certs = read_certificates(&ca.value)
                            .map_err(|e| source.error_at_span(ca, e))?;
                        roots.add_parsable_certificates(certs);
                        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                            Arc::new(roots),
                            provider,
                        );
                        let verifier = if auth == ClientAuth::VerifyClientCertIfGiven {
                            verifier.allow_unauthenticated()
                        } else {
                            verifier
                        };
                        builder.with_client_cert_verifier(verifier.build().map_err(|e| {
                            source.error_at_span(ca, format!("client_ca_file: {e}"))
                        })?)
                    }
                    _ => builder.with_no_client_auth(),
                };
                let mut config = builder.with_single_cert(chain, key).map_err(|e| {
                    source
                        .error_at_span(&t.key_file, format!("certificate and key do not fit: {e}"))
                })?;
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(TlsAcceptor::from(Arc::new(config)))
            }
        };
        let users = file.basic_auth_users.into_iter().map(|(u, h)| (u, h.value)).collect();
        Ok(Security { tls, users, verified: Mutex::new(HashSet::new()) })
    }

    pub fn needs_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether an `Authorization` header value carries a known user with the right password.
    pub async fn authorized(self: &Arc<Self>, header: Option<&str>) -> bool {
        let Some((user, password)) = header.and_then(parse_basic) else { return false };
        let key = cache_key(&user, &password);
        if self.verified.lock().expect("auth cache lock").contains(&key) {
            return true;
        }
        let this = self.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let (hash, known) = match this.users.get(&user) {
                Some(h) => (h.as_str(), true),
                None => (DUMMY_HASH, false),
            };
            bcrypt::verify(password.as_bytes(), hash).unwrap_or(false) && known
        })
        .await
        .unwrap_or(false);
        if ok {
            self.verified.lock().expect("auth cache lock").insert(key);
        }
        ok
    }
}

fn parse_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn cache_key(user: &str, password: &str) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(user.as_bytes());
    context.update(&[0]);
    context.update(password.as_bytes());
    context.finish().as_ref().try_into().expect("SHA-256 is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header() {
        assert_eq!(parse_basic("Basic dXNlcjpwYTpzcw=="), Some(("user".into(), "pa:ss".into())));
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn dummy_hash_is_a_bcrypt_hash() {
        assert!(DUMMY_HASH.parse::<bcrypt::HashParts>().is_ok());
    }
}
