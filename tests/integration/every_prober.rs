//! A blackbox.yml with http, tcp, icmp, dns, grpc, unix and websocket modules, run by the
//! binary the three ways lookout runs probes: `/probe`, scheduled probes (with `/metrics` and
//! the status page), and `--once`; and blackbox's own configurations, shipped and test ones.

use crate::cli::wait_for;
use crate::common::*;
use crate::peers::{dns, grpc_server, Dns, Health};
use crate::unix_prober::unix_service;
use crate::websocket_prober::{websocket_server, Seen};

fn config(dns: &Dns, dir: &std::path::Path) -> String {
    let web = in_background(http_server);
    let grpc = grpc_server(Health::Reporter, None);
    let socket = unix_service(dir, None);
    let socket = socket.display();
    let ws = in_background(|| websocket_server(None, Seen::default()));
    let dns = dns.authoritative;
    format!(
        r#"modules:
  http_2xx: {{ prober: http, http: {{ preferred_ip_protocol: ip4 }} }}
  tcp_connect: {{ prober: tcp }}
  icmp: {{ prober: icmp, icmp: {{ packets: 2, packet_interval: 50ms }} }}
  dns_soa: {{ prober: dns, dns: {{ query_name: example.test, query_type: SOA }} }}
  grpc: {{ prober: grpc }}
  unix_ping: {{ prober: unix, unix: {{ query_response: [{{ send: PING }}, {{ expect: PONG }}] }} }}
  websocket: {{ prober: websocket, websocket: {{ query_response: [{{ expect: "^Hello" }}] }} }}
probe_endpoint:
  allowed_unix_sockets: ["{socket}"]
probes:
  - {{ name: web, module: http_2xx, target: "http://{web}/", interval: 1s }}
  - {{ name: port, module: tcp_connect, target: "{web}", interval: 1s }}
  - {{ name: ping, module: icmp, target: 127.0.0.1, interval: 1s }}
  - {{ name: zone, module: dns_soa, target: "{dns}", interval: 1s }}
  - {{ name: health, module: grpc, target: "{grpc}", interval: 1s }}
  - {{ name: socket, module: unix_ping, target: "{socket}", interval: 1s }}
  - {{ name: chat, module: websocket, target: "ws://{ws}/", interval: 1s }}
"#
    )
}

#[test]
fn every_prober_through_probe_schedule_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let dns = dns();
    let yaml = config(&dns, dir.path());
    let server = Server::start(dir.path(), &yaml);
    let names = ["web", "port", "ping", "zone", "health", "socket", "chat"];
    for name in names {
        wait_for(server.addr, "/metrics", &format!("probe_success{{probe=\"{name}\""));
    }
    let metrics = get(server.addr, "/metrics", &[]).unwrap().body;
    for name in names {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("probe_success{{probe=\"{name}\"")))
            .unwrap();
        assert!(line.ends_with(" 1"), "{line}");
    }
    assert!(metrics.contains("lookout_icmp_packets_received{probe=\"ping\""), "{metrics}");
    assert!(metrics.contains("probe_dns_serial{probe=\"zone\""), "{metrics}");
    assert!(metrics.contains("probe_websocket_status_code{probe=\"chat\""), "{metrics}");
    let page = get(server.addr, "/", &[]).unwrap().body;
    for shown in ["SERVING", "1 answers", "2/2 replies", "101"] {
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
    for module in ["grpc", "dns_soa", "tcp_connect", "websocket"] {
        let target = if module == "websocket" {
            format!("ws://{}/", server.addr)
        } else {
            server.addr.to_string()
        };
        let body =
            get(server.addr, &format!("/probe?module={module}&target={target}"), &[]).unwrap().body;
        assert!(body.contains("reason=\"target_not_allowed\""), "{module}: {body}");
    }
    drop(server);
    // --once.
    let text = once_ok(dir.path());
    assert!(text.contains("7 probes, 7 ok"), "{text}");
    assert!(text.contains("SERVING") && text.contains("2/2 replies"), "{text}");
}

/// blackbox's own test configurations (`../shared/corpus/blackbox-configs`, upstream's
/// config/testdata): the good one loads, the bad ones outside HTTP are refused at their line,
/// as upstream refuses them.
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
        (
            "invalid-tcp-query-response-regexp.yml",
            ":7:19: key 'modules.tcp_test.tcp.query_response[0].expect': invalid regexp",
        ),
        (
            "invalid-unix-query-response-regexp.yml",
            ":8:19: key 'modules.unix_socket_bad_regex.unix.query_response[0].expect': invalid regexp",
        ),
        (
            "invalid-websocket-query-response-regexp.yml",
            ":7:19: key 'modules.websocket_test.websocket.query_response[0].expect': invalid regexp",
        ),
        ("blackbox-bad.yml", ":50:7: key 'modules.dns_test.dns.invalid_extra_field'"),
        ("blackbox-bad2.yml", ":6:7: key 'modules.http_post_2xx.http': at most one of"),
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

/// Upstream's configuration rules outside HTTP, each with a file it refuses and one it accepts
/// (`tests/data/blackbox_rules/<rule>.refused.yml` and `.accepted.yml`), through `lookout check`.
#[test]
fn blackbox_rules_refused_and_accepted() {
    let rules = [
        ("prober-name", "3:13", "modules.check.prober", "unknown prober \"sctp\""),
        ("unknown-key", "6:7", "modules.zone.dns.query_nam", "unknown field"),
        (
            "tcp-expect-and-expect-bytes",
            "8:25",
            "modules.postgres.tcp.query_response[1].expect_bytes",
            "mutually exclusive",
        ),
        (
            "unix-expect-and-expect-bytes",
            "8:25",
            "modules.agent.unix.query_response[1].expect_bytes",
            "mutually exclusive",
        ),
        (
            "tcp-query-response-regexp",
            "6:19",
            "modules.smtp.tcp.query_response[0].expect",
            "unclosed group",
        ),
        (
            "unix-query-response-regexp",
            "7:19",
            "modules.agent.unix.query_response[1].expect",
            "unclosed character class",
        ),
        (
            "websocket-query-response-regexp",
            "6:19",
            "modules.chat.websocket.query_response[0].expect",
            "repetition operator",
        ),
        (
            "expect-label-name",
            "8:21",
            "modules.ssh.tcp.query_response[0].labels[0].name",
            "\"ssh-version\" is not allowed",
        ),
        ("icmp-ttl-negative", "5:12", "modules.ping.icmp.ttl", ""),
        ("icmp-ttl-above-255", "5:12", "modules.ping.icmp.ttl", "cannot exceed 255"),
        ("dns-query-class", "7:20", "modules.chaos.dns.query_class", "\"CHAOSNET\""),
        ("dns-query-type", "6:19", "modules.mail.dns.query_type", "\"MAILX\""),
        ("dns-query-name", "5:7", "modules.mail.dns", "missing field `query_name`"),
        (
            "websocket-one-authentication",
            "10:11",
            "modules.chat.websocket.http_config.authorization",
            "at most one of basic_auth and authorization",
        ),
        (
            "websocket-password-and-file",
            "7:11",
            "modules.chat.websocket.http_config.basic_auth",
            "at most one of password and password_file",
        ),
        (
            "basic-auth-username-and-file",
            "7:11",
            "modules.chat.websocket.http_config.basic_auth",
            "at most one of username and username_file",
        ),
        ("tls-cert-without-key", "7:20", "modules.mtls.tcp.tls_config.cert_file", "needs key_file"),
        (
            "tls-ca-and-ca-file",
            "9:11",
            "modules.imaps.tcp.tls_config.ca",
            "at most one of ca and ca_file",
        ),
    ];
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/blackbox_rules");
    let check = |file: &str| {
        std::process::Command::new(LOOKOUT)
            .current_dir(&data)
            .args(["check", &format!("--config.probes={file}")])
            .output()
            .unwrap()
    };
    let mut files: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut listed: Vec<String> = rules
        .iter()
        .flat_map(|(rule, ..)| [format!("{rule}.accepted.yml"), format!("{rule}.refused.yml")])
        .collect();
    listed.sort();
    assert_eq!(files, listed, "every file in tests/data/blackbox_rules has its rule");
    for (rule, place, key, message) in rules {
        let refused = format!("{rule}.refused.yml");
        let out = check(&refused);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{refused}: {err}");
        assert!(
            err.contains(&format!("{refused}:{place}: key '{key}")) && err.contains(message),
            "{refused}: expected {place}, {key} and {message:?} in {err}"
        );
        let accepted = format!("{rule}.accepted.yml");
        let out = check(&accepted);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{accepted}: {err}");
    }
}
