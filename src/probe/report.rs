//! What one probe run produces: blackbox-style gauges, a debug log, and why it failed.

use super::certs::CertificateView;
use crate::metrics::exposition::{Family, Labels, Sample};
use crate::metrics::families::{
    FamilyDef, LabelValues, CERT_NOT_AFTER, ICMP_PACKETS_RECEIVED, ICMP_PACKETS_SENT,
    PROBE_DNS_ANSWER_RRS, PROBE_DNS_QUERY_SUCCEEDED, PROBE_DURATION_SECONDS, PROBE_FAILURE_REASON,
    PROBE_GRPC_HEALTHCHECK_RESPONSE, PROBE_GRPC_STATUS_CODE, PROBE_HTTP_STATUS_CODE, PROBE_SUCCESS,
    PROBE_WEBSOCKET_STATUS_CODE,
};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// Why a probe failed: a small fixed set, so it can be a label without growing without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    InvalidTarget,
    Dns,
    ConnectRefused,
    Connect,
    Timeout,
    Proxy,
    TlsHandshake,
    TlsVerify,
    Http,
    StatusCode,
    HttpVersion,
    SslRequired,
    SslForbidden,
    BodyRegex,
    HeaderRegex,
    BodyTooLarge,
    Decompression,
    RedirectLimit,
    Credentials,
    QueryResponse,
    CertificateFile,
    TargetNotAllowed,
    RedirectScheme,
    IcmpPermission,
    DnsRcode,
    DnsRecordRegex,
    GrpcStatus,
    WebsocketUpgrade,
    RequestFile,
    BodyCel,
    OAuth2,
}

impl FailureReason {
    pub const ALL: [FailureReason; 31] = [
        FailureReason::InvalidTarget,
        FailureReason::Dns,
        FailureReason::ConnectRefused,
        FailureReason::Connect,
        FailureReason::Timeout,
        FailureReason::Proxy,
        FailureReason::TlsHandshake,
        FailureReason::TlsVerify,
        FailureReason::Http,
        FailureReason::StatusCode,
        FailureReason::HttpVersion,
        FailureReason::SslRequired,
        FailureReason::SslForbidden,
        FailureReason::BodyRegex,
        FailureReason::HeaderRegex,
        FailureReason::BodyTooLarge,
        FailureReason::Decompression,
        FailureReason::RedirectLimit,
        FailureReason::Credentials,
        FailureReason::QueryResponse,
        FailureReason::CertificateFile,
        FailureReason::TargetNotAllowed,
        FailureReason::RedirectScheme,
        FailureReason::IcmpPermission,
        FailureReason::DnsRcode,
        FailureReason::DnsRecordRegex,
        FailureReason::GrpcStatus,
        FailureReason::WebsocketUpgrade,
        FailureReason::RequestFile,
        FailureReason::BodyCel,
        FailureReason::OAuth2,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::InvalidTarget => "invalid_target",
            FailureReason::Dns => "dns",
            FailureReason::ConnectRefused => "connect_refused",
            FailureReason::Connect => "connect",
            FailureReason::Timeout => "timeout",
            FailureReason::Proxy => "proxy",
            FailureReason::TlsHandshake => "tls_handshake",
            FailureReason::TlsVerify => "tls_verify",
            FailureReason::Http => "http_protocol",
            FailureReason::StatusCode => "status_code",
            FailureReason::HttpVersion => "http_version",
            FailureReason::SslRequired => "ssl_required",
            FailureReason::SslForbidden => "ssl_forbidden",
            FailureReason::BodyRegex => "body_regex",
            FailureReason::HeaderRegex => "header_regex",
            FailureReason::BodyTooLarge => "body_too_large",
            FailureReason::Decompression => "decompression",
            FailureReason::RedirectLimit => "redirect_limit",
            FailureReason::Credentials => "credentials",
            FailureReason::QueryResponse => "query_response",
            FailureReason::CertificateFile => "certificate_file",
            FailureReason::TargetNotAllowed => "target_not_allowed",
            FailureReason::RedirectScheme => "redirect_scheme",
            FailureReason::IcmpPermission => "icmp_permission",
            FailureReason::DnsRcode => "dns_rcode",
            FailureReason::DnsRecordRegex => "dns_record_regex",
            FailureReason::GrpcStatus => "grpc_status",
            FailureReason::WebsocketUpgrade => "websocket_upgrade",
            FailureReason::RequestFile => "request_file",
            FailureReason::BodyCel => "body_cel",
            FailureReason::OAuth2 => "oauth2",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: FailureReason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: FailureReason, message: impl Into<String>) -> Failure {
        Failure { reason, message: message.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.message)
    }
}

/// The most a debug log keeps: a target that streams lines a probe reads one by one (or a
/// flood of stray packets) must not grow it for the whole timeout.
const MAX_LOG_LINES: usize = 1000;
const MAX_LOG_BYTES: usize = 256 << 10;

/// Collects a probe's gauges and log lines while it runs; survives a timeout of the prober.
pub struct Report {
    start: Instant,
    families: Vec<Family>,
    log: Vec<String>,
    /// Bytes of the lines kept, and how many lines were not kept past the bounds.
    log_bytes: usize,
    omitted: usize,
    /// Whether log lines are kept: formatting them is a cost a run nobody reads need not pay.
    keep_log: bool,
}

impl Report {
    pub fn new(start: Instant) -> Report {
        Report {
            start,
            families: Vec::with_capacity(24),
            log: Vec::new(),
            log_bytes: 0,
            omitted: 0,
            keep_log: true,
        }
    }

    /// A report that keeps no log lines (scheduled runs, `/probe` without `debug=true`).
    pub fn without_log(start: Instant) -> Report {
        Report { keep_log: false, ..Report::new(start) }
    }

    pub fn log(&mut self, message: impl fmt::Display) {
        if !self.keep_log {
            return;
        }
        if self.log.len() >= MAX_LOG_LINES || self.log_bytes >= MAX_LOG_BYTES {
            self.omitted += 1;
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let line = format!("{elapsed:>9.6}s {message}");
        self.log_bytes += line.len();
        self.log.push(line);
    }

    /// The log so far (each line with its time since the start).
    pub fn log_lines(&self) -> &[String] {
        &self.log
    }

    /// Sets a gauge without labels, replacing an earlier value.
    pub fn set(&mut self, family: &'static FamilyDef, value: f64) {
        self.set_labeled(family, [], value);
    }

    /// Sets the sample of `family` with exactly `labels`, replacing an earlier value.
    pub fn set_labeled(
        &mut self,
        family: &'static FamilyDef,
        labels: impl LabelValues,
        value: f64,
    ) {
        self.update(family, labels.into_labels(family), |sample| *sample = value);
    }

    /// Sets the sample of a family whose label names come from the configuration
    /// (`probe_expect_info`), replacing an earlier value.
    pub fn set_configured(&mut self, family: &'static FamilyDef, labels: Labels, value: f64) {
        self.update(family, labels, |sample| *sample = value);
    }

    /// Adds to the sample of `family` with `labels` (phase timings summed over redirects).
    pub fn add_labeled(
        &mut self,
        family: &'static FamilyDef,
        labels: impl LabelValues,
        value: f64,
    ) {
        self.update(family, labels.into_labels(family), |sample| *sample += value);
    }

    fn update(
        &mut self,
        family: &'static FamilyDef,
        labels: Labels,
        change: impl FnOnce(&mut f64),
    ) {
        let family = self.family(family);
        match family.samples.iter_mut().find(|s| s.labels == labels) {
            Some(sample) => change(&mut sample.value),
            None => {
                let mut value = 0.0;
                change(&mut value);
                family.samples.push(Sample::new(labels, value));
            }
        }
    }

    /// Replaces every sample of `family` (an info metric whose labels change between runs).
    pub fn replace(&mut self, family: &'static FamilyDef, labels: impl LabelValues, value: f64) {
        let labels = labels.into_labels(family);
        let family = self.family(family);
        family.samples.clear();
        family.samples.push(Sample::new(labels, value));
    }

    /// Drops every sample of `family` (a TLS handshake after a redirect replaces the chain).
    pub fn clear(&mut self, family: &FamilyDef) {
        self.families.retain(|f| f.name != family.name);
    }

    fn family(&mut self, def: &'static FamilyDef) -> &mut Family {
        let position = match self.families.iter().position(|f| f.name == def.name) {
            Some(i) => i,
            None => {
                self.families.push(Family::of(def));
                self.families.len() - 1
            }
        };
        &mut self.families[position]
    }

    pub fn finish(mut self, result: Result<(), Failure>, elapsed: Duration) -> Outcome {
        let success = result.is_ok();
        let failure = result.err();
        if self.omitted > 0 {
            let line = format!("{:>9}  … {} more lines not kept", "", self.omitted);
            self.log.push(line);
        }
        if self.keep_log {
            // Past the bounds too: the verdict is the line a reader looks for.
            let elapsed = self.start.elapsed().as_secs_f64();
            self.log.push(match &failure {
                Some(f) => format!("{elapsed:>9.6}s probe failed: {f}"),
                None => format!("{elapsed:>9.6}s probe succeeded"),
            });
        }
        self.set(&PROBE_SUCCESS, if success { 1.0 } else { 0.0 });
        self.set(&PROBE_DURATION_SECONDS, elapsed.as_secs_f64());
        if let Some(f) = &failure {
            self.replace(&PROBE_FAILURE_REASON, [f.reason.as_str().to_string()], 1.0);
        }
        self.families.sort_by(|a, b| a.name.cmp(&b.name));
        Outcome { success, duration: elapsed, failure, families: self.families, log: self.log }
    }
}

/// The finished result of one probe run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub success: bool,
    pub duration: Duration,
    pub failure: Option<Failure>,
    pub families: Vec<Family>,
    pub log: Vec<String>,
}

impl Outcome {
    pub fn family(&self, family: &FamilyDef) -> Option<&Family> {
        self.families.iter().find(|f| f.name == family.name)
    }

    /// The value of the family's first sample (of its only one, for a family without labels).
    pub fn value(&self, family: &FamilyDef) -> Option<f64> {
        self.family(family).and_then(|f| f.samples.first()).map(|s| s.value)
    }

    /// What the target answered, in a word, for `--once` and the status page: the HTTP status,
    /// the gRPC serving status (or status code), the DNS answer count, or the replies to a
    /// series of echoes. `None` when it answered nothing to show.
    pub fn status(&self) -> Option<String> {
        if let Some(code) = self.value(&PROBE_HTTP_STATUS_CODE).filter(|c| *c > 0.0) {
            return Some(format!("{code}"));
        }
        if let Some(code) = self.value(&PROBE_WEBSOCKET_STATUS_CODE).filter(|c| *c > 0.0) {
            return Some(format!("{code}"));
        }
        if let Some(serving) = self
            .family(&PROBE_GRPC_HEALTHCHECK_RESPONSE)
            .and_then(|f| f.samples.iter().find(|s| s.value == 1.0))
        {
            return serving.labels.first().map(|(_, v)| v.clone());
        }
        if let Some(code) = self.value(&PROBE_GRPC_STATUS_CODE).filter(|c| *c > 0.0) {
            return Some(format!("grpc {code}"));
        }
        if self.value(&PROBE_DNS_QUERY_SUCCEEDED) == Some(1.0) {
            let answers = self.value(&PROBE_DNS_ANSWER_RRS).unwrap_or(0.0);
            return Some(format!("{answers} answers"));
        }
        let sent = self.value(&ICMP_PACKETS_SENT)?;
        let received = self.value(&ICMP_PACKETS_RECEIVED).unwrap_or(0.0);
        Some(format!("{received}/{sent} replies"))
    }

    /// Every certificate the probe saw, with its days left at `now`.
    pub fn certificates(&self, now: SystemTime) -> Vec<CertificateView> {
        self.family(&CERT_NOT_AFTER)
            .map(|f| {
                f.samples.iter().map(|s| CertificateView::new(&s.labels, s.value, now)).collect()
            })
            .unwrap_or_default()
    }

    /// The certificate that expires first.
    pub fn soonest_certificate(&self, now: SystemTime) -> Option<CertificateView> {
        self.certificates(now).into_iter().min_by(|a, b| a.days_left.total_cmp(&b.days_left))
    }
}

#[cfg(test)]
mod tests {
    use super::FailureReason;

    #[test]
    fn a_report_without_log_keeps_the_metrics_and_no_lines() {
        use crate::metrics::families::PROBE_SUCCESS;
        let mut report = super::Report::without_log(std::time::Instant::now());
        report.log("not kept");
        let outcome = report.finish(Ok(()), std::time::Duration::ZERO);
        assert!(outcome.log.is_empty());
        assert_eq!(outcome.value(&PROBE_SUCCESS), Some(1.0));
        let mut report = super::Report::new(std::time::Instant::now());
        report.log("kept");
        assert_eq!(report.finish(Ok(()), std::time::Duration::ZERO).log.len(), 2);
    }

    #[test]
    fn a_log_keeps_its_first_lines_and_says_how_many_more_came() {
        let mut report = super::Report::new(std::time::Instant::now());
        for i in 0..100_000 {
            report.log(format_args!("read line {i}"));
        }
        let outcome = report.finish(Ok(()), std::time::Duration::ZERO);
        assert_eq!(outcome.log.len(), super::MAX_LOG_LINES + 2);
        assert!(outcome.log[super::MAX_LOG_LINES].ends_with("… 99000 more lines not kept"));
        assert!(outcome.log.last().unwrap().ends_with("probe succeeded"));
        let mut report = super::Report::new(std::time::Instant::now());
        report.log("x".repeat(super::MAX_LOG_BYTES));
        report.log("not kept");
        assert_eq!(report.log_lines().len(), 1);
    }

    #[test]
    fn every_failure_reason_is_documented() {
        let readme = include_str!("../../README.md");
        for reason in FailureReason::ALL {
            assert!(
                readme.contains(&format!("`{}`", reason.as_str())),
                "README does not list {}",
                reason.as_str()
            );
        }
    }
}
