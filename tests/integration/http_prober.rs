//! Every option of `prober: http`, against a loopback hyper server.

use crate::common::*;

#[tokio::test]
async fn plain_get_reports_blackbox_metrics() {
    let addr = http_server().await;
    let o = probe("prober: http", &format!("http://{addr}/")).await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(o.value(&PROBE_HTTP_STATUS_CODE), Some(200.0));
    assert_eq!(o.value(&PROBE_HTTP_VERSION), Some(1.1));
    assert_eq!(o.value(&PROBE_HTTP_CONTENT_LENGTH), Some(11.0));
    assert_eq!(o.value(&PROBE_HTTP_UNCOMPRESSED_BODY_LENGTH), Some(11.0));
    assert_eq!(o.value(&PROBE_HTTP_SSL), Some(0.0));
    assert_eq!(o.value(&PROBE_HTTP_REDIRECTS), Some(0.0));
    assert_eq!(o.value(&PROBE_IP_PROTOCOL), Some(4.0));
    assert_eq!(o.value(&PROBE_FAILED_DUE_TO_REGEX), Some(0.0));
    let phases: Vec<String> = label_sets(&o, &PROBE_HTTP_DURATION_SECONDS)
        .iter()
        .map(|l| label(l, "phase").to_string())
        .collect();
    assert_eq!(phases, ["resolve", "connect", "tls", "processing", "transfer"]);
    assert!(family(&o, &PROBE_FAILURE_REASON).is_none());
}

#[tokio::test]
async fn target_without_scheme_means_http() {
    let addr = http_server().await;
    let o = probe("prober: http", &format!("{addr}/")).await;
    assert!(o.success, "{:?}", o.failure);
}

#[tokio::test]
async fn valid_status_codes() {
    let addr = http_server().await;
    let o = probe("prober: http", &format!("http://{addr}/status?code=404")).await;
    assert_eq!(reason(&o), "status_code");
    assert_eq!(o.value(&PROBE_HTTP_STATUS_CODE), Some(404.0));
    let labels = label_sets(&o, &PROBE_FAILURE_REASON);
    assert_eq!(label(&labels[0], "reason"), "status_code");
    let o = probe(
        "prober: http\nhttp:\n  valid_status_codes: [404, 410]",
        &format!("http://{addr}/status?code=404"),
    )
    .await;
    assert!(o.success, "{:?}", o.failure);
    let o =
        probe("prober: http\nhttp:\n  valid_status_codes: [404]", &format!("http://{addr}/")).await;
    assert_eq!(reason(&o), "status_code");
}

#[tokio::test]
async fn valid_http_versions() {
    let addr = http_server().await;
    let ok =
        probe("prober: http\nhttp:\n  valid_http_versions: [HTTP/1.1]", &format!("http://{addr}/"))
            .await;
    assert!(ok.success, "{:?}", ok.failure);
    let o =
        probe("prober: http\nhttp:\n  valid_http_versions: [HTTP/2.0]", &format!("http://{addr}/"))
            .await;
    assert_eq!(reason(&o), "http_version");
}

#[tokio::test]
async fn method_headers_and_body_are_sent() {
    let addr = http_server().await;
    let module = r#"prober: http
http:
  method: POST
  body: payload-123
  headers:
    X-Custom: "yes"
    User-Agent: probe-test
  fail_if_body_not_matches_regexp:
    - "method=POST"
    - "body=payload-123"
    - "x-custom: yes"
    - "user-agent: probe-test"
    - "content-length: 11""#;
    let o = probe(module, &format!("http://{addr}/echo")).await;
    assert!(o.success, "{:?}", o.failure);
}

#[tokio::test]
async fn default_user_agent_and_host() {
    let addr = http_server().await;
    let module = format!("prober: http\nhttp:\n  fail_if_body_not_matches_regexp: ['user-agent: lookout/', 'host: {addr}']");
    let o = probe(&module, &format!("http://{addr}/echo")).await;
    assert!(o.success, "{:?}", o.failure);
}

#[tokio::test]
async fn body_size_limit() {
    let addr = http_server().await;
    let o = probe(
        "prober: http\nhttp:\n  body_size_limit: 1KB",
        &format!("http://{addr}/big?bytes=100000"),
    )
    .await;
    assert_eq!(reason(&o), "body_too_large");
    let o = probe(
        "prober: http\nhttp:\n  body_size_limit: 1KB",
        &format!("http://{addr}/big?bytes=1000"),
    )
    .await;
    assert!(o.success, "{:?}", o.failure);
    // Without a limit and without regexes the body is streamed and counted, not kept.
    let o = probe("prober: http", &format!("http://{addr}/big?bytes=5000000")).await;
    assert!(o.success);
    assert_eq!(o.value(&PROBE_HTTP_UNCOMPRESSED_BODY_LENGTH), Some(5_000_000.0));
}

/// The largest limit a module can set does not overflow the one byte read past it.
#[tokio::test]
async fn body_size_limit_at_its_maximum() {
    let addr = http_server().await;
    let limit = "body_size_limit: 18446744073709551615";
    let o = probe(&format!("prober: http\nhttp:\n  {limit}"), &format!("http://{addr}/")).await;
    assert!(o.success, "{:?}", o.failure);
    let gzip = format!("prober: http\nhttp:\n  {limit}\n  compression: gzip\n  headers: {{ Accept-Encoding: gzip }}\n  fail_if_body_not_matches_regexp: ['hello compressed world']");
    let o = probe(&gzip, &format!("http://{addr}/gzip")).await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(o.value(&PROBE_HTTP_UNCOMPRESSED_BODY_LENGTH), Some(46.0));
}

#[tokio::test]
async fn redirects_followed_counted_and_optional() {
    let addr = http_server().await;
    let o = probe("prober: http", &format!("http://{addr}/redirect?n=3")).await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(o.value(&PROBE_HTTP_REDIRECTS), Some(3.0));
    let o = probe(
        "prober: http\nhttp:\n  follow_redirects: false",
        &format!("http://{addr}/redirect?n=3"),
    )
    .await;
    assert_eq!(reason(&o), "status_code");
    assert_eq!(o.value(&PROBE_HTTP_STATUS_CODE), Some(302.0));
    // A redirect not followed still counts, as in blackbox.
    assert_eq!(o.value(&PROBE_HTTP_REDIRECTS), Some(1.0));
    let o = probe(
        "prober: http\nhttp:\n  follow_redirects: false\n  valid_status_codes: [302]",
        &format!("http://{addr}/redirect?n=1"),
    )
    .await;
    assert!(o.success);
}

#[tokio::test]
async fn redirect_loop_stops_at_ten() {
    let addr = http_server().await;
    let o = probe("prober: http", &format!("http://{addr}/loop")).await;
    assert_eq!(reason(&o), "redirect_limit");
    assert_eq!(o.value(&PROBE_HTTP_REDIRECTS), Some(11.0));
    // The last response is reported, as blackbox does.
    assert_eq!(o.value(&PROBE_HTTP_STATUS_CODE), Some(302.0));
    assert_eq!(o.value(&PROBE_HTTP_CONTENT_LENGTH), Some(0.0));
    assert_eq!(o.value(&PROBE_HTTP_VERSION), Some(1.1));
}

#[tokio::test]
async fn fail_if_not_ssl_on_plain_http() {
    let addr = http_server().await;
    let o = probe("prober: http\nhttp:\n  fail_if_not_ssl: true", &format!("http://{addr}/")).await;
    assert_eq!(reason(&o), "ssl_required");
    let o = probe("prober: http\nhttp:\n  fail_if_ssl: true", &format!("http://{addr}/")).await;
    assert!(o.success);
}

#[tokio::test]
async fn body_regexes() {
    let addr = http_server().await;
    let o = probe(
        "prober: http\nhttp:\n  fail_if_body_matches_regexp: ['hel+o']",
        &format!("http://{addr}/"),
    )
    .await;
    assert_eq!(reason(&o), "body_regex");
    assert_eq!(o.value(&PROBE_FAILED_DUE_TO_REGEX), Some(1.0));
    let o = probe(
        "prober: http\nhttp:\n  fail_if_body_not_matches_regexp: ['goodbye']",
        &format!("http://{addr}/"),
    )
    .await;
    assert_eq!(reason(&o), "body_regex");
    let o = probe(
        "prober: http\nhttp:\n  fail_if_body_not_matches_regexp: ['^hello']\n  fail_if_body_matches_regexp: ['error']",
        &format!("http://{addr}/"),
    )
    .await;
    assert!(o.success);
    assert_eq!(o.value(&PROBE_FAILED_DUE_TO_REGEX), Some(0.0));
}

#[tokio::test]
async fn header_regexes() {
    let addr = http_server().await;
    let url = format!("http://{addr}/headers?X-Test=abc123");
    let matches =
        "prober: http\nhttp:\n  fail_if_header_matches:\n    - header: X-Test\n      regexp: 'abc'";
    let o = probe(matches, &url).await;
    assert_eq!(reason(&o), "header_regex");
    assert_eq!(o.value(&PROBE_FAILED_DUE_TO_REGEX), Some(1.0));
    let not_matches = "prober: http\nhttp:\n  fail_if_header_not_matches:\n    - header: x-test\n      regexp: '^xyz'";
    assert_eq!(reason(&probe(not_matches, &url).await), "header_regex");
    let good = "prober: http\nhttp:\n  fail_if_header_not_matches:\n    - header: X-Test\n      regexp: '^abc[0-9]+$'";
    assert!(probe(good, &url).await.success);
    let missing = "prober: http\nhttp:\n  fail_if_header_not_matches:\n    - header: X-Absent\n      regexp: '.*'";
    assert_eq!(reason(&probe(missing, &url).await), "header_regex");
    let allowed = "prober: http\nhttp:\n  fail_if_header_matches:\n    - header: X-Absent\n      regexp: '.*'\n      allow_missing: true";
    assert!(probe(allowed, &url).await.success);
}

#[tokio::test]
async fn last_modified_header() {
    let addr = http_server().await;
    let url =
        format!("http://{addr}/headers?Last-Modified=Wed,%2021%20Oct%202015%2007:28:00%20GMT");
    let o = probe("prober: http", &url).await;
    assert_eq!(o.value(&PROBE_HTTP_LAST_MODIFIED_TIMESTAMP_SECONDS), Some(1_445_412_480.0));
}

#[tokio::test]
async fn ip_protocol_preference_and_fallback() {
    let addr = http_server().await;
    let o = probe("prober: http\nhttp:\n  preferred_ip_protocol: ip6", &format!("http://{addr}/"))
        .await;
    assert!(o.success, "falls back to IPv4: {:?}", o.failure);
    assert_eq!(o.value(&PROBE_IP_PROTOCOL), Some(4.0));
    let o = probe(
        "prober: http\nhttp:\n  preferred_ip_protocol: ip6\n  ip_protocol_fallback: false",
        &format!("http://{addr}/"),
    )
    .await;
    assert_eq!(reason(&o), "dns");
    let o = probe(
        "prober: http\nhttp:\n  preferred_ip_protocol: ip4",
        &format!("http://localhost:{}/", addr.port()),
    )
    .await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(o.value(&PROBE_IP_PROTOCOL), Some(4.0));
    assert_eq!(
        o.value(&PROBE_IP_ADDR_HASH),
        Some(3_668_918_509.0),
        "as blackbox_exporter reports it"
    );
}

#[tokio::test]
async fn authentication_headers() {
    let addr = http_server().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = write_file(dir.path(), "secret", "from-file\n");
    let url = format!("http://{addr}/echo");
    let cases = [
        (
            "basic_auth:\n    username: user\n    password: pass".to_string(),
            "authorization: Basic dXNlcjpwYXNz".to_string(),
        ),
        (
            format!("basic_auth:\n    username: user\n    password_file: {}", secret.display()),
            "authorization: Basic dXNlcjpmcm9tLWZpbGU=".into(),
        ),
        ("bearer_token: tok123".into(), "authorization: Bearer tok123".into()),
        (
            format!("bearer_token_file: {}", secret.display()),
            "authorization: Bearer from-file".into(),
        ),
        (
            "authorization:\n    type: Token\n    credentials: abc".into(),
            "authorization: Token abc".into(),
        ),
        (
            format!("authorization:\n    credentials_file: {}", secret.display()),
            "authorization: Bearer from-file".into(),
        ),
    ];
    for (auth, expected) in cases {
        let module = format!(
            "prober: http\nhttp:\n  {auth}\n  fail_if_body_not_matches_regexp: ['{expected}']"
        );
        let o = probe(&module, &url).await;
        assert!(o.success, "{auth}: {:?}", o.failure);
    }
    let missing = "prober: http\nhttp:\n  bearer_token_file: /nonexistent/token";
    assert_eq!(reason(&probe(missing, &url).await), "credentials");
}

#[tokio::test]
async fn compression_is_decoded_when_asked_for() {
    let addr = http_server().await;
    for kind in ["gzip", "deflate", "br"] {
        // As blackbox: `compression` decodes; asking for it is the Accept-Encoding header's job.
        let module = format!("prober: http\nhttp:\n  compression: {kind}\n  headers: {{ Accept-Encoding: {kind} }}\n  fail_if_body_not_matches_regexp: ['hello compressed world']");
        let o = probe(&module, &format!("http://{addr}/{kind}")).await;
        assert!(o.success, "{kind}: {:?}", o.failure);
        assert_eq!(o.value(&PROBE_HTTP_UNCOMPRESSED_BODY_LENGTH), Some(46.0), "{kind}");
        assert!(
            o.value(&PROBE_HTTP_CONTENT_LENGTH).unwrap() != 46.0,
            "{kind}: content length is the compressed size"
        );
    }
    let identity = probe(
        "prober: http\nhttp:\n  compression: identity\n  fail_if_body_not_matches_regexp: ['body=']",
        &format!("http://{addr}/echo"),
    )
    .await;
    assert!(identity.success, "{:?}", identity.failure);
    // A body that is not in the configured encoding fails the probe, as in blackbox.
    let o = probe("prober: http\nhttp:\n  compression: gzip", &format!("http://{addr}/")).await;
    assert_eq!(reason(&o), "decompression");
    // Without the header, nothing asks the server to compress (this one then answers 406).
    let o = probe("prober: http\nhttp:\n  compression: gzip", &format!("http://{addr}/gzip")).await;
    assert!(!o.success);
    assert_eq!(o.value(&PROBE_HTTP_STATUS_CODE), Some(406.0));
}

/// A forward proxy that records each request line and tunnels or forwards it.
async fn proxy(seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw_server(move |mut client| {
        let seen = seen.clone();
        async move {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if client.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let line = text.lines().next().unwrap_or_default().to_string();
            seen.lock().unwrap().push(line.clone());
            let target = line.split_whitespace().nth(1).unwrap_or_default().to_string();
            if line.starts_with("CONNECT ") {
                let mut upstream = tokio::net::TcpStream::connect(&target).await.unwrap();
                client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            } else {
                let authority =
                    target.trim_start_matches("http://").split('/').next().unwrap().to_string();
                let mut upstream = tokio::net::TcpStream::connect(&authority).await.unwrap();
                upstream.write_all(&head).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        }
    })
    .await
}

#[tokio::test]
async fn proxy_url_forwards_http_and_tunnels_https() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let proxy_addr = proxy(seen.clone()).await;
    let addr = http_server().await;
    let o = probe(
        &format!("prober: http\nhttp:\n  proxy_url: http://{proxy_addr}"),
        &format!("http://{addr}/status?code=200"),
    )
    .await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(seen.lock().unwrap()[0], format!("GET http://{addr}/status?code=200 HTTP/1.1"));

    let ca = Ca::new("Proxy Test CA");
    let leaf = ca.leaf("localhost", &["localhost"], -1, 90);
    let tls_addr = https_server(vec![leaf.der.clone()], leaf.key_der(), None, false).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let module = format!(
        "prober: http\nhttp:\n  proxy_url: http://{proxy_addr}\n  tls_config:\n    ca_file: {}",
        ca_file.display()
    );
    let o = probe(&module, &format!("https://localhost:{}/", tls_addr.port())).await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(seen.lock().unwrap()[1], format!("CONNECT localhost:{} HTTP/1.1", tls_addr.port()));
    assert_eq!(o.value(&PROBE_HTTP_SSL), Some(1.0));

    let refused = format!("prober: http\nhttp:\n  proxy_url: http://127.0.0.1:{}", closed_port());
    assert_eq!(reason(&probe(&refused, &format!("http://{addr}/")).await), "proxy");
}

#[tokio::test]
async fn https_tls_config_and_http2() {
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf("localhost", &["localhost", "example.test"], -1, 90);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let h2 = https_server(vec![leaf.der.clone()], leaf.key_der(), None, true).await;
    let base = format!("prober: http\nhttp:\n  tls_config:\n    ca_file: {}", ca_file.display());

    let o = probe(&base, &format!("https://localhost:{}/", h2.port())).await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(o.value(&PROBE_HTTP_VERSION), Some(2.0));
    assert_eq!(o.value(&PROBE_HTTP_SSL), Some(1.0));
    assert!(label_sets(&o, &PROBE_HTTP_DURATION_SECONDS).len() == 5);
    assert_eq!(label(&label_sets(&o, &PROBE_TLS_VERSION_INFO)[0], "version"), "TLS 1.3");
    assert!(label(&label_sets(&o, &PROBE_TLS_CIPHER_INFO)[0], "cipher").starts_with("TLS_"));

    let no_h2 = format!("{base}\n  enable_http2: false");
    let o = probe(&no_h2, &format!("https://localhost:{}/", h2.port())).await;
    assert_eq!(o.value(&PROBE_HTTP_VERSION), Some(1.1));

    let o = probe(
        &format!("{base}\n  valid_http_versions: [HTTP/2.0]"),
        &format!("https://localhost:{}/", h2.port()),
    )
    .await;
    assert!(o.success);
    let o = probe(
        &format!("{base}\n  fail_if_ssl: true"),
        &format!("https://localhost:{}/", h2.port()),
    )
    .await;
    assert_eq!(reason(&o), "ssl_forbidden");

    // server_name: connect to 127.0.0.1 but verify (and send SNI) for example.test.
    let by_ip = format!("https://127.0.0.1:{}/", h2.port());
    assert_eq!(reason(&probe(&base, &by_ip).await), "tls_verify");
    let o = probe(&format!("{base}\n    server_name: example.test"), &by_ip).await;
    assert!(o.success, "{:?}", o.failure);

    let tls12 = probe(
        &format!("{base}\n    max_version: TLS12"),
        &format!("https://localhost:{}/", h2.port()),
    )
    .await;
    assert!(tls12.success, "{:?}", tls12.failure);
    assert_eq!(label(&label_sets(&tls12, &PROBE_TLS_VERSION_INFO)[0], "version"), "TLS 1.2");
    let tls13 = probe(
        &format!("{base}\n    min_version: TLS13"),
        &format!("https://localhost:{}/", h2.port()),
    )
    .await;
    assert_eq!(label(&label_sets(&tls13, &PROBE_TLS_VERSION_INFO)[0], "version"), "TLS 1.3");
}

#[tokio::test]
async fn min_version_above_server_fails_handshake() {
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf("localhost", &["localhost"], -1, 90);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der.clone()], leaf.key_der())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let addr = raw_server(move |s| {
        let acceptor = acceptor.clone();
        async move {
            let _ = acceptor.accept(s).await;
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let module = format!(
        "prober: http\nhttp:\n  tls_config:\n    ca_file: {}\n    min_version: TLS13",
        ca_file.display()
    );
    assert_eq!(
        reason(&probe(&module, &format!("https://localhost:{}/", addr.port())).await),
        "tls_handshake"
    );
}

#[tokio::test]
async fn credentials_and_cookies_stay_with_the_target_host() {
    let addr = http_server().await;
    let other = format!("http://localhost:{}/echo", addr.port());
    let target = format!(
        "http://127.0.0.1:{}/to?url={}",
        addr.port(),
        form_urlencoded::byte_serialize(other.as_bytes()).collect::<String>()
    );
    let module = "prober: http\nhttp:\n  headers:\n    Authorization: Bearer secret\n    Cookie: session=1\n    X-Trace: kept\n  fail_if_body_matches_regexp: ['secret', 'session=1']\n  fail_if_body_not_matches_regexp: ['x-trace: kept']";
    let o = probe(module, &target).await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(o.value(&PROBE_HTTP_REDIRECTS), Some(1.0));
}

#[tokio::test]
async fn host_header_names_the_tls_server_and_https_to_http_drops_tls_metrics() {
    let ca = Ca::new("Host CA");
    let leaf = ca.leaf("www.example.test", &["www.example.test"], -1, 90);
    let tls = https_server(vec![leaf.der.clone()], leaf.key_der(), None, false).await;
    let plain = http_server().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let base = format!("prober: http\nhttp:\n  tls_config:\n    ca_file: {}\n  headers:\n    Host: www.example.test", ca_file.display());
    let o = probe(&base, &format!("https://127.0.0.1:{}/", tls.port())).await;
    assert!(o.success, "the Host override is the name verified: {:?}", o.failure);
    assert!(o.value(&PROBE_SSL_EARLIEST_CERT_EXPIRY).is_some());

    let to_plain = format!("http://127.0.0.1:{}/", plain.port());
    let target = format!(
        "https://127.0.0.1:{}/to?url={}",
        tls.port(),
        form_urlencoded::byte_serialize(to_plain.as_bytes()).collect::<String>()
    );
    let o = probe(&base, &target).await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(o.value(&PROBE_HTTP_SSL), Some(0.0));
    assert!(
        o.value(&PROBE_SSL_EARLIEST_CERT_EXPIRY).is_none(),
        "the final response was not over TLS"
    );
    assert!(family(&o, &CERT_NOT_AFTER).is_none());
}
