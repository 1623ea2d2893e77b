//! The http prober: blackbox's `prober: http` on a hand-built client path
//! (resolve → connect → TLS → hyper connection → body) so each phase is timed and the whole
//! certificate chain is seen, which a ready-made client such as reqwest does not expose.
//!
//! [`HttpProbe::prepare`] turns a module's `http:` section into what a probe uses (method,
//! headers, regexes, proxy, TLS client) once at load, reporting bad values with their place in
//! probes.yaml; [`probe`] then only follows the target.

use super::body_cel::{self, CelCheck};
use super::oauth2::OAuth2Client;
use super::proxy::ProxyChoice;
use super::tls::TlsClient;
use super::{dial, Failure, FailureReason, Guard, Report};
use crate::config::probes::{Authorization, BasicAuth, Compression, HeaderMatch, HttpModule};
use crate::config::values::{BytesPattern, IpProtocol};
use crate::config::{ConfigError, Source};
use crate::metrics::families::{
    PROBE_FAILED_DUE_TO_CEL, PROBE_FAILED_DUE_TO_REGEX, PROBE_HTTP_CONTENT_LENGTH,
    PROBE_HTTP_DURATION_SECONDS, PROBE_HTTP_LAST_MODIFIED_TIMESTAMP_SECONDS, PROBE_HTTP_REDIRECTS,
    PROBE_HTTP_SSL, PROBE_HTTP_STATUS_CODE, PROBE_HTTP_UNCOMPRESSED_BODY_LENGTH,
    PROBE_HTTP_VERSION,
};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_saphyr::Spanned;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, SemaphorePermit};

const MAX_REDIRECTS: u32 = 10;
/// Bodies are kept in memory only for regexes and decompression; without a
/// `body_size_limit` this bounds what a hostile target can make us hold.
const KEPT_BODY_CAP: u64 = 64 << 20;
/// What all probes together may hold of bodies at once, unless `--probe.body-memory-limit`
/// says otherwise: four bodies at the cap.
pub const DEFAULT_BODY_MEMORY: u64 = 256 << 20;
const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];
pub(super) const USER_AGENT: &str = concat!("lookout/", env!("CARGO_PKG_VERSION"));
/// What every User-Agent the prober sends by default starts with.
pub const USER_AGENT_PREFIX: &[u8] = b"lookout/";
/// Configured headers not sent to another host after a redirect (as Go's client drops them).
/// `Host` is kept apart in [`HttpProbe::host`].
const SAME_HOST_ONLY: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::WWW_AUTHENTICATE,
    header::COOKIE,
    HeaderName::from_static("cookie2"),
];

/// A response body over HTTP/1.1, HTTP/2 or HTTP/3.
pub(super) type ProbeBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A module's `http:` section, prepared at load.
pub struct HttpProbe {
    method: Method,
    /// The configured headers but `Host`.
    headers: HeaderMap,
    /// The configured `Host` header: sent instead of the URL's authority, and the TLS server
    /// name unless `tls_config.server_name` is set; for the target's own host only.
    host: Option<HeaderValue>,
    /// `http_headers`, added after `headers` in order: values, secrets, then files.
    added_headers: Vec<(HeaderName, AddedValue)>,
    body: Option<RequestBody>,
    body_size_limit: Option<u64>,
    compression: Option<Compression>,
    follow_redirects: bool,
    valid_status_codes: Vec<u16>,
    valid_http_versions: Vec<Version>,
    fail_if_ssl: bool,
    fail_if_not_ssl: bool,
    fail_if_body_matches: Vec<regex::bytes::Regex>,
    fail_if_body_not_matches: Vec<regex::bytes::Regex>,
    /// `fail_if_header_matches` (true) then `fail_if_header_not_matches` (false).
    header_rules: Vec<(HeaderMatch, bool)>,
    /// `fail_if_body_json_matches_cel` then `fail_if_body_json_not_matches_cel`.
    cel_checks: Vec<CelCheck>,
    preferred_ip_protocol: IpProtocol,
    ip_protocol_fallback: bool,
    credentials: Credentials,
    oauth2: Option<OAuth2Client>,
    proxy: ProxyChoice,
    /// With a proxy, the target's name is left to it: no resolve phase.
    skip_resolve_with_proxy: bool,
    /// `enable_http3`: every request over HTTP/3 (QUIC), to https URLs.
    http3: bool,
    tls: TlsClient,
}

/// A value of `http_headers`. Secrets are marked sensitive, so they are never printed.
enum AddedValue {
    Value(HeaderValue),
    /// Read at each probe, trimmed, as upstream.
    File(String),
}

/// The request body: `body`, or `body_file` read at each probe.
enum RequestBody {
    Inline(Bytes),
    File(String),
}

impl HttpProbe {
    /// Prepares a module's `http:` section (serde's defaults when it has none).
    pub fn prepare(
        section: Option<Spanned<HttpModule>>,
        source: &Source,
    ) -> Result<HttpProbe, ConfigError> {
        let config = section.map_or_else(HttpModule::default, |s| s.value);

        let mut valid_http_versions = Vec::with_capacity(config.valid_http_versions.len());
        for version in &config.valid_http_versions {
            valid_http_versions.push(match version.value.as_str() {
                "HTTP/1.0" => Version::HTTP_10,
                "HTTP/1.1" => Version::HTTP_11,
                "HTTP/2.0" | "HTTP/2" => Version::HTTP_2,
                "HTTP/3.0" => Version::HTTP_3,
                other => {
                    return Err(source.error_at_span(
                        version,
                        format!(
                        "unknown HTTP version {other:?} (HTTP/1.0, HTTP/1.1, HTTP/2.0, HTTP/3.0)"
                    ),
                    ))
                }
            });
        }
        let method = match &config.method {
            None => Method::GET,
            Some(method) => Method::from_bytes(method.value.as_bytes()).map_err(|_| {
                source.error_at_span(method, format!("invalid HTTP method {:?}", method.value))
            })?,
        };
        let mut headers = HeaderMap::with_capacity(config.headers.len());
        let mut host = None;
        for (name, value) in &config.headers {
            let invalid = || {
                source.error_at_span(value, format!("invalid header {name:?}: {:?}", value.value))
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let value = HeaderValue::from_str(&value.value).map_err(|_| invalid())?;
            if name == header::HOST {
                host = Some(value);
            } else {
                headers.insert(name, value);
            }
        }
        let added_headers = added_headers(&config, source)?;
        let body = match (&config.body, &config.body_file) {
            (_, Some(file)) => {
                source.warn_if_missing(file, "body_file");
                Some(RequestBody::File(file.value.clone()))
            }
            (Some(body), None) => Some(RequestBody::Inline(Bytes::from(body.clone()))),
            (None, None) => None,
        };
        let mut cel_checks = Vec::new();
        if let Some(expression) = &config.fail_if_body_json_matches_cel {
            cel_checks.push(CelCheck::compile(expression, true, source)?);
        }
        if let Some(expression) = &config.fail_if_body_json_not_matches_cel {
            cel_checks.push(CelCheck::compile(expression, false, source)?);
        }
        let proxy = ProxyChoice::prepare(&config.proxy_keys(), source)?;
        let oauth2 = match &config.oauth2 {
            Some(oauth2) => Some(OAuth2Client::prepare(oauth2, source)?),
            None => None,
        };
        let http3 = config.enable_http3.as_ref().is_some_and(|e| e.value);
        let alpn: &[&[u8]] = match (http3, config.enable_http2) {
            (true, _) => &[super::http3::ALPN],
            (false, true) => &[b"h2", b"http/1.1"],
            (false, false) => &[b"http/1.1"],
        };
        let tls = TlsClient::new(&config.tls_config, alpn, source)?;
        let credentials = Credentials::of(&config);
        let regexes = |patterns: Vec<BytesPattern>| patterns.into_iter().map(|p| p.0).collect();
        let header_rules = (config.fail_if_header_matches.into_iter().map(|m| (m, true)))
            .chain(config.fail_if_header_not_matches.into_iter().map(|m| (m, false)))
            .collect();
        Ok(HttpProbe {
            method,
            headers,
            host,
            added_headers,
            body,
            body_size_limit: config.body_size_limit.map(|l| l.0),
            compression: config.compression,
            follow_redirects: config.follow_redirects,
            valid_status_codes: config.valid_status_codes,
            valid_http_versions,
            fail_if_ssl: config.fail_if_ssl,
            fail_if_not_ssl: config.fail_if_not_ssl,
            fail_if_body_matches: regexes(config.fail_if_body_matches_regexp),
            fail_if_body_not_matches: regexes(config.fail_if_body_not_matches_regexp),
            header_rules,
            cel_checks,
            preferred_ip_protocol: config.preferred_ip_protocol,
            ip_protocol_fallback: config.ip_protocol_fallback,
            credentials,
            oauth2,
            proxy,
            skip_resolve_with_proxy: config.skip_resolve_phase_with_proxy,
            http3,
            tls,
        })
    }

    /// Whether lookout resolves the target's name itself: unless a proxy is configured and
    /// `skip_resolve_phase_with_proxy` leaves the name to it (HTTP/3 uses no proxy).
    fn resolves_target(&self) -> bool {
        self.http3 || !(self.skip_resolve_with_proxy && self.proxy.is_configured())
    }

    /// The `Host` header's host, which names the server for TLS unless `server_name` is set.
    fn host_name(&self) -> Option<&str> {
        let host = self.host.as_ref()?.to_str().ok()?;
        host.split(':').next()
    }
}

/// `http_headers` as sent: every value of every header, values then secrets then files.
fn added_headers(
    config: &HttpModule,
    source: &Source,
) -> Result<Vec<(HeaderName, AddedValue)>, ConfigError> {
    let mut added = Vec::new();
    for (name, header) in &config.http_headers {
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            source.error_at_span(header, format!("http_headers: invalid header name {name:?}"))
        })?;
        let values = header.value.values.iter().map(|v| (v, false));
        let secrets = header.value.secrets.iter().map(|v| (v, true));
        for (text, secret) in values.chain(secrets) {
            let mut value = HeaderValue::from_str(text).map_err(|_| {
                // A secret is never shown, not even in an error.
                let shown = if secret { "a secret".to_string() } else { format!("{text:?}") };
                source.error_at_span(
                    header,
                    format!("http_headers: {shown} is not a valid value of header {name:?}"),
                )
            })?;
            value.set_sensitive(secret);
            added.push((header_name.clone(), AddedValue::Value(value)));
        }
        for file in &header.value.files {
            source.warn_if_missing(file, "http_headers file");
            added.push((header_name.clone(), AddedValue::File(file.value.clone())));
        }
    }
    Ok(added)
}

impl AddedValue {
    /// The value to send; a file's content is a secret.
    fn read(&self) -> Result<HeaderValue, Failure> {
        match self {
            AddedValue::Value(value) => Ok(value.clone()),
            AddedValue::File(path) => {
                let failed = |e: String| {
                    Failure::new(FailureReason::RequestFile, format!("header file {path}: {e}"))
                };
                let text = Secret::File(path.clone()).read().map_err(|f| failed(f.message))?;
                let mut value = HeaderValue::from_str(&text)
                    .map_err(|_| failed("content is not a valid header value".into()))?;
                value.set_sensitive(true);
                Ok(value)
            }
        }
    }
}

impl RequestBody {
    fn read(&self) -> Result<Bytes, Failure> {
        match self {
            RequestBody::Inline(bytes) => Ok(bytes.clone()),
            RequestBody::File(path) => {
                crate::files::read(path.as_ref(), crate::files::MAX_CONFIG_BYTES)
                    .map(Bytes::from)
                    .map_err(|e| {
                        Failure::new(FailureReason::RequestFile, format!("body_file {path}: {e}"))
                    })
            }
        }
    }
}

/// Where the Authorization header comes from. Files are read at each probe, so rotated
/// secrets are picked up.
pub(crate) enum Credentials {
    None,
    Basic {
        username: Secret,
        password: Secret,
    },
    /// `bearer_token`, `bearer_token_file` and `authorization`: `<scheme> <credentials>`.
    Scheme {
        scheme: String,
        credentials: Secret,
    },
}

pub(crate) enum Secret {
    Inline(String),
    File(String),
}

impl Credentials {
    /// The module's one way of authenticating; validation refused more than one.
    fn of(config: &HttpModule) -> Credentials {
        let bearer = |credentials| Credentials::Scheme { scheme: "Bearer".into(), credentials };
        if let Some(token) = &config.bearer_token {
            bearer(Secret::Inline(token.clone()))
        } else if let Some(file) = &config.bearer_token_file {
            bearer(Secret::File(file.clone()))
        } else {
            Credentials::from_auth(config.basic_auth.as_ref(), config.authorization.as_ref())
        }
    }

    /// `basic_auth` or `authorization` (the only ways of the websocket prober and of
    /// http_sd), at most one set.
    pub(crate) fn from_auth(
        basic_auth: Option<&BasicAuth>,
        authorization: Option<&Authorization>,
    ) -> Credentials {
        let secret = |inline: &Option<String>, file: &Option<String>| match (inline, file) {
            (_, Some(file)) => Secret::File(file.clone()),
            (inline, None) => Secret::Inline(inline.clone().unwrap_or_default()),
        };
        if let Some(auth) = basic_auth {
            Credentials::Basic {
                username: secret(&Some(auth.username.clone()), &auth.username_file),
                password: secret(&auth.password, &auth.password_file),
            }
        } else if let Some(auth) = authorization {
            Credentials::Scheme {
                scheme: auth.kind.clone(),
                credentials: secret(&auth.credentials, &auth.credentials_file),
            }
        } else {
            Credentials::None
        }
    }

    pub(crate) fn header(&self) -> Result<Option<HeaderValue>, Failure> {
        let value = match self {
            Credentials::None => return Ok(None),
            Credentials::Basic { username, password } => {
                use base64::Engine;
                let pair = format!("{}:{}", username.read()?, password.read()?);
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
            }
            Credentials::Scheme { scheme, credentials } => {
                format!("{scheme} {}", credentials.read()?)
            }
        };
        HeaderValue::from_str(&value).map(Some).map_err(|_| {
            Failure::new(FailureReason::Credentials, "credentials are not a valid header value")
        })
    }
}

impl Secret {
    pub(super) fn read(&self) -> Result<String, Failure> {
        match self {
            Secret::Inline(text) => Ok(text.clone()),
            Secret::File(path) => {
                let failed = |e: String| {
                    Failure::new(FailureReason::Credentials, format!("reading {path}: {e}"))
                };
                let bytes = crate::files::read(path.as_ref(), crate::files::MAX_CONFIG_BYTES)
                    .map_err(|e| failed(e.to_string()))?;
                let text = String::from_utf8(bytes).map_err(|e| failed(e.to_string()))?;
                Ok(text.trim().to_string())
            }
        }
    }
}

pub async fn probe(
    target: &str,
    probe: &HttpProbe,
    guard: Option<&Guard<'_>>,
    report: &mut Report,
) -> Result<(), Failure> {
    // As blackbox: the other phases appear once the target's name is resolved; with the name
    // left to a proxy there is no resolve phase.
    if probe.resolves_target() {
        add_phase(report, "resolve", Duration::ZERO);
    }
    // As blackbox: these are 0 until a response sets them, so a probe that fails before
    // one (a TLS verification failure, a refused connection) still has them.
    for family in [
        &PROBE_FAILED_DUE_TO_REGEX,
        &PROBE_HTTP_REDIRECTS,
        &PROBE_HTTP_SSL,
        &PROBE_HTTP_STATUS_CODE,
        &PROBE_HTTP_CONTENT_LENGTH,
        &PROBE_HTTP_UNCOMPRESSED_BODY_LENGTH,
        &PROBE_HTTP_VERSION,
    ] {
        report.set(family, 0.0);
    }

    let mut uri = if probe.http3 {
        parse_target(&super::http3::https_target(target))?
    } else {
        parse_target(target)?
    };
    let original_host = uri.host().map(str::to_string);
    let mut method = probe.method.clone();
    if !probe.cel_checks.is_empty() {
        // As blackbox: present only in modules with a CEL check.
        report.set(&PROBE_FAILED_DUE_TO_CEL, 0.0);
    }
    let authorization = probe.credentials.header()?;
    let mut sent = Sent::default();
    let mut redirects = 0;
    loop {
        // As Go's client: credentials, cookies and the Host and server name overrides are for
        // the target's own host, not for hosts a redirect leads to.
        let same_host = uri.host().map(str::to_string) == original_host;
        if let Some(guard) = guard {
            guard.check_url(&uri, redirects > 0)?;
        }
        let hop = Hop {
            uri: &uri,
            method: &method,
            authorization: authorization.as_ref().filter(|_| same_host).cloned(),
            first: redirects == 0,
            same_host,
            guard,
        };
        let answer = fetch(probe, hop, &mut sent, report).await?;
        let status = answer.response.status();
        let location = answer
            .response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .filter(|l| !l.is_empty())
            .map(str::to_string);
        // The redirects Go's client follows: 301, 302, 303, 307 and 308 with a Location.
        if let (301..=303 | 307 | 308, Some(location)) = (status.as_u16(), location) {
            // As blackbox: a redirect counts when it is received, followed or not.
            redirects += 1;
            report.set(&PROBE_HTTP_REDIRECTS, f64::from(redirects));
            if !probe.follow_redirects {
                // blackbox's client stops with an error here, so the redirect's body is
                // never read, yet its status, length and version are the probe's.
                return finish(answer, probe, Body::Unread, report).await;
            }
            if redirects > MAX_REDIRECTS {
                let failure = Failure::new(
                    FailureReason::RedirectLimit,
                    format!("stopped after {MAX_REDIRECTS} redirects"),
                );
                // The last response's status, length and version are reported, as blackbox does;
                // whatever the checks say of it, the probe failed for the loop.
                let _ = finish(answer, probe, Body::Unread, report).await;
                return Err(failure);
            }
            let next = resolve_location(&uri, &location)?;
            report.log(format_args!("redirect {status} to {next}"));
            // As Go's client: 301/302/303 turn a request into GET without body; 307/308 keep it.
            if matches!(status.as_u16(), 301..=303) && method != Method::HEAD {
                method = Method::GET;
                sent.body = None;
            }
            uri = next;
            continue;
        }
        return finish(answer, probe, Body::Read, report).await;
    }
}

/// Whether the final response's body is read: not after a redirect the client refused.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    Read,
    Unread,
}

/// One request of a probe: to the target, then to each redirect's location.
struct Hop<'a> {
    uri: &'a Uri,
    method: &'a Method,
    /// Already withheld from other hosts.
    authorization: Option<HeaderValue>,
    /// The first hop records the resolution (as blackbox does for the target).
    first: bool,
    /// Whether the hop goes to the target's own host: host-bound headers and names apply.
    same_host: bool,
    guard: Option<&'a Guard<'a>>,
}

/// The response to a hop, with the connection that carries its body.
struct Answer {
    response: Response<ProbeBody>,
    ssl: bool,
    head_received: Instant,
    _connection: Connection,
}

/// Keeps the task that drives a hyper connection, and stops it (closing the socket) when dropped.
pub(super) struct Connection(pub(super) tokio::task::JoinHandle<()>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a probe's requests carry that is read or fetched once, at the first hop after the
/// target is resolved (where blackbox opens `body_file` and its client reads header files
/// and asks for a token).
#[derive(Default)]
struct Sent {
    body: Option<Bytes>,
    /// `http_headers` with their files read.
    added_headers: Vec<(HeaderName, HeaderValue)>,
    oauth2_token: Option<HeaderValue>,
}

impl Sent {
    async fn load(probe: &HttpProbe, report: &mut Report) -> Result<Sent, Failure> {
        let body = probe.body.as_ref().map(RequestBody::read).transpose()?;
        let added_headers = (probe.added_headers.iter())
            .map(|(name, value)| Ok((name.clone(), value.read()?)))
            .collect::<Result<Vec<_>, Failure>>()?;
        let oauth2_token = match &probe.oauth2 {
            Some(oauth2) => Some(oauth2.authorization(report).await?),
            None => None,
        };
        Ok(Sent { body, added_headers, oauth2_token })
    }
}

/// One hop: resolve, connect (directly or through the proxy), TLS, request; `sent` is loaded
/// at the first.
async fn fetch(
    probe: &HttpProbe,
    mut hop: Hop<'_>,
    sent: &mut Sent,
    report: &mut Report,
) -> Result<Answer, Failure> {
    let uri = hop.uri;
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });

    let proxy = probe.proxy.for_target(uri);
    // As blackbox: with skip_resolve_phase_with_proxy the name is the proxy's to resolve,
    // and the probe has no resolve phase nor probe_ip_protocol.
    let resolve = probe.resolves_target();
    let mut addr = None;
    if resolve {
        let resolved =
            dial::resolve(host, probe.preferred_ip_protocol, probe.ip_protocol_fallback, report)
                .await?;
        add_phase(report, "resolve", resolved.lookup);
        if hop.first {
            dial::record(&resolved, report);
        }
        addr = Some(SocketAddr::new(resolved.ip, port));
    }
    if hop.first {
        for phase in PHASES.into_iter().filter(|p| resolve || *p != "resolve") {
            add_phase(report, phase, Duration::ZERO);
        }
    }
    if let (Some(guard), Some(addr)) = (hop.guard, addr) {
        guard.check_address(addr)?;
    }
    if hop.first {
        *sent = Sent::load(probe, report).await?;
    }
    if let (Some(token), true) = (&sent.oauth2_token, hop.same_host) {
        hop.authorization = Some(token.clone());
    }

    if let (true, Some(addr)) = (probe.http3, addr) {
        return fetch_h3(probe, hop, sent, addr, report).await;
    }

    let started = Instant::now();
    let stream = match (proxy, addr) {
        (Some(proxy), _) => {
            probe.proxy.connect(proxy, https.then_some((host, port)), report).await?
        }
        (None, Some(addr)) => dial::connect(addr, None, report).await?,
        (None, None) => {
            let resolved = dial::resolve(
                host,
                probe.preferred_ip_protocol,
                probe.ip_protocol_fallback,
                report,
            )
            .await?;
            let addr = SocketAddr::new(resolved.ip, port);
            if let Some(guard) = hop.guard {
                guard.check_address(addr)?;
            }
            dial::connect(addr, None, report).await?
        }
    };
    let connected = Instant::now();
    add_phase(report, "connect", connected - started);

    let authority = uri
        .authority()
        .map(|a| a.as_str().rsplit('@').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let (response, ssl, ready) = if https {
        let tls = &probe.tls;
        let name = match (hop.same_host, tls.server_name(), probe.host_name()) {
            (true, Some(name), _) => name,
            (true, None, Some(host_header)) => host_header,
            _ => host,
        };
        let stream = tls.handshake(stream, name, report).await?;
        let handshaken = Instant::now();
        add_phase(report, "tls", handshaken - connected);
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let request = build_request(probe, hop, sent, &authority, h2, false)?;
        (exchange(stream, h2, request, report).await?, true, handshaken)
    } else {
        // A redirect from https to http: the response that counts was not over TLS.
        super::tls::clear_metrics(report);
        let via_plain_proxy = proxy.is_some();
        let request = build_request(probe, hop, sent, &authority, false, via_plain_proxy)?;
        (exchange(stream, false, request, report).await?, false, connected)
    };
    let (response, connection) = response;
    let response = response.map(|body| body.map_err(Into::into).boxed_unsync());
    let head_received = Instant::now();
    add_phase(report, "processing", head_received - ready);
    report.log(format_args!("received {:?} {}", response.version(), response.status()));
    Ok(Answer { response, ssl, head_received, _connection: connection })
}

/// A hop over HTTP/3 (the proxy, as in blackbox, is not used).
async fn fetch_h3(
    probe: &HttpProbe,
    hop: Hop<'_>,
    sent: &Sent,
    addr: SocketAddr,
    report: &mut Report,
) -> Result<Answer, Failure> {
    let uri = hop.uri;
    if uri.scheme_str() != Some("https") {
        return Err(Failure::new(
            FailureReason::Http,
            format!("{uri}: HTTP/3 is spoken over https only"),
        ));
    }
    let host = uri.host().unwrap_or_default();
    let name = match (hop.same_host, probe.tls.server_name(), probe.host_name()) {
        (true, Some(name), _) => name,
        (true, None, Some(host_header)) => host_header,
        _ => host,
    };
    let body = sent.body.clone().unwrap_or_default();
    let authority = uri.authority().map_or("", |a| a.as_str()).to_string();
    let mut request = build_request(probe, hop, sent, &authority, true, false)?.map(|_| body);
    *request.version_mut() = Version::HTTP_3;
    let (response, connection, handshaken, handshake) =
        super::http3::exchange(&probe.tls, addr, name, request, report).await?;
    add_phase(report, "tls", handshake);
    let head_received = Instant::now();
    add_phase(report, "processing", head_received - handshaken);
    report.log(format_args!("received {:?} {}", response.version(), response.status()));
    Ok(Answer { response, ssl: true, head_received, _connection: connection })
}

pub(super) async fn exchange<S>(
    io: S,
    h2: bool,
    request: Request<Full<Bytes>>,
    report: &mut Report,
) -> Result<(Response<Incoming>, Connection), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let protocol_error =
        |e: hyper::Error| Failure::new(FailureReason::Http, format!("HTTP exchange: {e}"));
    let io = TokioIo::new(io);
    report.log(format_args!("sending {} {}", request.method(), request.uri()));
    if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(protocol_error)?;
        let connection = Connection(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let response = sender.send_request(request).await.map_err(protocol_error)?;
        Ok((response, connection))
    } else {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(io).await.map_err(protocol_error)?;
        let connection = Connection(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let response = sender.send_request(request).await.map_err(protocol_error)?;
        Ok((response, connection))
    }
}

/// Reads the final response's body and applies the module's checks in blackbox's order.
async fn finish(
    answer: Answer,
    probe: &HttpProbe,
    read: Body,
    report: &mut Report,
) -> Result<(), Failure> {
    let Answer { response, ssl, head_received, _connection } = answer;
    let (parts, body) = response.into_parts();
    let status = parts.status.as_u16();
    report.set(&PROBE_HTTP_STATUS_CODE, f64::from(status));
    let content_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok());
    report.set(&PROBE_HTTP_CONTENT_LENGTH, content_length.unwrap_or(-1.0));
    let version = match parts.version {
        Version::HTTP_09 => 0.9,
        Version::HTTP_10 => 1.0,
        Version::HTTP_11 => 1.1,
        Version::HTTP_2 => 2.0,
        Version::HTTP_3 => 3.0,
        _ => 0.0,
    };
    report.set(&PROBE_HTTP_VERSION, version);
    report.set(&PROBE_HTTP_SSL, if ssl { 1.0 } else { 0.0 });
    if let Some(modified) = parts
        .headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let seconds =
            modified.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        report.set(&PROBE_HTTP_LAST_MODIFIED_TIMESTAMP_SECONDS, seconds);
    }

    let needs_body = !probe.fail_if_body_matches.is_empty()
        || !probe.fail_if_body_not_matches.is_empty()
        || !probe.cel_checks.is_empty();
    let decompress_with = probe.compression.filter(|c| *c != Compression::Identity);
    let limit = probe.body_size_limit;
    if read == Body::Unread {
        check_status(status, probe)?;
        if let Some(failure) = check_headers(&parts.headers, probe) {
            report.set(&PROBE_FAILED_DUE_TO_REGEX, 1.0);
            return Err(failure);
        }
        if needs_body {
            // blackbox reads the body its client already closed, and fails.
            let message = "the body of a redirect that is not followed is not read";
            if probe.cel_checks.is_empty()
                || !probe.fail_if_body_matches.is_empty()
                || !probe.fail_if_body_not_matches.is_empty()
            {
                report.set(&PROBE_FAILED_DUE_TO_REGEX, 1.0);
                return Err(Failure::new(FailureReason::BodyRegex, message));
            }
            report.set(&PROBE_FAILED_DUE_TO_CEL, 1.0);
            return Err(Failure::new(FailureReason::BodyCel, message));
        }
        return check_version_and_ssl(&parts.version, ssl, probe);
    }
    let read = read_body(body, needs_body || decompress_with.is_some(), limit).await;
    add_phase(report, "transfer", head_received.elapsed());
    // Over body_size_limit, blackbox counts what it read: the limit.
    let over_limit = |f: Failure, report: &mut Report| {
        if let (FailureReason::BodyTooLarge, Some(limit)) = (f.reason, limit) {
            report.set(&PROBE_HTTP_UNCOMPRESSED_BODY_LENGTH, limit as f64);
        }
        f
    };
    let (raw_length, raw) = read.map_err(|f| over_limit(f, report))?;
    let body = match decompress_with {
        Some(kind) => decompress(kind, &raw.data, limit.unwrap_or(KEPT_BODY_CAP))
            .map_err(|f| over_limit(f, report))?,
        None => raw,
    };
    let uncompressed = if decompress_with.is_some() { body.len() as u64 } else { raw_length };
    report.set(&PROBE_HTTP_UNCOMPRESSED_BODY_LENGTH, uncompressed as f64);

    check_status(status, probe)?;
    if let Some(failure) = check_body(&body.data, probe) {
        report.set(&PROBE_FAILED_DUE_TO_REGEX, 1.0);
        return Err(failure);
    }
    if !probe.cel_checks.is_empty() {
        if let Err(failure) = body_cel::check(&body.data, &probe.cel_checks) {
            report.set(&PROBE_FAILED_DUE_TO_CEL, 1.0);
            return Err(failure);
        }
    }
    if let Some(failure) = check_headers(&parts.headers, probe) {
        report.set(&PROBE_FAILED_DUE_TO_REGEX, 1.0);
        return Err(failure);
    }
    check_version_and_ssl(&parts.version, ssl, probe)
}

fn check_status(status: u16, probe: &HttpProbe) -> Result<(), Failure> {
    let status_ok = if probe.valid_status_codes.is_empty() {
        (200..300).contains(&status)
    } else {
        probe.valid_status_codes.contains(&status)
    };
    if status_ok {
        Ok(())
    } else {
        Err(Failure::new(FailureReason::StatusCode, format!("status code {status} is not valid")))
    }
}

fn check_version_and_ssl(version: &Version, ssl: bool, probe: &HttpProbe) -> Result<(), Failure> {
    if !probe.valid_http_versions.is_empty() && !probe.valid_http_versions.contains(version) {
        let name = match *version {
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_11 => "HTTP/1.1",
            Version::HTTP_2 => "HTTP/2.0",
            _ => "other",
        };
        return Err(Failure::new(
            FailureReason::HttpVersion,
            format!("HTTP version {name} is not valid"),
        ));
    }
    if probe.fail_if_ssl && ssl {
        return Err(Failure::new(
            FailureReason::SslForbidden,
            "final response was over TLS and fail_if_ssl is set",
        ));
    }
    if probe.fail_if_not_ssl && !ssl {
        return Err(Failure::new(
            FailureReason::SslRequired,
            "final response was not over TLS and fail_if_not_ssl is set",
        ));
    }
    Ok(())
}

fn check_body(body: &[u8], probe: &HttpProbe) -> Option<Failure> {
    if let Some(p) = probe.fail_if_body_matches.iter().find(|p| p.is_match(body)) {
        return Some(Failure::new(
            FailureReason::BodyRegex,
            format!("body matched regular expression {:?}", p.as_str()),
        ));
    }
    if let Some(p) = probe.fail_if_body_not_matches.iter().find(|p| !p.is_match(body)) {
        return Some(Failure::new(
            FailureReason::BodyRegex,
            format!("body did not match regular expression {:?}", p.as_str()),
        ));
    }
    None
}

fn check_headers(headers: &HeaderMap, probe: &HttpProbe) -> Option<Failure> {
    for (m, fail_when_matched) in &probe.header_rules {
        let values: Vec<&str> =
            headers.get_all(m.header.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
        if values.is_empty() {
            if m.allow_missing {
                continue;
            }
            return Some(Failure::new(
                FailureReason::HeaderRegex,
                format!("missing required header {}", m.header),
            ));
        }
        if values.iter().any(|v| m.regexp.0.is_match(v)) == *fail_when_matched {
            let what = if *fail_when_matched {
                "value matched regular expression"
            } else {
                "no value matched regular expression"
            };
            return Some(Failure::new(
                FailureReason::HeaderRegex,
                format!("header {}: {what} {:?}", m.header, m.regexp.0.as_str()),
            ));
        }
    }
    None
}

/// Bytes of bodies all probes hold at once, as permits: a body grows only by what it can take.
static BODY_MEMORY: OnceLock<Semaphore> = OnceLock::new();

/// Sets what all probes together may hold of bodies at once (`--probe.body-memory-limit`);
/// only the first call, before any probe runs, counts.
pub fn limit_body_memory(bytes: u64) {
    let permits = usize::try_from(bytes).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
    let _ = BODY_MEMORY.set(Semaphore::new(permits));
}

fn body_memory() -> &'static Semaphore {
    BODY_MEMORY.get_or_init(|| Semaphore::new(DEFAULT_BODY_MEMORY as usize))
}

/// A body kept in memory, with the share of the global budget its buffer takes.
#[derive(Default)]
struct HeldBody {
    data: Vec<u8>,
    permit: Option<SemaphorePermit<'static>>,
}

impl HeldBody {
    /// Appends `bytes`, first taking budget for any growth of the buffer; fails rather than
    /// wait or grow when the budget is spent, so a probe never holds more than it was granted.
    fn extend(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let needed = self.data.len() + bytes.len();
        let capacity = self.data.capacity();
        if needed > capacity {
            // Doubling keeps appends cheap; when the budget cannot cover that, just what is needed.
            let doubled = needed.max(capacity.saturating_mul(2)).max(8 << 10);
            let (grown, granted) = [doubled, needed]
                .into_iter()
                .find_map(|size| {
                    let extra = u32::try_from(size - capacity).ok()?;
                    Some((size, body_memory().try_acquire_many(extra).ok()?))
                })
                .ok_or_else(|| {
                    Failure::new(
                        FailureReason::BodyTooLarge,
                        "the bodies probes hold in memory reached --probe.body-memory-limit",
                    )
                })?;
            match &mut self.permit {
                Some(permit) => permit.merge(granted),
                None => self.permit = Some(granted),
            }
            self.data.reserve_exact(grown - self.data.len());
        }
        self.data.extend_from_slice(bytes);
        Ok(())
    }

    fn len(&self) -> usize {
        self.data.len()
    }
}

/// Reads the body to its end, counting bytes; keeps them only when `keep` is set.
async fn read_body(
    mut body: ProbeBody,
    keep: bool,
    limit: Option<u64>,
) -> Result<(u64, HeldBody), Failure> {
    let cap = limit.unwrap_or(if keep { KEPT_BODY_CAP } else { u64::MAX });
    let mut total: u64 = 0;
    let mut kept = HeldBody::default();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Failure::new(FailureReason::Http, format!("reading body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total > cap {
                return Err(Failure::new(
                    FailureReason::BodyTooLarge,
                    format!("body is larger than {cap} bytes"),
                ));
            }
            if keep {
                kept.extend(&data)?;
            }
        }
    }
    Ok((total, kept))
}

fn decompress(kind: Compression, data: &[u8], limit: u64) -> Result<HeldBody, Failure> {
    // One byte past the limit tells a body at the limit from a larger one.
    let bound = limit.saturating_add(1);
    let mut out = HeldBody::default();
    match kind {
        Compression::Gzip => {
            fill(flate2::read::MultiGzDecoder::new(data).take(bound), kind, &mut out)?
        }
        Compression::Deflate => {
            // RFC 9110 "deflate" is zlib-wrapped; some servers send raw deflate.
            let zlib = fill(flate2::read::ZlibDecoder::new(data).take(bound), kind, &mut out);
            if zlib.as_ref().is_err_and(|f| f.reason == FailureReason::Decompression) {
                out = HeldBody::default();
                fill(flate2::read::DeflateDecoder::new(data).take(bound), kind, &mut out)?;
            } else {
                zlib?;
            }
        }
        Compression::Br => {
            fill(brotli_decompressor::Decompressor::new(data, 4096).take(bound), kind, &mut out)?
        }
        Compression::Identity => out.extend(data)?,
    }
    if out.len() as u64 > limit {
        return Err(Failure::new(
            FailureReason::BodyTooLarge,
            format!("uncompressed body is larger than {limit} bytes"),
        ));
    }
    Ok(out)
}

/// Reads a decoder to its end into `out`, chunk by chunk so the budget sees each growth.
fn fill(mut decoder: impl Read, kind: Compression, out: &mut HeldBody) -> Result<(), Failure> {
    let mut chunk = vec![0; 64 << 10];
    loop {
        let n = match decoder.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Failure::new(
                    FailureReason::Decompression,
                    format!("{} body: {e}", kind.token()),
                ))
            }
        };
        out.extend(&chunk[..n])?;
    }
}

/// The request of `hop`: over HTTP/2, or HTTP/1.1 in origin form (absolute form to a proxy).
fn build_request(
    probe: &HttpProbe,
    hop: Hop<'_>,
    sent: &Sent,
    authority: &str,
    h2: bool,
    absolute_form: bool,
) -> Result<Request<Full<Bytes>>, Failure> {
    let target = if h2 || absolute_form {
        hop.uri.to_string()
    } else {
        hop.uri.path_and_query().map_or("/", |p| p.as_str()).to_string()
    };
    let version = if h2 { Version::HTTP_2 } else { Version::HTTP_11 };
    let mut builder = Request::builder().method(hop.method.clone()).uri(target).version(version);
    let headers = builder.headers_mut().expect("builder has no error yet");
    if !h2 {
        let host = match &probe.host {
            Some(host) if hop.same_host => host.clone(),
            _ => HeaderValue::from_str(authority)
                .map_err(|e| Failure::new(FailureReason::InvalidTarget, e.to_string()))?,
        };
        headers.insert(header::HOST, host);
    }
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    if let Some(auth) = hop.authorization {
        headers.insert(header::AUTHORIZATION, auth.clone());
    }
    for (name, value) in &probe.headers {
        if hop.same_host || !SAME_HOST_ONLY.contains(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    // As Prometheus' client: http_headers are added to every request, after `headers`.
    for (name, value) in &sent.added_headers {
        headers.append(name.clone(), value.clone());
    }
    builder
        .body(Full::new(sent.body.clone().unwrap_or_default()))
        .map_err(|e| Failure::new(FailureReason::InvalidTarget, format!("building request: {e}")))
}

fn add_phase(report: &mut Report, phase: &'static str, duration: Duration) {
    report.add_labeled(&PROBE_HTTP_DURATION_SECONDS, [phase.to_string()], duration.as_secs_f64());
}

/// A target as blackbox takes it: a URL, `http://` assumed when no scheme is given.
pub fn parse_target(target: &str) -> Result<Uri, Failure> {
    let invalid = |why: String| {
        Failure::new(FailureReason::InvalidTarget, format!("target {target:?}: {why}"))
    };
    let text = if target.contains("://") { target.to_string() } else { format!("http://{target}") };
    let uri: Uri = text.parse().map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
    if !matches!(uri.scheme_str(), Some("http") | Some("https")) {
        return Err(invalid("scheme must be http or https".into()));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    Ok(uri)
}

/// Resolves a Location header against the URL that returned it.
fn resolve_location(base: &Uri, location: &str) -> Result<Uri, Failure> {
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map_or("", |a| a.as_str());
    let absolute = if let Some(named) = location_scheme(location) {
        // Only http and https are followed: `file:`, `gopher:` or `ftp:` are neither fetched
        // nor mistaken for relative paths.
        if !named.eq_ignore_ascii_case("http") && !named.eq_ignore_ascii_case("https") {
            return Err(Failure::new(
                FailureReason::RedirectScheme,
                format!("redirect to {location:?}: only http and https redirects are followed"),
            ));
        }
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{scheme}://{authority}{dir}{location}")
    };
    parse_target(&absolute).map_err(|f| {
        Failure::new(
            FailureReason::Http,
            format!("bad redirect Location {location:?}: {}", f.message),
        )
    })
}

/// The scheme of an absolute URL (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`,
/// before the first `:`); `None` for a relative reference.
fn location_scheme(location: &str) -> Option<&str> {
    let (scheme, _) = location.split_once(':')?;
    let mut chars = scheme.chars();
    (chars.next()?.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("example.org:8080/x").unwrap().to_string(),
            "http://example.org:8080/x"
        );
        assert_eq!(parse_target("https://[::1]:8443/").unwrap().host(), Some("[::1]"));
        for bad in ["ftp://x/", "http://", "http://exa mple/", "file:///etc/passwd"] {
            assert_eq!(
                parse_target(bad).unwrap_err().reason,
                FailureReason::InvalidTarget,
                "{bad}"
            );
        }
    }

    #[test]
    fn locations() {
        let base: Uri = "http://a.example:81/dir/page?q=1".parse().unwrap();
        let r = |l| resolve_location(&base, l).unwrap().to_string();
        assert_eq!(r("/x"), "http://a.example:81/x");
        assert_eq!(r("y?z=1"), "http://a.example:81/dir/y?z=1");
        assert_eq!(r("https://b.example/"), "https://b.example/");
        assert_eq!(r("//c.example/p"), "http://c.example/p");
        assert_eq!(r("HTTPS://d.example/"), "https://d.example/");
        assert_eq!(r("y/z:1"), "http://a.example:81/dir/y/z:1");
        for other in ["file:///etc/passwd", "gopher://x/", "ftp://x/", "mailto:a@b"] {
            let refused = resolve_location(&base, other).unwrap_err();
            assert_eq!(refused.reason, FailureReason::RedirectScheme, "{other}");
        }
    }
}
