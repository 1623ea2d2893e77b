//! A `/probe` query string as a scraper sends it: parsed, its target read as an http URL and as
//! a tcp `host:port`, and held to an allowlist the way every hop is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout::config::{ProbesFile, Source};
use lookout::probe::{http, tcp, Guard};
use lookout::web::probe_endpoint::ProbeRequest;
use std::path::Path;
use std::sync::OnceLock;

fn endpoint() -> &'static lookout::config::probes::ProbeEndpoint {
    static FILE: OnceLock<ProbesFile> = OnceLock::new();
    let file = FILE.get_or_init(|| {
        let yaml = "probe_endpoint:\n  allowed_targets: ['https?://[a-z.]+\\.example(:\\d+)?/.*', 'db\\.example:5432']\n";
        ProbesFile::load(&Source::from_text(Path::new("p.yaml"), yaml).unwrap()).unwrap()
    });
    &file.probe_endpoint
}

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    let request = ProbeRequest::parse(Some(&query));
    let Some(target) = request.target else { return };
    let endpoint = endpoint();
    let _ = endpoint.allows(&target);
    let guard = Guard::new(endpoint, &[9925]);
    if let Ok(uri) = http::parse_target(&target) {
        let _ = guard.check_url(&uri, false);
        let _ = guard.check_url(&uri, true);
    }
    let _ = tcp::split_host_port(&target);
});
