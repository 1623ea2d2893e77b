//! `prober: tcp`: connect, TLS, query_response dialogues with STARTTLS, source address.

use crate::common::*;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test]
async fn connect_only() {
    let addr = http_server().await;
    let o = probe("prober: tcp", &addr.to_string()).await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(o.value(&PROBE_IP_PROTOCOL), Some(4.0));
    assert!(o.value(&PROBE_DNS_LOOKUP_TIME_SECONDS).is_some());
    assert_eq!(o.value(&PROBE_FAILED_DUE_TO_REGEX), Some(0.0));
}

/// An SMTP-like server: banner, then answers `HELO x` with `250 hello x`.
async fn smtp_like() -> std::net::SocketAddr {
    raw_server(|s| async move {
        let (r, mut w) = s.into_split();
        let mut lines = BufReader::new(r).lines();
        let _ = w.write_all(b"220 mail.test ESMTP ready\r\n").await;
        while let Ok(Some(line)) = lines.next_line().await {
            let reply = match line.strip_prefix("HELO ") {
                Some(name) => format!("250 hello {name}\r\n"),
                None => "500 what\r\n".to_string(),
            };
            let _ = w.write_all(reply.as_bytes()).await;
        }
    })
    .await
}

#[tokio::test]
async fn query_response_with_capture_expansion() {
    let addr = smtp_like().await;
    let module = r#"prober: tcp
tcp:
  query_response:
    - expect: "^220 ([^ ]+) ESMTP"
      send: "HELO ${1}"
    - expect: "^250 hello mail.test$""#;
    let o = probe(module, &addr.to_string()).await;
    assert!(o.success, "{:?}\n{}", o.failure, o.log.join("\n"));
}

#[tokio::test]
async fn query_response_mismatch_fails_due_to_regex() {
    let addr = raw_server(|mut s| async move {
        let _ = s.write_all(b"220 mail.test ESMTP ready\r\n").await;
    })
    .await;
    let module = "prober: tcp\ntcp:\n  query_response:\n    - expect: '^SSH-2.0'";
    let o = probe(module, &addr.to_string()).await;
    assert_eq!(reason(&o), "query_response");
    assert_eq!(o.value(&PROBE_FAILED_DUE_TO_REGEX), Some(1.0));
}

#[tokio::test]
async fn endless_line_is_bounded() {
    let addr = raw_server(|mut s| async move {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..64 {
            if s.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await;
    let o = probe("prober: tcp\ntcp:\n  query_response:\n    - expect: 'never'", &addr.to_string())
        .await;
    assert_eq!(reason(&o), "query_response");
    assert!(o.failure.unwrap().message.contains("longer than"));
}

#[tokio::test]
async fn tls_and_starttls() {
    let ca = Ca::new("TCP CA");
    let leaf = ca.leaf("localhost", &["localhost"], -1, 60);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der.clone()], leaf.key_der())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));

    let direct = {
        let acceptor = acceptor.clone();
        raw_server(move |s| {
            let acceptor = acceptor.clone();
            async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    let _ = tls.write_all(b"SECURE BANNER\n").await;
                    let _ = tls.flush().await;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        })
        .await
    };
    let module = format!(
        "prober: tcp\ntcp:\n  tls: true\n  tls_config:\n    ca_file: {}\n  query_response:\n    - expect: '^SECURE BANNER$'",
        ca_file.display()
    );
    let o = probe(&module, &format!("localhost:{}", direct.port())).await;
    assert!(o.success, "{:?}", o.failure);
    assert!(o.value(&PROBE_SSL_EARLIEST_CERT_EXPIRY).unwrap() > 0.0);
    assert_eq!(label(&label_sets(&o, &PROBE_TLS_VERSION_INFO)[0], "version"), "TLS 1.3");

    let starttls = raw_server(move |s| {
        let acceptor = acceptor.clone();
        async move {
            let mut reader = BufReader::new(s);
            let _ = reader.get_mut().write_all(b"220 ready\r\n").await;
            let mut line = String::new();
            let _ = reader.read_line(&mut line).await;
            if line.trim() != "STARTTLS" {
                return;
            }
            let _ = reader.get_mut().write_all(b"220 go ahead\r\n").await;
            if let Ok(mut tls) = acceptor.accept(reader.into_inner()).await {
                let _ = tls.write_all(b"250 secure now\r\n").await;
                let _ = tls.flush().await;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    })
    .await;
    let module = format!(
        "prober: tcp\ntcp:\n  tls_config:\n    ca_file: {}\n  query_response:\n    - expect: '^220 ready'\n      send: STARTTLS\n    - expect: '^220 go ahead'\n      starttls: true\n    - expect: '^250 secure now'",
        ca_file.display()
    );
    let o = probe(&module, &format!("localhost:{}", starttls.port())).await;
    assert!(o.success, "{:?}\n{}", o.failure, o.log.join("\n"));
    assert!(family(&o, &PROBE_SSL_LAST_CHAIN_INFO).is_some());
}

#[tokio::test]
async fn source_ip_address_and_ip_protocol() {
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((_, peer)) = listener.accept().await {
            seen.lock().unwrap().push(peer.ip().to_string());
        }
    });
    let o = probe(
        "prober: tcp\ntcp:\n  source_ip_address: 127.0.0.2\n  preferred_ip_protocol: ip4",
        &format!("localhost:{port}"),
    )
    .await;
    assert!(o.success, "{:?}", o.failure);
    assert_eq!(o.value(&PROBE_IP_PROTOCOL), Some(4.0));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(peers.lock().unwrap().as_slice(), ["127.0.0.2"]);
    let o = probe(
        "prober: tcp\ntcp:\n  preferred_ip_protocol: ip6\n  ip_protocol_fallback: false",
        &format!("127.0.0.1:{port}"),
    )
    .await;
    assert_eq!(reason(&o), "dns");
}

/// upstream's `ssh_banner_extract`: the banner's captures become `probe_expect_info` labels.
#[tokio::test]
async fn expect_labels_become_probe_expect_info() {
    let addr = raw_server(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n").await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    })
    .await;
    let module = r#"prober: tcp
tcp:
  query_response:
    - expect: "^SSH-2.0-([^ -]+)(?: (.*))?$"
      labels:
        - name: ssh_version
          value: "${1}"
        - name: ssh_comments
          value: "${2}""#;
    let o = probe(module, &addr.to_string()).await;
    assert!(o.success, "{:?}", o.failure);
    let sets = label_sets(&o, &PROBE_EXPECT_INFO);
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(label(&sets[0], "ssh_version"), "OpenSSH_9.2p1");
    assert_eq!(label(&sets[0], "ssh_comments"), "Debian-2+deb12u3");
    assert_eq!(o.value(&PROBE_EXPECT_INFO), Some(1.0));
}

/// A PostgreSQL-like server: answers the 8-byte SSLRequest with one byte, `reply`.
async fn postgres_like(reply: &'static [u8]) -> std::net::SocketAddr {
    raw_server(move |mut s| async move {
        use tokio::io::AsyncReadExt;
        let mut request = [0u8; 8];
        if s.read_exact(&mut request).await.is_ok() && request == [0, 0, 0, 8, 4, 0xD2, 0x16, 0x2F]
        {
            let _ = s.write_all(reply).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    })
    .await
}

/// upstream's `postgresql` module (minus its starttls): a `!!binary` send and `expect_bytes`.
#[tokio::test]
async fn binary_send_and_expect_bytes() {
    let module = "prober: tcp\ntcp:\n  query_response:\n    - send: !!binary AAAACATSFi8=\n    - expect_bytes: S";
    let o = probe(module, &postgres_like(b"S").await.to_string()).await;
    assert!(o.success, "{:?}\n{}", o.failure, o.log.join("\n"));
    assert_eq!(o.value(&PROBE_FAILED_DUE_TO_BYTES), Some(0.0));

    let o = probe(module, &postgres_like(b"N").await.to_string()).await;
    assert_eq!(reason(&o), "query_response");
    assert_eq!(o.value(&PROBE_FAILED_DUE_TO_BYTES), Some(1.0));
    assert_eq!(o.value(&PROBE_FAILED_DUE_TO_REGEX), Some(0.0));
    assert!(o.failure.unwrap().message.contains("expected \"S\""));

    // The server closes without answering: too few bytes, not a mismatch.
    let o = probe(module, &postgres_like(b"").await.to_string()).await;
    assert_eq!(reason(&o), "query_response");
    assert_eq!(o.value(&PROBE_FAILED_DUE_TO_BYTES), Some(0.0));
}
