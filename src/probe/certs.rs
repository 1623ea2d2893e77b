//! X.509 facts that alerts need, read from DER: validity, names, serial, fingerprint; the
//! per-certificate series that carry them; and how a person is shown them (days left).

use super::Report;
use crate::metrics::exposition::{Labels, Name};
use crate::metrics::families::{CERT_NOT_AFTER, CERT_NOT_BEFORE};
use std::time::{Duration, SystemTime};
use x509_parser::prelude::*;

#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    pub not_before: i64,
    pub not_after: i64,
    /// The subject as Go's `pkix.Name.String()` prints it (RFC 2253 order), as blackbox reports.
    pub subject: String,
    pub issuer: String,
    pub subject_cn: String,
    pub issuer_cn: String,
    pub serial_hex: String,
    pub fingerprint_sha256: String,
    pub dns_names: Vec<String>,
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> Result<CertInfo, String> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let validity = cert.validity();
        let dns_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(CertInfo {
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            subject: rfc2253(cert.subject()),
            issuer: rfc2253(cert.issuer()),
            subject_cn: common_name(cert.subject()),
            issuer_cn: common_name(cert.issuer()),
            serial_hex: hex(cert.raw_serial()).trim_start_matches("00").to_string(),
            fingerprint_sha256: hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref()),
            dns_names,
        })
    }
}

fn common_name(name: &X509Name) -> String {
    name.iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or("").to_string()
}

fn rfc2253(name: &X509Name) -> String {
    let registry = oid_registry();
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let key = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                        .map(|abbrev| match abbrev {
                            "commonName" => "CN",
                            other => other,
                        })
                        .map(str::to_string)
                        .unwrap_or_else(|_| attr.attr_type().to_id_string());
                    format!("{key}={}", attr.as_str().unwrap_or("#"))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Where a certificate was found; becomes the `source` label, plus `chain_position` (its place
/// in the served chain or in the file) and `path`.
pub enum Origin<'a> {
    Served { position: usize },
    Client,
    File { path: &'a str, position: usize },
}

pub fn record(report: &mut Report, origin: Origin<'_>, cert: &CertInfo) {
    let mut labels: Labels = Vec::with_capacity(6);
    match origin {
        Origin::Served { position } => {
            labels.push((Name::Borrowed("source"), "served".into()));
            labels.push((Name::Borrowed("chain_position"), position.to_string()));
        }
        Origin::Client => labels.push((Name::Borrowed("source"), "client".into())),
        Origin::File { path, position } => {
            labels.push((Name::Borrowed("source"), "file".into()));
            labels.push((Name::Borrowed("path"), path.to_string()));
            labels.push((Name::Borrowed("chain_position"), position.to_string()));
        }
    }
    labels.push((Name::Borrowed("subject_cn"), cert.subject_cn.clone()));
    labels.push((Name::Borrowed("issuer_cn"), cert.issuer_cn.clone()));
    labels.push((Name::Borrowed("serial"), cert.serial_hex.clone()));
    labels.push((Name::Borrowed("fingerprint_sha256"), cert.fingerprint_sha256.clone()));
    report.set_labeled(&CERT_NOT_BEFORE, labels.clone(), cert.not_before as f64);
    report.set_labeled(&CERT_NOT_AFTER, labels, cert.not_after as f64);
}

/// A certificate series of a probe result as `--once` and the status page show it.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateView {
    pub labels: Vec<(String, String)>,
    /// Days until NotAfter; negative once expired.
    pub days_left: f64,
}

impl CertificateView {
    /// Reads a sample of [`CERT_NOT_AFTER`] at `now`.
    pub fn new(labels: &Labels, not_after: f64, now: SystemTime) -> CertificateView {
        let now = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        CertificateView {
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            days_left: (not_after as i64 - now) as f64 / 86_400.0,
        }
    }

    /// The value of label `name`, empty when the series does not carry it.
    pub fn label(&self, name: &str) -> &str {
        self.labels.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    pub fn expiry(&self, warn_before: Duration) -> Expiry {
        Expiry::of(self.days_left, warn_before)
    }
}

/// Where a certificate stands against the configured `warn_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Expired,
    /// Expires within `warn_before`.
    Soon,
    Fine,
}

impl Expiry {
    pub fn of(days_left: f64, warn_before: Duration) -> Expiry {
        if days_left < 0.0 {
            Expiry::Expired
        } else if days_left < warn_before.as_secs_f64() / 86_400.0 {
            Expiry::Soon
        } else {
            Expiry::Fine
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_left_against_warn_before() {
        let warn = Duration::from_secs(30 * 86_400);
        assert_eq!(Expiry::of(-0.1, warn), Expiry::Expired);
        assert_eq!(Expiry::of(0.0, warn), Expiry::Soon);
        assert_eq!(Expiry::of(29.9, warn), Expiry::Soon);
        assert_eq!(Expiry::of(30.0, warn), Expiry::Fine);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let view = CertificateView::new(&vec![("subject_cn".into(), "a".into())], 1_086_400.0, now);
        assert_eq!((view.days_left, view.label("subject_cn"), view.label("path")), (1.0, "a", ""));
    }
}
