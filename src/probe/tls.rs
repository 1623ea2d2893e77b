//! TLS for the http, tcp, dns (over TLS) and grpc probers: a handshake that keeps the server's
//! certificate chain even when it cannot be trusted, verification as a separate fact, and
//! blackbox's TLS metrics.
//!
//! The handshake accepts any chain (signatures over the handshake are still checked), then
//! the chain is verified with rustls' WebPKI verifier before any request is sent. So an
//! expired, not-yet-valid, self-signed or misnamed certificate still yields its metrics, and
//! the probe fails with `tls_verify` unless `insecure_skip_verify` is set.

use super::certs::{self, CertInfo, Origin};
use super::{Failure, FailureReason, Report};
use crate::config::probes::TlsConfig;
use crate::config::values::TlsVersion;
use crate::config::{ConfigError, Source};
use crate::metrics::families::{
    CERT_NOT_AFTER, CERT_NOT_BEFORE, PROBE_SSL_EARLIEST_CERT_EXPIRY,
    PROBE_SSL_LAST_CHAIN_EXPIRY_TIMESTAMP_SECONDS, PROBE_SSL_LAST_CHAIN_INFO,
    PROBE_TLS_CIPHER_INFO, PROBE_TLS_VERSION_INFO, TLS_VERIFY_RESULT,
};
use crate::pem::{parse_certificates, parse_private_key, read_certificates, read_private_key};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde_saphyr::Spanned;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Go's `time.Time{}` as a Unix timestamp (January 1st of year 1).
const GO_ZERO_TIME: f64 = -62_135_596_800.0;

/// A module's TLS client. When a file it names does not exist yet at load, it is built at
/// the first probe that finds the files (until then such probes fail with
/// `certificate_file`).
pub struct TlsClient {
    server_name: Option<String>,
    state: State,
}

enum State {
    Ready(Box<Ready>),
    Waiting(Box<Waiting>),
}

/// A client whose files were missing at load: what to build it from, and it once built.
struct Waiting {
    config: TlsConfig,
    alpn: Vec<Vec<u8>>,
    built: OnceLock<Ready>,
}

/// What a built TLS client holds.
struct Ready {
    config: Arc<ClientConfig>,
    connector: TlsConnector,
    /// Built on first use when it rests on the system trust store, which most modules never need.
    verifier: OnceLock<Option<Arc<WebPkiServerVerifier>>>,
    insecure_skip_verify: bool,
    client_certs: Vec<CertInfo>,
}

/// Why a client could not be built: the key it is about, if one, and what went wrong.
type BuildError<'a> = (Option<&'a Spanned<String>>, String);

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// The machine's trust store, read once.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!("no system CA certificates found: probes without tls_config.ca_file will fail verification");
            }
            Arc::new(store)
        })
        .clone()
}

impl TlsClient {
    /// Builds the client, or warns and waits when a file it names does not exist yet; a file
    /// that exists but is not what it should be is an error.
    pub fn new(
        config: &TlsConfig,
        alpn: &[&[u8]],
        source: &Source,
    ) -> Result<TlsClient, ConfigError> {
        let files = [
            ("ca_file", &config.ca_file),
            ("cert_file", &config.cert_file),
            ("key_file", &config.key_file),
        ];
        let mut missing = false;
        for (key, file) in files {
            if let Some(file) = file {
                missing |= source.warn_if_missing(file, key);
            }
        }
        let server_name = config.server_name.clone();
        if missing {
            let alpn = alpn.iter().map(|p| p.to_vec()).collect();
            return Ok(TlsClient {
                server_name,
                state: State::Waiting(Box::new(Waiting {
                    config: config.clone(),
                    alpn,
                    built: OnceLock::new(),
                })),
            });
        }
        let ready = Ready::build(config, alpn).map_err(|(key, message)| match key {
            Some(key) => source.error_at_span(key, message),
            None => source.error_at(0, 0, message),
        })?;
        Ok(TlsClient { server_name, state: State::Ready(Box::new(ready)) })
    }

    /// The built client, building it now if its files were missing at load.
    fn ready(&self) -> Result<&Ready, Failure> {
        match &self.state {
            State::Ready(ready) => Ok(ready),
            State::Waiting(waiting) => {
                let Waiting { config, alpn, built } = waiting.as_ref();
                if let Some(ready) = built.get() {
                    return Ok(ready);
                }
                let alpn: Vec<&[u8]> = alpn.iter().map(Vec::as_slice).collect();
                let ready = Ready::build(config, &alpn).map_err(|(_, message)| {
                    Failure::new(FailureReason::CertificateFile, message)
                })?;
                Ok(built.get_or_init(|| ready))
            }
        }
    }

    /// Handshakes over `io`, records the TLS metrics, and fails unless the chain verifies
    /// (or `insecure_skip_verify` is set).
    /// `name` is the name sent (SNI) and verified; see [`TlsClient::server_name`].
    pub async fn handshake<IO>(
        &self,
        io: IO,
        name: &str,
        report: &mut Report,
    ) -> Result<TlsStream<IO>, Failure>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.ready()?.handshake(io, name, report).await
    }

    /// The server name to send and verify (recording the client certificates' metrics),
    /// before a handshake over QUIC.
    pub fn begin(
        &self,
        name: &str,
        report: &mut Report,
    ) -> Result<(String, ServerName<'static>), Failure> {
        self.ready()?.begin(name, report)
    }

    /// The rustls configuration (ALPN as prepared), for QUIC.
    pub fn config(&self) -> Result<Arc<ClientConfig>, Failure> {
        Ok(self.ready()?.config.clone())
    }

    /// After a QUIC handshake: see [`Ready::inspect`].
    pub fn inspect(
        &self,
        chain: &[CertificateDer<'static>],
        version: &str,
        cipher: Option<String>,
        name: &ServerName<'static>,
        report: &mut Report,
    ) -> Result<(), Failure> {
        self.ready()?.inspect(chain, version, cipher, name, report)
    }

    /// The configured `server_name`, which replaces the target's host for SNI and verification.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }
}

/// A certificate or key of `tls_config`: a file (`ca_file`…) or PEM text (`ca`…).
struct Pem<'a> {
    at: &'a serde_saphyr::Spanned<String>,
    inline: Option<&'static str>,
}

impl<'a> Pem<'a> {
    fn of(
        file: &'a Option<serde_saphyr::Spanned<String>>,
        text: &'a Option<serde_saphyr::Spanned<String>>,
        key: &'static str,
    ) -> Option<Pem<'a>> {
        match (file, text) {
            (Some(at), _) => Some(Pem { at, inline: None }),
            (None, Some(at)) => Some(Pem { at, inline: Some(key) }),
            (None, None) => None,
        }
    }

    /// The path, or the key of the inline text (whose contents may be secret).
    fn name(&self) -> String {
        match self.inline {
            Some(key) => format!("tls_config.{key}"),
            None => self.at.value.clone(),
        }
    }

    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        match self.inline {
            Some(_) => parse_certificates(self.at.value.as_bytes(), &self.name()),
            None => read_certificates(&self.at.value),
        }
    }

    fn private_key(&self) -> Result<rustls::pki_types::PrivateKeyDer<'static>, String> {
        match self.inline {
            Some(_) => parse_private_key(self.at.value.as_bytes(), &self.name()),
            None => read_private_key(&self.at.value),
        }
    }
}

impl Ready {
    fn build<'a>(config: &'a TlsConfig, alpn: &[&[u8]]) -> Result<Ready, BuildError<'a>> {
        let verifier = OnceLock::new();
        if let Some(ca) = Pem::of(&config.ca_file, &config.ca, "ca") {
            let certs = ca.certificates().map_err(|e| (Some(ca.at), e))?;
            let mut store = RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err((Some(ca.at), format!("{}: no usable CA certificate", ca.name())));
            }
            let built = build_verifier(Arc::new(store))
                .map_err(|e| (Some(ca.at), format!("building the certificate verifier: {e}")))?;
            let _ = verifier.set(built);
        }
        let versions = protocol_versions(
            config.min_version.as_ref().map(|v| v.value),
            config.max_version.as_ref().map(|v| v.value),
        );
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&versions)
            .map_err(|e| (None, format!("tls_config: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(KeepChain(provider())));
        let mut client_certs = Vec::new();
        let mut client_config = match (
            Pem::of(&config.cert_file, &config.cert, "cert"),
            Pem::of(&config.key_file, &config.key, "key"),
        ) {
            (Some(cert), Some(key)) => {
                let chain = cert.certificates().map_err(|e| (Some(cert.at), e))?;
                for der in &chain {
                    client_certs.push(
                        CertInfo::parse(der)
                            .map_err(|e| (Some(cert.at), format!("{}: {e}", cert.name())))?,
                    );
                }
                let key_der = key.private_key().map_err(|e| (Some(key.at), e))?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    (Some(key.at), format!("client certificate and key do not fit: {e}"))
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        client_config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Every probe measures a full handshake, as blackbox's fresh transport does.
        client_config.resumption = rustls::client::Resumption::disabled();
        let client_config = Arc::new(client_config);
        Ok(Ready {
            connector: TlsConnector::from(client_config.clone()),
            config: client_config,
            verifier,
            insecure_skip_verify: config.insecure_skip_verify,
            client_certs,
        })
    }

    async fn handshake<IO>(
        &self,
        io: IO,
        name: &str,
        report: &mut Report,
    ) -> Result<TlsStream<IO>, Failure>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let (name_text, name) = self.begin(name, report)?;
        let stream = self.connector.connect(name.clone(), io).await.map_err(|e| {
            Failure::new(
                FailureReason::TlsHandshake,
                format!("TLS handshake with {name_text}: {e}"),
            )
        })?;
        let (_, conn) = stream.get_ref();
        let chain: Vec<CertificateDer<'static>> =
            conn.peer_certificates().map(|c| c.to_vec()).unwrap_or_default();
        let version = conn.protocol_version().map(version_name).unwrap_or("unknown");
        let cipher = conn.negotiated_cipher_suite().map(|s| cipher_name(s.suite()));
        self.inspect(&chain, version, cipher, &name, report)?;
        Ok(stream)
    }

    /// The server name to send and verify, and the client certificates' metrics, before a
    /// handshake over TCP or QUIC.
    fn begin(
        &self,
        name: &str,
        report: &mut Report,
    ) -> Result<(String, ServerName<'static>), Failure> {
        let name_text =
            name.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(name).to_string();
        let name = ServerName::try_from(name_text.clone()).map_err(|e| {
            Failure::new(
                FailureReason::InvalidTarget,
                format!("TLS server name {name_text:?}: {e}"),
            )
        })?;
        for cert in &self.client_certs {
            certs::record(report, Origin::Client, cert);
        }
        Ok((name_text, name))
    }

    /// After a handshake: records the TLS metrics, and fails unless the chain verifies (or
    /// `insecure_skip_verify` is set).
    fn inspect(
        &self,
        chain: &[CertificateDer<'static>],
        version: &str,
        cipher: Option<String>,
        name: &ServerName<'static>,
        report: &mut Report,
    ) -> Result<(), Failure> {
        let name_text = name.to_str();
        report.log(format_args!(
            "TLS handshake done: {version}, {}, {} certificate(s)",
            cipher.as_deref().unwrap_or("cipher unknown"),
            chain.len()
        ));
        report.replace(&PROBE_TLS_VERSION_INFO, [version.to_string()], 1.0);
        if let Some(cipher) = cipher {
            report.replace(&PROBE_TLS_CIPHER_INFO, [cipher], 1.0);
        }

        let verdict = self.verify(chain, name);
        let infos: Vec<CertInfo> =
            chain.iter().filter_map(|der| CertInfo::parse(der).ok()).collect();
        record_chain(
            report,
            &self.client_certs,
            &infos,
            verdict.as_ref().err().map(|e| verify_label(e)),
        );
        match verdict {
            Ok(()) => Ok(()),
            Err(e) if self.insecure_skip_verify => {
                report.log(format_args!(
                    "certificate not trusted ({e}), continuing: insecure_skip_verify is set"
                ));
                Ok(())
            }
            Err(e) => Err(Failure::new(
                FailureReason::TlsVerify,
                format!("certificate of {name_text} not trusted: {e}"),
            )),
        }
    }

    fn verify(
        &self,
        chain: &[CertificateDer<'static>],
        name: &ServerName<'static>,
    ) -> Result<(), rustls::Error> {
        let (leaf, intermediates) =
            chain.split_first().ok_or(rustls::Error::NoCertificatesPresented)?;
        let verifier = self
            .verifier
            .get_or_init(|| build_verifier(system_roots()).unwrap_or(None))
            .as_ref()
            .ok_or(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))?;
        verifier.verify_server_cert(leaf, intermediates, name, &[], UnixTime::now()).map(|_| ())
    }
}

/// The rustls versions between `min` and `max` (TLS 1.2 and 1.3 by default; older ones mean 1.2).
pub fn protocol_versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let min = min.unwrap_or(TlsVersion::TLS12).max(TlsVersion::TLS12);
    let max = max.unwrap_or(TlsVersion::TLS13);
    [(TlsVersion::TLS12, &rustls::version::TLS12), (TlsVersion::TLS13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| *v >= min && *v <= max)
        .map(|(_, v)| v)
        .collect()
}

/// `None` for an empty store: every chain is then from an unknown issuer.
fn build_verifier(
    roots: Arc<RootCertStore>,
) -> Result<Option<Arc<WebPkiServerVerifier>>, rustls::client::VerifierBuilderError> {
    if roots.is_empty() {
        return Ok(None);
    }
    WebPkiServerVerifier::builder_with_provider(roots, provider()).build().map(Some)
}

fn record_chain(
    report: &mut Report,
    client_certs: &[CertInfo],
    chain: &[CertInfo],
    failure: Option<&'static str>,
) {
    report.clear(&CERT_NOT_AFTER);
    report.clear(&CERT_NOT_BEFORE);
    for cert in client_certs {
        certs::record(report, Origin::Client, cert);
    }
    report.replace(&TLS_VERIFY_RESULT, [failure.unwrap_or("ok").to_string()], 1.0);
    for (position, cert) in chain.iter().enumerate() {
        certs::record(report, Origin::Served { position }, cert);
    }
    let Some(earliest) = chain.iter().map(|c| c.not_after).min() else {
        return;
    };
    report.set(&PROBE_SSL_EARLIEST_CERT_EXPIRY, earliest as f64);
    // rustls does not hand out the path it built; the served chain stands in for it. A chain
    // that did not verify has no path: blackbox then reports Go's zero time.
    let last_chain = if failure.is_some() { GO_ZERO_TIME } else { earliest as f64 };
    report.set(&PROBE_SSL_LAST_CHAIN_EXPIRY_TIMESTAMP_SECONDS, last_chain);
    let leaf = &chain[0];
    report.replace(
        &PROBE_SSL_LAST_CHAIN_INFO,
        [
            leaf.fingerprint_sha256.clone(),
            leaf.issuer.clone(),
            leaf.serial_hex.clone(),
            leaf.subject.clone(),
            leaf.dns_names.join(","),
        ],
        1.0,
    );
}

/// Removes what a TLS handshake recorded, when the response that counts came over plain HTTP.
pub fn clear_metrics(report: &mut Report) {
    for family in [
        &PROBE_TLS_VERSION_INFO,
        &PROBE_TLS_CIPHER_INFO,
        &PROBE_SSL_EARLIEST_CERT_EXPIRY,
        &PROBE_SSL_LAST_CHAIN_EXPIRY_TIMESTAMP_SECONDS,
        &PROBE_SSL_LAST_CHAIN_INFO,
        &TLS_VERIFY_RESULT,
        &CERT_NOT_AFTER,
        &CERT_NOT_BEFORE,
    ] {
        report.clear(family);
    }
}

/// A short, bounded name for a verification failure.
pub fn verify_label(error: &rustls::Error) -> &'static str {
    match error {
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::UnknownIssuer => "unknown_issuer",
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "name_mismatch"
            }
            CertificateError::BadSignature => "bad_signature",
            CertificateError::Revoked => "revoked",
            _ => "invalid",
        },
        _ => "invalid",
    }
}

/// The version QUIC always speaks, as `probe_tls_version_info` names it.
pub const TLS13: &str = "TLS 1.3";

fn version_name(version: rustls::ProtocolVersion) -> &'static str {
    match version {
        rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2",
        rustls::ProtocolVersion::TLSv1_3 => TLS13,
        _ => "unknown",
    }
}

/// IANA cipher names, as Go (and so blackbox) prints them.
fn cipher_name(suite: rustls::CipherSuite) -> String {
    let debug = format!("{suite:?}");
    match debug.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => debug,
    }
}

/// Accepts whatever chain the server presents so the probe can inspect it; verification
/// happens afterwards in [`TlsClient::verify`]. Handshake signatures are still checked.
#[derive(Debug)]
struct KeepChain(Arc<CryptoProvider>);

impl ServerCertVerifier for KeepChain {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
