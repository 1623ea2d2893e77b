//! Certificates a probe meets: the chain and its metrics are reported whether or not it can
//! be trusted, and the verification result says which failure it was.

use crate::common::*;
use lookout::probe::Outcome;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn days_from_now(days: f64) -> f64 {
    now() + days * 86_400.0
}

fn verify_result(o: &Outcome) -> String {
    label(&label_sets(o, &TLS_VERIFY_RESULT)[0], "result").to_string()
}

/// (source, chain_position, subject_cn, not_after) of every certificate series.
fn certs(o: &Outcome) -> Vec<(String, String, String, f64)> {
    let f = family(o, &CERT_NOT_AFTER).expect("certificate series");
    f.samples
        .iter()
        .map(|s| {
            let l: Vec<(String, String)> =
                s.labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            (
                label(&l, "source").into(),
                label(&l, "chain_position").into(),
                label(&l, "subject_cn").into(),
                s.value,
            )
        })
        .collect()
}

struct Case {
    ca: Ca,
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
}

impl Case {
    async fn serve(
        ca: Ca,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        leaf: &Leaf,
    ) -> Case {
        let addr = https_server(chain, leaf.key_der(), None, false).await;
        Case { ca, addr, dir: tempfile::tempdir().unwrap() }
    }

    async fn probe(&self, extra: &str) -> Outcome {
        let ca_file = write_file(self.dir.path(), "ca.pem", pem(&self.ca.der()));
        let module = format!(
            "prober: http\nhttp:\n  tls_config:\n    ca_file: {}\n{extra}",
            ca_file.display()
        );
        probe(&module, &format!("https://localhost:{}/", self.addr.port())).await
    }
}

#[tokio::test]
async fn valid_leaf_expiring_in_ten_days() {
    let ca = Ca::new("Good CA");
    let leaf = ca.leaf("localhost", &["localhost"], -1, 10);
    let case = Case::serve(ca, vec![leaf.der.clone()], &leaf).await;
    let o = case.probe("").await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(verify_result(&o), "ok");
    let earliest = o.value(&PROBE_SSL_EARLIEST_CERT_EXPIRY).unwrap();
    assert!((earliest - days_from_now(10.0)).abs() < 120.0, "{earliest}");
    assert_eq!(o.value(&PROBE_SSL_LAST_CHAIN_EXPIRY_TIMESTAMP_SECONDS), Some(earliest));
    let info = &label_sets(&o, &PROBE_SSL_LAST_CHAIN_INFO)[0];
    assert_eq!(label(info, "subject"), "CN=localhost");
    assert_eq!(label(info, "issuer"), "CN=Good CA");
    assert_eq!(label(info, "subjectalternative"), "localhost");
    let fingerprint =
        lookout::probe::certs::hex(ring::digest::digest(&ring::digest::SHA256, &leaf.der).as_ref());
    assert_eq!(label(info, "fingerprint_sha256"), fingerprint);
    assert_eq!(certs(&o), vec![("served".into(), "0".into(), "localhost".into(), earliest)]);
}

#[tokio::test]
async fn expired_leaf_still_reports_its_certificate() {
    let ca = Ca::new("Good CA");
    let leaf = ca.leaf("localhost", &["localhost"], -90, -3);
    let case = Case::serve(ca, vec![leaf.der.clone()], &leaf).await;
    let o = case.probe("").await;
    assert_eq!(reason(&o), "tls_verify");
    assert_eq!(verify_result(&o), "expired");
    // No response: blackbox's zeros.
    for zero in [&PROBE_HTTP_STATUS_CODE, &PROBE_HTTP_CONTENT_LENGTH, &PROBE_HTTP_VERSION] {
        assert_eq!(o.value(zero), Some(0.0), "{}", zero.name);
    }
    let earliest = o.value(&PROBE_SSL_EARLIEST_CERT_EXPIRY).unwrap();
    assert!(earliest < now(), "expiry {earliest} is in the past");
    assert!(family(&o, &PROBE_TLS_VERSION_INFO).is_some());
    assert_eq!(certs(&o).len(), 1);
    // insecure_skip_verify lets the probe succeed, and still says what was wrong.
    let o = case.probe("    insecure_skip_verify: true").await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(verify_result(&o), "expired");
    assert!(o.value(&PROBE_SSL_EARLIEST_CERT_EXPIRY).unwrap() < now());
}

#[tokio::test]
async fn expired_intermediate_is_reported_at_its_position() {
    let root = Ca::new("Root CA");
    let intermediate = root.intermediate("Old Intermediate", -400, -1);
    let leaf = intermediate.leaf("localhost", &["localhost"], -10, 60);
    let case = Case::serve(root, vec![leaf.der.clone(), intermediate.der()], &leaf).await;
    let o = case.probe("").await;
    assert_eq!(reason(&o), "tls_verify");
    assert_eq!(verify_result(&o), "expired");
    let found = certs(&o);
    assert_eq!(found.len(), 2);
    assert_eq!((found[1].1.as_str(), found[1].2.as_str()), ("1", "Old Intermediate"));
    assert!(found[1].3 < now());
    assert!(found[0].3 > now());
    assert_eq!(o.value(&PROBE_SSL_EARLIEST_CERT_EXPIRY), Some(found[1].3));
}

#[tokio::test]
async fn not_yet_valid() {
    let ca = Ca::new("Good CA");
    let leaf = ca.leaf("localhost", &["localhost"], 5, 60);
    let case = Case::serve(ca, vec![leaf.der.clone()], &leaf).await;
    let o = case.probe("").await;
    assert_eq!(reason(&o), "tls_verify");
    assert_eq!(verify_result(&o), "not_yet_valid");
    let before = family(&o, &CERT_NOT_BEFORE).unwrap().samples[0].value;
    assert!(before > now());
}

#[tokio::test]
async fn wrong_name() {
    let ca = Ca::new("Good CA");
    let leaf = ca.leaf("other.test", &["other.test"], -1, 60);
    let case = Case::serve(ca, vec![leaf.der.clone()], &leaf).await;
    let o = case.probe("").await;
    assert_eq!(reason(&o), "tls_verify");
    assert_eq!(verify_result(&o), "name_mismatch");
    assert_eq!(certs(&o)[0].2, "other.test");
}

#[tokio::test]
async fn self_signed_and_unknown_ca() {
    let leaf = self_signed("localhost", &["localhost"]);
    let case = Case::serve(Ca::new("Unrelated CA"), vec![leaf.der.clone()], &leaf).await;
    let o = case.probe("").await;
    assert_eq!(reason(&o), "tls_verify");
    assert_eq!(verify_result(&o), "unknown_issuer");
    assert_eq!(certs(&o).len(), 1);

    let other = Ca::new("Other CA");
    let leaf = other.leaf("localhost", &["localhost"], -1, 60);
    let case = Case::serve(Ca::new("Trusted CA"), vec![leaf.der.clone()], &leaf).await;
    let o = case.probe("").await;
    assert_eq!(verify_result(&o), "unknown_issuer");
    let info = &label_sets(&o, &PROBE_SSL_LAST_CHAIN_INFO)[0];
    assert_eq!(label(info, "issuer"), "CN=Other CA");
}

#[tokio::test]
async fn client_certificate_is_presented_and_reported() {
    let ca = Ca::new("Mutual CA");
    let server_leaf = ca.leaf("localhost", &["localhost"], -1, 60);
    let client = ca.leaf("probe-client", &[], -1, 20);
    let addr =
        https_server(vec![server_leaf.der.clone()], server_leaf.key_der(), Some(ca.der()), false)
            .await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let cert_file = write_file(dir.path(), "client.pem", client.pem());
    let key_file = write_file(dir.path(), "client.key", client.key.serialize_pem());
    let target = format!("https://localhost:{}/", addr.port());
    let with_cert = format!(
        "prober: http\nhttp:\n  tls_config:\n    ca_file: {}\n    cert_file: {}\n    key_file: {}",
        ca_file.display(),
        cert_file.display(),
        key_file.display()
    );
    let o = probe(&with_cert, &target).await;
    assert!(o.success, "{:?}", o.failure);
    let client_series: Vec<_> = certs(&o).into_iter().filter(|c| c.0 == "client").collect();
    assert_eq!(client_series.len(), 1);
    assert_eq!(client_series[0].2, "probe-client");
    assert!((client_series[0].3 - days_from_now(20.0)).abs() < 120.0);

    let without = format!("prober: http\nhttp:\n  tls_config:\n    ca_file: {}", ca_file.display());
    let o = probe(&without, &target).await;
    assert!(!o.success);
    assert!(matches!(reason(&o), "tls_handshake" | "http_protocol"), "{}", reason(&o));
}
