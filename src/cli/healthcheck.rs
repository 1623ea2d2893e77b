//! `lookout healthcheck`: whether the lookout serving at `--web.listen-address` is alive, for a
//! container's `HEALTHCHECK`, which must keep working once `--web.config.file` turns on TLS or
//! basic auth. It reads the same web configuration and asks `/-/healthy` with lookout's own
//! http prober: over TLS when `tls_server_config` is set, without verifying the server's
//! certificate (the connection goes to this machine's own port, and the question is whether
//! lookout answers, not who it is), presenting `--healthcheck.cert-file` when the endpoint
//! requires client certificates. A 401 counts as alive: the server answered, it only wants a
//! password the health check does not have. Exit 0 alive, 1 not (Docker reads any other code
//! as reserved, so errors exit 1 too).

use super::{Error, Verdict};
use crate::config::probes::{HttpModule, Module, TlsConfig};
use crate::config::values::PromDuration;
use crate::config::web::WebConfigFile;
use crate::config::Source;
use crate::probe::PreparedModule;
use serde_saphyr::{Location, Spanned};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Below Docker's usual 3 s `--timeout`, so lookout's answer is the one that counts.
const TIMEOUT: Duration = Duration::from_secs(2);

pub fn run(
    listen: &str,
    web_config: Option<&Path>,
    client: Option<&(PathBuf, PathBuf)>,
) -> Result<Verdict, Error> {
    let unusable = |e: String| Error::Runtime(format!("healthcheck: {e}"));
    let tls = match web_config {
        Some(path) => {
            let source = Source::read(path).map_err(|e| unusable(e.to_string()))?;
            let file = WebConfigFile::load(&source).map_err(|e| unusable(e.to_string()))?;
            file.tls_server_config.is_some()
        }
        None => false,
    };
    let url =
        format!("{}://{}/-/healthy", if tls { "https" } else { "http" }, local_address(listen));
    let module = module(client).map_err(unusable)?;
    let outcome = super::runtime().block_on(crate::probe::run(&module, &url, TIMEOUT));
    match &outcome.failure {
        None => println!("{url}: alive"),
        Some(failure) => println!("{url}: not alive: {failure}"),
    }
    Ok(Verdict::from_ok(outcome.success))
}

/// Where to reach a server listening on `listen`: every interface (`:PORT`, `0.0.0.0`, `[::]`)
/// is reached on loopback.
fn local_address(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some(("" | "0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => listen.to_string(),
    }
}

/// An http module that takes 200 or 401 and presents `client` (certificate, key) over TLS.
fn module(client: Option<&(PathBuf, PathBuf)>) -> Result<PreparedModule, String> {
    let spanned = |value| Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN);
    let path = |p: &PathBuf| spanned(p.display().to_string());
    let http = HttpModule {
        valid_status_codes: vec![200, 401],
        tls_config: TlsConfig {
            insecure_skip_verify: true,
            cert_file: client.map(|(cert, _)| path(cert)),
            key_file: client.map(|(_, key)| path(key)),
            ..TlsConfig::default()
        },
        ..HttpModule::default()
    };
    let module = Module {
        prober: spanned("http".to_string()),
        timeout: Some(PromDuration(TIMEOUT)),
        http: Some(Spanned::new(http, Location::UNKNOWN, Location::UNKNOWN)),
        tcp: None,
        icmp: None,
        dns: None,
        grpc: None,
        unix: None,
        websocket: None,
    };
    let source =
        Source::from_text(Path::new("--healthcheck.cert-file"), "").map_err(|e| e.to_string())?;
    PreparedModule::prepare("healthcheck", module, &source).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::local_address;

    #[test]
    fn every_interface_is_reached_on_loopback() {
        assert_eq!(local_address(":9925"), "127.0.0.1:9925");
        assert_eq!(local_address("0.0.0.0:80"), "127.0.0.1:80");
        assert_eq!(local_address("[::]:9925"), "[::1]:9925");
        assert_eq!(local_address("10.0.0.5:9925"), "10.0.0.5:9925");
    }
}
