//! `prober: file`: certificates on disk, PEM bundles and DER, one bad file never hiding the rest.

use crate::common::*;
use std::process::Command;

fn file_series(o: &lookout::probe::Outcome) -> Vec<(String, String, String)> {
    label_sets(o, &CERT_NOT_AFTER)
        .iter()
        .map(|l| {
            (
                label(l, "path").rsplit('/').next().unwrap().to_string(),
                label(l, "chain_position").into(),
                label(l, "subject_cn").into(),
            )
        })
        .collect()
}

#[tokio::test]
async fn bundle_and_der_files() {
    let root = Ca::new("Root CA");
    let intermediate = root.intermediate("Intermediate CA", -1, 800);
    let leaf = intermediate.leaf("shop.example", &["shop.example"], -1, 10);
    let dir = tempfile::tempdir().unwrap();
    let bundle = format!("{}{}{}", leaf.pem(), pem(&intermediate.der()), pem(&root.der()));
    let bundle_path =
        write_file(dir.path(), "bundle.pem", format!("{bundle}{}", leaf.key.serialize_pem()));
    let o = probe("prober: file", bundle_path.to_str().unwrap()).await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(
        file_series(&o),
        [
            ("bundle.pem".into(), "0".into(), "shop.example".into()),
            ("bundle.pem".into(), "1".into(), "Intermediate CA".into()),
            ("bundle.pem".into(), "2".into(), "Root CA".into())
        ]
    );
    assert_eq!(label(&label_sets(&o, &CERT_NOT_AFTER)[0], "source"), "file");
    let earliest = o.value(&PROBE_SSL_EARLIEST_CERT_EXPIRY).unwrap();
    let leaf_after = family(&o, &CERT_NOT_AFTER).unwrap().samples[0].value;
    assert_eq!(earliest, leaf_after);

    let der_path = write_file(dir.path(), "leaf.der", leaf.der.as_ref());
    let o = probe("prober: file", der_path.to_str().unwrap()).await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(file_series(&o), [("leaf.der".into(), "0".into(), "shop.example".into())]);
}

#[tokio::test]
async fn bad_files_are_reported_and_the_good_ones_still_counted() {
    let ca = Ca::new("Files CA");
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "a-good.pem", ca.leaf("good.example", &["good.example"], -1, 90).pem());
    write_file(dir.path(), "b-garbage.pem", b"\x00\x01 this is not a certificate \xff");
    write_file(dir.path(), "c-key-only.pem", rcgen::KeyPair::generate().unwrap().serialize_pem());
    write_file(dir.path(), "d-huge.pem", vec![b'A'; 2 << 20]);
    std::os::unix::fs::symlink(dir.path().join("missing"), dir.path().join("e-dangling.pem"))
        .unwrap();
    write_file(
        dir.path(),
        "f-good.crt",
        ca.leaf("other.example", &["other.example"], -1, 90).der.as_ref(),
    );
    let pattern = format!("{}/*.*", dir.path().display());
    let o = probe("prober: file", &pattern).await;
    assert_eq!(reason(&o), "certificate_file");
    assert!(o.failure.as_ref().unwrap().message.starts_with("4 of 6 files"), "{:?}", o.failure);
    assert_eq!(
        file_series(&o).iter().map(|s| s.2.as_str()).collect::<Vec<_>>(),
        ["good.example", "other.example"]
    );
    let errors: Vec<(String, String)> = label_sets(&o, &CERT_FILE_ERROR)
        .iter()
        .map(|l| {
            (
                label(l, "path").rsplit('/').next().unwrap().to_string(),
                label(l, "reason").to_string(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            ("b-garbage.pem".into(), "not_a_certificate".into()),
            ("c-key-only.pem".into(), "not_a_certificate".into()),
            ("d-huge.pem".into(), "too_large".into()),
            ("e-dangling.pem".into(), "unreadable".into())
        ]
    );
}

#[tokio::test]
async fn missing_files_and_empty_globs() {
    let o = probe("prober: file", "/nonexistent/lookout/cert.pem").await;
    assert_eq!(reason(&o), "certificate_file");
    assert_eq!(label(&label_sets(&o, &CERT_FILE_ERROR)[0], "reason"), "unreadable");
    let o = probe("prober: file", "/nonexistent/lookout/*.pem").await;
    assert_eq!(reason(&o), "certificate_file");
    assert!(o.failure.unwrap().message.contains("no file matches"));
}

#[test]
fn once_marks_expired_and_expiring_certificates() {
    let ca = Ca::new("Files CA");
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "soon.pem", ca.leaf("soon.example", &["soon.example"], -300, 10).pem());
    write_file(dir.path(), "late.pem", ca.leaf("late.example", &["late.example"], -300, 200).pem());
    write_file(dir.path(), "gone.pem", ca.leaf("gone.example", &["gone.example"], -300, -2).pem());
    let yaml = format!(
        "modules:\n  certs:\n    prober: file\nprobes:\n  - name: disk\n    module: certs\n    target: {}/*.pem\n",
        dir.path().display()
    );
    let probes = write_file(dir.path(), "probes.yaml", yaml);
    let out = Command::new(LOOKOUT)
        .arg(format!("--config.probes={}", probes.display()))
        .arg("--once")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "an expired certificate is reported, not a failed read: {text}"
    );
    let line = |cn: &str| {
        text.lines()
            .find(|l| l.contains(cn))
            .unwrap_or_else(|| panic!("{cn} missing:\n{text}"))
            .to_string()
    };
    assert!(line("gone.example").contains("EXPIRED"), "{text}");
    assert!(line("soon.example").contains("expires within 30 days"), "{text}");
    assert!(
        !line("late.example").contains("expires") && !line("late.example").contains("EXPIRED"),
        "{text}"
    );
    assert!(line("soon.example").contains("soon.pem #0"), "{text}");

    let json = Command::new(LOOKOUT)
        .arg(format!("--config.probes={}", probes.display()))
        .args(["--once", "--output=json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let certs = json["probes"][0]["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 3);
    let gone = certs.iter().find(|c| c["subject_cn"] == "gone.example").unwrap();
    assert!(gone["days_left"].as_f64().unwrap() < -1.9);
}

#[test]
fn probe_endpoint_refuses_file_modules() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), "modules:\n  certs:\n    prober: file\n");
    let reply = get(server.addr, "/probe?module=certs&target=/etc/shadow", &[]).unwrap();
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("runs only as a scheduled probe"));
}

#[test]
fn status_page_colours_expired_and_expiring_certificates() {
    let ca = Ca::new("Files CA");
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "gone.pem", ca.leaf("gone.example", &["gone.example"], -300, -2).pem());
    write_file(dir.path(), "soon.pem", ca.leaf("soon.example", &["soon.example"], -300, 10).pem());
    let yaml = format!(
        "modules:\n  certs:\n    prober: file\nprobes:\n  - name: gone\n    module: certs\n    target: {0}/gone.pem\n    interval: 1s\n  - name: soon\n    module: certs\n    target: {0}/soon.pem\n    interval: 1s\n",
        dir.path().display()
    );
    let server = Server::start(dir.path(), &yaml);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let page = loop {
        let page = get(server.addr, "/", &[]).unwrap().body;
        if !page.contains("<tr class=\"probe pending\"") || std::time::Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(page.contains("<span class=\"cert expired\">expired 2 days ago</span>"), "{page}");
    assert!(page.contains("<span class=\"cert soon\">"), "{page}");
}
