//! `prober: websocket`: the upgrade (plain and TLS), credentials and headers, and the message
//! dialogue of upstream's example.yml modules, against a websocket server on loopback.

use crate::common::*;
use crate::peers::tls_acceptor;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// The headers of every upgrade request the server saw.
pub type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// Greets with `Hello, "tester"`, answers `Hello server, i'am X` with `Welcome X` and echoes
/// anything else. Refuses the upgrade (401) when the request carries `Authorization` with a
/// wrong password for user `user`.
// The refusal is tungstenite's own response type, large as it is.
#[allow(clippy::result_large_err)]
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, seen: Seen) {
    let check = move |request: &Request, response: Response| {
        let headers = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        seen.lock().unwrap().push(headers);
        let wrong = request.headers().get("authorization").is_some_and(|v| {
            v.to_str().unwrap().starts_with("Basic ") && v != "Basic dXNlcjpwYXNzd29yZA=="
        });
        if wrong {
            let mut refusal = ErrorResponse::new(Some("no".into()));
            *refusal.status_mut() = http::StatusCode::UNAUTHORIZED;
            return Err(refusal);
        }
        Ok(response)
    };
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        return;
    };
    let _ = socket.send(Message::text("Hello, \"tester\"")).await;
    while let Some(Ok(message)) = socket.next().await {
        let reply = match &message {
            Message::Text(text) => match text.as_str().strip_prefix("Hello server, i'am ") {
                Some(name) => Message::text(format!("Welcome {name}")),
                None => message.clone(),
            },
            Message::Binary(_) => message.clone(),
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

pub async fn websocket_server(tls: Option<&Leaf>, seen: Seen) -> SocketAddr {
    let acceptor = tls.map(|leaf| tls_acceptor(vec![leaf.der.clone()], leaf.key_der(), &[]));
    raw_server(move |stream| {
        let (acceptor, seen) = (acceptor.clone(), seen.clone());
        async move {
            match acceptor {
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        serve(tls, seen).await;
                    }
                }
                None => serve(stream, seen).await,
            }
        }
    })
    .await
}

/// upstream example.yml's websocket modules, their TLS settings aside.
const DIALOGUE: &str = r#"  headers:
    X-Some-Header: "my_header"
  query_response:
    - expect: ^Hello,\s(.+)"
      send: "Hello server, i'am ${1}"
    - expect: ^Welcome"#;

#[tokio::test]
async fn upgrade_only() {
    let seen = Seen::default();
    let addr = websocket_server(None, seen.clone()).await;
    let o = probe("prober: websocket", &format!("ws://localhost:{}/chat", addr.port())).await;
    assert!(o.success, "{:?}\n{}", o.failure, o.log.join("\n"));
    assert_eq!(o.value(&PROBE_WEBSOCKET_STATUS_CODE), Some(101.0));
    assert_eq!(o.value(&PROBE_WEBSOCKET_CONNECTION_UPGRADED), Some(1.0));
    assert_eq!(o.value(&PROBE_WEBSOCKET_FAILED_DUE_TO_REGEX), Some(0.0));
    assert!(o.value(&PROBE_IP_PROTOCOL).is_some());
    let phases: Vec<String> = label_sets(&o, &PROBE_WEBSOCKET_DURATION_SECONDS)
        .iter()
        .map(|set| label(set, "phase").to_string())
        .collect();
    assert_eq!(phases, ["resolve", "connect", "processing"]);
}

#[tokio::test]
async fn dialogue_with_basic_auth_and_headers() {
    let seen = Seen::default();
    let addr = websocket_server(None, seen.clone()).await;
    let target = format!("ws://127.0.0.1:{}/", addr.port());
    let module = format!(
        "prober: websocket\nwebsocket:\n  http_config:\n    basic_auth:\n      username: user\n      password: password\n{DIALOGUE}"
    );
    let o = probe(&module, &target).await;
    assert!(o.success, "{:?}\n{}", o.failure, o.log.join("\n"));
    assert!(o.log.iter().any(|l| l.contains("Hello server, i'am \\\"tester")), "{:?}", o.log);
    let phases = label_sets(&o, &PROBE_WEBSOCKET_DURATION_SECONDS);
    assert!(phases.iter().any(|set| label(set, "phase") == "transfer"), "{phases:?}");
    let headers = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(label(&headers, "x-some-header"), "my_header");
    assert_eq!(label(&headers, "authorization"), "Basic dXNlcjpwYXNzd29yZA==");

    // Both from files, read at each probe.
    let dir = tempfile::tempdir().unwrap();
    let user = write_file(dir.path(), "user", "user\n");
    let password = write_file(dir.path(), "password", "password\n");
    let from_files = format!(
        "prober: websocket\nwebsocket:\n  http_config:\n    basic_auth:\n      username_file: {}\n      password_file: {}\n{DIALOGUE}",
        user.display(),
        password.display()
    );
    let o = probe(&from_files, &target).await;
    assert!(o.success, "{:?}", o.failure);
    let headers = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(label(&headers, "authorization"), "Basic dXNlcjpwYXNzd29yZA==");

    // A wrong password: the server refuses the upgrade.
    let wrong = module.replace("password: password", "password: wrong");
    let o = probe(&wrong, &target).await;
    assert_eq!(reason(&o), "websocket_upgrade");
    assert_eq!(o.value(&PROBE_WEBSOCKET_STATUS_CODE), Some(401.0));
    assert_eq!(o.value(&PROBE_WEBSOCKET_CONNECTION_UPGRADED), Some(0.0));
}

#[tokio::test]
async fn bearer_token_and_header_values_from_files() {
    let seen = Seen::default();
    let addr = websocket_server(None, seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let token = write_file(dir.path(), "token", "from-a-file\n");
    let module = format!(
        "prober: websocket\nwebsocket:\n  http_config:\n    authorization:\n      credentials: secret_token\n  headers:\n    X-Api-Key:\n      values: [one]\n      secrets: [two]\n      files: [{}]",
        token.display()
    );
    let o = probe(&module, &format!("ws://127.0.0.1:{}/", addr.port())).await;
    assert!(o.success, "{:?}", o.failure);
    let headers = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(label(&headers, "authorization"), "Bearer secret_token");
    let keys: Vec<&str> =
        headers.iter().filter(|(k, _)| k == "x-api-key").map(|(_, v)| v.as_str()).collect();
    assert_eq!(keys, ["one", "two", "from-a-file"]);
}

#[tokio::test]
async fn message_mismatch_and_not_a_websocket() {
    let addr = websocket_server(None, Seen::default()).await;
    let module = "prober: websocket\nwebsocket:\n  query_response:\n    - expect: ^Goodbye";
    let o = probe(module, &format!("ws://127.0.0.1:{}/", addr.port())).await;
    assert_eq!(reason(&o), "query_response");
    assert_eq!(o.value(&PROBE_WEBSOCKET_FAILED_DUE_TO_REGEX), Some(1.0));
    assert_eq!(o.value(&PROBE_WEBSOCKET_CONNECTION_UPGRADED), Some(1.0));

    // A plain HTTP server answers 200 to the upgrade request.
    let web = http_server().await;
    let o = probe("prober: websocket", &format!("ws://{web}/")).await;
    assert_eq!(reason(&o), "websocket_upgrade");
    assert_eq!(o.value(&PROBE_WEBSOCKET_STATUS_CODE), Some(200.0));

    let o = probe("prober: websocket", &format!("http://{web}/")).await;
    assert_eq!(reason(&o), "invalid_target");
    let o = probe("prober: websocket", &format!("ws://127.0.0.1:{}/", closed_port())).await;
    assert_eq!(reason(&o), "connect_refused");
}

#[tokio::test]
async fn secure_websocket() {
    let ca = Ca::new("WS CA");
    let leaf = ca.leaf("localhost", &["localhost"], -1, 60);
    let addr = websocket_server(Some(&leaf), Seen::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let target = format!("wss://localhost:{}/", addr.port());
    let module = format!(
        "prober: websocket\nwebsocket:\n  http_config:\n    tls_config:\n      ca_file: {}\n{DIALOGUE}",
        ca_file.display()
    );
    let o = probe(&module, &target).await;
    assert!(o.success, "{:?}\n{}", o.failure, o.log.join("\n"));
    assert!(o.value(&PROBE_SSL_EARLIEST_CERT_EXPIRY).unwrap() > 0.0);

    let o = probe("prober: websocket", &target).await;
    assert_eq!(reason(&o), "tls_verify");
    let skip = "prober: websocket\nwebsocket:\n  http_config:\n    tls_config:\n      insecure_skip_verify: true";
    let o = probe(skip, &target).await;
    assert!(o.success, "{:?}", o.failure);
}
