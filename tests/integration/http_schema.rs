//! Today's blackbox http schema: `http_headers`, `body_file`, CEL body checks, `oauth2`,
//! proxies (`no_proxy`, `proxy_from_environment`, `proxy_connect_header`,
//! `skip_resolve_phase_with_proxy`), HTTP/3, files that appear after load, and the corpus of
//! refused and accepted configurations in tests/data/http_schema.

use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The request head a raw server reads (up to the blank line).
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read_u8().await {
            Ok(byte) => head.push(byte),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&head).to_string()
}

/// A server answering every request with `body` (as JSON).
pub(crate) async fn fixed_server(body: &'static str) -> SocketAddr {
    raw_server(move |mut stream| async move {
        read_head(&mut stream).await;
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
    })
    .await
}

#[tokio::test]
async fn http_headers_send_values_secrets_and_files_after_headers() {
    let addr = http_server().await;
    let dir = tempfile::tempdir().unwrap();
    let key = write_file(dir.path(), "api-key", "key-from-file\n");
    let module = format!(
        r#"prober: http
http:
  headers:
    X-Plain: from-headers
  http_headers:
    X-Api-Key:
      files: ["{}"]
    X-Multi:
      values: [one, two]
      secrets: [s3cret-value]
  fail_if_body_not_matches_regexp:
    - "x-plain: from-headers"
    - "x-api-key: key-from-file\n"
    - "x-multi: one\nx-multi: two\nx-multi: s3cret-value\n""#,
        key.display()
    );
    let o = probe(&module, &format!("http://{addr}/echo")).await;
    assert!(o.success, "{:?}", o.failure);
    let log = o.log.join("\n");
    assert!(!log.contains("s3cret-value") && !log.contains("key-from-file"), "{log}");
}

#[tokio::test]
async fn files_missing_at_load_fail_the_probe_until_they_appear() {
    let addr = http_server().await;
    let dir = tempfile::tempdir().unwrap();
    let header = dir.path().join("token");
    let body = dir.path().join("body.json");
    let module = format!(
        r#"prober: http
http:
  method: POST
  body_file: "{}"
  http_headers:
    X-Token:
      files: ["{}"]
  fail_if_body_not_matches_regexp: ["body=from-a-file", "x-token: t-1"]"#,
        body.display(),
        header.display()
    );
    let prepared = prepare(&module);
    let target = format!("http://{addr}/echo");
    let timeout = std::time::Duration::from_secs(5);
    let o = lookout::probe::run(&prepared, &target, timeout).await;
    assert_eq!(reason(&o), "request_file");
    assert!(o.failure.as_ref().unwrap().message.contains("body.json"), "{:?}", o.failure);
    // As blackbox, the file is opened once the target is resolved.
    assert_eq!(o.value(&PROBE_IP_PROTOCOL), Some(4.0));
    std::fs::write(&body, "from-a-file").unwrap();
    let o = lookout::probe::run(&prepared, &target, timeout).await;
    assert_eq!(reason(&o), "request_file");
    assert!(o.failure.as_ref().unwrap().message.contains("token"), "{:?}", o.failure);
    std::fs::write(&header, "t-1\n").unwrap();
    let o = lookout::probe::run(&prepared, &target, timeout).await;
    assert!(o.success, "{:?}", o.failure);
}

#[tokio::test]
async fn missing_ca_file_fails_with_certificate_file_then_works() {
    let ca = Ca::new("schema CA");
    let leaf = ca.leaf("localhost", &["localhost"], -1, 30);
    let addr = https_server(vec![leaf.der.clone()], leaf.key_der(), None, false).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let module =
        format!("prober: http\nhttp:\n  tls_config:\n    ca_file: \"{}\"", ca_file.display());
    let prepared = prepare(&module);
    let target = format!("https://localhost:{}/", addr.port());
    let timeout = std::time::Duration::from_secs(5);
    let o = lookout::probe::run(&prepared, &target, timeout).await;
    assert_eq!(reason(&o), "certificate_file");
    std::fs::write(&ca_file, pem(&ca.der())).unwrap();
    let o = lookout::probe::run(&prepared, &target, timeout).await;
    assert!(o.success, "{:?}", o.failure);
}

#[tokio::test]
async fn cel_checks_over_a_json_body() {
    let json = fixed_server(r#"{"foo": "bar", "baz": "qux", "n": 3}"#).await;
    let target = format!("http://{json}/");
    let ok = probe(
        "prober: http\nhttp:\n  fail_if_body_json_not_matches_cel: \"body.foo == 'bar' && body.baz.startsWith('q')\"",
        &target,
    )
    .await;
    assert!(ok.success, "{:?}", ok.failure);
    assert_eq!(ok.value(&PROBE_FAILED_DUE_TO_CEL), Some(0.0));

    let matched =
        probe("prober: http\nhttp:\n  fail_if_body_json_matches_cel: \"body.n > 2\"", &target)
            .await;
    assert_eq!(reason(&matched), "body_cel");
    assert_eq!(matched.value(&PROBE_FAILED_DUE_TO_CEL), Some(1.0));

    let text = fixed_server("not json at all").await;
    let o = probe(
        "prober: http\nhttp:\n  fail_if_body_json_not_matches_cel: \"body.foo == 'bar'\"",
        &format!("http://{text}/"),
    )
    .await;
    assert_eq!(reason(&o), "body_cel");
    assert!(o.failure.as_ref().unwrap().message.contains("not JSON"), "{:?}", o.failure);

    // Without a CEL check the gauge is absent, as in blackbox.
    let plain = probe("prober: http", &target).await;
    assert!(family(&plain, &PROBE_FAILED_DUE_TO_CEL).is_none());
}

/// An OAuth2 token endpoint (`/token`, client `id-1` / `secret-1`, scopes `a b`, endpoint
/// parameter `audience=probe`) and a resource (`/protected`) that wants its token.
pub async fn oauth2_server(requests: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    oauth2_server_over(requests, None).await
}

/// [`oauth2_server`], over TLS with `tls`.
async fn oauth2_server_over(
    requests: Arc<Mutex<Vec<String>>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let requests = requests.clone();
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let requests = requests.clone();
                async move {
                    let path = request.uri().path().to_string();
                    let auth = request
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    let form: Vec<(String, String)> =
                        form_urlencoded::parse(&body).into_owned().collect();
                    requests.lock().unwrap().push(format!("{path} {auth}"));
                    let has = |k: &str, v: &str| form.iter().any(|(a, b)| a == k && b == v);
                    use base64::Engine;
                    let basic = format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode("id-1:secret-1")
                    );
                    let (status, reply) = match path.as_str() {
                        "/token"
                            if auth == basic
                                && has("grant_type", "client_credentials")
                                && has("scope", "a b")
                                && has("audience", "probe") =>
                        {
                            (
                                200,
                                r#"{"access_token":"tok-123","token_type":"bearer","expires_in":60}"#,
                            )
                        }
                        "/token" => (401, r#"{"error":"invalid_client"}"#),
                        "/protected" if auth == "Bearer tok-123" => (200, "welcome"),
                        _ => (401, "who are you"),
                    };
                    let mut r = Response::new(Full::new(Bytes::from(reply)));
                    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    Ok::<_, Infallible>(r)
                }
            });
            let tls = tls.clone();
            tokio::spawn(async move {
                let http = hyper::server::conn::http1::Builder::new();
                let _ = match tls {
                    Some(tls) => match tls.accept(stream).await {
                        Ok(stream) => http.serve_connection(TokioIo::new(stream), service).await,
                        Err(_) => return,
                    },
                    None => http.serve_connection(TokioIo::new(stream), service).await,
                };
            });
        }
    });
    addr
}

fn oauth2_module(addr: SocketAddr, secret: &str) -> String {
    format!(
        r#"prober: http
http:
  oauth2:
    client_id: id-1
    {secret}
    scopes: [a, b]
    token_url: http://{addr}/token
    endpoint_params:
      audience: probe"#
    )
}

#[tokio::test]
async fn oauth2_client_credentials() {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let addr = oauth2_server(requests.clone()).await;
    let target = format!("http://{addr}/protected");
    let o = probe(&oauth2_module(addr, "client_secret: secret-1"), &target).await;
    assert!(o.success, "{:?} {:?}", o.failure, requests.lock().unwrap());
    assert_eq!(o.value(&PROBE_HTTP_STATUS_CODE), Some(200.0));
    assert!(!o.log.join("\n").contains("tok-123"), "{:?}", o.log);

    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "secret", "secret-1\n");
    let module = oauth2_module(addr, &format!("client_secret_file: \"{}\"", file.display()));
    let o = probe(&module, &target).await;
    assert!(o.success, "{:?}", o.failure);

    let wrong = probe(&oauth2_module(addr, "client_secret: nope"), &target).await;
    assert_eq!(reason(&wrong), "oauth2");
    assert!(!wrong.failure.as_ref().unwrap().message.contains("nope"));
}

#[tokio::test]
async fn oauth2_token_url_over_https_with_its_own_tls_config() {
    let ca = Ca::new("token CA");
    let leaf = ca.leaf("localhost", &["localhost"], -1, 30);
    let tls = crate::peers::tls_acceptor(vec![leaf.der.clone()], leaf.key_der(), &[b"http/1.1"]);
    let tokens = oauth2_server_over(Arc::new(Mutex::new(Vec::new())), Some(tls)).await;
    let resource = oauth2_server(Arc::new(Mutex::new(Vec::new()))).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let module = |tls: &str| {
        format!(
            r#"prober: http
http:
  oauth2:
    client_id: id-1
    client_secret: secret-1
    scopes: [a, b]
    token_url: https://localhost:{}/token
    endpoint_params: {{audience: probe}}
    {tls}"#,
            tokens.port()
        )
    };
    let target = format!("http://{resource}/protected");
    let trusted = module(&format!("tls_config: {{ca_file: \"{}\"}}", ca_file.display()));
    let o = probe(&trusted, &target).await;
    assert!(o.success, "{:?} {:?}", o.failure, o.log);
    // The token request's TLS is not the probe's: the probed target is plain http.
    assert_eq!(o.value(&PROBE_HTTP_SSL), Some(0.0));
    assert!(family(&o, &PROBE_TLS_VERSION_INFO).is_none());
    let untrusted = probe(&module(""), &target).await;
    assert_eq!(reason(&untrusted), "oauth2");
}

/// A proxy that records each request head; CONNECT is tunnelled to the named host, any other
/// request answered by the proxy itself with "via proxy".
pub(crate) async fn recording_proxy(heads: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    raw_server(move |mut stream| {
        let heads = heads.clone();
        async move {
            let head = read_head(&mut stream).await;
            heads.lock().unwrap().push(head.clone());
            let first = head.lines().next().unwrap_or_default().to_string();
            if let Some(rest) = first.strip_prefix("CONNECT ") {
                let to = rest.split_whitespace().next().unwrap_or_default().to_string();
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&to).await else {
                    let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
            } else {
                let reply =
                    "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nvia proxy";
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        }
    })
    .await
}

#[tokio::test]
async fn proxy_connect_header_is_sent_with_connect() {
    let leaf = self_signed("localhost", &["localhost"]);
    let target = https_server(vec![leaf.der.clone()], leaf.key_der(), None, false).await;
    let heads = Arc::new(Mutex::new(Vec::new()));
    let proxy = recording_proxy(heads.clone()).await;
    let module = format!(
        r#"prober: http
http:
  proxy_url: http://{proxy}
  proxy_connect_header:
    Proxy-Authorization: ["Bearer proxy-token"]
  tls_config:
    insecure_skip_verify: true"#
    );
    let o = probe(&module, &format!("https://localhost:{}/", target.port())).await;
    assert!(o.success, "{:?}", o.failure);
    let heads = heads.lock().unwrap();
    assert!(heads[0].starts_with(&format!("CONNECT localhost:{} HTTP/1.1", target.port())));
    // Header names are case-insensitive; lookout writes them in lower case.
    let head = heads[0].to_ascii_lowercase();
    assert!(head.contains("\r\nproxy-authorization: bearer proxy-token\r\n"), "{heads:?}");
    assert!(!o.log.join("\n").contains("proxy-token"));
}

#[tokio::test]
async fn skip_resolve_phase_and_no_proxy() {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let proxy = recording_proxy(heads.clone()).await;
    // A name only the proxy knows: without skip_resolve_phase_with_proxy, lookout resolves it.
    let target = "http://only-the-proxy-knows.invalid/";
    let module = |extra: &str| format!("prober: http\nhttp:\n  proxy_url: http://{proxy}\n{extra}");
    let o = probe(&module(""), target).await;
    assert_eq!(reason(&o), "dns");

    let o = probe(&module("  skip_resolve_phase_with_proxy: true"), target).await;
    assert!(o.success, "{:?}", o.failure);
    assert!(family(&o, &PROBE_IP_PROTOCOL).is_none());
    assert!(
        heads.lock().unwrap()[0].starts_with("GET http://only-the-proxy-knows.invalid/ HTTP/1.1")
    );

    // no_proxy naming the host: it is reached directly (and so cannot be resolved).
    let o = probe(
        &module("  skip_resolve_phase_with_proxy: true\n  no_proxy: other.test,.invalid"),
        target,
    )
    .await;
    assert_eq!(reason(&o), "dns");
    let o = probe(&module("  skip_resolve_phase_with_proxy: true\n  no_proxy: other.test"), target)
        .await;
    assert!(o.success, "{:?}", o.failure);
}

#[test]
fn proxy_from_environment_with_once() {
    let addr = in_background(|| async {
        let heads = Arc::new(Mutex::new(Vec::new()));
        recording_proxy(heads).await
    });
    let dir = tempfile::tempdir().unwrap();
    let probes = write_file(
        dir.path(),
        "probes.yaml",
        r#"modules:
  env_proxy:
    prober: http
    http:
      proxy_from_environment: true
      skip_resolve_phase_with_proxy: true
      fail_if_body_not_matches_regexp: ["via proxy"]
probes:
  - name: through-env-proxy
    module: env_proxy
    target: http://only-the-proxy-knows.invalid/
"#,
    );
    let once = |proxy: &str| {
        std::process::Command::new(LOOKOUT)
            .current_dir(dir.path())
            .args(["--once", &format!("--config.probes={}", probes.display())])
            .env("HTTP_PROXY", proxy)
            .env_remove("http_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .unwrap()
    };
    let out = once(&format!("http://{addr}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let out = once(&format!("http://127.0.0.1:{}", closed_port()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0));
    assert!(stdout.contains("proxy"), "{stdout}");
}

/// An HTTP/3 server (quinn + h3) answering "hello over h3" with its certificate.
pub(crate) async fn h3_server(leaf: &Leaf) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der.clone()], leaf.key_der())
        .unwrap();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                let Ok(connection) = incoming.await else { return };
                let Ok(mut h3) =
                    h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(connection))
                        .await
                else {
                    return;
                };
                while let Ok(Some(resolver)) = h3.accept().await {
                    let Ok((request, mut stream)) = resolver.resolve_request().await else {
                        return;
                    };
                    let body = format!("hello over h3: {} {}", request.method(), request.uri());
                    let response = http::Response::builder().status(200).body(()).unwrap();
                    let _ = stream.send_response(response).await;
                    let _ = stream.send_data(Bytes::from(body)).await;
                    let _ = stream.finish().await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn http3_probe_over_quic() {
    let ca = Ca::new("h3 CA");
    let leaf = ca.leaf("localhost", &["localhost"], -1, 30);
    let addr = h3_server(&leaf).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let module = format!(
        r#"prober: http
http:
  enable_http3: true
  enable_http2: false
  valid_http_versions: ["HTTP/3.0"]
  fail_if_body_not_matches_regexp: ["hello over h3: GET https://localhost:{port}/x"]
  tls_config:
    ca_file: "{}""#,
        ca_file.display(),
        port = addr.port()
    );
    // An http:// target is probed as https://, as blackbox does.
    let o = probe(&module, &format!("http://localhost:{}/x", addr.port())).await;
    assert!(o.success, "{:?} {:?}", o.failure, o.log);
    assert_eq!(o.value(&PROBE_HTTP_VERSION), Some(3.0));
    assert_eq!(o.value(&PROBE_HTTP_SSL), Some(1.0));
    assert_eq!(o.value(&PROBE_HTTP_STATUS_CODE), Some(200.0));
    assert!(o.value(&PROBE_SSL_EARLIEST_CERT_EXPIRY).is_some());

    // A certificate nobody trusts fails verification, as over TCP.
    let untrusted = self_signed("localhost", &["localhost"]);
    let other = h3_server(&untrusted).await;
    let o = probe(&module, &format!("https://localhost:{}/x", other.port())).await;
    assert_eq!(reason(&o), "tls_verify");
}

#[test]
fn http3_through_once() {
    let ca = Ca::new("h3 once CA");
    let leaf = ca.leaf("localhost", &["localhost"], -1, 30);
    let addr = in_background(move || async move { h3_server(&leaf).await });
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let probes = write_file(
        dir.path(),
        "probes.yaml",
        format!(
            r#"modules:
  h3:
    prober: http
    http:
      enable_http3: true
      enable_http2: false
      valid_http_versions: ["HTTP/3.0"]
      tls_config: {{ca_file: "{}"}}
probes:
  - name: over-quic
    module: h3
    target: https://localhost:{}/
"#,
            ca_file.display(),
            addr.port()
        ),
    );
    let out = std::process::Command::new(LOOKOUT)
        .current_dir(dir.path())
        .args(["--once", "--output=prometheus", &format!("--config.probes={}", probes.display())])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let version = stdout.lines().find(|l| l.starts_with("probe_http_version{"));
    assert!(version.is_some_and(|l| l.ends_with(" 3")), "{stdout}");
}

#[test]
fn new_keys_through_probe_endpoint() {
    let json = in_background(|| fixed_server(r#"{"status": "up"}"#));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        r#"modules:
  json_up:
    prober: http
    http:
      http_headers:
        X-Probe:
          secrets: [hidden-in-debug]
      fail_if_body_json_not_matches_cel: "body.status == 'up'"
  json_down:
    prober: http
    http:
      fail_if_body_json_matches_cel: "body.status == 'up'"
"#,
    );
    let up =
        get(server.addr, &format!("/probe?module=json_up&target=http://{json}/&debug=true"), &[])
            .unwrap();
    assert_eq!(sample_value(&up.body, "probe_success"), Some(1.0), "{}", up.body);
    assert!(!up.body.contains("hidden-in-debug"), "{}", up.body);
    let down =
        get(server.addr, &format!("/probe?module=json_down&target=http://{json}/"), &[]).unwrap();
    assert_eq!(sample_value(&down.body, "probe_success"), Some(0.0), "{}", down.body);
    assert_eq!(sample_value(&down.body, "probe_failed_due_to_cel"), Some(1.0));
    assert!(
        down.body.contains(r#"lookout_probe_failure_reason{reason="body_cel"} 1"#),
        "{}",
        down.body
    );
}

/// tests/data/http_schema: `refused-*.yaml` files start with `# LINE:COL message`, which
/// `lookout check` must report; `accepted-*.yaml` files must load.
#[test]
fn http_config_corpus() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/http_schema");
    let mut files: Vec<_> =
        std::fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let (mut refused, mut accepted) = (0, 0);
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let out = std::process::Command::new(LOOKOUT)
            .current_dir(std::env::temp_dir())
            .args(["check", &format!("--config.probes={}", path.display())])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if name.starts_with("refused-") {
            let text = std::fs::read_to_string(&path).unwrap();
            let expected = text.lines().next().unwrap().strip_prefix("# ").unwrap();
            let (place, message) = expected.split_once(' ').unwrap();
            assert_eq!(out.status.code(), Some(2), "{name}: {err}");
            assert!(
                err.contains(&format!("{name}:{place}:")) && err.contains(message),
                "{name}: expected {expected:?} in {err}"
            );
            refused += 1;
        } else {
            assert_eq!(out.status.code(), Some(0), "{name}: {err}");
            // Files named that do not exist yet are warned about, with their place.
            if name == "accepted-missing-tls-files.yaml" {
                for (place, key) in
                    [("7:18", "ca_file"), ("8:20", "cert_file"), ("9:19", "key_file")]
                {
                    assert!(
                        err.contains(&format!(
                            "{name}:{place}: key 'modules.t.http.tls_config.{key}'"
                        )) && err.contains("does not exist"),
                        "{err}"
                    );
                }
            }
            accepted += 1;
        }
    }
    assert!(refused >= 10 && accepted >= 10, "{refused} refused, {accepted} accepted");
}

/// Every http module of upstream's shipped example.yml and blackbox.yml loads unchanged (the
/// files' other probers are checked where they are built).
#[test]
fn upstream_shipped_http_modules_load() {
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/blackbox-configs");
    let dir = tempfile::tempdir().unwrap();
    for (file, expected) in [("example.yml", 12), ("blackbox.yml", 3)] {
        let text = std::fs::read_to_string(corpus.join(file)).unwrap();
        // Modules are the blocks indented by two spaces under `modules:`.
        let mut blocks: Vec<Vec<&str>> = Vec::new();
        for line in text.lines().skip_while(|l| !l.starts_with("modules:")).skip(1) {
            if line.starts_with("  ") && !line.starts_with("   ") && !line.trim().starts_with('#') {
                blocks.push(Vec::new());
            }
            if let Some(block) = blocks.last_mut() {
                block.push(line);
            }
        }
        let http: Vec<String> = blocks
            .iter()
            .filter(|b| b.iter().any(|l| l.trim() == "prober: http"))
            .map(|b| b.join("\n"))
            .collect();
        assert_eq!(http.len(), expected, "{file}");
        let path = write_file(dir.path(), file, format!("modules:\n{}\n", http.join("\n")));
        let out = std::process::Command::new(LOOKOUT)
            .args(["check", &format!("--config.probes={}", path.display())])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{file}: {err}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{expected} modules")));
    }
}
