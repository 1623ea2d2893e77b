//! The HTTP server: `/metrics`, `/probe`, `/-/healthy`, `/-/ready`, `/-/reload`, the
//! status page with its JSON API and badges, on hyper, with at most `--web.max-connections`
//! connections open.

pub mod connections;
pub mod error_count;
pub mod metrics;
pub mod probe_endpoint;
pub mod security;
pub mod status;
pub mod status_page;
pub mod svg;

use crate::app::App;
use crate::metrics::exposition::Format;
use bytes::Bytes;
use connections::{Activity, Connections};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use security::{Access, Security};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// Smaller bodies are sent as they are: compressing them gains nothing.
const GZIP_FROM_BYTES: usize = 1024;

/// What every handler answers with: a whole body, or `/metrics` written as it is read.
pub type ResponseBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A finished response.
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: String,
}

impl Reply {
    pub fn text(status: StatusCode, body: String) -> Reply {
        Reply { status, content_type: "text/plain; charset=utf-8", body }
    }

    pub fn metrics(format: Format, body: String) -> Reply {
        Reply { status: StatusCode::OK, content_type: format.content_type(), body }
    }

    fn into_response(self) -> Response<ResponseBody> {
        self.into_response_encoded(false)
    }

    /// With `gzip`, a body worth compressing is sent gzip-encoded (Prometheus asks for it).
    fn into_response_encoded(self, gzip: bool) -> Response<ResponseBody> {
        use std::io::Write;
        let compressed = (gzip && self.body.len() >= GZIP_FROM_BYTES)
            .then(|| {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.body.len() / 4),
                    flate2::Compression::fast(),
                );
                encoder.write_all(self.body.as_bytes()).ok()?;
                encoder.finish().ok()
            })
            .flatten();
        let encoded = compressed.is_some();
        let body = compressed.map_or_else(|| Bytes::from(self.body), Bytes::from);
        respond(self.status, self.content_type, encoded, Full::new(body).boxed())
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    gzip: bool,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    headers.insert(header::VARY, header::HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("gzip"));
    }
    response
}

/// Serves until `shutdown` completes, with at most `max_connections` open; with `security`,
/// over TLS and/or behind basic auth.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    security: Option<Arc<Security>>,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    if let Ok(local) = listener.local_addr() {
        let _ = app.listening.set(vec![local.port()]);
    }
    let sampler = tokio::spawn(error_count::sample(app.clone()));
    let kept_for_others = (max_connections / 8).max(4);
    let probes = max_connections.saturating_sub(kept_for_others).max(1);
    let _ = app.probe_slots.set(tokio::sync::Semaphore::new(probes));
    let connections = Connections::new(max_connections);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => {
                sampler.abort();
                return;
            }
        };
        // At the cap with every connection busy: no room, and the client is let go at once.
        let Some(admitted) = connections.admit() else { continue };
        let peer = Peer { addr: peer, local: stream.local_addr().ok() };
        let (app, security) = (app.clone(), security.clone());
        tokio::spawn(async move {
            let activity = admitted.activity.clone();
            let serving = async move {
                match security.as_ref().and_then(|s| s.tls.clone()) {
                    // A client that does not speak TLS (plain HTTP) fails here and gets nothing.
                    Some(acceptor) => {
                        if let Ok(Ok(tls)) =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            serve_connection(tls, app, security, activity, peer).await;
                        }
                    }
                    None => serve_connection(stream, app, security, activity, peer).await,
                }
            };
            let mut admitted = admitted;
            tokio::select! {
                () = serving => {}
                // Shed for a newer connection: dropping the connection closes it.
                _ = &mut admitted.shed => {}
            }
        });
    }
}

/// The two ends of a connection.
#[derive(Clone, Copy)]
struct Peer {
    addr: SocketAddr,
    local: Option<SocketAddr>,
}

impl Peer {
    /// Whether a request comes from lookout's own prober: over one of its connections, or
    /// from this machine with the prober's User-Agent (a connection through a proxy). Neither
    /// can be claimed from another machine, so no scraper elsewhere can be refused by it.
    /// Asked when a request has arrived, not at accept: the prober lists its connection once
    /// its connect returns, which can be after the server accepted it, but before it writes.
    fn is_own_prober(&self, headers: &http::HeaderMap) -> bool {
        self.local.is_some_and(|local| crate::probe::dial::is_own_connection(self.addr, local))
            || (headers
                .get(header::USER_AGENT)
                .is_some_and(|ua| ua.as_bytes().starts_with(crate::probe::http::USER_AGENT_PREFIX))
                && crate::probe::dial::is_local_ip(self.addr.ip()))
    }
}

async fn serve_connection<S>(
    io: S,
    app: Arc<App>,
    security: Option<Arc<Security>>,
    activity: Arc<Activity>,
    peer: Peer,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let (app, security, activity) = (app.clone(), security.clone(), activity.clone());
        async move {
            if let Some(security) = security.filter(|s| s.needs_auth()) {
                let header =
                    request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                match security.authorize(header).await {
                    Access::Granted => {}
                    Access::Denied => {
                        app.metrics.record_http_request("unauthorized", 401);
                        let mut response =
                            Reply::text(StatusCode::UNAUTHORIZED, "Unauthorized\n".into())
                                .into_response();
                        response.headers_mut().insert(
                            header::WWW_AUTHENTICATE,
                            header::HeaderValue::from_static("Basic realm=\"lookout\""),
                        );
                        return Ok::<_, Infallible>(response);
                    }
                    Access::Busy => {
                        app.metrics.record_http_request("unauthorized", 429);
                        let mut response = Reply::text(
                            StatusCode::TOO_MANY_REQUESTS,
                            "Too many password checks waiting\n".into(),
                        )
                        .into_response();
                        response
                            .headers_mut()
                            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                        return Ok::<_, Infallible>(response);
                    }
                }
            }
            // Busy (not to be shed for a newcomer) only once it is known who asks: a flood of
            // wrong passwords must not hold every slot away from a scraper.
            let busy = activity.busy();
            let response = route(&app, request, peer).await;
            // A body written as it is read keeps the connection busy until it is all sent, so
            // a scrape in flight is not shed for a newcomer (unless its reader stalls).
            Ok::<_, Infallible>(match hyper::body::Body::size_hint(response.body()).exact() {
                Some(_) => response,
                None => response.map(|body| connections::Streaming::new(body, busy).boxed()),
            })
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A client that connects and sends nothing is let go after these, so idle connections
/// cannot use up the file descriptors scrapes need.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn route(app: &Arc<App>, request: Request<Incoming>, peer: Peer) -> Response<ResponseBody> {
    let gzip = request
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|e| e.split(';').next().is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip")))
        });
    let path = request.uri().path();
    if matches!(request.method(), &Method::GET | &Method::HEAD) && path == "/metrics" {
        let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
        let format = Format::negotiate(accept);
        app.metrics.record_http_request("metrics", 200);
        let body = metrics::MetricsBody::new(app.clone(), format, gzip);
        return respond(StatusCode::OK, format.content_type(), gzip, body.boxed());
    }
    let (handler, reply) = match (request.method(), path) {
        (&Method::GET | &Method::HEAD, "/probe") => {
            let own = peer.is_own_prober(request.headers());
            (
                "probe",
                probe_endpoint::handle(app, request.uri().query(), request.headers(), own).await,
            )
        }
        (&Method::GET | &Method::HEAD, "/queries") => {
            ("queries", queries(app, request.uri().query()))
        }
        (&Method::GET | &Method::HEAD, "/-/healthy") => {
            ("healthy", Reply::text(StatusCode::OK, "Healthy\n".into()))
        }
        (&Method::GET | &Method::HEAD, "/-/ready") => {
            ("ready", Reply::text(StatusCode::OK, "Ready\n".into()))
        }
        (&Method::POST | &Method::PUT, "/-/reload") => ("reload", reload(app)),
        (_, "/-/reload") => (
            "reload",
            Reply::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "This endpoint requires a POST request.\n".into(),
            ),
        ),
        (&Method::GET | &Method::HEAD, "/") => {
            ("status", status_page::handle(app, request.uri().query()))
        }
        (&Method::GET | &Method::HEAD, "/api/v1/status") => {
            ("status_api", status::api(app, request.uri().query()))
        }
        (&Method::GET | &Method::HEAD, badge) if badge.starts_with("/badge/") => {
            ("badge", status::badge(app, &badge["/badge/".len()..]))
        }
        _ => ("other", Reply::text(StatusCode::NOT_FOUND, "Not found\n".into())),
    };
    app.metrics.record_http_request(handler, reply.status.as_u16());
    reply.into_response_encoded(gzip)
}

/// Entries of a `/queries` page by default, and at most.
const QUERIES_PAGE: usize = 500;
const QUERIES_PAGE_MAX: usize = 10_000;

/// The query index: hash → SQL, a page at a time (`?limit=`, `?after=` the last page's `next`),
/// or `?hash=` one.
fn queries(app: &App, query: Option<&str>) -> Reply {
    let (mut hash, mut after, mut limit) = (None, None, QUERIES_PAGE);
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "hash" => hash = Some(value.into_owned()),
            "after" => after = Some(value.into_owned()),
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=QUERIES_PAGE_MAX).contains(&n) => limit = n,
                _ => {
                    let message = format!("limit must be 1 to {QUERIES_PAGE_MAX}\n");
                    return Reply::text(StatusCode::BAD_REQUEST, message);
                }
            },
            _ => {}
        }
    }
    let page = app.logs.queries(hash.as_deref(), after.as_deref(), limit);
    let status = if hash.is_some() && page.items.is_empty() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let items: Vec<serde_json::Value> = page
        .items
        .into_iter()
        .map(|(source, hash, sql)| serde_json::json!({"source": source, "hash": hash, "sql": sql}))
        .collect();
    let mut answer = serde_json::json!({ "queries": items });
    if let Some(next) = page.next {
        answer["next"] = serde_json::Value::String(next);
    }
    let mut body = serde_json::to_string_pretty(&answer).unwrap_or_default();
    body.push('\n');
    Reply { status, content_type: "application/json", body }
}

fn reload(app: &App) -> Reply {
    match tokio::task::block_in_place(|| app.reload()) {
        Ok(()) => Reply::text(StatusCode::OK, "configuration reloaded\n".into()),
        Err(e) => Reply::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        ),
    }
}
