//! Trust at the edges: what a scraper of `/probe`, or a client flooding the endpoint, can make
//! lookout do — reach hosts outside the allowlist, probe lookout itself, hold unbounded memory
//! or connections. Every attack here is bounded in count and time and stays on loopback.

use crate::common::*;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A server that counts the connections it accepts and answers 200 to each.
fn counting_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let addr = in_background(move || {
        raw_server(move |mut stream| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
            }
        })
    });
    (addr, accepted)
}

fn probe_reply(server: &Server, module: &str, target: &str) -> HttpReply {
    get(server.addr, &format!("/probe?module={module}&target={}", encode(target)), &[]).unwrap()
}

fn failure_reason(body: &str) -> Option<&str> {
    let start = body.find("lookout_probe_failure_reason{reason=\"")? + 37;
    body[start..].split('"').next()
}

const HTTP_MODULE: &str =
    "modules:\n  http_2xx:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\n";

#[test]
fn allowlist_holds_at_every_hop_and_userinfo_cannot_disguise_the_host() {
    let allowed = in_background(http_server);
    let (outside, contacted) = counting_server();
    let dir = tempfile::tempdir().unwrap();
    // Deliberately loose (no `/` after the port), as allowlists often are.
    let yaml = format!("{HTTP_MODULE}probe_endpoint:\n  allowed_targets: ['http://{allowed}.*']\n");
    let server = Server::start(dir.path(), &yaml);

    let ok = probe_reply(&server, "http_2xx", &format!("http://{allowed}/redirect?n=2"));
    assert!(ok.body.contains("probe_success 1"), "redirects inside the allowlist: {}", ok.body);

    let redirected = format!("http://{allowed}/to?url={}", encode(&format!("http://{outside}/")));
    let reply = probe_reply(&server, "http_2xx", &redirected);
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("probe_success 0"), "{}", reply.body);
    assert_eq!(failure_reason(&reply.body), Some("target_not_allowed"), "{}", reply.body);

    let disguised = format!("http://{allowed}@{outside}/");
    let reply = probe_reply(&server, "http_2xx", &disguised);
    assert!(reply.body.contains("probe_success 0"), "{}", reply.body);
    assert_eq!(failure_reason(&reply.body), Some("target_not_allowed"), "{}", reply.body);

    assert_eq!(contacted.load(Ordering::SeqCst), 0, "a refused host was contacted");
}

#[test]
fn redirects_to_other_schemes_fail_through_probe() {
    let web = in_background(http_server);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), HTTP_MODULE);
    for location in ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://127.0.0.1/"] {
        let target = format!("http://{web}/to?url={}", encode(location));
        let reply = probe_reply(&server, "http_2xx", &target);
        assert_eq!(
            failure_reason(&reply.body),
            Some("redirect_scheme"),
            "{location}: {}",
            reply.body
        );
    }
}

/// lookout listening on a port chosen before its configuration is written, so the
/// configuration can name lookout itself.
fn start_named(dir: &std::path::Path, yaml: impl Fn(SocketAddr) -> String) -> Server {
    let addr: SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let probes = write_file(dir, "probes.yaml", yaml(addr));
    Server::spawn_at(dir, &[format!("--config.probes={}", probes.display())], addr)
}

const SELF_MODULES: &str = "modules:\n  http_2xx:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\n  reload:\n    prober: http\n    http:\n      method: POST\n      preferred_ip_protocol: ip4\n  disguised:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\n      headers:\n        User-Agent: Prometheus/2.53\n  tcp_connect:\n    prober: tcp\n    tcp:\n      preferred_ip_protocol: ip4\n";

#[test]
fn probe_refuses_lookout_itself_but_scheduled_probes_of_it_work() {
    let web = in_background(http_server);
    let dir = tempfile::tempdir().unwrap();
    let server = start_named(dir.path(), |me| {
        format!("{SELF_MODULES}probes:\n  - name: self\n    module: http_2xx\n    target: http://{me}/-/healthy\n    interval: 200ms\n")
    });
    let me = server.addr;
    let port = me.port();
    for (module, target) in [
        ("reload", format!("http://{me}/-/reload")),
        ("http_2xx", format!("http://localhost:{port}/-/healthy")),
        ("http_2xx", format!("http://0.0.0.0:{port}/metrics")),
        ("tcp_connect", format!("127.0.0.1:{port}")),
        // A redirect loop through /probe stops at its first hop back into lookout.
        (
            "http_2xx",
            format!(
                "http://{web}/to?url={}",
                encode(&format!("http://{me}/probe?target=http://{web}/"))
            ),
        ),
    ] {
        let reply = probe_reply(&server, module, &target);
        assert_eq!(
            failure_reason(&reply.body),
            Some("target_not_allowed"),
            "{target}: {}",
            reply.body
        );
    }
    let metrics = get(me, "/metrics", &[]).unwrap().body;
    assert!(
        !metrics.contains("lookout_config_reloads_total{result=\"success\"}"),
        "a scrape reloaded lookout:\n{metrics}"
    );
    assert_eq!(
        sample_value(&metrics, "lookout_http_requests_total{handler=\"probe\",code=\"200\"}"),
        Some(5.0),
        "only the five requests of the test reached /probe:\n{metrics}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !get(me, "/metrics", &[])
        .unwrap()
        .body
        .contains("probe_success{probe=\"self\",module=\"http_2xx\",target=")
    {
        assert!(Instant::now() < deadline, "the scheduled probe of lookout never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = get(me, "/metrics", &[]).unwrap().body;
    assert_eq!(
        sample_value(&metrics, "probe_success{probe=\"self\""),
        Some(1.0),
        "scheduled probes of lookout's own /-/healthy keep working:\n{metrics}"
    );
}

#[test]
fn allow_self_permits_lookout_but_never_nested_probes() {
    let web = in_background(http_server);
    let dir = tempfile::tempdir().unwrap();
    let server = start_named(dir.path(), |me| {
        // An allowlist that matches lookout's address is not what lets it through: allow_self is.
        format!("{SELF_MODULES}probe_endpoint:\n  allow_self: true\n  allowed_targets: ['http://{me}/.*', 'http://{web}/.*']\n")
    });
    let me = server.addr;
    let healthy = probe_reply(&server, "http_2xx", &format!("http://{me}/-/healthy"));
    assert!(healthy.body.contains("probe_success 1"), "{}", healthy.body);
    // A /probe request from lookout's own prober is refused, whatever User-Agent the module sends.
    for module in ["http_2xx", "disguised"] {
        let nested = format!(
            "http://{me}/probe?module=http_2xx&target={}",
            encode(&format!("http://{web}/"))
        );
        let reply = probe_reply(&server, module, &nested);
        assert!(reply.body.contains("probe_http_status_code 403"), "{module}: {}", reply.body);
    }
    let metrics = get(me, "/metrics", &[]).unwrap().body;
    assert!(
        metrics.contains("lookout_probe_request_errors_total{reason=\"self_probe\"} 2"),
        "{metrics}"
    );
    // A scraper on this machine with an ordinary User-Agent is served.
    let direct = get(
        me,
        &format!("/probe?module=http_2xx&target={}", encode(&format!("http://{web}/"))),
        &[],
    )
    .unwrap();
    assert!(direct.body.contains("probe_success 1"), "{}", direct.body);
}

/// A server that sends `first` bytes of a `total`-byte body, waits `pause`, then the rest.
fn stalling_server(first: usize, total: usize, pause: Duration) -> SocketAddr {
    in_background(move || {
        raw_server(move |mut stream| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&vec![b'a'; first]).await;
            tokio::time::sleep(pause).await;
            let _ = stream.write_all(&vec![b'a'; total - first]).await;
        })
    })
}

#[test]
fn probe_bodies_share_one_memory_budget() {
    let slow = stalling_server(600_000, 700_000, Duration::from_millis(3000));
    let dir = tempfile::tempdir().unwrap();
    let yaml = "modules:\n  keep:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\n      fail_if_body_not_matches_regexp: ['a']\n";
    let probes = write_file(dir.path(), "probes.yaml", yaml);
    let server = Server::spawn(
        dir.path(),
        &[format!("--config.probes={}", probes.display()), "--probe.body-memory-limit=1MiB".into()],
    );
    let addr = server.addr;
    let target = format!("http://{slow}/");
    let path = format!("/probe?module=keep&target={}", encode(&target));
    let first = {
        let path = path.clone();
        std::thread::spawn(move || get(addr, &path, &[]).unwrap().body)
    };
    std::thread::sleep(Duration::from_millis(1200));
    // The first probe holds the whole budget until its body ends.
    let second = get(addr, &path, &[]).unwrap().body;
    assert_eq!(failure_reason(&second), Some("body_too_large"), "{second}");
    let first = first.join().unwrap();
    assert!(first.contains("probe_success 1"), "{first}");
    let third = get(addr, &path, &[]).unwrap().body;
    assert!(third.contains("probe_success 1"), "the budget is given back: {third}");
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn connection_cap_sheds_idle_connections_and_keeps_serving_scrapes() {
    let dir = tempfile::tempdir().unwrap();
    let probes = write_file(dir.path(), "probes.yaml", "modules: {}\n");
    let server = Server::spawn(
        dir.path(),
        &[format!("--config.probes={}", probes.display()), "--web.max-connections=64".into()],
    );
    let baseline = open_fds(server.child.id());
    let idle: Vec<std::net::TcpStream> =
        (0..200).filter_map(|_| std::net::TcpStream::connect(server.addr).ok()).collect();
    assert_eq!(idle.len(), 200);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let scrape = get(server.addr, "/metrics", &[]).expect("a scrape at the cap is answered");
    assert_eq!(scrape.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let fds = open_fds(server.child.id());
    assert!(fds <= baseline + 64 + 8, "lookout holds {fds} descriptors (baseline {baseline})");
    drop(idle);
}

/// Starts lookout with `listen` and `yaml`, stops it once it serves, and returns its stderr.
fn start_up_log(listen: &str, yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let probes = write_file(dir.path(), "probes.yaml", yaml);
    let port = closed_port();
    let child = Command::new(LOOKOUT)
        .current_dir(dir.path())
        .arg(format!("--config.probes={}", probes.display()))
        .arg(format!("--web.listen-address={}", listen.replace("PORT", &port.to_string())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "lookout did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_open_probe_endpoint_on_a_public_address_is_warned_about_once() {
    const WARNING: &str = "can make lookout connect to any host the machine can reach";
    let log = start_up_log(":PORT", HTTP_MODULE);
    assert_eq!(log.matches(WARNING).count(), 1, "{log}");
    assert!(!start_up_log("127.0.0.1:PORT", HTTP_MODULE).contains(WARNING));
    let allowlisted =
        format!("{HTTP_MODULE}probe_endpoint:\n  allowed_targets: ['https://shop.example/']\n");
    assert!(!start_up_log(":PORT", &allowlisted).contains(WARNING));
    let off = format!("{HTTP_MODULE}probe_endpoint:\n  enabled: false\n");
    assert!(!start_up_log(":PORT", &off).contains(WARNING));
}

#[test]
fn slow_probes_cannot_hold_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    // Answers nothing for 20 s: each probe of it holds its connection until its timeout.
    let silent = stalling_server(0, 10, Duration::from_secs(20));
    let probes = write_file(
        dir.path(),
        "probes.yaml",
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 15s\n    http:\n      preferred_ip_protocol: ip4\n",
    );
    let server = Server::spawn(
        dir.path(),
        &[format!("--config.probes={}", probes.display()), "--web.max-connections=16".into()],
    );
    let path = format!("/probe?target={}", encode(&format!("http://{silent}/")));
    // 16 connections less 4 kept for others: 12 probes run at once.
    let held: Vec<std::net::TcpStream> = (0..12)
        .map(|_| {
            use std::io::Write;
            let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
            write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let refused = get(server.addr, &path, &[]).unwrap();
    assert_eq!(refused.status, 503, "{}", refused.body);
    let started = Instant::now();
    let scrape = get(server.addr, "/metrics", &[]).expect("a scrape still gets in");
    assert_eq!(scrape.status, 200);
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(scrape.body.contains("lookout_probe_request_errors_total{reason=\"busy\"} 1"));
    drop(held);
}
