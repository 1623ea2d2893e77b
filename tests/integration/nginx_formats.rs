//! Real-world `log_format`s (tests/data/nginx_formats.yaml, each with its source) written by a
//! real nginx for a varied request set, and parsed by lookout field by field. The same nginx
//! writes, for every request, each variable on its own into a ground-truth log (tab-separated:
//! nginx never writes a tab inside a value), one per escape mode.

use crate::common::*;
use base64::Engine;
use lookout::logs::framing::{Framer, LineSplitter};
use lookout::logs::parse::nginx::grammar::Grammar;
use lookout::logs::parse::nginx::NginxFormat;
use lookout::logs::parse::Parsed;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nginx_formats.yaml");
const ESCAPES: [&str; 3] = ["default", "json", "none"];

#[derive(Deserialize)]
struct Entry {
    name: String,
    source: String,
    #[serde(default)]
    server_setup: String,
    directive: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: String,
}

impl Entry {
    fn escape(&self) -> &'static str {
        ESCAPES
            .into_iter()
            .find(|e| self.directive.contains(&format!("escape={e}")))
            .unwrap_or("default")
    }

    /// The variables the directive names (outside `#` comments), each once.
    fn variables_used(&self) -> Vec<String> {
        let re = regex::Regex::new(r"\$\{?([A-Za-z0-9_]+)\}?").unwrap();
        let comment = regex::Regex::new(r#"(?m)(^\s*#.*$|(['"])\s*#.*$)"#).unwrap();
        let code = comment.replace_all(&self.directive, "$2");
        let mut seen = Vec::new();
        for c in re.captures_iter(&code) {
            if !seen.contains(&c[1].to_string()) {
                seen.push(c[1].to_string());
            }
        }
        seen
    }

    fn compile(&self) -> NginxFormat {
        let grammar = |name: &str| match self.variables.get(name) {
            Some(builtin) => Grammar::of_builtin(builtin).unwrap(),
            None => Grammar::of(name),
        };
        NginxFormat::compile_with(&self.directive, &grammar)
            .unwrap_or_else(|e| panic!("{} ({}): {}", self.name, self.source, e.message))
    }
}

fn corpus() -> Vec<Entry> {
    serde_saphyr::from_str(&std::fs::read_to_string(CORPUS).unwrap()).unwrap()
}

#[test]
fn the_corpus_is_real_and_varied() {
    let entries = corpus();
    assert!(entries.len() >= 20, "{} formats", entries.len());
    let names: BTreeSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.len(), entries.len(), "names are unique");
    for e in &entries {
        assert!(!e.source.trim().is_empty(), "{} names its source", e.name);
    }
    for escape in ESCAPES {
        assert!(entries.iter().any(|e| e.escape() == escape), "a format with escape={escape}");
    }
}

/// Every format lookout ships as a preset and every corpus format, written by nginx for the
/// same requests, parses into exactly the values nginx wrote for each variable.
#[test]
fn every_field_of_every_record_is_what_nginx_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut entries = corpus();
    for preset in ["combined", "main", "combined_timed"] {
        let format = lookout::logs::parse::nginx::preset(preset).unwrap();
        entries.push(Entry {
            name: format!("preset_{preset}"),
            source: "lookout preset".into(),
            server_setup: String::new(),
            directive: format!("log_format preset_{preset} '{format}';"),
            variables: BTreeMap::new(),
            note: String::new(),
        });
    }
    let (http, https, live, dead) = (closed_port(), closed_port(), closed_port(), closed_port());
    let nginx = Nginx::start(d, &nginx_conf(d, &entries, http, https, live, dead), http);
    send_requests(d, http, https);
    nginx.stop();

    let mut mismatches = Vec::new();
    let truth: BTreeMap<&str, (Vec<String>, Vec<Vec<String>>)> =
        ESCAPES.into_iter().map(|e| (e, read_truth(d, &entries, e))).collect();
    let requests = truth["default"].1.len();
    assert!(requests >= 40, "only {requests} requests were logged");
    // The request set reaches what makes real logs hard to split.
    let (names, rows) = &truth["default"];
    let column = |name: &str| {
        let i = names.iter().position(|n| n == name).unwrap();
        rows.iter().map(move |row| row[i].as_str())
    };
    assert!(column("upstream_addr").any(|v| v.contains(", ")), "a retried upstream");
    assert!(column("upstream_addr").any(|v| v.contains(" : ")), "an internal redirect");
    assert!(column("server_protocol").any(|v| v == "HTTP/2.0"), "HTTP/2");
    assert!(column("uri").any(|v| v.contains(' ')), "a decoded %20 in $uri");
    assert!(column("remote_user").any(|v| v == "a [b"), "a user name with a bracket");
    for class in ['2', '3', '4', '5'] {
        assert!(column("status").any(|v| v.starts_with(class)), "a {class}xx status");
    }
    for entry in &entries {
        let format = entry.compile();
        let records =
            frame(&format, &std::fs::read(d.join(format!("{}.log", entry.name))).unwrap());
        let (names, rows) = &truth[entry.escape()];
        assert_eq!(records.len(), rows.len(), "{}: records framed vs requests logged", entry.name);
        for (record, row) in records.iter().zip(rows) {
            let mut values = vec![None; format.fields().len()];
            if format.parse(record, &mut values) != Parsed::Record {
                mismatches.push(format!("{}: unmatched {record:?}", entry.name));
                continue;
            }
            for variable in entry.variables_used() {
                let field = format.fields().iter().position(|f| *f == variable);
                let field = field.unwrap_or_else(|| panic!("{}: no field ${variable}", entry.name));
                let want = &row[names.iter().position(|n| *n == variable).unwrap()];
                let got = values[field].as_deref().unwrap_or("");
                if got != want {
                    mismatches.push(format!(
                        "{}: ${variable} = {got:?}, nginx wrote {want:?} in {record:?}",
                        entry.name
                    ));
                }
            }
        }
    }
    replay_as_pasted(d, &entries, requests);
    let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
    let report: Vec<&String> = mismatches
        .iter()
        .filter(|m| {
            let seen = shown.entry(m.split(':').next().unwrap()).or_default();
            *seen += 1;
            *seen <= 4
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} fields differ from what nginx wrote ({shown:?}), first of each format:\n{}",
        mismatches.len(),
        report.iter().map(|m| m.as_str()).collect::<Vec<_>>().join("\n")
    );
}

/// Each directive pasted into log_rules.yaml as a block, as an operator would: `lookout replay`
/// finds one matched record per request and nothing unmatched.
fn replay_as_pasted(dir: &Path, entries: &[Entry], requests: usize) {
    let mut rules = String::from("sources:\n");
    for e in entries {
        let directive: String = e.directive.lines().map(|l| format!("      {l}\n")).collect();
        let variables: String = e.variables.iter().map(|(k, v)| format!("{k}: {v}, ")).collect();
        rules.push_str(&format!(
            "  - name: {}\n    paths: [x]\n    format: nginx\n    variables: {{ {variables}}}\n    log_format: |\n{directive}",
            e.name
        ));
    }
    let rules = write_file(dir, "rules.yaml", rules);
    for e in entries {
        let out = std::process::Command::new(LOOKOUT)
            .arg("--config.log-rules")
            .arg(&rules)
            .args(["replay", "--source", &e.name])
            .arg(dir.join(format!("{}.log", e.name)))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {}", e.name, String::from_utf8_lossy(&out.stderr));
        let matched = format!(
            "lookout_log_records_total{{source=\"{}\",result=\"matched\"}} {requests}\n",
            e.name
        );
        assert!(stdout.contains(&matched), "{}: {requests} records expected:\n{stdout}", e.name);
        let unmatched =
            format!("lookout_log_records_total{{source=\"{}\",result=\"unmatched\"}}", e.name);
        assert_eq!(sample_value(&stdout, &unmatched).unwrap_or(0.0), 0.0, "{}:\n{stdout}", e.name);
    }
}

/// Records as lookout frames them: line by line, several lines for a format with newlines.
fn frame(format: &NginxFormat, bytes: &[u8]) -> Vec<String> {
    let mut splitter = LineSplitter::new(1 << 20);
    let mut framer = Framer::new(format.framing());
    let mut records = Vec::new();
    let emit = &mut |r: &str| records.push(r.to_string());
    splitter.push(bytes, &mut |line, raw| framer.push(&String::from_utf8_lossy(line), raw, emit));
    lookout::logs::framing::finish(&mut splitter, &mut framer, emit);
    records
}

/// The ground truth of one escape mode: variable names, and per request the value of each.
fn read_truth(dir: &Path, entries: &[Entry], escape: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let names = truth_variables(entries);
    let text = std::fs::read(dir.join(format!("truth_{escape}.log"))).unwrap();
    let rows = String::from_utf8_lossy(&text)
        .lines()
        .map(|line| {
            let row: Vec<String> = line.split('\t').map(str::to_string).collect();
            assert_eq!(row.len(), names.len(), "a tab inside a value of {escape}: {line:?}");
            row
        })
        .collect();
    (names, rows)
}

fn truth_variables(entries: &[Entry]) -> Vec<String> {
    let all: BTreeSet<String> = entries.iter().flat_map(Entry::variables_used).collect();
    all.into_iter().collect()
}

fn nginx_conf(d: &Path, entries: &[Entry], http: u16, https: u16, live: u16, dead: u16) -> String {
    let ca = Ca::new("nginx formats CA");
    let leaf = ca.leaf("localhost", &["localhost"], -1, 30);
    write_file(d, "cert.pem", leaf.pem());
    write_file(d, "key.pem", leaf.key.serialize_pem());
    write_file(d, "ca.pem", pem(&ca.der()));
    let mut conf = String::new();
    for e in entries {
        conf.push_str(&e.directive);
        conf.push('\n');
    }
    let columns: Vec<String> =
        truth_variables(entries).iter().map(|v| format!("${{{v}}}")).collect();
    for escape in ESCAPES {
        conf.push_str(&format!(
            "log_format truth_{escape} escape={escape} '{}';\n",
            columns.join("\\t")
        ));
    }
    let setup: BTreeSet<&str> =
        entries.iter().flat_map(|e| e.server_setup.lines()).map(str::trim).collect();
    let logs: String = entries
        .iter()
        .map(|e| format!("access_log {}/{}.log {};\n", d.display(), e.name, e.name))
        .chain(
            ESCAPES
                .iter()
                .map(|e| format!("access_log {}/truth_{e}.log truth_{e};\n", d.display())),
        )
        .collect();
    let setup: String = setup.into_iter().map(|l| format!("{l}\n")).collect();
    let dd = d.display();
    conf.push_str(&format!(
        r#"
upstream retried {{ server 127.0.0.1:{dead}; server 127.0.0.1:{live}; }}
upstream live {{ server 127.0.0.1:{live}; }}
server {{
  listen 127.0.0.1:{live};
  access_log off;
  location /gone {{ return 404; }}
  location / {{ return 200 "backend\n"; }}
}}
server {{
  listen 127.0.0.1:{http};
  listen 127.0.0.1:{https} ssl http2;
  ssl_certificate {dd}/cert.pem;
  ssl_certificate_key {dd}/key.pem;
  default_type text/plain;
  gzip on; gzip_min_length 1; gzip_types text/plain;
  {setup}
  {logs}
  location = / {{ return 200 "ok\n"; }}
  location = /s/201 {{ return 201 "created\n"; }}
  location = /s/204 {{ return 204; }}
  location = /s/301 {{ return 301 /; }}
  location = /s/404 {{ return 404; }}
  location = /s/500 {{ return 500; }}
  location = /s/503 {{ return 503 "down\n"; }}
  location /text/ {{ return 200 "{text}\n"; }}
  location /retry/ {{ proxy_pass http://retried; }}
  location /redirect/ {{
    proxy_pass http://live/gone;
    proxy_intercept_errors on;
    error_page 404 = @second;
  }}
  location @second {{ proxy_pass http://live; }}
  location /auth/ {{ auth_basic "lookout"; auth_basic_user_file {dd}/htpasswd; }}
  location / {{ return 404; }}
}}
"#,
        text = "lorem ipsum dolor sit amet ".repeat(40),
    ));
    write_file(d, "htpasswd", "alice:{PLAIN}secret\n");
    conf
}

fn basic(user_password: &str) -> String {
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

/// Every method, every status class, proxied requests that retry another upstream, internal
/// redirects, quotes, non-ASCII and `%20` in URIs, odd user agents, X-Forwarded-For chains,
/// garbage and truncated requests, HTTP/1.0 and 0.9, and HTTP/2 over TLS.
fn send_requests(dir: &Path, http: u16, https: u16) {
    let plain = SocketAddr::from(([127, 0, 0, 1], http));
    let ua = |ua: &str| format!("GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: {ua}\r\n\r\n");
    let mut raw: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\n\r\n".to_vec(),
        b"HEAD /s/201 HTTP/1.1\r\nHost: A-B.Example.ORG:8080\r\n\r\n".to_vec(),
        b"POST /s/201?x=1&y=%20z HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        b"PUT /s/204 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"DELETE /s/204?id=7 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"PATCH /s/404 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
        b"OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n".to_vec(),
        b"PROPFIND /dav/ HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /s/301 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /s/500 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /s/503 HTTP/1.1\r\nHost: x\r\nReferer: https://ref.example/a b \"c\"\r\n\r\n".to_vec(),
        b"GET /retry/a?b=c HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"POST /retry/form HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nk=v&w=x y z".to_vec(),
        b"GET /redirect/x HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /a%20b/c%22d%5C HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        "GET /caf\u{e9}/\u{65e5}\u{672c}?q=\u{fc} HTTP/1.1\r\nHost: x\r\n\r\n".as_bytes().to_vec(),
        b"GET /bad%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /text/ HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n".to_vec(),
        b"GET /text/ HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n".to_vec(),
        b"GET /\r\n".to_vec(),
        b"GET http://Example.com:81/abs?q=1 HTTP/1.1\r\nHost: other\r\n\r\n".to_vec(),
        ua("Mozilla/5.0 (X11; Linux x86_64) \"quoted\" [bracket] \\ back 200 - 0.001").into_bytes(),
        ua("").into_bytes(),
        ua("\u{fc}ber \u{65e5}\u{672c} agent").into_bytes(),
        ua("ctl\x01\x7f del").into_bytes(),
        ua("a\", \"b\": \"c").into_bytes(),
        ua("- - [20/Nov/2026:10:00:00 +0900] \"GET / HTTP/1.1\" 200 0").into_bytes(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /?xff HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7, 198.51.100.2, 10.0.0.1\r\n\r\n".to_vec(),
        format!("GET /auth/ HTTP/1.1\r\nHost: x\r\n{}\r\n", basic("a [b:pw")).into_bytes(),
        format!("GET /auth/ HTTP/1.1\r\nHost: x\r\n{}\r\n", basic("alice:secret")).into_bytes(),
        format!("GET /auth/ HTTP/1.1\r\nHost: x\r\n{}\r\n", basic("x \" y] - z:pw")).into_bytes(),
        b"\x16\x03\x01\x00\xf4\x01\x00\x00\xf0\x03\x03".to_vec(),
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1 extra\r\n\r\n".to_vec(),
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"get / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /trunc HT".to_vec(),
        b"GET / HTTP/1.1\r\nHost: bad/host\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
        format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "long/".repeat(600)).into_bytes(),
    ];
    // Several requests on one connection ($connection_requests).
    raw.push(b"GET /s/204 HTTP/1.1\r\nHost: x\r\n\r\nGET /s/404 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec());
    for mut request in raw {
        let mut stream = TcpStream::connect(plain).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Complete HTTP/1.1 requests ask nginx to close; others are closed by the client (a
        // proxied request whose client went away would be logged as 499).
        let complete = request.windows(4).any(|w| w == b"\r\n\r\n");
        let keep_alive = String::from_utf8_lossy(&request).contains(" HTTP/1.1\r\n");
        if complete && keep_alive && !request.windows(10).any(|w| w == b"Connection") {
            let line_end = request.windows(2).position(|w| w == b"\r\n").unwrap();
            request.splice(line_end + 2..line_end + 2, b"Connection: close\r\n".iter().copied());
        }
        stream.write_all(&request).unwrap();
        if !(complete && keep_alive) {
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
    }
    // HTTP/2 over TLS, through lookout's own prober.
    let ca = dir.join("ca.pem");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (method, path, header) in [
        ("GET", "/", ("Accept", "*/*")),
        ("POST", "/s/201?h2=1", ("Accept", "text/plain")),
        ("GET", "/retry/h2", ("X-Forwarded-For", "203.0.113.9, 10.0.0.2")),
        ("DELETE", "/s/404", ("Referer", "https://ref.example/ \"x\"")),
    ] {
        let module = format!(
            "prober: http\nhttp:\n  method: {method}\n  preferred_ip_protocol: ip4\n  valid_status_codes: [200, 201, 404]\n  valid_http_versions: [HTTP/2.0]\n  headers: {{ User-Agent: 'h2 \"agent\"', {}: '{}' }}\n  tls_config: {{ ca_file: {} }}\n",
            header.0,
            header.1,
            ca.display()
        );
        let target = format!("https://localhost:{https}{path}");
        let outcome = rt.block_on(probe(&module, &target));
        assert_eq!(reason(&outcome), "none", "{method} {target} over HTTP/2");
    }
}
