//! A real nginx (Debian's package) writing its access log under load, rotated by rename and
//! `USR1` (reopen) halfway, as logrotate does: lookout counts every request exactly once.

use crate::common::*;
use std::time::{Duration, Instant};

#[test]
fn real_nginx_under_load_with_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let d = dir.path().display();
    let nginx = Nginx::start(
        dir.path(),
        &format!(
            r#"log_format timed '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time';
  access_log {d}/access.log timed;
  server {{
    listen 127.0.0.1:{port};
    location /fail {{ return 503 "down\n"; }}
    location / {{ return 200 "ok\n"; }}
  }}"#
        ),
        port,
    );
    let rules = format!(
        "sources:\n  - name: nginx\n    paths: [\"{}/access.log\"]\n    format: nginx\n    log_format: combined_timed\n    start_at: beginning\n    poll_interval: 50ms\nmetrics:\n  - name: http_requests_total\n    type: counter\n    source: nginx\n    labels: {{ status: status }}\n",
        dir.path().display()
    );
    let probes = write_file(dir.path(), "probes.yaml", "modules: {}\n");
    let rules_path = write_file(dir.path(), "rules.yaml", rules);
    let lookout = Server::with_logs(dir.path(), &probes, &rules_path);
    let addr = lookout.addr;
    let target: std::net::SocketAddr = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let warmup = 0; // the readiness check only connects
    const THREADS: usize = 8;
    const PER_THREAD: usize = 400;
    let load = move |fail_every: usize| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        let path =
                            if (t * PER_THREAD + i) % fail_every == 0 { "/fail" } else { "/" };
                        assert!(get(target, path, &[]).is_some());
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    };
    load(10);
    // logrotate: rename, then tell nginx to reopen its logs; requests keep coming meanwhile.
    std::fs::rename(dir.path().join("access.log"), dir.path().join("access.log.1")).unwrap();
    let during = std::thread::spawn(move || load(10));
    std::thread::sleep(Duration::from_millis(20));
    unsafe { libc::kill(nginx.child.id() as i32, libc::SIGUSR1) };
    during.join().unwrap();
    let expected_total = (warmup + 2 * THREADS * PER_THREAD) as f64;
    let expected_503 = (2 * THREADS * PER_THREAD / 10) as f64;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = get(addr, "/metrics", &[]).map(|r| r.body).unwrap_or_default();
        let total = sample_value(&body, "http_requests_total{status=\"200\"}").unwrap_or(0.0)
            + sample_value(&body, "http_requests_total{status=\"503\"}").unwrap_or(0.0);
        if total == expected_total {
            assert_eq!(
                sample_value(&body, "http_requests_total{status=\"503\"}"),
                Some(expected_503)
            );
            assert!(
                sample_value(&body, "lookout_log_rotations_total{source=\"nginx\"}").unwrap()
                    >= 1.0,
                "{body}"
            );
            std::thread::sleep(Duration::from_millis(300));
            let again = get(addr, "/metrics", &[]).unwrap().body;
            let settled = sample_value(&again, "http_requests_total{status=\"200\"}").unwrap()
                + sample_value(&again, "http_requests_total{status=\"503\"}").unwrap();
            assert_eq!(settled, expected_total, "nothing counted twice");
            return;
        }
        assert!(Instant::now() < deadline, "counted {total} of {expected_total} requests:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
