//! The `blackbox.yml` and `example.yml` upstream blackbox_exporter ships
//! (`../shared/corpus/blackbox-configs`): they load unchanged with `lookout check`, and every
//! module in them is run through `/probe` against a server on loopback that speaks its protocol.

use crate::common::*;
use crate::http_schema::{fixed_server, h3_server, recording_proxy};
use crate::peers::{dns, grpc_server, tls_acceptor, Health};
use crate::unix_prober::unix_service;
use crate::websocket_prober::{websocket_server, Seen};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

fn corpus(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/blackbox-configs").join(file)
}

fn check(path: &Path) -> std::process::Output {
    std::process::Command::new(LOOKOUT)
        .current_dir(std::env::temp_dir())
        .args(["check", &format!("--config.probes={}", path.display())])
        .output()
        .unwrap()
}

#[test]
fn shipped_configs_load_unchanged() {
    for file in ["blackbox.yml", "example.yml"] {
        let out = check(&corpus(file));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{file}: {err}");
        // Files a module names that do not exist here are warned about, not refused.
        if file == "example.yml" {
            for missing in ["/certs/my_cert.crt", "/files/body.txt", "/path/to/api-key.txt"] {
                assert!(err.contains(&format!("\"{missing}\" does not exist")), "{err}");
            }
        }
    }
}

/// A copy of the module `module` of `text`, named `name`, with `from` (a file or server that
/// cannot exist here) replaced by `to`.
fn pointed_here(text: &str, module: &str, name: &str, from: &str, to: &str) -> String {
    let mut lines = text.lines().skip_while(|l| *l != format!("  {module}:"));
    assert!(lines.next().is_some(), "no module {module}");
    let body: Vec<&str> = lines.take_while(|l| l.starts_with("   ")).collect();
    let body = body.join("\n");
    assert!(body.contains(from), "{module} does not name {from}");
    format!("  {name}:\n{}\n", body.replace(from, to))
}

/// A line-protocol peer: `script` is what it says (`> line`), waits for (`< prefix`), and
/// `tls` where it starts TLS; the connection then stays open briefly.
async fn scripted<S: AsyncRead + AsyncWrite + Unpin + Send>(
    stream: S,
    script: &'static [&'static str],
    acceptor: &tokio_rustls::TlsAcceptor,
) {
    let mut conn: BufReader<Box<dyn Io>> = BufReader::new(Box::new(stream));
    for step in script {
        if let Some(line) = step.strip_prefix("> ") {
            let _ = conn.get_mut().write_all(format!("{line}\r\n").as_bytes()).await;
            let _ = conn.get_mut().flush().await;
        } else if let Some(prefix) = step.strip_prefix("< ") {
            let mut line = String::new();
            loop {
                line.clear();
                if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line.starts_with(prefix) {
                    break;
                }
            }
        } else if *step == "tls" {
            // What was read ahead would be lost to the handshake: a client sends nothing
            // between its last line and its ClientHello.
            assert!(conn.buffer().is_empty(), "read ahead of TLS: {:?}", conn.buffer());
            let Ok(tls) = acceptor.accept(conn.into_inner()).await else { return };
            conn = BufReader::new(Box::new(tls));
        } else if let Some(bytes) = step.strip_prefix("bytes ") {
            // The PostgreSQL SSLRequest (8 bytes, then the newline that ends every `send`, as
            // in blackbox) in, one byte out.
            let mut request = [0u8; 9];
            if tokio::io::AsyncReadExt::read_exact(&mut conn, &mut request).await.is_err() {
                return;
            }
            let _ = conn.get_mut().write_all(bytes.as_bytes()).await;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn script_server(
    script: &'static [&'static str],
    tls_first: bool,
    acceptor: tokio_rustls::TlsAcceptor,
) -> SocketAddr {
    in_background(move || {
        raw_server(move |stream| {
            let acceptor = acceptor.clone();
            async move {
                if tls_first {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        scripted(tls, script, &acceptor).await;
                    }
                } else {
                    scripted(stream, script, &acceptor).await;
                }
            }
        })
    })
}

const SSH: &[&str] = &["> SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", "< SSH-2.0-blackbox"];
const IRC: &[&str] = &[
    "< NICK prober",
    "< USER prober",
    "> PING :8f3a",
    "< PONG 8f3a",
    "> :irc.test 001 prober :Welcome",
];
const POP3: &[&str] = &["> +OK POP3 ready"];
const IMAP: &[&str] = &[
    "> * OK [CAPABILITY IMAP4rev1 STARTTLS] ready",
    "< . STARTTLS",
    "> . OK begin TLS",
    "tls",
    "< . capability",
    "> * CAPABILITY IMAP4rev1 AUTH=PLAIN",
];
const SMTP: &[&str] = &[
    "> 220 mail.test ESMTP Postfix",
    "< EHLO prober",
    "> 250-mail.test",
    "> 250-STARTTLS",
    "> 250 OK",
    "< STARTTLS",
    "> 220 go ahead",
    "tls",
    "< EHLO prober",
    "> 250-mail.test",
    "> 250-AUTH PLAIN",
    "> 250 OK",
    "< QUIT",
];
const POSTGRES: &[&str] = &["bytes S", "tls"];

#[test]
fn every_shipped_module_runs() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Shipped modules CA");
    let leaf = ca.leaf("localhost", &["localhost"], -1, 60);
    let trust = write_file(dir.path(), "trust.pem", pem(&ca.der()));
    let acceptor = || tls_acceptor(vec![leaf.der.clone()], leaf.key_der(), &[]);
    let web = in_background(http_server);
    let ssh = script_server(SSH, false, acceptor());
    let irc = script_server(IRC, false, acceptor());
    let pop3s = script_server(POP3, true, acceptor());
    let imap = script_server(IMAP, false, acceptor());
    let smtp = script_server(SMTP, false, acceptor());
    let postgres = script_server(POSTGRES, false, acceptor());
    let tls = script_server(&[], true, acceptor());
    let grpc_tls = grpc_server(Health::Reporter, Some((vec![leaf.der.clone()], leaf.key_der())));
    let grpc = grpc_server(Health::Reporter, None);
    let leaf_for_ws = ca.leaf("localhost", &["localhost"], -1, 60);
    let wss = in_background(move || async move {
        websocket_server(Some(&leaf_for_ws), Seen::default()).await
    });
    let ws = in_background(|| websocket_server(None, Seen::default()));
    let socket = unix_service(dir.path(), None);
    let dns = dns();
    let h3_leaf = ca.leaf("localhost", &["localhost"], -1, 60);
    let h3 = in_background(move || async move { h3_server(&h3_leaf).await });
    let https_leaf = ca.leaf("localhost", &["localhost"], -1, 60);
    let (chain, key) = (vec![https_leaf.der.clone()], https_leaf.key_der());
    let https = in_background(move || https_server(chain, key, None, false));
    let json = in_background(|| fixed_server(r#"{"foo": "bar", "baz": "qux"}"#));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let proxy = in_background({
        let heads = heads.clone();
        move || recording_proxy(heads)
    });
    let local = |addr: SocketAddr| format!("localhost:{}", addr.port());
    let http = format!("http://127.0.0.1:{}/", web.port());

    // example.yml's modules that name a proxy or file that cannot exist here, pointed at a
    // proxy on loopback and at files that exist.
    let example = std::fs::read_to_string(corpus("example.yml")).unwrap();
    let body_file = write_file(dir.path(), "body.txt", "a body from a file");
    let key_file = write_file(dir.path(), "api-key.txt", "key-1\n");
    let (their_proxy, our_proxy) = ("http://127.0.0.1:3128", format!("http://{proxy}"));
    let here = [
        ("http_with_proxy", their_proxy, our_proxy.clone()),
        ("http_with_proxy_and_headers", their_proxy, our_proxy),
        ("http_post_body_file", "/files/body.txt", body_file.display().to_string()),
        ("http_with_header_from_files", "/path/to/api-key.txt", key_file.display().to_string()),
    ]
    .iter()
    .map(|(m, from, to)| pointed_here(&example, m, &format!("{m}_here"), from, to))
    .collect::<String>();

    // (file, module, target, expected: "ok" or the failure reason).
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("blackbox.yml", "http_2xx", http.clone(), "ok"),
        ("blackbox.yml", "http_post_2xx", http.clone(), "ok"),
        ("blackbox.yml", "tcp_connect", web.to_string(), "ok"),
        // `^+OK` repeats the anchor (in Go's syntax as in Rust's) where a literal `+` was
        // meant: a POP3 banner never matches upstream's module, in blackbox either.
        ("blackbox.yml", "pop3s_banner", local(pop3s), "query_response"),
        ("blackbox.yml", "grpc", local(grpc_tls), "ok"),
        // Its service is unknown to the server: NOT_FOUND.
        ("blackbox.yml", "grpc_plain", grpc.to_string(), "grpc_status"),
        ("blackbox.yml", "ssh_banner", ssh.to_string(), "ok"),
        ("blackbox.yml", "ssh_banner_extract", ssh.to_string(), "ok"),
        ("blackbox.yml", "irc_banner", irc.to_string(), "ok"),
        ("blackbox.yml", "icmp", "127.0.0.1".into(), "ok"),
        ("blackbox.yml", "icmp_ttl5", "127.0.0.1".into(), "ok"),
        ("blackbox.yml", "websocket", format!("ws://{ws}/"), "ok"),
        ("blackbox.yml", "postgresql", local(postgres), "ok"),
        ("blackbox.yml", "http_3xx", format!("https://{}/", local(h3)), "ok"),
        ("example.yml", "http_post_2xx", http.clone(), "ok"),
        ("example.yml", "http_basic_auth_example", http.clone(), "ok"),
        // Its CA file does not exist here.
        (
            "example.yml",
            "http_custom_ca_example",
            format!("https://{}/", local(tls)),
            "certificate_file",
        ),
        // Without an Accept-Encoding header nothing asks this server to compress (as in
        // blackbox): its plain answer is not gzip.
        ("example.yml", "http_gzip", format!("{http}gzip"), "decompression"),
        ("example.yml", "http_gzip_with_accept_encoding", format!("{http}gzip"), "ok"),
        ("example.yml", "tls_connect", local(tls), "ok"),
        ("example.yml", "tcp_connect_example", web.to_string(), "ok"),
        ("example.yml", "imap_starttls", local(imap), "ok"),
        ("example.yml", "smtp_starttls", local(smtp), "ok"),
        ("example.yml", "irc_banner_example", irc.to_string(), "ok"),
        ("example.yml", "rabbitmq", local(tls), "certificate_file"),
        ("example.yml", "rabbitmq_insecure", local(tls), "certificate_file"),
        ("example.yml", "icmp_example", "127.0.0.1".into(), "ok"),
        // The loopback DNS server serves example.test only: www.prometheus.io is refused.
        ("example.yml", "dns_udp_example", dns.authoritative.to_string(), "dns_rcode"),
        ("example.yml", "dns_soa", dns.authoritative.to_string(), "dns_rcode"),
        ("example.yml", "dns_tcp_example", dns.authoritative.to_string(), "dns_rcode"),
        ("example.yml", "unix_socket_ping", socket.display().to_string(), "ok"),
        ("example.yml", "postgresql", local(postgres), "ok"),
        ("example.yml", "websocket_example_basic_auth", format!("wss://{}/", local(wss)), "ok"),
        ("example.yml", "websocket_example_bearer_token", format!("ws://{ws}/"), "ok"),
        (
            "example.yml",
            "http_2xx_example",
            format!(
                "{http}headers?Access-Control-Allow-Origin=example.com\
                 &body=Download+the+latest+version+here"
            ),
            "ok",
        ),
        // Nothing listens on the proxy port the module names. Through the proxy on loopback,
        // a name only the proxy could resolve is reached (skip_resolve_phase_with_proxy).
        ("example.yml", "http_with_proxy", http.clone(), "proxy"),
        (
            "example.yml",
            "http_with_proxy_here",
            "http://only-the-proxy-knows.invalid/".into(),
            "ok",
        ),
        (
            "example.yml",
            "http_with_proxy_and_headers",
            format!("https://{}/", local(https)),
            "proxy",
        ),
        (
            "example.yml",
            "http_with_proxy_and_headers_here",
            format!("https://{}/", local(https)),
            "ok",
        ),
        ("example.yml", "http_post_body_file", format!("{http}echo"), "request_file"),
        ("example.yml", "http_post_body_file_here", format!("{http}echo"), "ok"),
        ("example.yml", "http_json_cel_match", format!("http://{json}/"), "ok"),
        // Its token endpoint, api.example.com, cannot be reached from here: no token.
        ("example.yml", "http_2xx_oauth_client_credentials", http.clone(), "oauth2"),
        ("example.yml", "http_with_header_from_files", http.clone(), "request_file"),
        ("example.yml", "http_with_header_from_files_here", http.clone(), "ok"),
    ];
    for file in ["blackbox.yml", "example.yml"] {
        // Every module of the file has its case.
        let text = std::fs::read_to_string(corpus(file)).unwrap();
        let modules = text
            .lines()
            .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':'))
            .filter(|name| !name.starts_with(' '));
        for module in modules {
            assert!(
                cases.iter().any(|(f, m, _, _)| *f == file && *m == module),
                "{file}: no case for module {module}"
            );
        }
        let allow = format!(
            "probe_endpoint:\n  allowed_unix_sockets: ['{}']\n",
            socket.display().to_string().replace('.', "\\.")
        );
        let extra = if file == "example.yml" { here.as_str() } else { "" };
        let probes = write_file(dir.path(), file, format!("{text}{extra}{allow}"));
        let addr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
        let server = Server::spawn_with_env(
            dir.path(),
            &[format!("--config.probes={}", probes.display())],
            addr,
            &[("SSL_CERT_FILE", trust.as_path())],
        );
        for (_, module, target, expected) in cases.iter().filter(|(f, ..)| *f == file) {
            let target: String = form_urlencoded::byte_serialize(target.as_bytes()).collect();
            let query = format!("/probe?module={module}&target={target}");
            let body = get(server.addr, &query, &[]).unwrap().body;
            let reason =
                body.split("reason=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("ok");
            assert_eq!(reason, *expected, "{file} {module} {target}:\n{body}");
            crate::cli::promtool_check(&body);
            if *module == "ssh_banner_extract" {
                assert!(
                    body.contains(
                        "probe_expect_info{ssh_comments=\"Debian-2+deb12u3\",ssh_version=\"OpenSSH_9.2p1\"} 1"
                    ) || body.contains(
                        "probe_expect_info{ssh_version=\"OpenSSH_9.2p1\",ssh_comments=\"Debian-2+deb12u3\"} 1"
                    ),
                    "{body}"
                );
            }
        }
    }
    // The shipped proxy_connect_header went with the CONNECT (names are case-insensitive).
    let heads = heads.lock().unwrap();
    assert!(
        heads.iter().any(|h| h.starts_with("CONNECT ")
            && h.to_ascii_lowercase().contains("\r\nproxy-authorization: bearer token\r\n")),
        "{heads:?}"
    );
}
