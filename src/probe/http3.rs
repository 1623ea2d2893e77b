//! HTTP/3 for http modules with `enable_http3`: one request over a fresh QUIC connection
//! (quinn, with the module's rustls client and `h3` as ALPN), then h3.
//!
//! The QUIC handshake is the TLS handshake, so it is timed as the `tls` phase and `connect`
//! stays 0. The server's chain is inspected and verified as over TCP; quinn does not say which
//! cipher suite was chosen, so `probe_tls_cipher_info` is absent.

use super::http::{Connection, ProbeBody};
use super::tls::TlsClient;
use super::{Failure, FailureReason, Report};
use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body_util::BodyExt;
use rustls::pki_types::CertificateDer;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The ALPN token of HTTP/3.
pub const ALPN: &[u8] = b"h3";

/// Sends `request` to `addr` over HTTP/3; returns the response, the task that carries its
/// body, when the handshake ended and how long it took.
pub async fn exchange(
    tls: &TlsClient,
    addr: SocketAddr,
    name: &str,
    request: Request<Bytes>,
    report: &mut Report,
) -> Result<(Response<ProbeBody>, Connection, Instant, Duration), Failure> {
    let quic_error = |what: &str, e: &dyn std::fmt::Display| {
        Failure::new(FailureReason::Connect, format!("QUIC {what} {addr}: {e}"))
    };
    let bind: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = quinn::Endpoint::client(bind).map_err(|e| quic_error("socket for", &e))?;
    let (name_text, server_name) = tls.begin(name, report)?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls.config()?).map_err(|e| {
        Failure::new(FailureReason::TlsHandshake, format!("TLS for QUIC needs TLS 1.3: {e}"))
    })?;
    let started = Instant::now();
    let connection = endpoint
        .connect_with(quinn::ClientConfig::new(Arc::new(crypto)), addr, &name_text)
        .map_err(|e| quic_error("connecting to", &e))?
        .await
        .map_err(|e| match e {
            quinn::ConnectionError::TimedOut => Failure::new(
                FailureReason::Timeout,
                format!("QUIC handshake with {addr} timed out"),
            ),
            quinn::ConnectionError::TransportError(e) => Failure::new(
                FailureReason::TlsHandshake,
                format!("QUIC handshake with {name_text}: {e}"),
            ),
            other => quic_error("connecting to", &other),
        })?;
    let handshaken = Instant::now();
    report.log(format_args!("QUIC handshake with {addr} done in {:?}", handshaken - started));
    let chain = connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|chain| *chain)
        .unwrap_or_default();
    tls.inspect(&chain, super::tls::TLS13, None, &server_name, report)?;

    let protocol_error =
        |e: &dyn std::fmt::Display| Failure::new(FailureReason::Http, format!("HTTP/3: {e}"));
    let (mut driver, mut sender) = h3::client::new(h3_quinn::Connection::new(connection))
        .await
        .map_err(|e| protocol_error(&e))?;
    // The connection is driven beside the request; dropping the guard (with the body's task)
    // stops it.
    let driving = Connection(tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    }));
    let (parts, body) = request.into_parts();
    report.log(format_args!("sending {} {} over HTTP/3", parts.method, parts.uri));
    let mut stream = sender
        .send_request(Request::from_parts(parts, ()))
        .await
        .map_err(|e| protocol_error(&e))?;
    if !body.is_empty() {
        stream.send_data(body).await.map_err(|e| protocol_error(&e))?;
    }
    stream.finish().await.map_err(|e| protocol_error(&e))?;
    let response = stream.recv_response().await.map_err(|e| protocol_error(&e))?;

    let (chunks, received) = mpsc::channel(4);
    let carrying = Connection(tokio::spawn(async move {
        // Kept until the body is read: the endpoint, the sender and the driver.
        let _kept = (endpoint, sender, driving);
        loop {
            let chunk = match stream.recv_data().await {
                Ok(Some(mut data)) => Ok(data.copy_to_bytes(data.remaining())),
                Ok(None) => break,
                Err(e) => Err(e.to_string()),
            };
            let failed = chunk.is_err();
            if chunks.send(chunk).await.is_err() || failed {
                break;
            }
        }
    }));
    let body = H3Body { chunks: received }.boxed_unsync();
    Ok((response.map(|()| body), carrying, handshaken, handshaken - started))
}

/// The body of an HTTP/3 response, as the task reading its stream passes it on.
struct H3Body {
    chunks: mpsc::Receiver<Result<Bytes, String>>,
}

impl hyper::body::Body for H3Body {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(hyper::body::Frame::data).map_err(Into::into)))
    }
}

/// A target as an HTTP/3 module takes it: `https://` in place of `http://` (as blackbox).
pub fn https_target(target: &str) -> String {
    match target.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("http://") => {
            format!("https://{}", &target[7..])
        }
        _ if !target.contains("://") => format!("https://{target}"),
        _ => target.to_string(),
    }
}
