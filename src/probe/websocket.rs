//! The websocket prober: blackbox's `prober: websocket`: resolve, connect, TLS for `wss://`,
//! the HTTP/1.1 upgrade with the module's credentials and headers, then an optional
//! `query_response` dialogue in which each `expect` reads one message and each `send` sends a
//! text message.

use super::http::Credentials;
use super::query_response::{Step, Stream};
use super::tls::TlsClient;
use super::{dial, Failure, FailureReason, Guard, Report};
use crate::config::probes::{HeaderValues, WebsocketModule};
use crate::config::values::IpProtocol;
use crate::config::{ConfigError, Source};
use crate::metrics::families::{
    PROBE_WEBSOCKET_CONNECTION_UPGRADED, PROBE_WEBSOCKET_DURATION_SECONDS,
    PROBE_WEBSOCKET_FAILED_DUE_TO_REGEX, PROBE_WEBSOCKET_STATUS_CODE,
};
use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::Uri;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// A module's `websocket:` section, prepared.
pub struct WebsocketProbe {
    preferred_ip_protocol: IpProtocol,
    ip_protocol_fallback: bool,
    steps: Vec<Step>,
    tls: TlsClient,
    credentials: Credentials,
    headers: Vec<(HeaderName, HeaderSource)>,
}

/// A header value from the configuration, or from a file read at each probe.
enum HeaderSource {
    Value(HeaderValue),
    File(String),
}

impl WebsocketProbe {
    /// Its `query_response` steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn prepare(
        config: WebsocketModule,
        section: &str,
        source: &Source,
    ) -> Result<WebsocketProbe, ConfigError> {
        let http = &config.http_config;
        let tls = TlsClient::new(&http.tls_config, &[b"http/1.1"], source)?;
        let steps = Step::prepare_all(&config.query_response, section, source)?;
        let credentials = Credentials::from_auth(
            http.basic_auth.as_ref().map(|a| &a.value),
            http.authorization.as_ref().map(|a| &a.value),
        );
        let mut headers = Vec::new();
        for (name, values) in &config.headers {
            let key = format!("{section}.headers.{name}");
            let invalid = |what: String| source.error_in(&key, values, what);
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("{name:?} is not a header name")))?;
            let HeaderValues { values: literal, secrets, files } = &values.value;
            for value in literal.iter().chain(secrets) {
                // The value itself is not shown: it may be a secret.
                let value = HeaderValue::from_str(value)
                    .map_err(|_| invalid("a value is not a valid header value".to_string()))?;
                headers.push((header.clone(), HeaderSource::Value(value)));
            }
            for file in files {
                if !std::path::Path::new(file).exists() {
                    tracing::warn!(
                        "{}: {key}: {file} does not exist (yet): probes with this module fail until it does",
                        source.path.display()
                    );
                }
                headers.push((header.clone(), HeaderSource::File(file.clone())));
            }
        }
        Ok(WebsocketProbe {
            preferred_ip_protocol: config.preferred_ip_protocol,
            ip_protocol_fallback: config.ip_protocol_fallback,
            steps,
            tls,
            credentials,
            headers,
        })
    }
}

/// A `ws://` or `wss://` URL with a host.
pub fn parse_target(target: &str) -> Result<Uri, Failure> {
    let invalid =
        |why: &str| Failure::new(FailureReason::InvalidTarget, format!("target {target:?}: {why}"));
    let uri: Uri = target.parse().map_err(|_| invalid("not a URL"))?;
    if !matches!(uri.scheme_str(), Some("ws" | "wss")) {
        return Err(invalid("expected a ws:// or wss:// URL"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(uri)
}

fn phase(report: &mut Report, name: &str, took: Duration) {
    report.add_labeled(&PROBE_WEBSOCKET_DURATION_SECONDS, [name.to_string()], took.as_secs_f64());
}

pub async fn probe(
    target: &str,
    probe: &WebsocketProbe,
    guard: Option<&Guard<'_>>,
    report: &mut Report,
) -> Result<(), Failure> {
    for family in [
        &PROBE_WEBSOCKET_STATUS_CODE,
        &PROBE_WEBSOCKET_CONNECTION_UPGRADED,
        &PROBE_WEBSOCKET_FAILED_DUE_TO_REGEX,
    ] {
        report.set(family, 0.0);
    }
    let uri = parse_target(target)?;
    if let Some(guard) = guard {
        guard.check_url(&uri, false)?;
    }
    let host = uri.host().unwrap_or_default();
    let secure = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let resolved =
        dial::resolve(host, probe.preferred_ip_protocol, probe.ip_protocol_fallback, report)
            .await?;
    dial::record(&resolved, report);
    phase(report, "resolve", resolved.lookup);
    let addr = SocketAddr::new(resolved.ip, port);
    if let Some(guard) = guard {
        guard.check_address(addr)?;
    }
    let start = Instant::now();
    let stream = dial::connect(addr, None, report).await?;
    phase(report, "connect", start.elapsed());

    let start = Instant::now();
    let upgraded = upgrade(&uri, host, secure, stream, probe, report).await;
    phase(report, "processing", start.elapsed());
    let mut socket = upgraded?;
    report.set(&PROBE_WEBSOCKET_CONNECTION_UPGRADED, 1.0);
    if probe.steps.is_empty() {
        return Ok(());
    }
    let start = Instant::now();
    let result = dialogue(&mut socket, &probe.steps, report).await;
    phase(report, "transfer", start.elapsed());
    result
}

/// TLS for `wss://`, then the HTTP upgrade; records the answer's status code.
async fn upgrade(
    uri: &Uri,
    host: &str,
    secure: bool,
    stream: dial::ProbeStream,
    probe: &WebsocketProbe,
    report: &mut Report,
) -> Result<WebSocketStream<Box<dyn Stream>>, Failure> {
    let stream: Box<dyn Stream> = if secure {
        let name = probe.tls.server_name().unwrap_or(host);
        Box::new(probe.tls.handshake(stream, name, report).await?)
    } else {
        Box::new(stream)
    };
    let mut request = uri
        .clone()
        .into_client_request()
        .map_err(|e| Failure::new(FailureReason::InvalidTarget, format!("target {uri}: {e}")))?;
    let headers = request.headers_mut();
    if let Some(authorization) = probe.credentials.header()? {
        headers.insert(AUTHORIZATION, authorization);
    }
    for (name, value) in &probe.headers {
        let value = match value {
            HeaderSource::Value(value) => value.clone(),
            HeaderSource::File(path) => read_header_file(path)?,
        };
        headers.append(name.clone(), value);
    }
    report.log(format_args!("upgrading {uri} to a websocket"));
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, response)) => {
            report.set(&PROBE_WEBSOCKET_STATUS_CODE, f64::from(response.status().as_u16()));
            report.log(format_args!("upgraded: {}", response.status()));
            Ok(socket)
        }
        Err(WsError::Http(response)) => {
            let status = response.status();
            report.set(&PROBE_WEBSOCKET_STATUS_CODE, f64::from(status.as_u16()));
            Err(Failure::new(
                FailureReason::WebsocketUpgrade,
                format!("the server answered {status} instead of switching protocols"),
            ))
        }
        Err(WsError::Io(e)) => Err(Failure::new(FailureReason::Connect, e.to_string())),
        Err(e) => Err(Failure::new(FailureReason::WebsocketUpgrade, e.to_string())),
    }
}

/// A header file's trimmed contents, read at each probe so rotated secrets are picked up.
fn read_header_file(path: &str) -> Result<HeaderValue, Failure> {
    let failed = |why: String| {
        Failure::new(FailureReason::Credentials, format!("reading header file {path}: {why}"))
    };
    let bytes = crate::files::read(path.as_ref(), crate::files::MAX_CONFIG_BYTES)
        .map_err(|e| failed(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| failed(e.to_string()))?;
    HeaderValue::from_str(text.trim()).map_err(|_| failed("not a valid header value".into()))
}

/// Each `expect` reads the next data message; each `send` sends a text message.
async fn dialogue(
    socket: &mut WebSocketStream<Box<dyn Stream>>,
    steps: &[Step],
    report: &mut Report,
) -> Result<(), Failure> {
    let failed = |why: String| Failure::new(FailureReason::QueryResponse, why);
    for (index, step) in steps.iter().enumerate() {
        let mut send = step.send.clone();
        if let Some(expect) = &step.expect {
            report.log(format_args!("step {index}: expecting {:?}", expect.as_str()));
            let message = loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => break text.as_str().to_string(),
                    Some(Ok(Message::Binary(bytes))) => {
                        break String::from_utf8_lossy(&bytes).into_owned()
                    }
                    // Control frames are answered by the library; they are not messages.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) | None => {
                        report.set(&PROBE_WEBSOCKET_FAILED_DUE_TO_REGEX, 1.0);
                        return Err(failed(format!(
                            "connection closed before a message matched {:?}",
                            expect.as_str()
                        )));
                    }
                    Some(Err(e)) => return Err(failed(format!("reading a message: {e}"))),
                }
            };
            report.log(format_args!("read {message:?}"));
            let Some(caps) = expect.captures(&message) else {
                report.set(&PROBE_WEBSOCKET_FAILED_DUE_TO_REGEX, 1.0);
                return Err(failed(format!(
                    "message {message:?} does not match {:?}",
                    expect.as_str()
                )));
            };
            send = step.matched(&caps, report);
        }
        if let Some(send) = send {
            let text = String::from_utf8_lossy(&send).into_owned();
            report.log(format_args!("step {index}: sending {text:?}"));
            socket
                .send(Message::text(text))
                .await
                .map_err(|e| failed(format!("sending a message: {e}")))?;
        }
    }
    let _ = socket.close(None).await;
    Ok(())
}
