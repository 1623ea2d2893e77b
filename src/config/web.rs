//! `--web.config.file`: the Prometheus exporter-toolkit format for securing lookout's own
//! endpoint — TLS (optionally requiring client certificates) and basic auth with bcrypt hashes.

use super::values::TlsVersion;
use super::{ConfigError, Source};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

/// The highest bcrypt cost accepted: one check already takes seconds at this cost.
pub const MAX_BCRYPT_COST: u32 = 16;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    /// user → bcrypt hash (`htpasswd -nbB user password`).
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert_file: Spanned<String>,
    pub key_file: Spanned<String>,
    #[serde(default)]
    pub client_auth_type: Option<Spanned<ClientAuth>>,
    #[serde(default)]
    pub client_ca_file: Option<Spanned<String>>,
    #[serde(default)]
    pub min_version: Option<Spanned<TlsVersion>>,
    #[serde(default)]
    pub max_version: Option<Spanned<TlsVersion>>,
}

/// The client-certificate policies of exporter-toolkit that can be honoured with a CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ClientAuth {
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl WebConfigFile {
    pub fn load(source: &Source) -> Result<WebConfigFile, ConfigError> {
        let file: WebConfigFile = source.parse()?;
        for (user, hash) in &file.basic_auth_users {
            let Ok(parts) = hash.value.parse::<bcrypt::HashParts>() else {
                return Err(
                    source.error_at_span(hash, format!("the password of {user:?} is not a bcrypt hash (make one with htpasswd -nbB)"))
                );
            };
            // Each check of a cost-17 hash takes seconds of a core: a few requests would
            // take the endpoint down.
            if parts.get_cost() > MAX_BCRYPT_COST {
                return Err(source.error_at_span(
                    hash,
                    format!(
                        "the bcrypt cost of {user:?}'s hash is {}; at most {MAX_BCRYPT_COST} is accepted (htpasswd -nbB -C 10)",
                        parts.get_cost()
                    ),
                ));
            }
        }
        if let Some(tls) = &file.tls_server_config {
            let auth = tls.client_auth_type.as_ref().map_or(ClientAuth::NoClientCert, |a| a.value);
            match (auth, &tls.client_ca_file, &tls.client_auth_type) {
                (ClientAuth::NoClientCert, Some(ca), _) => {
                    return Err(source.error_at_span(ca, "client_ca_file is set but client_auth_type does not verify client certificates"));
                }
                (
                    ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert,
                    None,
                    Some(a),
                ) => {
                    return Err(
                        source.error_at_span(a, "this client_auth_type needs client_ca_file")
                    );
                }
                _ => {}
            }
            if let Some(max) = &tls.max_version {
                if max.value < TlsVersion::TLS12 {
                    return Err(
                        source.error_at_span(max, "max_version below TLS12 cannot be honoured: lookout speaks TLS 1.2 and 1.3 only")
                    );
                }
            }
        }
        Ok(file)
    }
}
