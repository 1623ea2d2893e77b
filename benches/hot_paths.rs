//! Micro-benchmarks of the per-line hot paths: parsing nginx and Spring records, applying
//! rules, and encoding an exposition. `cargo bench --bench hot_paths`.

use lookout::config::log_rules::LogRulesFile;
use lookout::config::Source;
use lookout::logs::container::Meta;
use lookout::logs::parse::nginx::{preset, NginxFormat};
use lookout::logs::parse::spring::{SpringFormat, FIELDS};
use lookout::logs::record::Values;
use lookout::logs::{SourcePlan, SourceState};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    divan::main();
}

const NGINX_LINE: &str = r#"203.0.113.7 - - [20/Nov/2026:10:00:00 +0900] "GET /api/v1/users/4242?x=1 HTTP/1.1" 200 5123 "https://shop.example.com/" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36" 0.081"#;
const SPRING_LINE: &str = "2026-11-20T10:00:00.007+09:00  INFO 10788 --- [pay-api] [http-nio-8081-exec-3] [0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331] o.s.web.servlet.DispatcherServlet        : Completed GET /api/v1/orders/12/items in 231ms";

#[divan::bench]
fn nginx_parse(bencher: divan::Bencher) {
    let format = NginxFormat::compile(&preset("combined_timed").unwrap()).unwrap();
    bencher.bench(|| {
        let mut values: Values = vec![None; format.fields().len()];
        divan::black_box(format.parse(divan::black_box(NGINX_LINE), &mut values));
    });
}

/// ingress-nginx's default format: unquoted upstream lists and free text split by grammar.
const INGRESS_FORMAT: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id"#;
const INGRESS_LINE: &str = r#"10.244.0.1 - - [20/Nov/2026:10:00:00 +0900] "POST /api/v1/orders HTTP/2.0" 200 512 "-" "okhttp/4.12.0" 311 0.043 [shop-orders-80] [] 10.244.1.7:8080, 10.244.2.9:8080 0, 512 0.001, 0.042 502, 200 6f1c3e0b9a2d4c7e8f1a2b3c4d5e6f70"#;

#[divan::bench]
fn nginx_parse_by_grammar(bencher: divan::Bencher) {
    let format = NginxFormat::compile(INGRESS_FORMAT).unwrap();
    bencher.bench(|| {
        let mut values: Values = vec![None; format.fields().len()];
        divan::black_box(format.parse(divan::black_box(INGRESS_LINE), &mut values));
    });
}

#[divan::bench]
fn spring_parse(bencher: divan::Bencher) {
    let format = SpringFormat::auto();
    bencher.bench(|| {
        let mut values: Values = vec![None; FIELDS.len()];
        divan::black_box(format.parse(divan::black_box(SPRING_LINE), &mut values));
    });
}

/// A field as a number, as every numeric `when:` and `value:` reads it: a short decimal, a
/// status, an upstream list of a retried request.
#[divan::bench(args = ["0.081", "503", "0.010, 0.020"])]
fn field_number(bencher: divan::Bencher, text: &str) {
    bencher.bench(|| lookout::logs::record::number(divan::black_box(text)));
}

/// A read line as text: valid UTF-8 is borrowed after one fast validation.
#[divan::bench]
fn line_text(bencher: divan::Bencher) {
    bencher.bench(|| {
        divan::black_box(lookout::logs::framing::line_text(divan::black_box(NGINX_LINE.as_bytes())))
            .len()
    });
}

/// The source `name` of a rules file in the repository, compiled, with fresh counts.
fn source(rules_file: &str, name: &str) -> (Arc<SourcePlan>, SourceState) {
    let rules =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rules_file)).unwrap();
    let source = Source::from_text(Path::new(rules_file), &rules).unwrap();
    let file = LogRulesFile::load(&source).unwrap();
    let plan = lookout::logs::compile(&file, &source)
        .unwrap()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap();
    let state = SourceState::new(&plan);
    (plan, state)
}

/// The four families of the mtail benchmark, per line: parse plus every rule.
#[divan::bench]
fn nginx_record_through_benchmark_rules(bencher: divan::Bencher) {
    let (plan, mut state) = source("bench/nginx.yaml", "nginx");
    let now = Instant::now();
    bencher
        .bench_local(|| state.process(&plan, divan::black_box(NGINX_LINE), Meta::default(), now));
}

#[divan::bench]
fn spring_record_through_shipped_rules(bencher: divan::Bencher) {
    let (plan, mut state) = source("log_rules.yaml", "spring");
    let now = Instant::now();
    bencher
        .bench_local(|| state.process(&plan, divan::black_box(SPRING_LINE), Meta::default(), now));
}

/// The mtail benchmark's source after lines of 24 method and status pairs.
fn counted_source() -> (Arc<SourcePlan>, SourceState) {
    let (plan, mut state) = source("bench/nginx.yaml", "nginx");
    let now = Instant::now();
    for status in ["200", "201", "301", "404", "500", "502"] {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            state.process(
                &plan,
                &NGINX_LINE.replace("GET", method).replace("\" 200 ", &format!("\" {status} ")),
                Meta::default(),
                now,
            );
        }
    }
    (plan, state)
}

/// What a live source stages with its positions after each read, up to 100 times a second.
#[divan::bench]
fn stage_snapshot(bencher: divan::Bencher) {
    let (_plan, state) = counted_source();
    bencher.bench(|| divan::black_box(&state).snapshot());
}

/// What a scrape makes of a source's snapshot: its families.
#[divan::bench]
fn render_snapshot(bencher: divan::Bencher) {
    let (plan, state) = counted_source();
    let snapshot = state.snapshot();
    bencher.bench(|| snapshot.families(divan::black_box(&plan)));
}

#[divan::bench]
fn encode_exposition(bencher: divan::Bencher) {
    let (plan, state) = counted_source();
    let families = state.families(&plan);
    bencher.bench(|| {
        lookout::metrics::exposition::encode(
            divan::black_box(&families),
            lookout::metrics::exposition::Format::Text,
        )
    });
}
