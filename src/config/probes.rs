//! probes.yaml: blackbox_exporter's `modules:` schema for the http, tcp, icmp, dns, grpc, unix
//! and websocket probers (plus lookout's `file`), the probes lookout schedules itself and the rules of the
//! `/probe` endpoint.
//!
//! A blackbox.yml that holds only `modules:` is a valid probes.yaml. Values with their own
//! syntax (DNS types, classes and rcodes) are parsed where the prober prepares its module, so
//! a bad one is still reported at its line.

use super::values::{
    AnchoredPattern, ByteSize, BytesPattern, IpProtocol, Pattern, PromDuration, TlsVersion,
};
use super::{ConfigError, Source};
use crate::metrics::families::PROBE_FAMILIES;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_WARN_BEFORE: Duration = Duration::from_secs(30 * 86_400);
/// Runs of each scheduled probe the status page keeps, by default and at most.
pub const DEFAULT_HISTORY: usize = 90;
pub const MAX_HISTORY: usize = 1440;
/// The counters the status page's error count sums by default: those the shipped
/// log_rules.yaml defines for nginx's 5xx answers and Spring's ERROR records.
pub const DEFAULT_ERROR_METRICS: [&str; 2] = ["http_responses_5xx_total", "spring_errors_total"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesFile {
    #[serde(default)]
    pub modules: BTreeMap<String, Module>,
    #[serde(default)]
    pub probes: Vec<ScheduledProbe>,
    #[serde(default)]
    pub probe_endpoint: ProbeEndpoint,
    /// How long before expiry `--once` and the status page mark a certificate (30d).
    #[serde(default)]
    pub warn_before: Option<PromDuration>,
    #[serde(default)]
    pub status_page: StatusPage,
}

/// `status_page:`: how many runs of each probe the page keeps, and which log counters its
/// error count sums.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StatusPage {
    #[serde(default)]
    pub history: Option<Spanned<usize>>,
    #[serde(default)]
    pub error_metrics: Option<Vec<Spanned<String>>>,
}

impl StatusPage {
    pub fn history(&self) -> usize {
        self.history.as_ref().map_or(DEFAULT_HISTORY, |h| h.value)
    }

    /// Counter names without `_total`, as log sources name their families.
    pub fn error_metrics(&self) -> Vec<String> {
        let bare = |name: &str| name.strip_suffix("_total").unwrap_or(name).to_string();
        match &self.error_metrics {
            Some(names) => names.iter().map(|n| bare(&n.value)).collect(),
            None => DEFAULT_ERROR_METRICS.iter().map(|n| bare(n)).collect(),
        }
    }

    fn validate(&self, source: &Source) -> Result<(), ConfigError> {
        if let Some(history) = &self.history {
            if !(1..=MAX_HISTORY).contains(&history.value) {
                return Err(source.error_in(
                    "status_page.history",
                    history,
                    format!("history must be 1 to {MAX_HISTORY} runs"),
                ));
            }
        }
        for name in self.error_metrics.iter().flatten() {
            if !is_metric_name(&name.value) {
                return Err(source.error_in(
                    "status_page.error_metrics",
                    name,
                    format!("{:?} is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)", name.value),
                ));
            }
        }
        Ok(())
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    pub prober: Spanned<String>,
    #[serde(default)]
    pub timeout: Option<PromDuration>,
    #[serde(default)]
    pub http: Option<Spanned<HttpModule>>,
    #[serde(default)]
    pub tcp: Option<Spanned<TcpModule>>,
    #[serde(default)]
    pub icmp: Option<Spanned<IcmpModule>>,
    #[serde(default)]
    pub dns: Option<Spanned<DnsModule>>,
    #[serde(default)]
    pub grpc: Option<Spanned<GrpcModule>>,
    #[serde(default)]
    pub unix: Option<Spanned<UnixModule>>,
    #[serde(default)]
    pub websocket: Option<Spanned<WebsocketModule>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProberKind {
    Http,
    Tcp,
    Icmp,
    Dns,
    Grpc,
    Unix,
    Websocket,
    File,
}

impl ProberKind {
    const ALL: [(&'static str, ProberKind); 8] = [
        ("http", ProberKind::Http),
        ("tcp", ProberKind::Tcp),
        ("icmp", ProberKind::Icmp),
        ("dns", ProberKind::Dns),
        ("grpc", ProberKind::Grpc),
        ("unix", ProberKind::Unix),
        ("websocket", ProberKind::Websocket),
        ("file", ProberKind::File),
    ];
}

impl Module {
    /// The prober named by `prober:`; validation refused any other name.
    pub fn kind(&self) -> ProberKind {
        ProberKind::ALL
            .iter()
            .find(|(name, _)| *name == self.prober.value)
            .map_or(ProberKind::File, |(_, kind)| *kind)
    }

    /// The sections present, by name.
    fn sections(&self) -> Vec<(&'static str, ProberKind)> {
        [
            (self.http.is_some(), "http", ProberKind::Http),
            (self.tcp.is_some(), "tcp", ProberKind::Tcp),
            (self.icmp.is_some(), "icmp", ProberKind::Icmp),
            (self.dns.is_some(), "dns", ProberKind::Dns),
            (self.grpc.is_some(), "grpc", ProberKind::Grpc),
            (self.unix.is_some(), "unix", ProberKind::Unix),
            (self.websocket.is_some(), "websocket", ProberKind::Websocket),
        ]
        .into_iter()
        .filter(|(present, _, _)| *present)
        .map(|(_, name, kind)| (name, kind))
        .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpModule {
    #[serde(default)]
    pub valid_status_codes: Vec<u16>,
    #[serde(default)]
    pub valid_http_versions: Vec<Spanned<String>>,
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub body_size_limit: Option<ByteSize>,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default = "yes")]
    pub enable_http2: bool,
    #[serde(default)]
    pub fail_if_ssl: bool,
    #[serde(default)]
    pub fail_if_not_ssl: bool,
    #[serde(default)]
    pub fail_if_body_matches_regexp: Vec<BytesPattern>,
    #[serde(default)]
    pub fail_if_body_not_matches_regexp: Vec<BytesPattern>,
    #[serde(default)]
    pub fail_if_header_matches: Vec<HeaderMatch>,
    #[serde(default)]
    pub fail_if_header_not_matches: Vec<HeaderMatch>,
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub bearer_token: Option<String>,
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default)]
    pub compression: Option<Compression>,
    #[serde(default)]
    pub proxy_url: Option<Spanned<String>>,
    /// Hosts, domains and CIDR ranges reached without `proxy_url`, comma-separated.
    #[serde(default)]
    pub no_proxy: Option<Spanned<String>>,
    /// The proxy from `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` (read at start), as Go's client.
    #[serde(default)]
    pub proxy_from_environment: Option<Spanned<bool>>,
    /// Headers sent to the proxy with CONNECT; values are secrets.
    #[serde(default)]
    pub proxy_connect_header: BTreeMap<String, Vec<Spanned<String>>>,
    /// With a proxy, leave the name to the proxy: no resolve phase, no `probe_ip_protocol`.
    #[serde(default)]
    pub skip_resolve_phase_with_proxy: bool,
    /// Headers added to the request, each with values, secrets and files.
    #[serde(default)]
    pub http_headers: BTreeMap<String, Spanned<HttpHeader>>,
    /// The request body read from a file at each probe (exclusive with `body`).
    #[serde(default)]
    pub body_file: Option<Spanned<String>>,
    #[serde(default)]
    pub fail_if_body_json_matches_cel: Option<Spanned<String>>,
    #[serde(default)]
    pub fail_if_body_json_not_matches_cel: Option<Spanned<String>>,
    #[serde(default)]
    pub enable_http3: Option<Spanned<bool>>,
    #[serde(default)]
    pub oauth2: Option<Spanned<OAuth2>>,
}

/// One header of `http_headers`, as Prometheus' common HTTP client configuration: every
/// value is sent, values then secrets then the contents of files.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HttpHeader {
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub files: Vec<Spanned<String>>,
}

/// Headers Prometheus' HTTP client sets itself, which `http_headers` may not name.
pub const RESERVED_HEADERS: [&str; 18] = [
    "Authorization",
    "Host",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "User-Agent",
    "Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Www-Authenticate",
    "Accept-Encoding",
    "X-Prometheus-Remote-Write-Version",
    "X-Prometheus-Remote-Read-Version",
    "X-Prometheus-Scrape-Timeout-Seconds",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-Sha256",
];

/// `oauth2:` with the client-credentials grant: a token fetched from `token_url` and sent as
/// a bearer token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<Spanned<String>>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub token_url: String,
    #[serde(default)]
    pub endpoint_params: BTreeMap<String, String>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default)]
    pub proxy_url: Option<Spanned<String>>,
    #[serde(default)]
    pub no_proxy: Option<Spanned<String>>,
    #[serde(default)]
    pub proxy_from_environment: Option<Spanned<bool>>,
    #[serde(default)]
    pub proxy_connect_header: BTreeMap<String, Vec<Spanned<String>>>,
}

fn yes() -> bool {
    true
}

/// A module without its section behaves as one with an empty section: serde's defaults.
macro_rules! default_from_empty_yaml {
    ($($section:ty),*) => {$(
        impl Default for $section {
            fn default() -> Self {
                serde_saphyr::from_str("{}").expect("an empty section is valid")
            }
        }
    )*};
}
default_from_empty_yaml!(
    HttpModule,
    TcpModule,
    IcmpModule,
    GrpcModule,
    UnixModule,
    WebsocketModule
);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    pub header: String,
    pub regexp: Pattern,
    #[serde(default)]
    pub allow_missing: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    /// Read at each probe, as `password_file`.
    #[serde(default)]
    pub username_file: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default = "bearer", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub credentials: Option<String>,
    #[serde(default)]
    pub credentials_file: Option<String>,
}

impl BasicAuth {
    fn check(&self) -> Result<(), &'static str> {
        if !self.username.is_empty() && self.username_file.is_some() {
            return Err("at most one of username and username_file may be set");
        }
        if self.password.is_some() && self.password_file.is_some() {
            return Err("at most one of password and password_file may be set");
        }
        Ok(())
    }
}

impl Authorization {
    fn check(&self) -> Result<(), &'static str> {
        if self.credentials.is_some() && self.credentials_file.is_some() {
            return Err("at most one of credentials and credentials_file may be set");
        }
        if self.kind.eq_ignore_ascii_case("basic") {
            return Err("type Basic is set with basic_auth instead");
        }
        Ok(())
    }
}

fn bearer() -> String {
    "Bearer".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Deflate,
    Br,
    Identity,
}

impl Compression {
    pub fn token(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Deflate => "deflate",
            Compression::Br => "br",
            Compression::Identity => "identity",
        }
    }
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub ca_file: Option<Spanned<String>>,
    #[serde(default)]
    pub cert_file: Option<Spanned<String>>,
    #[serde(default)]
    pub key_file: Option<Spanned<String>>,
    /// The same three as PEM text in the file (`key` is never shown).
    #[serde(default)]
    pub ca: Option<Spanned<String>>,
    #[serde(default)]
    pub cert: Option<Spanned<String>>,
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub min_version: Option<Spanned<TlsVersion>>,
    #[serde(default)]
    pub max_version: Option<Spanned<TlsVersion>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpModule {
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
    #[serde(default)]
    pub source_ip_address: Option<IpAddr>,
    #[serde(default)]
    pub query_response: Vec<QueryStep>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub tls_config: TlsConfig,
}

/// One step of a `query_response` dialogue (tcp, unix, websocket).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryStep {
    #[serde(default)]
    pub expect: Option<Spanned<Pattern>>,
    /// Exact bytes read next (`!!binary` allowed); exclusive with `expect`.
    #[serde(default)]
    pub expect_bytes: Option<Spanned<String>>,
    /// `probe_expect_info` labels, their values expanded with `expect`'s captures.
    #[serde(default)]
    pub labels: Vec<ExpectLabel>,
    /// A line sent after the step's read (`!!binary` allowed).
    #[serde(default)]
    pub send: Option<Spanned<String>>,
    #[serde(default)]
    pub starttls: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectLabel {
    pub name: Spanned<String>,
    #[serde(default)]
    pub value: String,
}

/// `prober: unix`: a query_response dialogue over a Unix stream socket, optionally in TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixModule {
    #[serde(default)]
    pub query_response: Vec<QueryStep>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub tls_config: TlsConfig,
}

/// `prober: websocket`: an HTTP upgrade, then a query_response dialogue of messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebsocketModule {
    #[serde(default)]
    pub http_config: WebsocketHttpConfig,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<HeaderValues>>,
    #[serde(default)]
    pub query_response: Vec<QueryStep>,
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
}

/// The parts of Prometheus' `http_client_config` the websocket prober applies, as blackbox's.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebsocketHttpConfig {
    #[serde(default)]
    pub basic_auth: Option<Spanned<BasicAuth>>,
    #[serde(default)]
    pub authorization: Option<Spanned<Authorization>>,
    #[serde(default)]
    pub tls_config: TlsConfig,
}

/// A request header's values, as Prometheus' `http_headers`: literal `values`, `secrets`
/// (never shown) and `files` read at each request. A plain string is one value, as upstream's
/// example.yml writes it.
#[derive(Debug, Default)]
pub struct HeaderValues {
    pub values: Vec<String>,
    pub secrets: Vec<String>,
    pub files: Vec<String>,
}

impl<'de> Deserialize<'de> for HeaderValues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Lists {
            #[serde(default)]
            values: Vec<String>,
            #[serde(default)]
            secrets: Vec<String>,
            #[serde(default)]
            files: Vec<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Lists(Lists),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a string or a map of values, secrets and files")
        })? {
            Raw::Text(value) => Ok(HeaderValues { values: vec![value], ..HeaderValues::default() }),
            Raw::Lists(l) => {
                Ok(HeaderValues { values: l.values, secrets: l.secrets, files: l.files })
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpModule {
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
    #[serde(default)]
    pub source_ip_address: Option<IpAddr>,
    /// Bytes of echo data; blackbox's 28-byte text when unset or 0.
    #[serde(default)]
    pub payload_size: Option<Spanned<u16>>,
    #[serde(default)]
    pub dont_fragment: bool,
    /// 64 as blackbox; 1 to 255 (0 means the default).
    #[serde(default)]
    pub ttl: Option<Spanned<u32>>,
    /// lookout's own: echoes per probe (1 when unset, the output then exactly blackbox's).
    #[serde(default)]
    pub packets: Option<Spanned<u32>>,
    /// Time between two echoes of one probe (1s).
    #[serde(default)]
    pub packet_interval: Option<Spanned<PromDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsModule {
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
    #[serde(default)]
    pub source_ip_address: Option<IpAddr>,
    /// `udp` (default) or `tcp`.
    #[serde(default)]
    pub transport_protocol: Option<Spanned<String>>,
    #[serde(default)]
    pub dns_over_tls: bool,
    #[serde(default)]
    pub tls_config: TlsConfig,
    pub query_name: Spanned<String>,
    /// `ANY` when unset, as blackbox.
    #[serde(default)]
    pub query_type: Option<Spanned<String>>,
    /// `IN` when unset.
    #[serde(default)]
    pub query_class: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub recursion_desired: bool,
    /// `NOERROR` when unset.
    #[serde(default)]
    pub valid_rcodes: Vec<Spanned<String>>,
    #[serde(default)]
    pub validate_answer_rrs: RecordValidator,
    #[serde(default)]
    pub validate_authority_rrs: RecordValidator,
    #[serde(default)]
    pub validate_additional_rrs: RecordValidator,
}

/// Regexes over a section's records, each written as Go's miekg/dns prints it.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RecordValidator {
    #[serde(default)]
    pub fail_if_matches_regexp: Vec<Pattern>,
    #[serde(default)]
    pub fail_if_all_match_regexp: Vec<Pattern>,
    #[serde(default)]
    pub fail_if_not_matches_regexp: Vec<Pattern>,
    #[serde(default)]
    pub fail_if_none_matches_regexp: Vec<Pattern>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcModule {
    /// The service asked about; empty for the server as a whole.
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
    /// Request metadata (HTTP/2 headers), as upstream blackbox's `metadata`.
    #[serde(default)]
    pub metadata: BTreeMap<String, Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledProbe {
    pub name: Spanned<String>,
    pub module: Spanned<String>,
    /// One target, or none when the targets come from `*_sd_configs`.
    #[serde(default)]
    pub target: Option<Spanned<String>>,
    /// Prometheus' file-based discovery: target groups in JSON or YAML files.
    #[serde(default)]
    pub file_sd_configs: Vec<Spanned<FileSdConfig>>,
    /// Prometheus' HTTP discovery: target groups as JSON from a URL.
    #[serde(default)]
    pub http_sd_configs: Vec<Spanned<HttpSdConfig>>,
    /// Prometheus' target relabelling, applied to each discovered target in turn.
    #[serde(default)]
    pub relabel_configs: Vec<Spanned<RelabelConfig>>,
    #[serde(default)]
    pub interval: Option<Spanned<PromDuration>>,
    /// While the last run failed, the next comes after this instead of `interval`.
    #[serde(default)]
    pub interval_when_failing: Option<Spanned<PromDuration>>,
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
}

/// `file_sd_configs:` entry, as Prometheus spells it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Paths (relative to probes.yaml's folder) with globs in the last part; `.json`, `.yml`
    /// or `.yaml`.
    pub files: Vec<Spanned<String>>,
    #[serde(default)]
    pub refresh_interval: Option<Spanned<PromDuration>>,
}

/// `http_sd_configs:` entry, as Prometheus spells it, with the parts of its HTTP client
/// configuration an inventory service needs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSdConfig {
    pub url: Spanned<String>,
    #[serde(default)]
    pub refresh_interval: Option<Spanned<PromDuration>>,
    #[serde(default)]
    pub basic_auth: Option<Spanned<BasicAuth>>,
    #[serde(default)]
    pub authorization: Option<Spanned<Authorization>>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
}

/// `relabel_configs:` entry, as Prometheus spells it; a key left out takes Prometheus' default
/// (see `discovery::relabel`, which checks the combination as Prometheus does).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    #[serde(default)]
    pub source_labels: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub separator: Option<String>,
    #[serde(default)]
    pub regex: Option<Spanned<String>>,
    #[serde(default)]
    pub modulus: Option<u64>,
    #[serde(default)]
    pub target_label: Option<Spanned<String>>,
    #[serde(default)]
    pub replacement: Option<Spanned<String>>,
    #[serde(default)]
    pub action: Option<Spanned<String>>,
}

/// Prometheus' defaults: files are re-read every 5 minutes, URLs asked every minute.
pub const DEFAULT_FILE_SD_REFRESH: Duration = Duration::from_secs(300);
pub const DEFAULT_HTTP_SD_REFRESH: Duration = Duration::from_secs(60);

impl ScheduledProbe {
    /// Whether the targets come from service discovery.
    pub fn discovers(&self) -> bool {
        !self.file_sd_configs.is_empty() || !self.http_sd_configs.is_empty()
    }

    pub fn interval(&self) -> Duration {
        self.interval.as_ref().map_or(DEFAULT_INTERVAL, |i| i.value.0)
    }

    pub fn interval_when_failing(&self) -> Option<Duration> {
        self.interval_when_failing.as_ref().map(|i| i.value.0)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeEndpoint {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whole-string regexes; when any are given, `/probe` refuses targets (and redirects)
    /// that match none.
    #[serde(default)]
    pub allowed_targets: Vec<AnchoredPattern>,
    /// Whether `/probe` may reach lookout's own listening sockets.
    #[serde(default)]
    pub allow_self: bool,
    /// Whole-string regexes of the socket paths `/probe` may reach with `prober: unix`; none
    /// by default, so a scraper cannot reach e.g. the Docker socket.
    #[serde(default)]
    pub allowed_unix_sockets: Vec<AnchoredPattern>,
}

impl Default for ProbeEndpoint {
    fn default() -> Self {
        ProbeEndpoint {
            enabled: true,
            allowed_targets: Vec::new(),
            allow_self: false,
            allowed_unix_sockets: Vec::new(),
        }
    }
}

impl ProbeEndpoint {
    pub fn allows(&self, target: &str) -> bool {
        self.allowed_targets.is_empty() || self.allowed_targets.iter().any(|p| p.0.is_match(target))
    }
}

/// Labels lookout puts on probe results itself: a scheduled probe's identity, every label of
/// the probe families, and those Prometheus adds on scrape and in histograms. A probe's own
/// labels may not reuse them, or its samples would carry a label twice.
pub fn reserved_labels() -> &'static [&'static str] {
    static RESERVED: OnceLock<Vec<&'static str>> = OnceLock::new();
    RESERVED.get_or_init(|| {
        let mut names = vec!["probe", "module", "target"];
        for label in PROBE_FAMILIES.iter().flat_map(|f| f.labels) {
            if !names.contains(label) {
                names.push(label);
            }
        }
        names.extend(["le", "instance", "job"]);
        names
    })
}

impl ProbesFile {
    pub fn load(source: &Source) -> Result<ProbesFile, ConfigError> {
        let file: ProbesFile = source.parse()?;
        file.validate(source)?;
        Ok(file)
    }

    fn validate(&self, source: &Source) -> Result<(), ConfigError> {
        self.status_page.validate(source)?;
        for (name, module) in &self.modules {
            module.validate(name, source)?;
        }
        let mut names = HashSet::new();
        for probe in &self.probes {
            if probe.name.value.is_empty() {
                return Err(source.error_at_span(&probe.name, "probe name must not be empty"));
            }
            if !names.insert(probe.name.value.as_str()) {
                return Err(source.error_at_span(
                    &probe.name,
                    format!("duplicate probe name {:?}", probe.name.value),
                ));
            }
            if !self.modules.contains_key(&probe.module.value) {
                let known: Vec<&str> = self.modules.keys().map(String::as_str).collect();
                return Err(source.error_at_span(
                    &probe.module,
                    format!(
                        "unknown module {:?} (modules: {})",
                        probe.module.value,
                        known.join(", ")
                    ),
                ));
            }
            match (&probe.target, probe.discovers()) {
                (Some(target), true) => {
                    return Err(source.error_at_span(
                        target,
                        "`target` and `file_sd_configs`/`http_sd_configs` are exclusive: one target, or the targets discovered",
                    ))
                }
                (None, false) => {
                    return Err(source.error_at_span(
                        &probe.name,
                        "a probe needs a `target`, `file_sd_configs` or `http_sd_configs`",
                    ))
                }
                _ => {}
            }
            if let (Some(rule), false) = (probe.relabel_configs.first(), probe.discovers()) {
                return Err(source.error_at_span(
                    rule,
                    "relabel_configs apply to discovered targets: a probe with a `target` gives its `labels` directly",
                ));
            }
            for sd in &probe.file_sd_configs {
                if sd.value.files.is_empty() {
                    return Err(source.error_at_span(sd, "file_sd_configs: `files` is empty"));
                }
                for file in &sd.value.files {
                    // Prometheus' own check: either case, not mixed.
                    let known = [".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML"];
                    if !known.iter().any(|ext| file.value.ends_with(ext)) {
                        return Err(source.error_at_span(
                            file,
                            "file_sd_configs: files must end in .json, .yml or .yaml",
                        ));
                    }
                    if let Err(e) = glob::Pattern::new(&file.value) {
                        return Err(source.error_at_span(file, format!("bad glob: {e}")));
                    }
                }
            }
            for sd in &probe.http_sd_configs {
                let url = &sd.value.url.value;
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    return Err(source.error_at_span(
                        &sd.value.url,
                        "http_sd_configs: url must start with http:// or https://",
                    ));
                }
                let (sd, key) = (&sd.value, "http_sd_configs");
                validate_client(key, &sd.basic_auth, &sd.authorization, &sd.tls_config, source)?;
                match sd.url.value.parse::<http::Uri>() {
                    Err(_) => {
                        return Err(source.error_at_span(&sd.url, "http_sd_configs: not a URL"))
                    }
                    // It would be sent as the Host and written in every error logged.
                    Ok(uri) if uri.authority().is_some_and(|a| a.as_str().contains('@')) => {
                        return Err(source.error_at_span(
                            &sd.url,
                            "http_sd_configs: credentials in the URL are not supported (basic_auth or authorization are)",
                        ))
                    }
                    Ok(_) => {}
                }
            }
            let refreshes = probe.file_sd_configs.iter().map(|c| &c.value.refresh_interval);
            let refreshes =
                refreshes.chain(probe.http_sd_configs.iter().map(|c| &c.value.refresh_interval));
            for refresh in refreshes.flatten() {
                if refresh.value.0 < Duration::from_secs(1) {
                    return Err(
                        source.error_at_span(refresh, "refresh_interval must be at least 1s")
                    );
                }
            }
            for interval in [&probe.interval, &probe.interval_when_failing].into_iter().flatten() {
                if interval.value.0 < Duration::from_millis(100) {
                    return Err(source.error_at_span(interval, "interval must be at least 100ms"));
                }
            }
            if let Some(when_failing) = &probe.interval_when_failing {
                if when_failing.value.0 >= probe.interval() {
                    return Err(source.error_at_span(
                        when_failing,
                        format!(
                            "interval_when_failing must be shorter than interval ({}): it is how soon a failing probe is checked again",
                            crate::config::values::PromDuration(probe.interval())
                        ),
                    ));
                }
            }
            for (label, value) in &probe.labels {
                if !is_user_label_name(label) || reserved_labels().contains(&label.as_str()) {
                    return Err(source.error_at_span(
                        value,
                        format!(
                            "label name {label:?} is not allowed: use [a-zA-Z_][a-zA-Z0-9_]*, not __*, nor a label lookout sets ({})",
                            reserved_labels().join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A label name as Prometheus takes it: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A label name a configuration may give a series: not one starting `__`, which Prometheus
/// keeps for its own.
pub fn is_user_label_name(name: &str) -> bool {
    is_label_name(name) && !name.starts_with("__")
}

impl Module {
    fn validate(&self, name: &str, source: &Source) -> Result<(), ConfigError> {
        if !ProberKind::ALL.iter().any(|(known, _)| *known == self.prober.value) {
            return Err(source.error_at_span(
                &self.prober,
                format!(
                    "unknown prober {:?} (http, tcp, icmp, dns, grpc, unix, websocket, file)",
                    self.prober.value
                ),
            ));
        }
        let kind = self.kind();
        if let Some((section, _)) = self.sections().into_iter().find(|(_, k)| *k != kind) {
            return Err(source.error_at_span(
                &self.prober,
                format!(
                    "module {name:?} has a `{section}:` section but prober {:?}",
                    self.prober.value
                ),
            ));
        }
        if let Some(http) = &self.http {
            let key = format!("modules.{name}.http");
            http.value.validate(source, &|message| source.error_in(&key, http, message))?;
        }
        let section = |name: &str, section: &str| format!("modules.{name}.{section}");
        if let Some(tcp) = &self.tcp {
            tcp.value.tls_config.validate(source)?;
            validate_steps(&tcp.value.query_response, &section(name, "tcp"), source)?;
        }
        if let Some(unix) = &self.unix {
            unix.value.tls_config.validate(source)?;
            validate_steps(&unix.value.query_response, &section(name, "unix"), source)?;
        }
        if let Some(ws) = &self.websocket {
            let key = section(name, "websocket");
            ws.value.http_config.validate(source, &key)?;
            validate_steps(&ws.value.query_response, &key, source)?;
            for (index, step) in ws.value.query_response.iter().enumerate() {
                if let Some(bytes) = &step.expect_bytes {
                    return Err(source.error_in(
                        &format!("{key}.query_response[{index}].expect_bytes"),
                        bytes,
                        "expect_bytes is not used by the websocket prober: match messages with expect",
                    ));
                }
                if step.starttls {
                    return Err(source.error_in(
                        &format!("{key}.query_response[{index}].starttls"),
                        ws,
                        "starttls is not used by the websocket prober: use a wss:// target",
                    ));
                }
            }
        }
        if let Some(dns) = &self.dns {
            dns.value.tls_config.validate(source)?;
        }
        if let Some(grpc) = &self.grpc {
            grpc.value.tls_config.validate(source)?;
        }
        if kind == ProberKind::Dns && self.dns.is_none() {
            return Err(source.error_at_span(
                &self.prober,
                format!("module {name:?}: the dns prober needs a `dns:` section with query_name"),
            ));
        }
        Ok(())
    }
}

/// Upstream's rule on a step (expect and expect_bytes are exclusive) and lookout's on its
/// labels: names Prometheus accepts that do not clash with the labels lookout sets.
fn validate_steps(steps: &[QueryStep], section: &str, source: &Source) -> Result<(), ConfigError> {
    for (index, step) in steps.iter().enumerate() {
        let key = format!("{section}.query_response[{index}]");
        if let (Some(_), Some(bytes)) = (&step.expect, &step.expect_bytes) {
            return Err(source.error_in(
                &format!("{key}.expect_bytes"),
                bytes,
                "expect and expect_bytes are mutually exclusive",
            ));
        }
        let mut seen = HashSet::new();
        for (position, label) in step.labels.iter().enumerate() {
            let name = &label.name.value;
            if !is_user_label_name(name) || reserved_labels().contains(&name.as_str()) {
                return Err(source.error_in(
                    &format!("{key}.labels[{position}].name"),
                    &label.name,
                    format!("label name {name:?} is not allowed: use [a-zA-Z_][a-zA-Z0-9_]*, not __*, nor a label lookout sets ({})", reserved_labels().join(", ")),
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(source.error_in(
                    &format!("{key}.labels[{position}].name"),
                    &label.name,
                    format!("duplicate label name {name:?}"),
                ));
            }
        }
        if step.expect.is_none() {
            if let Some(label) = step.labels.first() {
                return Err(source.error_in(
                    &format!("{key}.labels"),
                    &label.name,
                    "labels take their values from expect's captures: this step has no expect",
                ));
            }
        }
    }
    Ok(())
}

impl WebsocketHttpConfig {
    fn validate(&self, source: &Source, section: &str) -> Result<(), ConfigError> {
        let key = format!("{section}.http_config");
        validate_client(&key, &self.basic_auth, &self.authorization, &self.tls_config, source)
    }
}

/// The checks of Prometheus' HTTP client configuration for the parts lookout takes outside
/// the http prober (the websocket prober's `http_config`, `http_sd_configs`) under `key`.
fn validate_client(
    key: &str,
    basic_auth: &Option<Spanned<BasicAuth>>,
    authorization: &Option<Spanned<Authorization>>,
    tls_config: &TlsConfig,
    source: &Source,
) -> Result<(), ConfigError> {
    if let (Some(_), Some(authorization)) = (basic_auth, authorization) {
        return Err(source.error_in(
            &format!("{key}.authorization"),
            authorization,
            "at most one of basic_auth and authorization may be set",
        ));
    }
    if let Some(auth) = basic_auth {
        auth.value.check().map_err(|e| source.error_in(&format!("{key}.basic_auth"), auth, e))?;
    }
    if let Some(auth) = authorization {
        auth.value
            .check()
            .map_err(|e| source.error_in(&format!("{key}.authorization"), auth, e))?;
    }
    tls_config.validate(source)
}

impl HttpModule {
    /// What holds across keys; single values (method, headers, versions, proxy_url) are
    /// checked where the prober parses them, in `HttpProbe::prepare`.
    fn validate(
        &self,
        source: &Source,
        section_error: &dyn Fn(String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let auth_kinds = [
            self.basic_auth.is_some(),
            self.bearer_token.is_some() || self.bearer_token_file.is_some(),
            self.authorization.is_some(),
            self.oauth2.is_some(),
        ];
        if auth_kinds.iter().filter(|k| **k).count() > 1
            || (self.bearer_token.is_some() && self.bearer_token_file.is_some())
        {
            return Err(section_error(
                "at most one of basic_auth, oauth2, bearer_token, bearer_token_file and authorization may be set".to_string(),
            ));
        }
        if let Some(oauth2) = &self.oauth2 {
            oauth2.value.validate(source, oauth2)?;
        }
        self.proxy_keys().validate(source, &section_error)?;
        for (name, header) in &self.http_headers {
            if let Some(reserved) = RESERVED_HEADERS.iter().find(|r| r.eq_ignore_ascii_case(name)) {
                return Err(source.error_at_span(
                    header,
                    format!("http_headers: setting header {reserved:?} is not allowed"),
                ));
            }
        }
        if let (Some(_), Some(file)) = (&self.body, &self.body_file) {
            return Err(
                source.error_at_span(file, "setting body and body_file both is not allowed")
            );
        }
        self.validate_http3(source)?;
        if let Some(Err(e)) = self.basic_auth.as_ref().map(BasicAuth::check) {
            return Err(section_error(format!("basic_auth: {e}")));
        }
        if let Some(Err(e)) = self.authorization.as_ref().map(Authorization::check) {
            return Err(section_error(format!("authorization: {e}")));
        }
        if let (Some(compression), Some((_, accept))) = (
            self.compression,
            self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("accept-encoding")),
        ) {
            if !accepts(&accept.value, compression.token()) {
                return Err(source.error_at_span(
                    accept,
                    format!(
                        "compression {:?} conflicts with the Accept-Encoding header {:?}",
                        compression.token(),
                        accept.value
                    ),
                ));
            }
        }
        self.tls_config.validate(source)
    }
}

/// Whether an Accept-Encoding header lets the server use `encoding`, as blackbox decides it:
/// entries by falling quality, the first naming the encoding or `*` says (quality above 0).
fn accepts(accept_encoding: &str, encoding: &str) -> bool {
    if accept_encoding.is_empty() {
        return true;
    }
    let mut entries: Vec<(&str, f32)> = accept_encoding
        .split(',')
        .map(|part| match part.rsplit_once(';') {
            None => (part.trim(), 1.0),
            Some((name, q)) => {
                let q = q.trim();
                let q = q.strip_prefix("q=").unwrap_or(q).parse::<f32>().unwrap_or(0.0);
                (name.trim(), (q * 1000.0).round() / 1000.0)
            }
        })
        .collect();
    // Stable, as Go's sort.SliceStable: equal qualities keep their order.
    entries.sort_by(|a, b| b.1.total_cmp(&a.1));
    entries
        .iter()
        .find(|(name, _)| *name == encoding || *name == "*")
        .is_some_and(|(_, quality)| *quality > 0.0)
}

impl HttpModule {
    pub fn proxy_keys(&self) -> ProxyKeys<'_> {
        ProxyKeys {
            proxy_url: self.proxy_url.as_ref(),
            no_proxy: self.no_proxy.as_ref(),
            proxy_from_environment: self.proxy_from_environment.as_ref(),
            proxy_connect_header: &self.proxy_connect_header,
        }
    }

    /// Upstream's rules: `HTTP/3.0` is a valid version only with `enable_http3`, which allows
    /// neither HTTP/1.1 nor HTTP/2.0 as valid versions and needs `enable_http2` turned off (it
    /// is on by default).
    fn validate_http3(&self, source: &Source) -> Result<(), ConfigError> {
        let http3 = self.enable_http3.as_ref().filter(|e| e.value);
        let version = |name: &str| self.valid_http_versions.iter().find(|v| v.value == name);
        match http3 {
            None => match version("HTTP/3.0") {
                Some(v) => Err(source.error_at_span(
                    v,
                    "HTTP/3.0 cannot be a valid HTTP version when enable_http3 is false",
                )),
                None => Ok(()),
            },
            Some(enabled) => {
                if let Some(v) = version("HTTP/1.1").or_else(|| version("HTTP/2.0")) {
                    return Err(source.error_at_span(
                        v,
                        "HTTP/3 and HTTP/2.0/1.1 cannot be used together: only HTTP/3.0 is allowed when enable_http3 is true",
                    ));
                }
                if self.enable_http2 {
                    return Err(source.error_at_span(
                        enabled,
                        "when enable_http3 is true, enable_http2 must be set to false",
                    ));
                }
                Ok(())
            }
        }
    }
}

impl OAuth2 {
    pub fn proxy_keys(&self) -> ProxyKeys<'_> {
        ProxyKeys {
            proxy_url: self.proxy_url.as_ref(),
            no_proxy: self.no_proxy.as_ref(),
            proxy_from_environment: self.proxy_from_environment.as_ref(),
            proxy_connect_header: &self.proxy_connect_header,
        }
    }

    fn validate(&self, source: &Source, place: &Spanned<OAuth2>) -> Result<(), ConfigError> {
        let error = |message: &str| source.error_at_span(place, format!("oauth2: {message}"));
        if self.client_id.is_empty() {
            return Err(error("client_id must be configured"));
        }
        if self.token_url.is_empty() {
            return Err(error("token_url must be configured"));
        }
        if let (Some(_), Some(file)) = (&self.client_secret, &self.client_secret_file) {
            return Err(source.error_at_span(
                file,
                "oauth2: at most one of client_secret and client_secret_file may be set",
            ));
        }
        self.proxy_keys().validate(source, &|message| error(&message))?;
        self.tls_config.validate(source)
    }
}

/// The proxy keys of Prometheus' common HTTP client configuration, in a module and in its
/// `oauth2:` section.
pub struct ProxyKeys<'a> {
    pub proxy_url: Option<&'a Spanned<String>>,
    pub no_proxy: Option<&'a Spanned<String>>,
    pub proxy_from_environment: Option<&'a Spanned<bool>>,
    pub proxy_connect_header: &'a BTreeMap<String, Vec<Spanned<String>>>,
}

impl ProxyKeys<'_> {
    fn validate(
        &self,
        source: &Source,
        section_error: &dyn Fn(String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let from_environment = self.proxy_from_environment.filter(|e| e.value);
        if !self.proxy_connect_header.is_empty()
            && from_environment.is_none()
            && self.proxy_url.is_none()
        {
            return Err(section_error(
                "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured".to_string(),
            ));
        }
        if let (Some(env), Some(_)) = (from_environment, self.proxy_url) {
            return Err(source.error_at_span(
                env,
                "if proxy_from_environment is configured, proxy_url must not be configured",
            ));
        }
        if let Some(no_proxy) = self.no_proxy {
            if from_environment.is_some() {
                return Err(source.error_at_span(
                    no_proxy,
                    "if proxy_from_environment is configured, no_proxy must not be configured",
                ));
            }
            if self.proxy_url.is_none() {
                return Err(source.error_at_span(
                    no_proxy,
                    "if no_proxy is configured, proxy_url must also be configured",
                ));
            }
        }
        Ok(())
    }
}

impl TlsConfig {
    fn validate(&self, source: &Source) -> Result<(), ConfigError> {
        if let Some(max) = &self.max_version {
            if max.value < TlsVersion::TLS12 {
                return Err(source.error_at_span(max, "max_version below TLS12 cannot be honoured: lookout speaks TLS 1.2 and 1.3 only"));
            }
            if let Some(min) = &self.min_version {
                if min.value > max.value {
                    return Err(source.error_at_span(min, "min_version is above max_version"));
                }
            }
        }
        for (file, inline, name) in [
            (&self.ca_file, &self.ca, "ca"),
            (&self.cert_file, &self.cert, "cert"),
            (&self.key_file, &self.key, "key"),
        ] {
            if let (Some(_), Some(inline)) = (file, inline) {
                return Err(source.error_at_span(
                    inline,
                    format!("at most one of {name} and {name}_file may be set"),
                ));
            }
        }
        let cert = self.cert_file.as_ref().or(self.cert.as_ref());
        let key = self.key_file.as_ref().or(self.key.as_ref());
        match (cert, key) {
            (Some(c), None) => {
                Err(source.error_at_span(c, "a client certificate needs key_file or key"))
            }
            (None, Some(k)) => Err(source.error_at_span(k, "a client key needs cert_file or cert")),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::accepts;

    #[test]
    fn accept_encoding_weighed_as_blackbox() {
        assert!(accepts("", "gzip"));
        assert!(accepts("gzip", "gzip"));
        assert!(accepts("deflate, gzip;q=0.5", "gzip"));
        assert!(accepts("*", "br"));
        // The highest quality that names the encoding or `*` decides.
        assert!(accepts("gzip;q=0.5, *;q=0", "gzip"));
        assert!(!accepts("*;q=0.0", "gzip"));
        assert!(!accepts("gzip;q=0, deflate", "gzip"));
        assert!(!accepts("deflate", "gzip"));
        // Qualities are rounded to three decimals: 0.0001 is 0.
        assert!(!accepts("gzip;q=0.0001", "gzip"));
    }
}
