//! The dns prober against Knot (authoritative for example.test, with an SOA) and dnsmasq
//! (recursing to Knot only), over UDP, TCP and TLS; and against hand-made peers for what real
//! servers do not do on request: replies from the wrong host or with the wrong ID.

use crate::common::*;
use crate::peers::{dns, tls_proxy};
use std::time::Duration;

fn module(lines: &str) -> String {
    format!("prober: dns\ndns:\n  preferred_ip_protocol: ip4\n{lines}")
}

#[tokio::test]
async fn soa_of_the_authoritative_zone() {
    let dns = dns();
    let target = dns.authoritative.to_string();
    for transport in ["udp", "tcp"] {
        let m = module(&format!(
            "  query_name: example.test\n  query_type: SOA\n  transport_protocol: {transport}\n  recursion_desired: false"
        ));
        let outcome = probe(&m, &target).await;
        assert!(outcome.success, "{transport}: {:?}", outcome.failure);
        assert_eq!(outcome.value(&PROBE_DNS_SERIAL), Some(2_024_010_101.0));
        assert_eq!(outcome.value(&PROBE_DNS_ANSWER_RRS), Some(1.0));
        assert_eq!(outcome.value(&PROBE_DNS_QUERY_SUCCEEDED), Some(1.0));
        let phases: Vec<String> = label_sets(&outcome, &PROBE_DNS_DURATION_SECONDS)
            .iter()
            .map(|set| label(set, "phase").to_string())
            .collect();
        assert_eq!(phases, ["resolve", "connect", "request"]);
    }
    // probe_dns_serial only for SOA queries, as blackbox.
    let outcome = probe(&module("  query_name: www.example.test\n  query_type: A"), &target).await;
    assert!(outcome.success);
    assert!(family(&outcome, &PROBE_DNS_SERIAL).is_none());
}

#[tokio::test]
async fn records_are_matched_as_blackbox_prints_them() {
    let dns = dns();
    let target = dns.authoritative.to_string();
    let cases = [
        (
            "www.example.test",
            "A",
            "fail_if_not_matches_regexp",
            "^www\\\\.example\\\\.test\\\\.\\t300\\tIN\\tA\\t192\\\\.0\\\\.2\\\\.10$",
            true,
        ),
        (
            "example.test",
            "MX",
            "fail_if_not_matches_regexp",
            "\\tMX\\t10 mail\\\\.example\\\\.test\\\\.$",
            true,
        ),
        (
            "example.test",
            "TXT",
            "fail_if_not_matches_regexp",
            "\\tTXT\\t\\\"v=spf1 -all\\\"$",
            true,
        ),
        (
            "_sip._tcp.example.test",
            "SRV",
            "fail_if_none_matches_regexp",
            "\\tSRV\\t0 5 5060 sip\\\\.example\\\\.test\\\\.$",
            true,
        ),
        ("www.example.test", "AAAA", "fail_if_matches_regexp", "2001:db8::10", false),
        ("www.example.test", "A", "fail_if_none_matches_regexp", "192\\\\.0\\\\.2\\\\.99", false),
        ("www.example.test", "A", "fail_if_all_match_regexp", "192\\\\.0\\\\.2\\\\.99", false),
    ];
    for (name, kind, key, regex, ok) in cases {
        let m = module(&format!(
            "  query_name: {name}\n  query_type: {kind}\n  validate_answer_rrs:\n    {key}: [\"{regex}\"]"
        ));
        let outcome = probe(&m, &target).await;
        assert_eq!(outcome.success, ok, "{name} {kind} {key} {regex}: {:?}", outcome.failure);
        if !ok {
            assert_eq!(reason(&outcome), "dns_record_regex");
        }
    }
    // Authority and additional sections: NXDOMAIN answers carry the zone's SOA in authority.
    let m = module("  query_name: nope.example.test\n  query_type: A\n  valid_rcodes: [NXDOMAIN]\n  validate_authority_rrs:\n    fail_if_not_matches_regexp: [\"\\tSOA\\t\"]\n  validate_additional_rrs:\n    fail_if_matches_regexp: [\".\"]");
    let outcome = probe(&m, &target).await;
    assert!(outcome.success, "{:?}", outcome.failure);
}

#[tokio::test]
async fn rcodes() {
    let dns = dns();
    let target = dns.authoritative.to_string();
    let nx = "  query_name: nope.example.test\n  query_type: A";
    let outcome = probe(&module(nx), &target).await;
    assert_eq!(reason(&outcome), "dns_rcode");
    assert_eq!(outcome.value(&PROBE_DNS_QUERY_SUCCEEDED), Some(1.0));
    let outcome = probe(&module(&format!("{nx}\n  valid_rcodes: [NXDOMAIN]")), &target).await;
    assert!(outcome.success);
    // Knot refuses a zone it does not serve.
    let outcome = probe(&module("  query_name: other.example\n  query_type: A"), &target).await;
    assert_eq!(reason(&outcome), "dns_rcode");
}

#[tokio::test]
async fn recursion_through_dnsmasq() {
    let dns = dns();
    let target = dns.recursive.to_string();
    let m = module("  query_name: www.example.test\n  query_type: A\n  validate_answer_rrs:\n    fail_if_none_matches_regexp: [\"192\\\\.0\\\\.2\\\\.10\"]");
    let outcome = probe(&m, &target).await;
    assert!(outcome.success, "{:?}", outcome.failure);
}

#[tokio::test]
async fn truncated_answers_are_read_and_tcp_gets_them_whole() {
    let dns = dns();
    let target = dns.authoritative.to_string();
    let udp = module("  query_name: big.example.test\n  query_type: TXT");
    let outcome = probe(&udp, &target).await;
    // As blackbox: the truncated answer is what the probe reports.
    assert!(outcome.success, "{:?}", outcome.failure);
    assert!(outcome.value(&PROBE_DNS_ANSWER_RRS).unwrap() < 12.0);
    assert!(outcome.log.iter().any(|l| l.contains("truncated")), "{:?}", outcome.log);
    let tcp = format!("{udp}\n  transport_protocol: tcp");
    let outcome = probe(&tcp, &target).await;
    assert_eq!(outcome.value(&PROBE_DNS_ANSWER_RRS), Some(12.0));
}

#[tokio::test]
async fn dns_over_tls() {
    let ca = Ca::new("dns test CA");
    let leaf = ca.leaf("dns.test", &["dns.test"], -1, 30);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write_file(dir.path(), "ca.pem", pem(&ca.der()));
    let dns = dns();
    let backend = dns.authoritative;
    // TLS in front of Knot's TCP port.
    let front = tls_proxy(vec![leaf.der.clone()], leaf.key_der(), backend).await;
    let m = module(&format!(
        "  query_name: example.test\n  query_type: SOA\n  transport_protocol: tcp\n  dns_over_tls: true\n  tls_config:\n    ca_file: {}\n    server_name: dns.test",
        ca_file.display()
    ));
    let outcome = probe(&m, &front.to_string()).await;
    assert!(outcome.success, "{:?}", outcome.failure);
    assert_eq!(outcome.value(&PROBE_DNS_SERIAL), Some(2_024_010_101.0));
    assert!(family(&outcome, &PROBE_TLS_VERSION_INFO).is_some());
    // Untrusted: the certificate metrics are there, the probe fails.
    let m = module("  query_name: example.test\n  transport_protocol: tcp\n  dns_over_tls: true");
    let outcome = probe(&m, &front.to_string()).await;
    assert_eq!(reason(&outcome), "tls_verify");
    assert!(family(&outcome, &CERT_NOT_AFTER).is_some());
}

#[tokio::test]
async fn a_reply_from_another_host_is_never_taken() {
    // The peer answers from a second socket (another port): the probe waits for the real
    // server and times out.
    let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let other = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = server.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 512];
        while let Ok((n, from)) = server.recv_from(&mut buffer).await {
            let mut reply = buffer[..n].to_vec();
            reply[2] |= 0x80; // a response
            let _ = other.send_to(&reply, from).await;
        }
    });
    let m = module("  query_name: example.test\n  query_type: A");
    let outcome = probe_with_timeout(&m, &target.to_string(), Duration::from_millis(500)).await;
    assert_eq!(reason(&outcome), "timeout");
    assert_eq!(outcome.value(&PROBE_DNS_QUERY_SUCCEEDED), Some(0.0));
}

#[tokio::test]
async fn replies_with_another_id_or_garbage_are_handled() {
    let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = server.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 512];
        while let Ok((n, from)) = server.recv_from(&mut buffer).await {
            let mut reply = buffer[..n].to_vec();
            reply[2] |= 0x80;
            let mut wrong_id = reply.clone();
            wrong_id[0] ^= 0xff;
            let _ = server.send_to(&wrong_id, from).await;
            let _ = server.send_to(b"\x00", from).await;
            // The real reply, then one cut in the middle of its question.
            let _ = server.send_to(&reply, from).await;
        }
    });
    let m = module("  query_name: example.test\n  query_type: A");
    let outcome = probe(&m, &target.to_string()).await;
    assert!(outcome.success, "{:?}", outcome.failure);
    assert_eq!(outcome.value(&PROBE_DNS_ANSWER_RRS), Some(0.0));

    // A reply with the right ID that cannot be read fails the probe with a reason.
    let broken = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = broken.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 512];
        while let Ok((n, from)) = broken.recv_from(&mut buffer).await {
            let mut reply = buffer[..n].to_vec();
            reply[2] |= 0x82; // a truncated response
            reply[7] = 3; // claims three answers it does not carry
            let _ = broken.send_to(&reply[..n - 2], from).await;
        }
    });
    let outcome = probe(&m, &target.to_string()).await;
    assert_eq!(reason(&outcome), "dns");
    assert!(outcome.failure.unwrap().message.contains("truncated"));
}

#[test]
fn bad_module_values_are_refused_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let head = "modules:\n  d:\n    prober: dns\n    dns:\n";
    let cases = [
        (format!("{head}      query_name: x\n      query_type: AXFRR\n"), "6:19", "unknown query_type \"AXFRR\""),
        (format!("{head}      query_name: x\n      query_class: XX\n"), "6:20", "unknown query_class"),
        (format!("{head}      query_name: x\n      valid_rcodes: [NOPE]\n"), "6:22", "unknown rcode"),
        (format!("{head}      query_name: x\n      transport_protocol: quic\n"), "6:27", "udp or tcp"),
        (format!("{head}      query_name: x\n      dns_over_tls: true\n"), "5:19", "dns_over_tls needs transport_protocol: tcp"),
        (format!("{head}      query_name: x\n      validate_answer_rrs:\n        fail_if_matches_regexp: [\"(\"]\n"), "7:34", "invalid regexp"),
        ("modules:\n  d:\n    prober: dns\n".to_string(), "3:13", "needs a `dns:` section"),
        ("modules:\n  i:\n    prober: icmp\n    icmp: { ttl: 300 }\n".to_string(), "4:18", "ttl cannot exceed 255"),
        ("modules:\n  i:\n    prober: icmp\n    icmp: { packets: 0 }\n".to_string(), "4:22", "packets must be between"),
        ("modules:\n  i:\n    prober: icmp\n    icmp: { packet_interval: 1s }\n".to_string(), "4:30", "packet_interval needs packets"),
        ("modules:\n  i:\n    prober: icmp\n    icmp: { payload_size: 70000 }\n".to_string(), "4:27", ""),
        ("modules:\n  g:\n    prober: grpc\n    icmp: {}\n".to_string(), "3:13", "has a `icmp:` section but prober \"grpc\""),
        ("modules:\n  g:\n    prober: grpx\n".to_string(), "3:13", "unknown prober \"grpx\""),
        ("modules:\n  g:\n    prober: grpc\n    grpc: { metadata: { \"a b\": [x] } }\n".to_string(), "4:33", "invalid metadata \"a b\""),
    ];
    let cases: Vec<(&str, &str, &str)> =
        cases.iter().map(|(y, p, m)| (y.as_str(), *p, *m)).collect();
    assert_config_errors(dir.path(), "probes.yaml", "--config.probes", &[], &cases);
}
