//! A blackbox.yml with http, tcp, icmp, dns and grpc modules, run by the binary the three ways
//! lookout runs probes: `/probe`, scheduled probes (with `/metrics` and the status page), and
//! `--once`.

use crate::cli::wait_for;
use crate::common::*;
use crate::peers::{dns, grpc_server, Dns, Health};

fn config(dns: &Dns) -> String {
    let web = in_background(http_server);
    let grpc = grpc_server(Health::Reporter, None);
    let dns = dns.authoritative;
    format!(
        r#"modules:
  http_2xx: {{ prober: http, http: {{ preferred_ip_protocol: ip4 }} }}
  tcp_connect: {{ prober: tcp }}
  icmp: {{ prober: icmp, icmp: {{ packets: 2, packet_interval: 50ms }} }}
  dns_soa: {{ prober: dns, dns: {{ query_name: example.test, query_type: SOA }} }}
  grpc: {{ prober: grpc }}
probes:
  - {{ name: web, module: http_2xx, target: "http://{web}/", interval: 1s }}
  - {{ name: port, module: tcp_connect, target: "{web}", interval: 1s }}
  - {{ name: ping, module: icmp, target: 127.0.0.1, interval: 1s }}
  - {{ name: zone, module: dns_soa, target: "{dns}", interval: 1s }}
  - {{ name: health, module: grpc, target: "{grpc}", interval: 1s }}
"#
    )
}

#[test]
fn every_prober_through_probe_schedule_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let dns = dns();
    let yaml = config(&dns);
    let server = Server::start(dir.path(), &yaml);
    for name in ["web", "port", "ping", "zone", "health"] {
        wait_for(server.addr, "/metrics", &format!("probe_success{{probe=\"{name}\""));
    }
    let metrics = get(server.addr, "/metrics", &[]).unwrap().body;
    for name in ["web", "port", "ping", "zone", "health"] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("probe_success{{probe=\"{name}\"")))
            .unwrap();
        assert!(line.ends_with(" 1"), "{line}");
    }
    assert!(metrics.contains("lookout_icmp_packets_received{probe=\"ping\""), "{metrics}");
    assert!(metrics.contains("probe_dns_serial{probe=\"zone\""), "{metrics}");
    let page = get(server.addr, "/", &[]).unwrap().body;
    for shown in ["SERVING", "1 answers", "2/2 replies"] {
        assert!(page.contains(shown), "{shown} not on the status page");
    }
    // /probe with the same modules and targets.
    for line in yaml.lines().filter(|l| l.starts_with("  - {")) {
        let module = line.split("module: ").nth(1).unwrap().split(',').next().unwrap();
        let target =
            line.split("target: \"").nth(1).map_or("127.0.0.1", |t| t.split('"').next().unwrap());
        let target: String = form_urlencoded::byte_serialize(target.as_bytes()).collect();
        let body =
            get(server.addr, &format!("/probe?module={module}&target={target}"), &[]).unwrap().body;
        assert_eq!(sample_value(&body, "probe_success "), Some(1.0), "{module}: {body}");
    }
    // The guard holds for the new probers too: lookout's own port is not a target.
    for module in ["grpc", "dns_soa", "tcp_connect"] {
        let body = get(server.addr, &format!("/probe?module={module}&target={}", server.addr), &[])
            .unwrap()
            .body;
        assert!(body.contains("reason=\"target_not_allowed\""), "{module}: {body}");
    }
    drop(server);
    // --once.
    let out = std::process::Command::new(LOOKOUT)
        .current_dir(dir.path())
        .args(["--once", "--config.probes=probes.yaml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("5 probes, 5 ok"), "{text}");
    assert!(text.contains("SERVING") && text.contains("2/2 replies"), "{text}");
}

/// blackbox's own test configurations (`../shared/corpus/blackbox-configs`, upstream's
/// config/testdata): the good one loads, the bad icmp, dns and prober ones are refused at
/// their line, as upstream refuses them.
#[test]
fn upstream_blackbox_test_configurations() {
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/blackbox-configs");
    let check = |file: &str| {
        std::process::Command::new(LOOKOUT)
            .current_dir(std::env::temp_dir())
            .args(["check", &format!("--config.probes={}", corpus.join(file).display())])
            .output()
            .unwrap()
    };
    let good = check("blackbox-good.yml");
    assert_eq!(good.status.code(), Some(0), "{}", String::from_utf8_lossy(&good.stderr));
    for (file, place) in [
        ("invalid-dns-class.yml", ":7:20: key 'modules.dns_test.dns.query_class'"),
        ("invalid-dns-type.yml", ":8:19: key 'modules.dns_test.dns.query_type'"),
        ("invalid-dns-module.yml", "missing field `query_name`"),
        ("invalid-icmp-ttl.yml", ":5:12: key 'modules.icmp_test.icmp.ttl'"),
        ("invalid-icmp-ttl-overflow.yml", "ttl cannot exceed 255"),
        ("invalid-prober.yml", "unknown prober"),
        ("invalid-http-body-config.yml", ":7:18: key 'modules.http_test.http.body_file'"),
        (
            "invalid-http-body-match-regexp.yml",
            ":7:11: key 'modules.http_headers.http.fail_if_body_matches_regexp[0]'",
        ),
        (
            "invalid-http-body-not-match-regexp.yml",
            ":7:11: key 'modules.http_headers.http.fail_if_body_not_matches_regexp[0]'",
        ),
        (
            "invalid-http-compression-mismatch.yml",
            ":8:28: key 'modules.http_headers.http.headers.Accept-Encoding'",
        ),
        (
            "invalid-http-compression-mismatch-special-case.yml",
            ":8:28: key 'modules.http_headers.http.headers.accEpt-enCoding'",
        ),
        (
            "invalid-http-request-compression-reject-all-encodings.yml",
            ":10:28: key 'modules.http_headers.http.headers.Accept-Encoding'",
        ),
        (
            "invalid-http-header-match-regexp.yml",
            ":9:19: key 'modules.http_headers.http.fail_if_header_not_matches[0].regexp'",
        ),
        ("invalid-http-header-match.yml", "missing field `regexp`"),
        (
            "invalid-http-http3-http2-enabled.yml",
            ":6:21: key 'modules.http_headers.http.enable_http3'",
        ),
        (
            "invalid-http-http3-http2-version.yml",
            ":8:29: key 'modules.http_headers.http.valid_http_versions'",
        ),
        (
            "invalid-http-http3-http2.yml",
            ":8:29: key 'modules.http_headers.http.valid_http_versions'",
        ),
        (
            "invalid-no-versions-http3-enabled.yml",
            ":6:21: key 'modules.http_headers.http.enable_http3'",
        ),
    ] {
        let out = check(file);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert!(err.contains(file) && err.contains(place), "{file}: {err}");
    }
}
