//! The drop-in claim, checked against blackbox_exporter itself: Debian's
//! `prometheus-blackbox-exporter` and lookout run side by side on one modules file, and every
//! case probes the same target through both `/probe` endpoints. Every metric family both emit
//! must agree in type, label sets and values (timings aside). One blackbox and one lookout
//! serve all cases.
//!
//! Peers are real servers on loopback: nginx (plain, TLS of every kind, HTTP/2, a proxy, basic
//! auth, gzip, static files), a CONNECT proxy and an OAuth2 token endpoint, Knot and dnsmasq, a tonic-health gRPC server, and a small
//! STARTTLS line server.
//!
//! Where Debian's blackbox 0.23 is older than upstream blackbox, lookout follows upstream; those
//! places are listed in [`UPSTREAM_LABELS`] and [`UPSTREAM_ABSENT`] and left out of the
//! comparison.

use crate::common::*;
use crate::peers::{dns, grpc_server, tls_acceptor, tls_proxy, Daemon, Dns, Health};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BLACKBOX: &str = "/usr/bin/prometheus-blackbox-exporter";

/// Families whose values are times of this run; only their label sets are compared.
const TIMINGS: [&str; 6] = [
    "probe_duration_seconds",
    "probe_dns_lookup_time_seconds",
    "probe_http_duration_seconds",
    "probe_icmp_duration_seconds",
    "probe_dns_duration_seconds",
    "probe_grpc_duration_seconds",
];

/// (family, label): labels upstream blackbox added after Debian's 0.23, which lookout emits as
/// upstream does; they are left out of the comparison.
const UPSTREAM_LABELS: [(&str, &str); 1] = [
    // "Reports Certificate Serial number" (blackbox #1333, in 0.26).
    ("probe_ssl_last_chain_info", "serialnumber"),
];

/// (module prefix, family): families Debian's 0.23 emits where upstream does not, left out of
/// the comparison for those modules.
const UPSTREAM_ABSENT: [(&str, &str); 1] = [
    // 0.23's grpc prober always has this gauge, 0 unless a TLS handshake verified; upstream
    // registers it only for a verified TLS peer. lookout, as upstream, has no 0 to show; it
    // reports the expiry of a chain it saw but could not verify, as its other probers do.
    ("grpc", "probe_ssl_earliest_cert_expiry"),
];

/// One sample: its sorted labels and value.
type Samples = Vec<(Vec<(String, String)>, f64)>;

/// name → (type, samples) of a text exposition.
fn parse(exposition: &str) -> BTreeMap<String, (String, Samples)> {
    let mut families: BTreeMap<String, (String, Samples)> = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.entry(name.to_string()).or_default().0 = kind.to_string();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        let mut pairs = Vec::new();
        let mut rest = labels;
        while let Some((key, after)) = rest.split_once("=\"") {
            // Values are escaped: find the closing quote not preceded by a backslash.
            let bytes = after.as_bytes();
            let mut end = 0;
            while bytes[end] != b'"' || (end > 0 && bytes[end - 1] == b'\\') {
                end += 1;
            }
            pairs.push((key.trim_start_matches(',').to_string(), after[..end].to_string()));
            rest = &after[end + 1..];
        }
        pairs.sort();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line:?}"));
        families.entry(name.to_string()).or_default().1.push((pairs, value));
    }
    for (_, samples) in families.values_mut() {
        samples.sort_by(|a, b| a.0.cmp(&b.0));
    }
    families
}

/// What differs between the two expositions, in the families both have.
fn differences(case: &str, blackbox: &str, lookout: &str) -> Vec<String> {
    let (b, l) = (parse(blackbox), parse(lookout));
    let mut found = Vec::new();
    for (name, (b_kind, b_samples)) in &b {
        let Some((l_kind, l_samples)) = l.get(name) else { continue };
        if UPSTREAM_ABSENT.iter().any(|(module, family)| case.starts_with(module) && family == name)
        {
            continue;
        }
        let mut l_samples = l_samples.clone();
        for (set, _) in &mut l_samples {
            set.retain(|(label, _)| !UPSTREAM_LABELS.contains(&(name.as_str(), label.as_str())));
        }
        let l_samples = &l_samples;
        if b_kind != l_kind {
            found.push(format!("{case}: {name}: type {b_kind} vs {l_kind}"));
        }
        let labels = |s: &Samples| s.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>();
        if labels(b_samples) != labels(l_samples) {
            found.push(format!(
                "{case}: {name}: labels {:?} vs {:?}",
                labels(b_samples),
                labels(l_samples)
            ));
            continue;
        }
        if TIMINGS.contains(&name.as_str()) {
            continue;
        }
        for ((set, bv), (_, lv)) in b_samples.iter().zip(l_samples) {
            let same = bv == lv || (bv.is_nan() && lv.is_nan()) || (bv - lv).abs() < 1e-9;
            if !same {
                found.push(format!("{case}: {name}{set:?}: blackbox {bv} vs lookout {lv}"));
            }
        }
    }
    found
}

struct Peers {
    plain: u16,
    tls: u16,
    tls12: u16,
    expired: u16,
    not_yet_valid: u16,
    self_signed: u16,
    mtls: u16,
    proxy: u16,
    /// A proxy that tunnels CONNECT (and records what it was sent).
    connect_proxy: u16,
    /// An OAuth2 token endpoint with a resource that wants its token.
    oauth: u16,
    starttls: SocketAddr,
    grpc: SocketAddr,
    grpc_tls: SocketAddr,
    grpc_unimplemented: SocketAddr,
    dns: Dns,
    /// DNS over TLS in front of the Knot of `dns`.
    dns_over_tls: SocketAddr,
    _nginx: Daemon,
}

fn nginx(dir: &Path) -> Peers {
    let ca = Ca::new("Parity CA");
    let good = ca.leaf("localhost", &["localhost"], -1, 90);
    let expired = ca.leaf("localhost", &["localhost"], -60, -2);
    let future = ca.leaf("localhost", &["localhost"], 5, 90);
    let unknown = self_signed("localhost", &["localhost"]);
    let client = ca.leaf("parity client", &["client.parity"], -1, 90);
    write_file(dir, "ca.pem", pem(&ca.der()));
    for (name, leaf) in [
        ("good", &good),
        ("expired", &expired),
        ("future", &future),
        ("unknown", &unknown),
        ("client", &client),
    ] {
        write_file(dir, &format!("{name}.pem"), leaf.pem());
        write_file(dir, &format!("{name}.key"), leaf.key.serialize_pem());
    }
    std::fs::create_dir_all(dir.join("www/basic")).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    write_file(
        dir,
        "www/index.html",
        "<html><body>hello parity world, hello again</body></html>\n".repeat(20),
    );
    write_file(dir, "www/basic/index.html", "authorised\n");
    write_file(dir, "www/big.txt", "x".repeat(100_000));
    // apr1 hash of "s3cret" for user "prober", as htpasswd makes it.
    let hash = Command::new("openssl").args(["passwd", "-apr1", "s3cret"]).output().unwrap();
    write_file(dir, "htpasswd", format!("prober:{}", String::from_utf8_lossy(&hash.stdout)));
    // Eight different free ports (the kernel may hand the same one out twice in a row).
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < 8 {
        let port = closed_port();
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    let [plain, tls, tls12, expired_port, self_signed_port, mtls, proxy, future_port] = ports[..]
    else {
        unreachable!()
    };
    let d = dir.display();
    let locations = format!(
        r#"
    root {d}/www;
    location = / {{ return 200 "hello world\n"; }}
    location = /404 {{ return 404 "missing\n"; }}
    location = /500 {{ return 500 "broken\n"; }}
    location = /redirect {{ return 302 /; }}
    location = /moved {{ return 301 /; }}
    location = /temporary {{ return 307 /; }}
    location = /loop {{ return 302 /loop; }}
    location = /noloc {{ return 302; }}
    location = /token {{
      if ($http_authorization != "Bearer t0ken") {{ return 401 "no\n"; }}
      return 200 "token ok\n";
    }}
    location = /header {{
      if ($http_x_probe != "parity") {{ return 403 "no\n"; }}
      return 200 "header ok\n";
    }}
    location = /post {{
      if ($request_method != POST) {{ return 405; }}
      return 200 "posted\n";
    }}
    location /basic/ {{ auth_basic "parity"; auth_basic_user_file {d}/htpasswd; }}
    location /static/ {{ alias {d}/www/; }}
    gzip on; gzip_min_length 1; gzip_types text/plain;
"#
    );
    let ssl = |port: u16, cert: &str, extra: &str| {
        format!(
            "  server {{\n    listen 127.0.0.1:{port} ssl http2;\n    ssl_certificate {d}/{cert}.pem;\n    ssl_certificate_key {d}/{cert}.key;\n    {extra}\n{locations}  }}\n"
        )
    };
    let conf = format!(
        r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  access_log off;
  server {{
    listen 127.0.0.1:{plain};
{locations}  }}
{tls_server}{tls12_server}{expired_server}{future_server}{unknown_server}{mtls_server}  server {{
    listen 127.0.0.1:{proxy};
    location / {{ proxy_pass http://127.0.0.1:{plain}; }}
  }}
}}
"#,
        tls_server = ssl(tls, "good", ""),
        tls12_server = ssl(tls12, "good", "ssl_protocols TLSv1.2;"),
        expired_server = ssl(expired_port, "expired", ""),
        future_server = ssl(future_port, "future", ""),
        unknown_server = ssl(self_signed_port, "unknown", ""),
        mtls_server =
            ssl(mtls, "good", &format!("ssl_client_certificate {d}/ca.pem; ssl_verify_client on;")),
    );
    let conf_path = write_file(dir, "nginx.conf", conf);
    let child = Command::new("/usr/sbin/nginx")
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let nginx = Daemon(child);
    let addr: SocketAddr = format!("127.0.0.1:{plain}").parse().unwrap();
    for _ in 0..200 {
        if get(addr, "/", &[]).is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    if get(addr, "/", &[]).is_none() {
        let test = Command::new("/usr/sbin/nginx")
            .arg("-t")
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir)
            .output()
            .unwrap();
        panic!(
            "nginx did not start: {}{}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default(),
            String::from_utf8_lossy(&test.stderr)
        );
    }
    let grpc = grpc_server(Health::Reporter, None);
    let grpc_tls = grpc_server(Health::Reporter, Some((vec![good.der.clone()], good.key_der())));
    let grpc_unimplemented = grpc_server(Health::Unimplemented, None);
    let dns = dns();
    let knot = dns.authoritative;
    let (chain, key) = (vec![good.der.clone()], good.key_der());
    let dns_over_tls = in_background(move || tls_proxy(chain, key, knot));
    let starttls = starttls_server(good);
    let connect_proxy = in_background(|| {
        crate::http_schema::recording_proxy(std::sync::Arc::new(std::sync::Mutex::new(Vec::new())))
    })
    .port();
    let oauth = in_background(|| {
        crate::http_schema::oauth2_server(std::sync::Arc::new(std::sync::Mutex::new(Vec::new())))
    })
    .port();
    Peers {
        plain,
        tls,
        tls12,
        expired: expired_port,
        not_yet_valid: future_port,
        self_signed: self_signed_port,
        mtls,
        proxy,
        connect_proxy,
        oauth,
        starttls,
        grpc,
        grpc_tls,
        grpc_unimplemented,
        dns,
        dns_over_tls,
        _nginx: nginx,
    }
}

/// A line server in the manner of SMTP: a banner, then `STARTTLS` upgrades the connection,
/// after which it greets again.
fn starttls_server(leaf: Leaf) -> SocketAddr {
    in_background(move || async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let acceptor = tls_acceptor(vec![leaf.der.clone()], leaf.key_der(), &[]);
        raw_server(move |stream| {
            let acceptor = acceptor.clone();
            async move {
                let mut stream = BufReader::new(stream);
                let _ = stream.get_mut().write_all(b"220 parity ESMTP ready\r\n").await;
                let mut line = String::new();
                while stream.read_line(&mut line).await.unwrap_or(0) > 0 {
                    if line.trim() == "STARTTLS" {
                        let _ = stream.get_mut().write_all(b"220 go ahead\r\n").await;
                        if let Ok(mut tls) = acceptor.accept(stream.into_inner()).await {
                            let _ = tls.write_all(b"220 parity secured\r\n").await;
                            let _ = tls.flush().await;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        return;
                    }
                    let _ = stream.get_mut().write_all(b"250 ok\r\n").await;
                    line.clear();
                }
            }
        })
        .await
    })
}

fn modules(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"modules:
  http_2xx: {{ prober: http, timeout: 5s, http: {{ preferred_ip_protocol: ip4 }} }}
  http_404: {{ prober: http, http: {{ preferred_ip_protocol: ip4, valid_status_codes: [404] }} }}
  http_no_follow: {{ prober: http, http: {{ preferred_ip_protocol: ip4, follow_redirects: false }} }}
  http_no_follow_302: {{ prober: http, http: {{ preferred_ip_protocol: ip4, follow_redirects: false, valid_status_codes: [302] }} }}
  http_post: {{ prober: http, http: {{ preferred_ip_protocol: ip4, method: POST, body: "a=1" }} }}
  http_head: {{ prober: http, http: {{ preferred_ip_protocol: ip4, method: HEAD }} }}
  http_header: {{ prober: http, http: {{ preferred_ip_protocol: ip4, headers: {{ X-Probe: parity }} }} }}
  http_body_match: {{ prober: http, http: {{ preferred_ip_protocol: ip4, fail_if_body_matches_regexp: ["hello"] }} }}
  http_body_not_match: {{ prober: http, http: {{ preferred_ip_protocol: ip4, fail_if_body_not_matches_regexp: ["^hello world"] }} }}
  http_body_not_match_fail: {{ prober: http, http: {{ preferred_ip_protocol: ip4, fail_if_body_not_matches_regexp: ["goodbye"] }} }}
  http_header_match: {{ prober: http, http: {{ preferred_ip_protocol: ip4, fail_if_header_matches: [{{ header: Server, regexp: nginx }}] }} }}
  http_header_not_match: {{ prober: http, http: {{ preferred_ip_protocol: ip4, fail_if_header_not_matches: [{{ header: Content-Type, regexp: "^text/plain" }}] }} }}
  http_header_missing: {{ prober: http, http: {{ preferred_ip_protocol: ip4, fail_if_header_not_matches: [{{ header: X-Nope, regexp: "." }}] }} }}
  http_header_missing_ok: {{ prober: http, http: {{ preferred_ip_protocol: ip4, fail_if_header_not_matches: [{{ header: X-Nope, regexp: ".", allow_missing: true }}] }} }}
  http_basic: {{ prober: http, http: {{ preferred_ip_protocol: ip4, basic_auth: {{ username: prober, password: s3cret }} }} }}
  http_basic_wrong: {{ prober: http, http: {{ preferred_ip_protocol: ip4, basic_auth: {{ username: prober, password: wrong }} }} }}
  http_bearer: {{ prober: http, http: {{ preferred_ip_protocol: ip4, bearer_token: t0ken }} }}
  http_authorization: {{ prober: http, http: {{ preferred_ip_protocol: ip4, authorization: {{ credentials: t0ken }} }} }}
  http_gzip: {{ prober: http, http: {{ preferred_ip_protocol: ip4, compression: gzip }} }}
  http_gzip_asked: {{ prober: http, http: {{ preferred_ip_protocol: ip4, compression: gzip, headers: {{ Accept-Encoding: gzip }} }} }}
  http_gzip_limit: {{ prober: http, http: {{ preferred_ip_protocol: ip4, compression: gzip, headers: {{ Accept-Encoding: gzip }}, body_size_limit: 1KB }} }}
  http_limit: {{ prober: http, http: {{ preferred_ip_protocol: ip4, body_size_limit: 1KB }} }}
  http_version_11: {{ prober: http, http: {{ preferred_ip_protocol: ip4, valid_http_versions: ["HTTP/1.1"] }} }}
  http_version_2: {{ prober: http, http: {{ preferred_ip_protocol: ip4, valid_http_versions: ["HTTP/2.0"] }} }}
  http_not_ssl: {{ prober: http, http: {{ preferred_ip_protocol: ip4, fail_if_not_ssl: true }} }}
  http_proxy: {{ prober: http, http: {{ preferred_ip_protocol: ip4, proxy_url: "http://127.0.0.1:{{PROXY}}" }} }}
  http_proxy_skip_resolve: {{ prober: http, http: {{ preferred_ip_protocol: ip4, proxy_url: "http://127.0.0.1:{{PROXY}}", skip_resolve_phase_with_proxy: true }} }}
  https_connect_header: {{ prober: http, http: {{ preferred_ip_protocol: ip4, proxy_url: "http://127.0.0.1:{{CONNECT}}", proxy_connect_header: {{ Proxy-Authorization: ["Bearer parity"] }}, tls_config: {{ ca_file: {d}/ca.pem, server_name: localhost }} }} }}
  http_oauth2: {{ prober: http, http: {{ preferred_ip_protocol: ip4, oauth2: {{ client_id: id-1, client_secret: secret-1, scopes: [a, b], token_url: "http://127.0.0.1:{{OAUTH}}/token", endpoint_params: {{ audience: probe }} }} }} }}
  http_oauth2_wrong: {{ prober: http, http: {{ preferred_ip_protocol: ip4, oauth2: {{ client_id: id-1, client_secret: wrong, token_url: "http://127.0.0.1:{{OAUTH}}/token" }} }} }}
  https: {{ prober: http, http: {{ preferred_ip_protocol: ip4, tls_config: {{ ca_file: {d}/ca.pem, server_name: localhost }} }} }}
  https_h1: {{ prober: http, http: {{ preferred_ip_protocol: ip4, enable_http2: false, tls_config: {{ ca_file: {d}/ca.pem, server_name: localhost }} }} }}
  https_system_roots: {{ prober: http, http: {{ preferred_ip_protocol: ip4 }} }}
  https_wrong_name: {{ prober: http, http: {{ preferred_ip_protocol: ip4, tls_config: {{ ca_file: {d}/ca.pem, server_name: other.example }} }} }}
  https_insecure: {{ prober: http, http: {{ preferred_ip_protocol: ip4, tls_config: {{ insecure_skip_verify: true }} }} }}
  https_fail_if_ssl: {{ prober: http, http: {{ preferred_ip_protocol: ip4, fail_if_ssl: true, tls_config: {{ ca_file: {d}/ca.pem, server_name: localhost }} }} }}
  https_tls13: {{ prober: http, http: {{ preferred_ip_protocol: ip4, tls_config: {{ ca_file: {d}/ca.pem, server_name: localhost, min_version: TLS13 }} }} }}
  https_client_cert: {{ prober: http, http: {{ preferred_ip_protocol: ip4, tls_config: {{ ca_file: {d}/ca.pem, server_name: localhost, cert_file: {d}/client.pem, key_file: {d}/client.key }} }} }}
  tcp: {{ prober: tcp, tcp: {{ preferred_ip_protocol: ip4 }} }}
  tcp_http: {{ prober: tcp, tcp: {{ preferred_ip_protocol: ip4, query_response: [{{ send: "GET / HTTP/1.0\r\n" }}, {{ expect: "^HTTP/1.1 200" }}] }} }}
  tcp_http_wrong: {{ prober: tcp, timeout: 2s, tcp: {{ preferred_ip_protocol: ip4, query_response: [{{ send: "GET / HTTP/1.0\r\n" }}, {{ expect: "^SSH-2.0" }}] }} }}
  tcp_tls: {{ prober: tcp, tcp: {{ preferred_ip_protocol: ip4, tls: true, tls_config: {{ ca_file: {d}/ca.pem, server_name: localhost }} }} }}
  tcp_tls_untrusted: {{ prober: tcp, tcp: {{ preferred_ip_protocol: ip4, tls: true }} }}
  tcp_starttls: {{ prober: tcp, tcp: {{ preferred_ip_protocol: ip4, tls_config: {{ ca_file: {d}/ca.pem, server_name: localhost }}, query_response: [{{ expect: "^220 " }}, {{ send: STARTTLS }}, {{ expect: "^220 go" }}, {{ starttls: true }}, {{ expect: "^220 parity secured" }}] }} }}
  icmp: {{ prober: icmp, timeout: 3s }}
  icmp4: {{ prober: icmp, timeout: 3s, icmp: {{ preferred_ip_protocol: ip4 }} }}
  icmp6_only: {{ prober: icmp, timeout: 3s, icmp: {{ preferred_ip_protocol: ip6, ip_protocol_fallback: false }} }}
  icmp_options: {{ prober: icmp, timeout: 3s, icmp: {{ ttl: 5, payload_size: 200, dont_fragment: true, preferred_ip_protocol: ip4 }} }}
  icmp_source: {{ prober: icmp, timeout: 3s, icmp: {{ source_ip_address: 127.0.0.1 }} }}
  dns_soa: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: example.test, query_type: SOA }} }}
  dns_over_tls: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: example.test, query_type: SOA, transport_protocol: tcp, dns_over_tls: true, tls_config: {{ ca_file: {d}/ca.pem, server_name: localhost }} }} }}
  dns_over_tls_untrusted: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: example.test, transport_protocol: tcp, dns_over_tls: true }} }}
  dns_soa_v6: {{ prober: dns, dns: {{ query_name: example.test, query_type: SOA }} }}
  dns_soa_tcp: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: example.test, query_type: SOA, transport_protocol: tcp }} }}
  dns_a: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: www.example.test, query_type: A, validate_answer_rrs: {{ fail_if_not_matches_regexp: ["www\\.example\\.test\\.\t300\tIN\tA\t192\\.0\\.2\\.10"] }} }} }}
  dns_a_fail: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: www.example.test, query_type: A, validate_answer_rrs: {{ fail_if_matches_regexp: ["192\\.0\\.2\\.10"] }} }} }}
  dns_all_match: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: www.example.test, query_type: A, validate_answer_rrs: {{ fail_if_all_match_regexp: ["192\\.0\\.2\\.10"] }} }} }}
  dns_none_match: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: example.test, query_type: MX, validate_answer_rrs: {{ fail_if_none_matches_regexp: ["MX\t10 mail\\.example\\.test\\.$"] }} }} }}
  dns_txt: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: example.test, query_type: TXT, validate_answer_rrs: {{ fail_if_not_matches_regexp: ["\"v=spf1 -all\"$"] }} }} }}
  dns_srv: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: _sip._tcp.example.test, query_type: SRV }} }}
  dns_nx: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: nope.example.test, query_type: A }} }}
  dns_nx_valid: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: nope.example.test, query_type: A, valid_rcodes: [NXDOMAIN], validate_authority_rrs: {{ fail_if_not_matches_regexp: ["SOA"] }} }} }}
  dns_refused: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: other.example, query_type: A }} }}
  dns_no_recursion: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: www.example.test, query_type: AAAA, recursion_desired: false }} }}
  dns_any: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: www.example.test }} }}
  dns_big_udp: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: big.example.test, query_type: TXT }} }}
  dns_big_tcp: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: big.example.test, query_type: TXT, transport_protocol: tcp }} }}
  dns_cname: {{ prober: dns, dns: {{ preferred_ip_protocol: ip4, query_name: alias.example.test, query_type: A }} }}
  grpc: {{ prober: grpc, grpc: {{ preferred_ip_protocol: ip4 }} }}
  grpc_shop: {{ prober: grpc, grpc: {{ preferred_ip_protocol: ip4, service: shop }} }}
  grpc_billing: {{ prober: grpc, grpc: {{ preferred_ip_protocol: ip4, service: billing }} }}
  grpc_unknown: {{ prober: grpc, grpc: {{ preferred_ip_protocol: ip4, service: nobody }} }}
  grpc_tls: {{ prober: grpc, grpc: {{ preferred_ip_protocol: ip4, tls: true, tls_config: {{ ca_file: {d}/ca.pem, server_name: localhost }} }} }}
  grpc_tls_untrusted: {{ prober: grpc, grpc: {{ preferred_ip_protocol: ip4, tls: true }} }}
  grpc_tls_shop: {{ prober: grpc, grpc: {{ preferred_ip_protocol: ip4, tls: true, service: shop, tls_config: {{ ca_file: {d}/ca.pem, server_name: localhost }} }} }}
  tcp_capture: {{ prober: tcp, tcp: {{ preferred_ip_protocol: ip4, query_response: [{{ expect: "^220 ([^ ]+) ESMTP", send: "HELO ${{1}}" }}, {{ expect: "^250 ok" }}] }} }}
  tcp_binary_send: {{ prober: tcp, tcp: {{ preferred_ip_protocol: ip4, query_response: [{{ expect: "^220 " }}, {{ send: !!binary SEVMTyBwYXJpdHk= }}, {{ expect: "^250 ok" }}] }} }}
  tcp_starttls_untrusted: {{ prober: tcp, tcp: {{ preferred_ip_protocol: ip4, query_response: [{{ expect: "^220 " }}, {{ send: STARTTLS }}, {{ expect: "^220 go" }}, {{ starttls: true }}] }} }}
"#
    )
}

fn cases(p: &Peers) -> Vec<(&'static str, String)> {
    let plain = format!("127.0.0.1:{}", p.plain);
    let https = |port: u16| format!("https://127.0.0.1:{port}/");
    let (auth, rec) = (p.dns.authoritative.to_string(), p.dns.recursive.to_string());
    let closed = format!("127.0.0.1:{}", closed_port());
    vec![
        ("http_2xx", format!("http://{plain}/")),
        ("http_2xx", plain.clone()),
        ("http_2xx", format!("http://{plain}/404")),
        ("http_2xx", format!("http://{plain}/500")),
        ("http_404", format!("http://{plain}/404")),
        ("http_2xx", format!("http://{plain}/redirect")),
        ("http_2xx", format!("http://{plain}/moved")),
        ("http_2xx", format!("http://{plain}/temporary")),
        ("http_2xx", format!("http://{plain}/loop")),
        ("http_2xx", format!("http://{plain}/noloc")),
        ("http_no_follow", format!("http://{plain}/redirect")),
        ("http_no_follow_302", format!("http://{plain}/redirect")),
        ("http_post", format!("http://{plain}/post")),
        ("http_2xx", format!("http://{plain}/post")),
        ("http_head", format!("http://{plain}/static/index.html")),
        ("http_header", format!("http://{plain}/header")),
        ("http_2xx", format!("http://{plain}/header")),
        ("http_body_match", format!("http://{plain}/")),
        ("http_body_not_match", format!("http://{plain}/")),
        ("http_body_not_match_fail", format!("http://{plain}/")),
        ("http_header_match", format!("http://{plain}/")),
        ("http_header_not_match", format!("http://{plain}/")),
        ("http_header_missing", format!("http://{plain}/")),
        ("http_header_missing_ok", format!("http://{plain}/")),
        ("http_basic", format!("http://{plain}/basic/")),
        ("http_basic_wrong", format!("http://{plain}/basic/")),
        ("http_2xx", format!("http://{plain}/basic/")),
        ("http_bearer", format!("http://{plain}/token")),
        ("http_authorization", format!("http://{plain}/token")),
        ("http_gzip", format!("http://{plain}/static/index.html")),
        ("http_2xx", format!("http://{plain}/static/index.html")),
        ("http_gzip_asked", format!("http://{plain}/static/index.html")),
        ("http_gzip_limit", format!("http://{plain}/static/index.html")),
        ("http_limit", format!("http://{plain}/static/big.txt")),
        ("http_version_11", format!("http://{plain}/")),
        ("http_version_2", format!("http://{plain}/")),
        ("http_not_ssl", format!("http://{plain}/")),
        ("http_proxy", format!("http://{plain}/")),
        ("http_proxy_skip_resolve", format!("http://{plain}/")),
        ("http_proxy_skip_resolve", "http://only-the-proxy-knows.invalid/".to_string()),
        ("https_connect_header", https(p.tls)),
        ("http_oauth2", format!("http://127.0.0.1:{}/protected", p.oauth)),
        ("http_oauth2_wrong", format!("http://127.0.0.1:{}/protected", p.oauth)),
        ("http_2xx", format!("http://{closed}/")),
        ("http_2xx", "http://nonexistent.invalid/".to_string()),
        ("https", https(p.tls)),
        ("https", format!("https://127.0.0.1:{}/static/index.html", p.tls)),
        ("https_h1", https(p.tls)),
        ("https_system_roots", https(p.tls)),
        ("https_wrong_name", https(p.tls)),
        ("https", https(p.expired)),
        ("https", https(p.self_signed)),
        ("https", https(p.not_yet_valid)),
        ("https_insecure", https(p.not_yet_valid)),
        ("https_insecure", https(p.expired)),
        ("https_insecure", https(p.self_signed)),
        ("https_fail_if_ssl", https(p.tls)),
        ("https", https(p.tls12)),
        ("https_tls13", https(p.tls12)),
        ("https_client_cert", https(p.mtls)),
        ("https", https(p.mtls)),
        ("https", format!("https://{plain}/")),
        ("http_2xx", format!("http://127.0.0.1:{}/", p.tls)),
        ("tcp", plain.clone()),
        ("tcp", closed.clone()),
        ("tcp_http", plain.clone()),
        ("tcp_http_wrong", plain.clone()),
        ("tcp_tls", format!("127.0.0.1:{}", p.tls)),
        ("tcp_tls_untrusted", format!("127.0.0.1:{}", p.tls)),
        ("tcp_tls", format!("127.0.0.1:{}", p.expired)),
        ("tcp_starttls", p.starttls.to_string()),
        ("icmp", "127.0.0.1".to_string()),
        ("icmp", "::1".to_string()),
        ("icmp4", "localhost".to_string()),
        ("icmp6_only", "localhost".to_string()),
        ("icmp_options", "127.0.0.1".to_string()),
        ("icmp_source", "127.0.0.1".to_string()),
        ("dns_soa", auth.clone()),
        ("dns_soa_tcp", auth.clone()),
        ("dns_over_tls", p.dns_over_tls.to_string()),
        ("dns_over_tls_untrusted", p.dns_over_tls.to_string()),
        ("dns_soa_v6", format!("[::1]:{}", p.dns.authoritative.port())),
        ("dns_a", auth.clone()),
        ("dns_a_fail", auth.clone()),
        ("dns_all_match", auth.clone()),
        ("dns_none_match", auth.clone()),
        ("dns_txt", auth.clone()),
        ("dns_srv", auth.clone()),
        ("dns_nx", auth.clone()),
        ("dns_nx_valid", auth.clone()),
        ("dns_refused", auth.clone()),
        ("dns_no_recursion", auth.clone()),
        ("dns_any", auth.clone()),
        ("dns_big_udp", auth.clone()),
        ("dns_big_tcp", auth.clone()),
        ("dns_cname", auth.clone()),
        ("dns_a", rec.clone()),
        ("dns_cname", rec.clone()),
        ("dns_nx", rec),
        ("dns_soa", closed.clone()),
        ("grpc", p.grpc.to_string()),
        ("grpc_shop", p.grpc.to_string()),
        ("grpc_billing", p.grpc.to_string()),
        ("grpc_unknown", p.grpc.to_string()),
        ("grpc", p.grpc_unimplemented.to_string()),
        ("grpc", closed),
        ("grpc_tls", p.grpc_tls.to_string()),
        ("grpc_tls_untrusted", p.grpc_tls.to_string()),
        ("grpc_tls_shop", p.grpc_tls.to_string()),
        ("grpc", p.grpc_tls.to_string()),
        ("tcp_starttls_untrusted", p.starttls.to_string()),
        // A `send` filled from `expect`'s captures, and one written as `!!binary`.
        ("tcp_capture", p.starttls.to_string()),
        ("tcp_binary_send", p.starttls.to_string()),
    ]
}

/// `/probe` of `endpoint`, with the scrape timeout Prometheus would announce.
fn probe_via(endpoint: SocketAddr, module: &str, target: &str) -> String {
    let target: String = form_urlencoded::byte_serialize(target.as_bytes()).collect();
    let path = format!("/probe?module={module}&target={target}");
    let reply = get(endpoint, &path, &[("X-Prometheus-Scrape-Timeout-Seconds", "5")])
        .unwrap_or_else(|| panic!("no answer from {endpoint} to {path}"));
    assert_eq!(reply.status, 200, "{endpoint}{path}: {}", reply.body);
    reply.body
}

#[test]
fn lookout_answers_as_blackbox_exporter_does() {
    assert!(
        Path::new(BLACKBOX).exists(),
        "{BLACKBOX} is needed (Debian package prometheus-blackbox-exporter); .ci/run installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let peers = nginx(dir.path());
    let config = modules(dir.path())
        .replace("{PROXY}", &peers.proxy.to_string())
        .replace("{CONNECT}", &peers.connect_proxy.to_string())
        .replace("{OAUTH}", &peers.oauth.to_string());
    let config_path = write_file(dir.path(), "blackbox.yml", &config);

    let blackbox_addr: SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let blackbox = Daemon(
        Command::new(BLACKBOX)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--web.listen-address={blackbox_addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lookout =
        Server::spawn(dir.path(), &[format!("--config.probes={}", config_path.display())]);
    for _ in 0..200 {
        if get(blackbox_addr, "/-/healthy", &[]).is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }

    let cases = cases(&peers);
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut found = Vec::new();
    let mut compared = 0;
    for (module, target) in &cases {
        let case = format!("{module} {target}");
        let b = probe_via(blackbox_addr, module, target);
        let l = probe_via(lookout.addr, module, target);
        // Both must agree on success before anything else.
        let success = |text: &str| sample_value(text, "probe_success ");
        if success(&b) != success(&l) {
            found.push(format!("{case}: probe_success {:?} vs {:?}", success(&b), success(&l)));
        }
        compared += parse(&b).keys().filter(|k| parse(&l).contains_key(*k)).count();
        found.extend(differences(&case, &b, &l));
    }
    drop(blackbox);
    assert!(
        found.is_empty(),
        "{} differences in {} cases:\n{}",
        found.len(),
        cases.len(),
        found.join("\n")
    );
    assert!(compared > cases.len() * 5, "only {compared} families compared");
}

/// Filtered and unreachable targets, replies from the wrong host and a small MTU, which need a
/// network of their own: in a namespace the test makes, nftables drops everything to 127.0.0.2
/// and rewrites the source of 127.0.0.5's echo replies to 127.0.0.3, nothing routes to
/// 192.0.2.0/24, and loopback's MTU is 1500; both exporters run there and answer the same cases.
/// grpc is left out: blackbox's health call has no deadline (`context.Background()`, upstream
/// too), so against a filtered port it outlives any scrape timeout.
#[test]
fn filtered_and_unreachable_targets_in_a_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let config = "modules:
  http: { prober: http, timeout: 1s, http: { preferred_ip_protocol: ip4 } }
  tcp: { prober: tcp, timeout: 1s, tcp: { preferred_ip_protocol: ip4 } }
  icmp: { prober: icmp, timeout: 1s, icmp: { preferred_ip_protocol: ip4 } }
  dns: { prober: dns, timeout: 1s, dns: { preferred_ip_protocol: ip4, query_name: example.test, query_type: SOA } }
  dns_tcp: { prober: dns, timeout: 1s, dns: { preferred_ip_protocol: ip4, query_name: example.test, transport_protocol: tcp } }
  icmp_big: { prober: icmp, timeout: 1s, icmp: { preferred_ip_protocol: ip4, payload_size: 3000 } }
  icmp_big_df: { prober: icmp, timeout: 1s, icmp: { preferred_ip_protocol: ip4, payload_size: 3000, dont_fragment: true } }
";
    let config_path = write_file(dir.path(), "blackbox.yml", config);
    let cases = [
        ("http", "http://127.0.0.2/"),
        ("tcp", "127.0.0.2:80"),
        ("icmp", "127.0.0.2"),
        ("dns", "127.0.0.2"),
        ("dns_tcp", "127.0.0.2"),
        ("http", "http://192.0.2.1/"),
        ("tcp", "192.0.2.1:80"),
        ("icmp", "192.0.2.1"),
        ("dns", "192.0.2.1"),
        ("dns_tcp", "192.0.2.1"),
        // 127.0.0.5's echo replies arrive from 127.0.0.3: a reply from the wrong host.
        ("icmp", "127.0.0.5"),
        // Loopback's MTU is 1500 here: 3000 bytes of echo go fragmented, or not at all with DF.
        ("icmp_big", "127.0.0.1"),
        ("icmp_big_df", "127.0.0.1"),
    ];
    let fetch = format!(
        r#"
import json, time, urllib.parse, urllib.request
def get(port, module, target):
    url = "http://127.0.0.1:%d/probe?module=%s&target=%s" % (port, module, urllib.parse.quote(target, safe=""))
    request = urllib.request.Request(url, headers={{"X-Prometheus-Scrape-Timeout-Seconds": "5"}})
    return urllib.request.urlopen(request, timeout=20).read().decode()
for port in (19115, 19925):
    for _ in range(200):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/-/healthy" % port, timeout=1)
            break
        except Exception:
            time.sleep(0.05)
print(json.dumps([[m, t, get(19115, m, t), get(19925, m, t)] for m, t in {cases}]))
"#,
        cases = serde_json::to_string(&cases).unwrap()
    );
    let script = write_file(dir.path(), "fetch.py", fetch);
    let out = crate::peers::in_namespace(&format!(
        "ip link set lo mtu 1500 && nft add table inet parity && \
         nft add chain inet parity input '{{ type filter hook input priority 0; }}' && \
         nft add rule inet parity input ip daddr 127.0.0.2 drop && \
         nft add chain inet parity pre '{{ type filter hook prerouting priority -300; }}' && \
         nft add rule inet parity pre ip saddr 127.0.0.5 icmp type echo-reply notrack ip saddr set 127.0.0.3 && \
         {{ {BLACKBOX} --config.file={c} --web.listen-address=127.0.0.1:19115 >/dev/null 2>&1 & b=$!; }} && \
         {{ {LOOKOUT} --config.probes={c} --web.listen-address=127.0.0.1:19925 >/dev/null 2>&1 & l=$!; }} && \
         python3 {s}; status=$?; kill $b $l; wait; exit $status",
        c = config_path.display(),
        s = script.display()
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let answers: Vec<(String, String, String, String)> = serde_json::from_str(&stdout).unwrap();
    let mut found = Vec::new();
    for (module, target, b, l) in &answers {
        let case = format!("{module} {target}");
        let expected = Some(if module == "icmp_big" { 1.0 } else { 0.0 });
        assert_eq!(sample_value(b, "probe_success "), expected, "{case}: {b}");
        assert_eq!(sample_value(l, "probe_success "), expected, "{case}: {l}");
        found.extend(differences(&case, b, l));
    }
    assert!(found.is_empty(), "{} differences:\n{}", found.len(), found.join("\n"));
}
