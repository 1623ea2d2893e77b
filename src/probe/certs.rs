//! X.509 facts that alerts need, read from DER: validity, names, serial, fingerprint; and the
//! per-certificate series that carry them.

use super::Report;
use crate::metrics::exposition::{Labels, Name};
use crate::metrics::families::{CERT_NOT_AFTER, CERT_NOT_BEFORE};
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
