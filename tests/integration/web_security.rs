//! `--web.config.file`: TLS with client certificates and bcrypt basic auth on lookout's own
//! endpoint, with hashes made by `htpasswd -B` as an operator would.

use crate::common::*;
use std::process::Command;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn htpasswd(user: &str, password: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-nbB", user, password])
        .output()
        .expect("htpasswd (Debian package apache2-utils; .ci/run installs it)");
    let line = String::from_utf8(out.stdout).unwrap();
    line.trim().split_once(':').unwrap().1.to_string()
}

fn start(dir: &std::path::Path, web_config: &str) -> Server {
    let web = write_file(dir, "web.yml", web_config);
    let probes = write_file(dir, "probes.yaml", "modules: {}\n");
    Server::spawn(
        dir,
        &[
            format!("--config.probes={}", probes.display()),
            format!("--web.config.file={}", web.display()),
        ],
    )
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn basic_auth_on_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let hash = htpasswd("alice", "s3cret");
    let server = start(dir.path(), &format!("basic_auth_users:\n  alice: '{hash}'\n"));
    assert_eq!(get(server.addr, "/metrics", &[]).unwrap().status, 401);
    let wrong =
        get(server.addr, "/metrics", &[("Authorization", &basic("alice", "nope"))]).unwrap();
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.headers.to_ascii_lowercase().contains("www-authenticate: basic"),
        "{}",
        wrong.headers
    );
    assert_eq!(
        get(server.addr, "/metrics", &[("Authorization", &basic("mallory", "s3cret"))])
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        get(server.addr, "/-/healthy", &[]).unwrap().status,
        401,
        "every endpoint is protected"
    );
    for _ in 0..2 {
        let ok =
            get(server.addr, "/metrics", &[("Authorization", &basic("alice", "s3cret"))]).unwrap();
        assert_eq!(ok.status, 200);
        assert!(
            ok.body.contains("lookout_http_requests_total{handler=\"unauthorized\",code=\"401\"}"),
            "{}",
            ok.body
        );
    }
}

async fn tls_get(
    addr: std::net::SocketAddr,
    ca: &Ca,
    client: Option<&Leaf>,
    auth: Option<String>,
) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(c) => builder.with_client_auth_cert(vec![c.der.clone()], c.key_der()).unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut tls =
        connector.connect("localhost".try_into().unwrap(), tcp).await.map_err(|e| e.to_string())?;
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    tls.write_all(format!("GET /metrics HTTP/1.0\r\nHost: localhost\r\n{auth}\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn tls_with_client_certificates_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Web CA");
    let server_cert = ca.leaf("localhost", &["localhost"], -1, 60);
    let client = ca.leaf("prometheus", &[], -1, 60);
    let stranger = Ca::new("Other CA").leaf("intruder", &[], -1, 60);
    let cert = write_file(dir.path(), "server.pem", server_cert.pem());
    let key = write_file(dir.path(), "server.key", server_cert.key.serialize_pem());
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let hash = htpasswd("prom", "scrape");
    let config = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n  min_version: TLS12\nbasic_auth_users:\n  prom: '{hash}'\n",
        cert.display(),
        key.display(),
        ca_file.display()
    );
    let server = start(dir.path(), &config);
    let ok = tls_get(server.addr, &ca, Some(&client), Some(basic("prom", "scrape"))).await.unwrap();
    assert!(ok.starts_with("HTTP/1.0 200") && ok.contains("lookout_build_info"), "{ok}");
    let no_auth = tls_get(server.addr, &ca, Some(&client), None).await.unwrap();
    assert!(
        no_auth.starts_with("HTTP/1.0 401") && !no_auth.contains("lookout_build_info"),
        "{no_auth}"
    );
    let no_cert = tls_get(server.addr, &ca, None, Some(basic("prom", "scrape"))).await;
    assert!(!no_cert.as_ref().is_ok_and(|body| body.contains("lookout_build_info")), "{no_cert:?}");
    let wrong_cert =
        tls_get(server.addr, &ca, Some(&stranger), Some(basic("prom", "scrape"))).await;
    assert!(
        !wrong_cert.as_ref().is_ok_and(|body| body.contains("lookout_build_info")),
        "{wrong_cert:?}"
    );
    // Plain HTTP on the TLS port gets no metrics.
    let plain = get(server.addr, "/metrics", &[("Authorization", &basic("prom", "scrape"))]);
    assert!(plain.as_ref().is_none_or(|r| !r.body.contains("lookout_build_info")));
}

#[test]
fn web_config_errors_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let probes = write_file(dir.path(), "probes.yaml", "modules: {}\n");
    let cases = [
        ("basic_auth_users:\n  alice: plaintext\n", "2:10", "not a bcrypt hash"),
        ("tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: /nonexistent.key\n", "2:14", "/nonexistent.pem"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n", "4:21", "RequireAnyClientCert"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
            "4:21",
            "needs client_ca_file",
        ),
        ("basic_auth_user: {}\n", "1:1", "unknown field"),
    ];
    let flags = [
        format!("--config.probes={}", probes.display()),
        "--web.listen-address=127.0.0.1:0".into(),
    ];
    assert_config_errors(dir.path(), "web.yml", "--web.config.file", &flags, &cases);
}
