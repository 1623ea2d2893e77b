//! Prometheus' http_sd: target groups as JSON from a URL, asked with a GET that must be
//! answered 200 and `Content-Type: application/json`, over plain HTTP or TLS, with
//! `basic_auth` or `authorization`, following redirects as Go's client does. Credentials go
//! to the URL's own scheme, host and port only, never to where a redirect leads elsewhere.

use super::{parse_groups, TargetGroup};
use crate::config::probes::HttpSdConfig;
use crate::config::{ConfigError, Source};
use crate::probe::http::Credentials;
use crate::probe::tls::TlsClient;
use crate::probe::Report;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// The largest answer read, as Prometheus' limit.
const MAX_BYTES: usize = 100 << 20;
/// Redirects followed, as Go's HTTP client (Prometheus' `follow_redirects`, on by default).
const MAX_REDIRECTS: usize = 10;

/// One `http_sd_configs` entry, prepared.
pub struct HttpSource {
    pub url: String,
    pub refresh: Duration,
    credentials: Credentials,
    tls: TlsClient,
    follow_redirects: bool,
}

impl HttpSource {
    pub fn prepare(
        config: HttpSdConfig,
        refresh: Duration,
        source: &Source,
    ) -> Result<HttpSource, ConfigError> {
        let credentials = Credentials::from_auth(
            config.basic_auth.as_ref().map(|a| &a.value),
            config.authorization.as_ref().map(|a| &a.value),
        );
        Ok(HttpSource {
            tls: TlsClient::new(&config.tls_config, &[b"http/1.1"], source)?,
            url: config.url.value,
            refresh,
            credentials,
            follow_redirects: config.follow_redirects,
        })
    }

    /// The target groups the URL gives now.
    pub async fn fetch(&self) -> Result<Vec<TargetGroup>, String> {
        // As Prometheus: a request, redirects included, may take the refresh interval.
        let body = tokio::time::timeout(self.refresh, self.get())
            .await
            .map_err(|_| format!("no answer within the refresh interval ({:?})", self.refresh))??;
        let text = std::str::from_utf8(&body).map_err(|_| "the answer is not UTF-8".to_string())?;
        parse_groups(text, true).map_err(|e| format!("in the answer: {}", e.trim_start()))
    }

    /// The body of the URL's answer, following redirects.
    async fn get(&self) -> Result<Bytes, String> {
        let first: http::Uri = self.url.parse().map_err(|e| format!("{e}"))?;
        let mut uri = first.clone();
        for _ in 0..=MAX_REDIRECTS {
            let same_origin =
                uri.scheme() == first.scheme() && uri.authority() == first.authority();
            let authorization = match same_origin {
                true => self.credentials.header().map_err(|f| f.message)?,
                false => None,
            };
            let stream = connect(&uri).await?;
            let (response, connection) = if uri.scheme_str() == Some("https") {
                let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
                let name = self.tls.server_name().filter(|_| same_origin).unwrap_or(host);
                // The probe metrics a handshake records are of no use here.
                let mut report = Report::new(std::time::Instant::now());
                let stream = self
                    .tls
                    .handshake(stream, name, &mut report)
                    .await
                    .map_err(|f| format!("TLS: {}", f.message))?;
                self.send(stream, &uri, authorization).await?
            } else {
                self.send(stream, &uri, authorization).await?
            };
            let status = response.status();
            // The statuses Go's client follows.
            if [301, 302, 303, 307, 308].contains(&status.as_u16()) && self.follow_redirects {
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .ok_or_else(|| format!("answered {status} without a Location"))?;
                let location = location.to_str().map_err(|_| {
                    format!("answered {status} with a Location that is not ASCII: {location:?}")
                })?;
                uri = redirect_target(&uri, location)?;
                continue;
            }
            if status != http::StatusCode::OK {
                return Err(format!("answered {status}"));
            }
            let content_type = response.headers().get(http::header::CONTENT_TYPE);
            let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
            if !is_json(content_type) {
                return Err(format!(
                    "answered Content-Type {content_type:?}, not application/json"
                ));
            }
            let body = Limited::new(response.into_body(), MAX_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            drop(connection);
            return Ok(body);
        }
        Err(format!("more than {MAX_REDIRECTS} redirects"))
    }

    /// Sends the GET over `io`; the connection lives as long as what is returned with the
    /// answer.
    async fn send<IO>(
        &self,
        io: IO,
        uri: &http::Uri,
        authorization: Option<http::HeaderValue>,
    ) -> Result<(http::Response<hyper::body::Incoming>, AbortOnDrop<()>), String>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .map_err(|e| e.to_string())?;
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let mut request = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, concat!("lookout/", env!("CARGO_PKG_VERSION")))
            .header("X-Prometheus-Refresh-Interval-Seconds", self.refresh.as_secs().to_string());
        if let Some(value) = authorization {
            request = request.header(http::header::AUTHORIZATION, value);
        }
        let request = request.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        Ok((response, driver))
    }
}

async fn connect(uri: &http::Uri) -> Result<tokio::net::TcpStream, String> {
    let host = uri.host().ok_or("no host")?.trim_matches(['[', ']']).to_string();
    let default_port = if uri.scheme_str() == Some("https") { 443 } else { 80 };
    let port = uri.port_u16().unwrap_or(default_port);
    tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))
}

/// A task aborted when this is dropped: the connection of one request.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where a redirect from `from` to `location` leads, resolved as a browser (and Go's client)
/// would: an absolute URL, one without a scheme (`//host/x`), a path, or a path relative to
/// `from`'s (keeping its scheme). It must lead to an `http://` or `https://` URL.
fn redirect_target(from: &http::Uri, location: &str) -> Result<http::Uri, String> {
    let bad = || format!("redirected to {location:?}, which is not an http:// or https:// URL");
    let authority = from.authority().ok_or_else(bad)?;
    let scheme = from.scheme_str().unwrap_or("http");
    // A fragment is never sent.
    let location = location.split_once('#').map_or(location, |(before, _)| before);
    let has_scheme = location
        .split_once(':')
        .is_some_and(|(scheme, _)| !scheme.is_empty() && !scheme.contains(['/', '?', '#']));
    let absolute = if location.is_empty() {
        let here = from.path_and_query().map_or("/", |p| p.as_str());
        format!("{scheme}://{authority}{here}")
    } else if let Some(query) = location.strip_prefix('?') {
        format!("{scheme}://{authority}{}?{query}", from.path())
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else if has_scheme {
        location.to_string()
    } else {
        let (path, query) =
            location.split_once('?').map_or((location, None), |(p, q)| (p, Some(q)));
        let base = from.path();
        let directory = &base[..base.rfind('/').map_or(0, |i| i + 1)];
        let joined = without_dot_segments(&format!("{directory}{path}"));
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        format!("{scheme}://{authority}{joined}{query}")
    };
    let to: http::Uri = absolute.parse().map_err(|_| bad())?;
    let credentials = to.authority().is_some_and(|a| a.as_str().contains('@'));
    if !matches!(to.scheme_str(), Some("http" | "https")) || to.host().is_none() || credentials {
        return Err(bad());
    }
    Ok(to)
}

/// A path with its `.` and `..` segments resolved (RFC 3986, 5.2.4).
fn without_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." | ".." => {
                if *segment == ".." && kept.len() > 1 {
                    kept.pop();
                }
                if last {
                    kept.push("");
                }
            }
            other => kept.push(other),
        }
    }
    let joined = kept.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

/// Prometheus' check: `application/json`, with at most a UTF-8 charset, in any case.
fn is_json(content_type: &str) -> bool {
    let mut parts = content_type.split(';').map(str::trim);
    let media = parts.next().unwrap_or("");
    let charset_ok = match parts.next() {
        None => true,
        Some(p) => {
            let p = p.to_ascii_lowercase();
            let value = p.strip_prefix("charset").map(str::trim_start);
            let value = value.and_then(|v| v.strip_prefix('=')).map(str::trim_start);
            matches!(value, Some("utf-8" | "\"utf-8\""))
        }
    };
    media.eq_ignore_ascii_case("application/json") && charset_ok && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_as_prometheus_accepts_them() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "",
            "text/html",
            "application/json; charset=latin1",
            "application/jsonx",
            "application/json; a=b; c=d",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn redirects_lead_to_http_and_https_only() {
        let from: http::Uri = "http://sd.local:8080/v1/sd/a?x=1".parse().unwrap();
        let to = |location: &str| redirect_target(&from, location).map(|u| u.to_string());
        assert_eq!(to("/b?y=2").unwrap(), "http://sd.local:8080/b?y=2");
        assert_eq!(to("http://other/c").unwrap(), "http://other/c");
        assert_eq!(to("//other/x").unwrap(), "http://other/x");
        assert_eq!(to("b").unwrap(), "http://sd.local:8080/v1/sd/b");
        assert_eq!(to("../b?z").unwrap(), "http://sd.local:8080/v1/b?z");
        assert_eq!(to("./").unwrap(), "http://sd.local:8080/v1/sd/");
        assert_eq!(to("../../../../x").unwrap(), "http://sd.local:8080/x");
        assert_eq!(to("https://other/").unwrap(), "https://other/");
        assert_eq!(to("?y=2").unwrap(), "http://sd.local:8080/v1/sd/a?y=2");
        assert_eq!(to("#top").unwrap(), "http://sd.local:8080/v1/sd/a?x=1");
        assert_eq!(to("/b#top").unwrap(), "http://sd.local:8080/b");
        let secure: http::Uri = "https://sd.local/v1/a".parse().unwrap();
        assert_eq!(redirect_target(&secure, "//other/x").unwrap().to_string(), "https://other/x");
        assert_eq!(redirect_target(&secure, "b").unwrap().to_string(), "https://sd.local/v1/b");
        for bad in ["ftp://x/", "http://u:p@other/", "//u:p@other/", "http:"] {
            assert!(to(bad).is_err(), "{bad}");
        }
    }
}
