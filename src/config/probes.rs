//! probes.yaml: blackbox_exporter's `modules:` schema for the http, tcp, icmp, dns and grpc
//! probers (plus lookout's `file`), the probes lookout schedules itself and the rules of the
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProberKind {
    Http,
    Tcp,
    Icmp,
    Dns,
    Grpc,
    File,
}

impl ProberKind {
    const ALL: [(&'static str, ProberKind); 6] = [
        ("http", ProberKind::Http),
        ("tcp", ProberKind::Tcp),
        ("icmp", ProberKind::Icmp),
        ("dns", ProberKind::Dns),
        ("grpc", ProberKind::Grpc),
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
    pub headers: BTreeMap<String, String>,
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
default_from_empty_yaml!(HttpModule, TcpModule, IcmpModule, GrpcModule);

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
    pub username: String,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryStep {
    #[serde(default)]
    pub expect: Option<Pattern>,
    #[serde(default)]
    pub send: Option<String>,
    #[serde(default)]
    pub starttls: bool,
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

/// `http_sd_configs:` entry, as Prometheus spells it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSdConfig {
    pub url: Spanned<String>,
    #[serde(default)]
    pub refresh_interval: Option<Spanned<PromDuration>>,
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
}

impl Default for ProbeEndpoint {
    fn default() -> Self {
        ProbeEndpoint { enabled: true, allowed_targets: Vec::new(), allow_self: false }
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
            for sd in &probe.file_sd_configs {
                if sd.value.files.is_empty() {
                    return Err(source.error_at_span(sd, "file_sd_configs: `files` is empty"));
                }
                for file in &sd.value.files {
                    let known = [".json", ".yml", ".yaml"];
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
                if !sd.value.url.value.starts_with("http://") {
                    return Err(source.error_at_span(
                        &sd.value.url,
                        "http_sd_configs: url must start with http://",
                    ));
                }
                if sd.value.url.value.parse::<http::Uri>().is_err() {
                    return Err(source.error_at_span(&sd.value.url, "http_sd_configs: not a URL"));
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
            for (label, value) in &probe.labels {
                if !is_label_name(label) || reserved_labels().contains(&label.as_str()) {
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

pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

impl Module {
    fn validate(&self, name: &str, source: &Source) -> Result<(), ConfigError> {
        if !ProberKind::ALL.iter().any(|(known, _)| *known == self.prober.value) {
            return Err(source.error_at_span(
                &self.prober,
                format!(
                    "unknown prober {:?} (http, tcp, icmp, dns, grpc, file)",
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
        if let Some(tcp) = &self.tcp {
            tcp.value.tls_config.validate(source)?;
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
        ];
        if auth_kinds.iter().filter(|k| **k).count() > 1
            || (self.bearer_token.is_some() && self.bearer_token_file.is_some())
        {
            return Err(section_error(
                "at most one of basic_auth, bearer_token, bearer_token_file and authorization may be set".to_string(),
            ));
        }
        if let Some(auth) = &self.basic_auth {
            if auth.password.is_some() && auth.password_file.is_some() {
                return Err(section_error(
                    "basic_auth: at most one of password and password_file may be set".to_string(),
                ));
            }
        }
        if let Some(auth) = &self.authorization {
            if auth.credentials.is_some() && auth.credentials_file.is_some() {
                return Err(section_error(
                    "authorization: at most one of credentials and credentials_file may be set"
                        .to_string(),
                ));
            }
            if auth.kind.eq_ignore_ascii_case("basic") {
                return Err(section_error(
                    "authorization: type Basic is set with basic_auth instead".to_string(),
                ));
            }
        }
        if let (Some(compression), Some((_, accept))) = (
            self.compression,
            self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("accept-encoding")),
        ) {
            if !accept.to_ascii_lowercase().contains(compression.token()) {
                return Err(section_error(format!(
                    "compression {:?} conflicts with the Accept-Encoding header {accept:?}",
                    compression.token()
                )));
            }
        }
        self.tls_config.validate(source)
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
        match (&self.cert_file, &self.key_file) {
            (Some(c), None) => Err(source.error_at_span(c, "cert_file needs key_file")),
            (None, Some(k)) => Err(source.error_at_span(k, "key_file needs cert_file")),
            _ => Ok(()),
        }
    }
}
