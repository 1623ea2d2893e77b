//! `/probe?module=&target=`: blackbox_exporter's multi-target endpoint, with an optional
//! allowlist of targets and a switch to turn it off.
//!
//! A request is probed under a [`Guard`] (every hop allowed, none into lookout's own sockets),
//! and a request lookout's own prober carries here is refused, so probes never nest.

use super::Reply;
use crate::app::App;
use crate::metrics::exposition::{self, Format};
use crate::probe::Guard;
use http::{HeaderMap, StatusCode};
use std::time::Duration;

const DEFAULT_MODULE: &str = "http_2xx";
/// Without Prometheus' scrape-timeout header, blackbox assumes 120 s.
const DEFAULT_SCRAPE_TIMEOUT: f64 = 120.0;
const MIN_TIMEOUT: f64 = 0.1;
const MAX_TIMEOUT: f64 = 3600.0;

/// What a `/probe` query string asks for.
#[derive(Debug, PartialEq)]
pub struct ProbeRequest {
    /// `module`, `http_2xx` when absent or empty, as blackbox.
    pub module: String,
    /// `target`, if given and not empty.
    pub target: Option<String>,
    /// `debug=true`: the probe's log instead of its metrics.
    pub debug: bool,
}

impl ProbeRequest {
    pub fn parse(query: Option<&str>) -> ProbeRequest {
        let mut request =
            ProbeRequest { module: DEFAULT_MODULE.to_string(), target: None, debug: false };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "module" if !value.is_empty() => request.module = value.into_owned(),
                "target" => request.target = Some(value.into_owned()).filter(|t| !t.is_empty()),
                "debug" => request.debug = value == "true",
                _ => {}
            }
        }
        request
    }
}

/// `from_prober`: the request came over a connection lookout's own prober opened.
pub async fn handle(
    app: &App,
    query: Option<&str>,
    headers: &HeaderMap,
    from_prober: bool,
) -> Reply {
    let config = app.config();
    let reject = |status: StatusCode, reason: &'static str, message: String| {
        app.metrics.record_probe_rejection(reason);
        Reply::text(status, message)
    };
    if !config.probe_endpoint.enabled {
        return reject(
            StatusCode::NOT_FOUND,
            "disabled",
            "/probe is disabled (probe_endpoint.enabled: false)\n".into(),
        );
    }
    if from_prober {
        return reject(
            StatusCode::FORBIDDEN,
            "self_probe",
            "/probe requests from lookout's own prober are refused: probes do not nest\n".into(),
        );
    }
    let _slot = match app.probe_slots.get().map(|slots| slots.try_acquire()) {
        Some(Err(_)) => {
            let message = "Too many /probe requests in flight; try again\n".to_string();
            return reject(StatusCode::SERVICE_UNAVAILABLE, "busy", message);
        }
        Some(Ok(slot)) => Some(slot),
        None => None,
    };
    let ProbeRequest { module: module_name, target, debug } = ProbeRequest::parse(query);
    let Some(target) = target else {
        return reject(
            StatusCode::BAD_REQUEST,
            "missing_target",
            "Target parameter is missing\n".into(),
        );
    };
    let Some(module) = config.modules.get(&module_name).cloned() else {
        return reject(
            StatusCode::BAD_REQUEST,
            "unknown_module",
            format!("Unknown module {module_name:?}\n"),
        );
    };
    if matches!(module.prober, crate::probe::Prober::File(_)) {
        let message = format!("Module {module_name:?} reads files on lookout's host; it runs only as a scheduled probe\n");
        return reject(StatusCode::BAD_REQUEST, "file_module", message);
    }
    if !config.probe_endpoint.allows(&target) {
        return reject(
            StatusCode::FORBIDDEN,
            "target_not_allowed",
            format!("Target {target:?} is not allowed by probe_endpoint.allowed_targets\n"),
        );
    }
    let timeout = match scrape_timeout(headers, module.timeout, app.timeout_offset) {
        Ok(t) => t,
        Err(message) => return reject(StatusCode::INTERNAL_SERVER_ERROR, "bad_timeout", message),
    };
    let listening = app.listening.get().map_or(&[][..], Vec::as_slice);
    let guard = Guard::new(&config.probe_endpoint, listening);
    let outcome = crate::probe::run_guarded(&module, &target, timeout, Some(&guard), debug).await;
    app.metrics.record_probe_request(&module.name, outcome.success);
    if debug {
        let mut text = String::from("Logs for the probe:\n");
        for line in &outcome.log {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("\n\n\nMetrics that would have been returned:\n");
        text.push_str(&exposition::encode(&outcome.families, Format::Text));
        return Reply::text(StatusCode::OK, text);
    }
    let format = Format::negotiate(headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()));
    Reply::metrics(format, exposition::encode(&outcome.families, format))
}

/// The probe's timeout as blackbox computes it: the scrape timeout Prometheus announces, less
/// the offset, or the module's timeout when that is shorter.
fn scrape_timeout(
    headers: &HeaderMap,
    module_timeout: Option<Duration>,
    offset: f64,
) -> Result<Duration, String> {
    let announced = match headers.get("X-Prometheus-Scrape-Timeout-Seconds") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite())
            .ok_or_else(|| format!("Failed to parse timeout from Prometheus header: {v:?}\n"))?,
        None => 0.0,
    };
    let announced = if announced == 0.0 { DEFAULT_SCRAPE_TIMEOUT } else { announced };
    let max = announced - offset;
    let module = module_timeout.map_or(0.0, |t| t.as_secs_f64());
    let seconds = if (module > 0.0 && module < max) || max < 0.0 { module } else { max };
    // A probe needs some time, and no scrape waits longer than this.
    Ok(Duration::from_secs_f64(seconds.clamp(MIN_TIMEOUT, MAX_TIMEOUT)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("X-Prometheus-Scrape-Timeout-Seconds", v.parse().unwrap());
        h
    }

    #[test]
    fn timeout_follows_blackbox() {
        let s = |h: &HeaderMap, m: Option<u64>| {
            scrape_timeout(h, m.map(Duration::from_secs), 0.5).map(|d| d.as_secs_f64())
        };
        assert_eq!(s(&headers("10"), None), Ok(9.5));
        assert_eq!(s(&headers("10"), Some(5)), Ok(5.0));
        assert_eq!(s(&headers("10"), Some(30)), Ok(9.5));
        assert_eq!(s(&HeaderMap::new(), None), Ok(119.5));
        assert!(s(&headers("soon"), None).is_err());
        assert_eq!(s(&headers("1e20"), None), Ok(3600.0), "no panic on absurd values");
        assert_eq!(
            s(&headers("-5"), Some(3)),
            Ok(3.0),
            "a negative budget falls back to the module's timeout"
        );
    }
}
