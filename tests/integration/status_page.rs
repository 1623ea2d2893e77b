//! The status page as a person sees it: rendered by headless Chromium (Debian's package), with
//! probes, their reasons, certificate warnings in colour, and the log sources.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(dir: &Path, url: &str, extra: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "chromium must be installed (Debian package chromium); .ci/run installs it"
    );
    let profile = dir.join("chromium-profile");
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_page_renders_probes_certificates_and_log_sources() {
    let dir = tempfile::tempdir().unwrap();
    let web = in_background(http_server);
    let ca = Ca::new("Page CA");
    write_file(dir.path(), "soon.pem", ca.leaf("soon.example", &["soon.example"], -100, 10).pem());
    write_file(dir.path(), "gone.pem", ca.leaf("gone.example", &["gone.example"], -100, -3).pem());
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let probes = format!(
        "modules:\n  http_2xx:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\n  certs:\n    prober: file\nprobes:\n  - name: shop-home\n    module: http_2xx\n    target: http://{web}/\n    interval: 1s\n  - name: payments-api\n    module: http_2xx\n    target: http://127.0.0.1:{}/\n    interval: 1s\n  - name: soon-cert\n    module: certs\n    target: {d}/soon.pem\n    interval: 1s\n  - name: gone-cert\n    module: certs\n    target: {d}/gone.pem\n    interval: 1s\n",
        closed_port(),
        d = dir.path().display()
    );
    let rules = write_file(
        dir.path(),
        "rules.yaml",
        format!("sources:\n  - name: edge-nginx\n    paths: [\"{}\"]\n    format: nginx\n    poll_interval: 100ms\n", log.display()),
    );
    let probes_path = write_file(dir.path(), "probes.yaml", probes);
    let server = Server::with_logs(dir.path(), &probes_path, &rules);
    let addr = server.addr;
    std::thread::sleep(Duration::from_millis(300));
    let mut lines = String::new();
    for i in 0..20 {
        lines.push_str(&format!(
            "10.0.0.1 - - [20/Nov/2026:10:00:00 +0900] \"GET /{i} HTTP/1.1\" 200 1 \"-\" \"-\"\n"
        ));
    }
    lines.push_str("this line is not nginx's\n");
    std::fs::write(&log, lines).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(addr, "/", &[])
        .map(|r| r.body.contains("class=\"pending\"") || r.body.contains("none yet"))
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the page never showed every probe and the source: {:?}",
            get(addr, "/", &[]).map(|r| r.body)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let url = format!("http://{addr}/");
    let dom = chromium(dir.path(), &url, &["--dump-dom"]);
    let row = |name: &str| -> String {
        let start = dom
            .find(&format!("<td>{name}</td>"))
            .unwrap_or_else(|| panic!("{name} missing from the page:\n{dom}"));
        dom[start..start + dom[start..].find("</tr>").unwrap()].to_string()
    };
    assert!(row("shop-home").contains("<td class=\"ok\">ok</td>"), "{}", row("shop-home"));
    assert!(row("shop-home").contains("<td>200</td>"));
    let down = row("payments-api");
    assert!(
        down.contains("<td class=\"fail\">FAIL</td>") && down.contains("connect_refused"),
        "{down}"
    );
    assert!(row("soon-cert").contains("<td class=\"warn\">"), "{}", row("soon-cert"));
    assert!(
        row("gone-cert").contains("<td class=\"expired\">expired 3 days ago</td>"),
        "{}",
        row("gone-cert")
    );
    let source = row("edge-nginx");
    assert!(source.contains("4.8%"), "1 of 21 lines unmatched: {source}");
    assert!(source.contains("s ago"), "{source}");
    assert!(dom.contains("href=\"/queries\"") && dom.contains("href=\"/metrics\""));

    let shot = dir.path().join("status.png");
    chromium(dir.path(), &url, &[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.len() > 10_000 && png.starts_with(b"\x89PNG"), "a real screenshot");
    if let Ok(keep) = std::env::var("LOOKOUT_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
