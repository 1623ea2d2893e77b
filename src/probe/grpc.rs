//! The grpc prober: blackbox's `prober: grpc` — the standard `grpc.health.v1.Health/Check`
//! call, over HTTP/2 in clear text (prior knowledge) or over TLS.
//!
//! The call is made with hyper's HTTP/2 client on lookout's own dial and TLS path rather than
//! with tonic's channel: that path keeps the served certificate chain even when it cannot be
//! trusted (so gRPC endpoints get the same certificate metrics and expiry warnings as HTTP
//! ones) and is the connection `/probe`'s guard checks. The two messages are decoded by prost.

use super::tls::TlsClient;
use super::{dial, Failure, FailureReason, Guard, Report};
use crate::config::probes::GrpcModule;
use crate::config::values::IpProtocol;
use crate::config::{ConfigError, Source};
use crate::metrics::families::{
    PROBE_GRPC_DURATION_SECONDS, PROBE_GRPC_HEALTHCHECK_RESPONSE, PROBE_GRPC_SSL,
    PROBE_GRPC_STATUS_CODE,
};
use bytes::{Buf, Bytes};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest response body read: a health answer is a few bytes.
const MAX_RESPONSE: usize = 64 << 10;
/// gRPC's UNAVAILABLE, what grpc-go reports when it cannot reach or handshake with the server.
const UNAVAILABLE: i32 = 14;
/// `grpc.health.v1.HealthCheckResponse.ServingStatus`, by number.
const SERVING_STATUSES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
const SERVING: i32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// A module's `grpc:` section, prepared at load.
pub struct GrpcProbe {
    request: Bytes,
    metadata: HeaderMap,
    tls: Option<TlsClient>,
    preferred_ip_protocol: IpProtocol,
    ip_protocol_fallback: bool,
}

impl GrpcProbe {
    pub fn prepare(config: GrpcModule, source: &Source) -> Result<GrpcProbe, ConfigError> {
        let message = HealthCheckRequest { service: config.service }.encode_to_vec();
        let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
        let mut request = Vec::with_capacity(5 + message.len());
        request.push(0);
        request.extend_from_slice(&length.to_be_bytes());
        request.extend_from_slice(&message);
        let mut metadata = HeaderMap::new();
        for (name, values) in &config.metadata {
            let header = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok();
            for value in values {
                let invalid = || {
                    source.error_at_span(
                        value,
                        format!("invalid metadata {name:?}: {:?}", value.value),
                    )
                };
                let header = header.clone().ok_or_else(invalid)?;
                metadata
                    .append(header, HeaderValue::from_str(&value.value).map_err(|_| invalid())?);
            }
        }
        let tls = if config.tls {
            Some(TlsClient::new(&config.tls_config, &[b"h2"], source)?)
        } else {
            None
        };
        Ok(GrpcProbe {
            request: Bytes::from(request),
            metadata,
            tls,
            preferred_ip_protocol: config.preferred_ip_protocol,
            ip_protocol_fallback: config.ip_protocol_fallback,
        })
    }
}

/// `host[:port]`, optionally after `http://` or `https://` (which blackbox accepts and ignores:
/// `tls` decides); the port is 443 with TLS and 80 without when not given.
pub fn parse_target(target: &str) -> Result<(String, Option<u16>), Failure> {
    let invalid = |why: String| {
        Failure::new(FailureReason::InvalidTarget, format!("target {target:?}: {why}"))
    };
    let text = if target.starts_with("http://") || target.starts_with("https://") {
        target.to_string()
    } else {
        format!("http://{target}")
    };
    let uri: Uri = text.parse().map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| invalid("no host".into()))?;
    dial::check_host(host)?;
    Ok((host.to_string(), uri.port_u16()))
}

pub async fn probe(
    target: &str,
    probe: &GrpcProbe,
    guard: Option<&Guard<'_>>,
    report: &mut Report,
) -> Result<(), Failure> {
    report.set_labeled(&PROBE_GRPC_DURATION_SECONDS, ["resolve".to_string()], 0.0);
    report.set(&PROBE_GRPC_SSL, 0.0);
    report.set(&PROBE_GRPC_STATUS_CODE, 0.0);
    let (host, port) = parse_target(target)?;
    let port = port.unwrap_or(if probe.tls.is_some() { 443 } else { 80 });
    let resolved =
        dial::resolve(&host, probe.preferred_ip_protocol, probe.ip_protocol_fallback, report)
            .await?;
    dial::record(&resolved, report);
    report.set_labeled(
        &PROBE_GRPC_DURATION_SECONDS,
        ["resolve".to_string()],
        resolved.lookup.as_secs_f64(),
    );
    let addr = SocketAddr::new(resolved.ip, port);
    if let Some(guard) = guard {
        guard.check_address(addr)?;
    }

    let started = Instant::now();
    let result = check(addr, &host, probe, report).await;
    report.set_labeled(
        &PROBE_GRPC_DURATION_SECONDS,
        ["check".to_string()],
        started.elapsed().as_secs_f64(),
    );
    for name in SERVING_STATUSES {
        report.set_labeled(&PROBE_GRPC_HEALTHCHECK_RESPONSE, [name.to_string()], 0.0);
    }
    match result {
        Ok(serving) => {
            report.set(&PROBE_GRPC_STATUS_CODE, 0.0);
            let name = usize::try_from(serving)
                .ok()
                .and_then(|i| SERVING_STATUSES.get(i))
                .copied()
                .unwrap_or("UNKNOWN");
            report.set_labeled(&PROBE_GRPC_HEALTHCHECK_RESPONSE, [name.to_string()], 1.0);
            if serving == SERVING {
                Ok(())
            } else {
                Err(Failure::new(
                    FailureReason::GrpcStatus,
                    format!("health check answered {name}, not SERVING"),
                ))
            }
        }
        Err((code, failure)) => {
            report.set(&PROBE_GRPC_STATUS_CODE, f64::from(code));
            Err(failure)
        }
    }
}

/// The serving status the server reports, or the gRPC status code of the failed call.
async fn check(
    addr: SocketAddr,
    host: &str,
    probe: &GrpcProbe,
    report: &mut Report,
) -> Result<i32, (i32, Failure)> {
    let unavailable = |failure: Failure| (UNAVAILABLE, failure);
    let stream = dial::connect(addr, None, report).await.map_err(unavailable)?;
    // `host` is as the target wrote it, so an IPv6 address keeps its brackets.
    let authority = format!("{host}:{}", addr.port());
    match &probe.tls {
        Some(tls) => {
            let stream = tls
                .handshake(stream, tls.server_name().unwrap_or(host), report)
                .await
                .map_err(unavailable)?;
            report.set(&PROBE_GRPC_SSL, 1.0);
            call(stream, "https", &authority, probe, report).await
        }
        None => call(stream, "http", &authority, probe, report).await,
    }
}

async fn call<S>(
    io: S,
    scheme: &str,
    authority: &str,
    probe: &GrpcProbe,
    report: &mut Report,
) -> Result<i32, (i32, Failure)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let protocol = |e: hyper::Error| {
        (UNAVAILABLE, Failure::new(FailureReason::Http, format!("HTTP/2 with the server: {e}")))
    };
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .map_err(protocol)?;
    // Drives the connection until the answer is read; dropping it closes the socket.
    let _connection = super::http::Connection(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let mut request = Request::post(format!("{scheme}://{authority}/grpc.health.v1.Health/Check"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(http::header::USER_AGENT, super::http::USER_AGENT)
        .body(Full::new(probe.request.clone()))
        .map_err(|e| {
            (UNAVAILABLE, Failure::new(FailureReason::InvalidTarget, format!("request: {e}")))
        })?;
    request.headers_mut().extend(probe.metadata.clone());
    report.log(format_args!("calling grpc.health.v1.Health/Check on {authority}"));
    let response = sender.send_request(request).await.map_err(protocol)?;
    let (parts, body) = response.into_parts();
    let collected = Limited::new(body, MAX_RESPONSE).collect().await.map_err(|e| {
        (UNAVAILABLE, Failure::new(FailureReason::Http, format!("reading the answer: {e}")))
    })?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let mut body = collected.to_bytes();
    // grpc-status comes in the trailers, or in the headers of a trailers-only answer.
    let status = trailers.get("grpc-status").or_else(|| parts.headers.get("grpc-status"));
    let code = match status {
        Some(value) => value.to_str().ok().and_then(|v| v.parse::<i32>().ok()).unwrap_or(2),
        None if parts.status != http::StatusCode::OK => http_status_code(parts.status.as_u16()),
        None => 2,
    };
    if code != 0 {
        let message = trailers
            .get("grpc-message")
            .or_else(|| parts.headers.get("grpc-message"))
            .and_then(|m| m.to_str().ok())
            .unwrap_or("");
        return Err((
            code,
            Failure::new(
                FailureReason::GrpcStatus,
                format!("health check failed with gRPC status {code} {message}"),
            ),
        ));
    }
    let invalid = |why: &str| {
        (13, Failure::new(FailureReason::GrpcStatus, format!("invalid health check answer: {why}")))
    };
    if body.len() < 5 {
        return Err(invalid("no message"));
    }
    let compressed = body.get_u8();
    let length = body.get_u32() as usize;
    if compressed != 0 {
        return Err(invalid("compressed, though no compression was offered"));
    }
    if body.len() < length {
        return Err(invalid("message shorter than its length prefix"));
    }
    let answer = HealthCheckResponse::decode(&body[..length])
        .map_err(|_| invalid("not a HealthCheckResponse"))?;
    report.log(format_args!("serving status {}", answer.status));
    Ok(answer.status)
}

/// The gRPC code for an HTTP status without grpc-status, as gRPC's HTTP/2 mapping gives it.
fn http_status_code(status: u16) -> i32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("localhost:50051").unwrap(),
            ("localhost".to_string(), Some(50051))
        );
        assert_eq!(parse_target("https://[::1]:443").unwrap(), ("[::1]".to_string(), Some(443)));
        assert_eq!(parse_target("grpc.example").unwrap(), ("grpc.example".to_string(), None));
        assert!(parse_target("a b:1").is_err());
    }

    #[test]
    fn request_is_a_framed_health_check() {
        let probe = GrpcProbe::prepare(
            serde_saphyr::from_str("service: shop").unwrap(),
            &Source::from_text(std::path::Path::new("t.yaml"), "").unwrap(),
        )
        .unwrap();
        assert_eq!(&probe.request[..], b"\x00\x00\x00\x00\x06\x0a\x04shop");
    }
}
