//! Faults: each ends in `probe_success 0` with its reason, within the timeout, without
//! crashing or leaking sockets.

use crate::common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_millis(800);

async fn read_request(s: &mut tokio::net::TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf).await;
}

#[tokio::test]
async fn connection_refused() {
    let o = probe("prober: http", &format!("http://127.0.0.1:{}/", closed_port())).await;
    assert_eq!(reason(&o), "connect_refused");
    assert_eq!(o.value(&PROBE_SUCCESS), Some(0.0));
    let o = probe("prober: tcp", &format!("127.0.0.1:{}", closed_port())).await;
    assert_eq!(reason(&o), "connect_refused");
}

#[tokio::test]
async fn silent_server_times_out_within_the_timeout() {
    let addr = raw_server(|s| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let start = Instant::now();
    let o = probe_with_timeout("prober: http", &format!("http://{addr}/"), TIMEOUT).await;
    assert_eq!(reason(&o), "timeout");
    assert!(start.elapsed() < TIMEOUT + Duration::from_millis(300), "{:?}", start.elapsed());
    // What was learned before the timeout is kept.
    assert_eq!(o.value(&PROBE_IP_PROTOCOL), Some(4.0));
    assert!(o.log.iter().any(|l| l.contains("connected to")));
}

#[tokio::test]
async fn slow_body_times_out() {
    let addr = raw_server(|mut s| async move {
        read_request(&mut s).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst bytes").await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let o = probe_with_timeout("prober: http", &format!("http://{addr}/"), TIMEOUT).await;
    assert_eq!(reason(&o), "timeout");
    assert_eq!(
        o.value(&PROBE_HTTP_STATUS_CODE),
        Some(200.0),
        "the head arrived before the timeout"
    );
}

#[tokio::test]
async fn reset_mid_body() {
    let addr = raw_server(|mut s| async move {
        read_request(&mut s).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial").await;
        let _ = s.set_zero_linger();
        drop(s); // RST
    })
    .await;
    let o = probe("prober: http", &format!("http://{addr}/")).await;
    assert_eq!(reason(&o), "http_protocol");
}

#[tokio::test]
async fn garbage_instead_of_http() {
    let addr = raw_server(|mut s| async move {
        read_request(&mut s).await;
        let _ = s.write_all(b"\x00\x01garbage\r\n\r\n").await;
    })
    .await;
    let o = probe("prober: http", &format!("http://{addr}/")).await;
    assert_eq!(reason(&o), "http_protocol");
}

#[tokio::test]
async fn plain_server_on_tls_probe_fails_handshake() {
    let addr = raw_server(|mut s| async move {
        read_request(&mut s).await;
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    })
    .await;
    let o = probe("prober: http", &format!("https://127.0.0.1:{}/", addr.port())).await;
    assert_eq!(reason(&o), "tls_handshake");
}

#[tokio::test]
async fn dns_failure() {
    let o = probe("prober: http", "http://lookout-test-no-such-host.invalid/").await;
    assert_eq!(reason(&o), "dns");
    let o = probe("prober: tcp", "lookout-test-no-such-host.invalid:80").await;
    assert_eq!(reason(&o), "dns");
}

#[tokio::test]
async fn hostile_targets_are_refused_cleanly() {
    for target in
        ["file:///etc/passwd", "gopher://x/", "http://", "http://a b/", "http://[::1/", "\u{0}"]
    {
        let o = probe("prober: http", target).await;
        assert_eq!(reason(&o), "invalid_target", "{target:?}");
    }
    for target in ["no-port", "host:notaport", "[::1", "a/b:80"] {
        let o = probe("prober: tcp", target).await;
        assert_eq!(reason(&o), "invalid_target", "{target:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_socket_leak_after_thousands_of_failing_probes() {
    // Holds each connection past the probes' timeout, then lets go.
    let silent = raw_server(|s| async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        drop(s);
    })
    .await;
    let reset = raw_server(|mut s| async move {
        read_request(&mut s).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nx").await;
        let _ = s.set_zero_linger();
    })
    .await;
    let refused = format!("http://127.0.0.1:{}/", closed_port());
    let module = std::sync::Arc::new(prepare("prober: http"));
    let run_batch = |targets: Vec<String>, timeout: Duration| {
        let module = module.clone();
        async move {
            let mut set = tokio::task::JoinSet::new();
            for t in targets {
                let module = module.clone();
                set.spawn(async move { lookout::probe::run(&module, &t, timeout).await.success });
            }
            let mut failures = 0;
            while let Some(ok) = set.join_next().await {
                if !ok.unwrap() {
                    failures += 1;
                }
            }
            failures
        }
    };
    // Warm up lazily created state (resolver threads, runtime) before counting descriptors.
    run_batch(vec![refused.clone(); 20], Duration::from_millis(200)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = lookout::metrics::process::open_fds();
    let mut failures = 0;
    for round in 0..10 {
        let mut targets = vec![refused.clone(); 150];
        targets.extend(vec![format!("http://{reset}/"); 100]);
        if round % 2 == 0 {
            targets.extend(vec![format!("http://{silent}/"); 50]);
        }
        failures += run_batch(targets, Duration::from_millis(150)).await;
    }
    assert_eq!(failures, 2750);
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Other tests run in this process too, so the descriptor count gets a margin; the sockets
    // to this test's servers are counted exactly.
    let after = lookout::metrics::process::open_fds();
    assert!(after <= before + 100, "open fds grew from {before} to {after} after 3000 probes");
    let open = open_client_sockets(&[silent.port(), reset.port()]);
    assert_eq!(open, 0, "client sockets to the test servers still open");
}

/// TCP sockets whose remote end is one of `ports` on loopback and that are not closed yet
/// (anything but TIME_WAIT and CLOSE).
fn open_client_sockets(ports: &[u16]) -> usize {
    let table = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port =
                fields[2].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            remote_port.is_some_and(|p| ports.contains(&p)) && !matches!(fields[3], "06" | "07")
        })
        .count()
}
