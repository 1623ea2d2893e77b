//! `prober: unix`: a query_response dialogue over a Unix socket, in the clear and in TLS; and
//! `/probe` reaching only the sockets `probe_endpoint.allowed_unix_sockets` names.

use crate::common::*;
use crate::peers::tls_acceptor;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

/// upstream's `unix_socket_ping` peer: answers each `PING` line with `PONG`.
async fn ping_pong<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    while lines.read_line(&mut line).await.is_ok_and(|n| n > 0) {
        if line.trim() == "PING" {
            let _ = lines.get_mut().write_all(b"PONG\n").await;
            let _ = lines.get_mut().flush().await;
        }
        line.clear();
    }
}

/// A PING/PONG service on a Unix socket in `dir`, in TLS with `leaf` when given.
pub fn unix_service(dir: &Path, leaf: Option<&Leaf>) -> PathBuf {
    let path = dir.join(if leaf.is_some() { "tls.sock" } else { "plain.sock" });
    let acceptor = leaf.map(|leaf| tls_acceptor(vec![leaf.der.clone()], leaf.key_der(), &[]));
    let (ready, bound) = std::sync::mpsc::channel();
    let at = path.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = UnixListener::bind(&at).unwrap();
            ready.send(()).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                ping_pong(tls).await;
                            }
                        }
                        None => ping_pong(stream).await,
                    }
                });
            }
        });
    });
    bound.recv().unwrap();
    path
}

const PING: &str = "query_response:\n    - send: PING\n    - expect: PONG";

#[tokio::test]
async fn query_response_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = unix_service(dir.path(), None);
    let o = probe(&format!("prober: unix\nunix:\n  {PING}"), socket.to_str().unwrap()).await;
    assert!(o.success, "{:?}\n{}", o.failure, o.log.join("\n"));
    assert_eq!(o.value(&PROBE_FAILED_DUE_TO_REGEX), Some(0.0));

    let wrong = "prober: unix\nunix:\n  query_response:\n    - send: PING\n    - expect: PANG";
    let o = probe_with_timeout(wrong, socket.to_str().unwrap(), std::time::Duration::from_secs(1))
        .await;
    assert!(!o.success);

    let missing = dir.path().join("absent.sock");
    let o = probe("prober: unix", missing.to_str().unwrap()).await;
    assert_eq!(reason(&o), "connect");
    let stale = std::os::unix::net::UnixListener::bind(dir.path().join("gone.sock")).unwrap();
    drop(stale);
    let o = probe("prober: unix", dir.path().join("gone.sock").to_str().unwrap()).await;
    assert_eq!(reason(&o), "connect_refused");

    // `@name`: an abstract socket, which has no file.
    use std::os::linux::net::SocketAddrExt;
    let name = format!("lookout-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let o = probe("prober: unix", &format!("@{name}")).await;
    assert!(o.success, "{:?}", o.failure);
    drop(listener);
    let o = probe("prober: unix", &format!("@{name}")).await;
    assert_eq!(reason(&o), "connect_refused");
}

#[tokio::test]
async fn tls_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Unix CA");
    let leaf = ca.leaf("localhost", &["localhost", "socket.internal"], -1, 60);
    let socket = unix_service(dir.path(), Some(&leaf));
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let target = socket.to_str().unwrap();
    let module = |extra: &str| {
        format!(
            "prober: unix\nunix:\n  tls: true\n  tls_config:\n    ca_file: {}\n{extra}  {PING}",
            ca_file.display()
        )
    };
    // Without server_name the certificate is verified for localhost.
    let o = probe(&module(""), target).await;
    assert!(o.success, "{:?}\n{}", o.failure, o.log.join("\n"));
    assert!(o.value(&PROBE_SSL_EARLIEST_CERT_EXPIRY).unwrap() > 0.0);
    assert_eq!(label(&label_sets(&o, &PROBE_TLS_VERSION_INFO)[0], "version"), "TLS 1.3");
    let o = probe(&module("    server_name: socket.internal\n"), target).await;
    assert!(o.success, "{:?}", o.failure);
    let o = probe(&module("    server_name: other.internal\n"), target).await;
    assert_eq!(reason(&o), "tls_verify");
    // The CA as PEM text in the module instead of a file.
    let inline: String = pem(&ca.der()).lines().map(|l| format!("      {l}\n")).collect();
    let o = probe(
        &format!("prober: unix\nunix:\n  tls: true\n  tls_config:\n    ca: |\n{inline}  {PING}"),
        target,
    )
    .await;
    assert!(o.success, "{:?}", o.failure);

    // A CA file that does not exist yet: the module loads, its probes fail until it appears.
    let later = dir.path().join("later-ca.pem");
    let module = format!(
        "prober: unix\nunix:\n  tls: true\n  tls_config:\n    ca_file: {}\n  {PING}",
        later.display()
    );
    let prepared = prepare(&module);
    let timeout = std::time::Duration::from_secs(5);
    let o = lookout::probe::run(&prepared, target, timeout).await;
    assert_eq!(reason(&o), "certificate_file");
    let message = o.failure.unwrap().message;
    assert!(message.contains("later-ca.pem"), "{message}");
    std::fs::copy(&ca_file, &later).unwrap();
    let o = lookout::probe::run(&prepared, target, timeout).await;
    assert!(o.success, "{:?}", o.failure);
}

/// `/probe` reaches a Unix socket only when `allowed_unix_sockets` matches its path; scheduled
/// probes and `--once` are the operator's own and need no allowlist.
#[test]
fn probe_endpoint_reaches_only_allowed_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let socket = unix_service(dir.path(), None);
    let other = dir.path().join("other.sock");
    let _other = std::os::unix::net::UnixListener::bind(&other).unwrap();
    let yaml = |allowed: &str| {
        format!(
            "modules:\n  ping: {{ prober: unix, unix: {{ query_response: [{{ send: PING }}, {{ expect: PONG }}] }} }}\n{allowed}probes:\n  - {{ name: socket, module: ping, target: \"{}\", interval: 1s }}\n",
            socket.display()
        )
    };
    let query = |path: &Path| {
        let target: String =
            form_urlencoded::byte_serialize(path.to_str().unwrap().as_bytes()).collect();
        format!("/probe?module=ping&target={target}")
    };

    let server = Server::start(dir.path(), &yaml(""));
    let body = get(server.addr, &query(&socket), &[]).unwrap().body;
    assert_eq!(sample_value(&body, "probe_success "), Some(0.0), "{body}");
    assert!(body.contains("reason=\"target_not_allowed\""), "{body}");
    crate::cli::wait_for(server.addr, "/metrics", "probe_success{probe=\"socket\"");
    let metrics = get(server.addr, "/metrics", &[]).unwrap().body;
    let line = metrics.lines().find(|l| l.starts_with("probe_success{probe=\"socket\"")).unwrap();
    assert!(line.ends_with(" 1"), "{line}");
    drop(server);

    let allowed = format!(
        "probe_endpoint:\n  allowed_unix_sockets: ['{}']\n",
        socket.display().to_string().replace('.', "\\.")
    );
    let server = Server::start(dir.path(), &yaml(&allowed));
    let body = get(server.addr, &query(&socket), &[]).unwrap().body;
    assert_eq!(sample_value(&body, "probe_success "), Some(1.0), "{body}");
    let body = get(server.addr, &query(&other), &[]).unwrap().body;
    assert!(body.contains("reason=\"target_not_allowed\""), "{body}");
    drop(server);

    let text = once_ok(dir.path());
    assert!(text.contains("1 probes, 1 ok"), "{text}");
}
