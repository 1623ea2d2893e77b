//! `--web.config.file`: TLS with client certificates and bcrypt basic auth on lookout's own
//! endpoint, with hashes made by `htpasswd -B` as an operator would.

use crate::common::*;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
    for path in ["/", "/api/v1/status", "/badge/any/status.svg", "/badge/any/uptime.svg"] {
        assert_eq!(get(server.addr, path, &[]).unwrap().status, 401, "{path} is protected");
    }
    let api = get(server.addr, "/api/v1/status", &[("Authorization", &basic("alice", "s3cret"))]);
    assert_eq!(api.unwrap().status, 200);
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

/// An htpasswd hash of `password` at bcrypt `cost`.
fn htpasswd_cost(user: &str, password: &str, cost: u32) -> String {
    let out = Command::new("htpasswd")
        .args(["-nbB", "-C", &cost.to_string(), user, password])
        .output()
        .expect("htpasswd (Debian package apache2-utils; .ci/run installs it)");
    let line = String::from_utf8(out.stdout).unwrap();
    line.trim().split_once(':').unwrap().1.to_string()
}

/// A well-formed hash of `cost` that no password matches: checking it costs what the cost says.
fn hash_of_cost(cost: u32) -> String {
    let cheap = htpasswd_cost("x", "x", 4);
    format!("$2y${cost:02}${}", &cheap[7..])
}

#[test]
fn bcrypt_costs_above_16_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let probes = write_file(dir.path(), "probes.yaml", "modules: {}\n");
    let web = format!("basic_auth_users:\n  alice: '{}'\n", hash_of_cost(17));
    let flags = [
        format!("--config.probes={}", probes.display()),
        "--web.listen-address=127.0.0.1:0".into(),
    ];
    let case = [(web.as_str(), "2:10", "key 'basic_auth_users.alice': the bcrypt cost")];
    assert_config_errors(dir.path(), "web.yml", "--web.config.file", &flags, &case);
    // `check` validates the web configuration too.
    let mut check = flags.to_vec();
    check.insert(0, "check".into());
    assert_config_errors(dir.path(), "web.yml", "--web.config.file", &check, &case);
    let fine = write_file(
        dir.path(),
        "fine.yml",
        format!("basic_auth_users:\n  alice: '{}'\n", hash_of_cost(16)),
    );
    let out = Command::new(LOOKOUT)
        .args(&check)
        .arg(format!("--web.config.file={}", fine.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn shutdown_does_not_wait_for_a_password_check() {
    let dir = tempfile::tempdir().unwrap();
    // One check of a cost-16 hash takes seconds of a core.
    let server =
        start(dir.path(), &format!("basic_auth_users:\n  alice: '{}'\n", hash_of_cost(16)));
    let addr = server.addr;
    std::thread::spawn(move || {
        get(addr, "/metrics", &[("Authorization", &basic("alice", "guess"))])
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut server = server;
    let stopping = Instant::now();
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        stopping.elapsed() < Duration::from_millis(1500),
        "shutdown took {:?}",
        stopping.elapsed()
    );
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The time `get` takes for `/metrics` with these credentials, `n` times.
fn timings(addr: std::net::SocketAddr, user: &str, password: &str, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let started = Instant::now();
            let reply =
                get(addr, "/metrics", &[("Authorization", &basic(user, password))]).unwrap();
            assert_eq!(reply.status, 401);
            started.elapsed()
        })
        .collect()
}

#[test]
fn unknown_users_take_as_long_as_wrong_passwords() {
    for (cost, samples) in [(4, 9), (12, 5)] {
        let dir = tempfile::tempdir().unwrap();
        let hash = htpasswd_cost("alice", "right", cost);
        let server = start(dir.path(), &format!("basic_auth_users:\n  alice: '{hash}'\n"));
        let wrong = median(timings(server.addr, "alice", "wrong", samples));
        let unknown = median(timings(server.addr, "mallory", "wrong", samples));
        let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
        assert!(
            (1.0 / 3.0..=3.0).contains(&ratio),
            "cost {cost}: unknown user {unknown:?}, wrong password {wrong:?}"
        );
    }
}

#[test]
fn passwords_longer_than_72_bytes_are_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let password = "p".repeat(72);
    let hash = htpasswd_cost("alice", &password, 4);
    let server = start(dir.path(), &format!("basic_auth_users:\n  alice: '{hash}'\n"));
    let status = |password: &str| {
        get(server.addr, "/metrics", &[("Authorization", &basic("alice", password))])
            .unwrap()
            .status
    };
    assert_eq!(status(&password), 200);
    assert_eq!(status(&format!("{password}and more")), 401, "bcrypt would read only 72 bytes");
}

/// The number of threads of process `pid`.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).unwrap().trim().parse().unwrap()
}

#[test]
fn a_scrape_gets_through_a_flood_of_wrong_passwords() {
    let dir = tempfile::tempdir().unwrap();
    // htpasswd's default cost, 5, as most users' hashes have.
    let server = start(
        dir.path(),
        &format!("basic_auth_users:\n  prom: '{}'\n", htpasswd("prom", "scrape")),
    );
    let addr = server.addr;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new()));
    let flood = {
        let (stop, statuses) = (stop.clone(), statuses.clone());
        std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..400 {
                    let (stop, statuses) = (stop.clone(), statuses.clone());
                    tasks.spawn(async move {
                        let request = format!(
                            "GET /metrics HTTP/1.0\r\nAuthorization: {}\r\n\r\n",
                            basic("prom", "wrong")
                        );
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                                continue;
                            };
                            let _ = s.write_all(request.as_bytes()).await;
                            let mut answer = Vec::new();
                            let _ = s.read_to_end(&mut answer).await;
                            let status = String::from_utf8_lossy(&answer)
                                .split_whitespace()
                                .nth(1)
                                .and_then(|c| c.parse().ok())
                                .unwrap_or(0);
                            *statuses.lock().unwrap().entry(status).or_default() += 1;
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
            });
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let during = threads(server.child.id());
    let right = [("Authorization", basic("prom", "scrape"))];
    let right = [(right[0].0, right[0].1.as_str())];
    let started = Instant::now();
    let first = get(addr, "/metrics", &right).unwrap();
    let first_took = started.elapsed();
    let cached = median(
        (0..5)
            .map(|_| {
                let started = Instant::now();
                assert_eq!(get(addr, "/metrics", &right).unwrap().status, 200);
                started.elapsed()
            })
            .collect(),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    let statuses = statuses.lock().unwrap().clone();
    assert_eq!(first.status, 200);
    assert!(first_took < Duration::from_secs(3), "the first right password took {first_took:?}");
    assert!(cached < Duration::from_millis(500), "a remembered password took {cached:?}");
    assert!(during < 64, "{during} threads: password checks are not bounded");
    assert!(statuses.get(&401).is_some_and(|n| *n > 400), "{statuses:?}");
    assert_eq!(
        statuses.get(&429),
        None,
        "the queue is long enough for 400 connections: {statuses:?}"
    );
}

/// `lookout healthcheck` with `flags` (and `--web.listen-address=addr`): its exit code.
fn healthcheck(addr: std::net::SocketAddr, flags: &[String]) -> Option<i32> {
    let out = Command::new(LOOKOUT)
        .arg("healthcheck")
        .arg(format!("--web.listen-address={addr}"))
        .args(flags)
        .output()
        .unwrap();
    out.status.code()
}

#[test]
fn healthcheck_follows_the_web_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let probes = write_file(dir.path(), "probes.yaml", "modules: {}\n");
    let plain = Server::spawn(dir.path(), &[format!("--config.probes={}", probes.display())]);
    assert_eq!(healthcheck(plain.addr, &[]), Some(0));
    let port = plain.addr.port();
    assert_eq!(healthcheck(format!("0.0.0.0:{port}").parse().unwrap(), &[]), Some(0));
    drop(plain);
    assert_eq!(
        healthcheck(format!("127.0.0.1:{port}").parse().unwrap(), &[]),
        Some(1),
        "nothing there"
    );

    // Basic auth: a 401 is an answer, so lookout is alive.
    let auth = format!("basic_auth_users:\n  prom: '{}'\n", htpasswd_cost("prom", "scrape", 4));
    let server = start(dir.path(), &auth);
    let web = format!("--web.config.file={}", dir.path().join("web.yml").display());
    assert_eq!(healthcheck(server.addr, std::slice::from_ref(&web)), Some(0));
    drop(server);

    // TLS requiring a client certificate, and basic auth.
    let ca = Ca::new("Health CA");
    let server_cert = ca.leaf("localhost", &["localhost"], -1, 60);
    let client = ca.leaf("docker", &[], -1, 60);
    let cert = write_file(dir.path(), "server.pem", server_cert.pem());
    let key = write_file(dir.path(), "server.key", server_cert.key.serialize_pem());
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let client_cert = write_file(dir.path(), "client.pem", client.pem());
    let client_key = write_file(dir.path(), "client.key", client.key.serialize_pem());
    let tls = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n{auth}",
        cert.display(),
        key.display(),
        ca_file.display()
    );
    let server = start(dir.path(), &tls);
    let with_client = [
        web.clone(),
        format!("--healthcheck.cert-file={}", client_cert.display()),
        format!("--healthcheck.key-file={}", client_key.display()),
    ];
    assert_eq!(healthcheck(server.addr, &with_client), Some(0));
    assert_eq!(
        healthcheck(server.addr, std::slice::from_ref(&web)),
        Some(1),
        "no client certificate"
    );
    assert_eq!(healthcheck(server.addr, &[]), Some(1), "plain HTTP to a TLS port");
}

#[test]
fn dockerfile_health_check_uses_the_healthcheck_command() {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let check = dockerfile.split("HEALTHCHECK").nth(1).unwrap().split("ENTRYPOINT").next().unwrap();
    assert!(check.contains("\"healthcheck\"") && !check.contains("curl"), "{check}");
}
