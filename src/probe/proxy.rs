//! Which proxy a request goes through, as Prometheus' common HTTP client chooses it:
//! `proxy_url` (less the hosts of `no_proxy`) or, with `proxy_from_environment`, the
//! `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY` variables read at load; and the CONNECT tunnel
//! through it, with `proxy_connect_header`.
//!
//! Go's rules for `no_proxy` apply whenever it is consulted: `*` bypasses the proxy for
//! every host, an IP or CIDR matches addresses, `example.com` matches that name and its
//! subdomains, `.example.com` only subdomains, `host:port` only that port; and localhost and
//! loopback addresses are never proxied then.

use super::dial::{self, ProbeStream};
use super::{Failure, FailureReason, Report};
use crate::config::probes::ProxyKeys;
use crate::config::{ConfigError, Source};
use http::header::{HeaderName, HeaderValue};
use http::Uri;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A module's proxy settings, prepared at load.
#[derive(Default)]
pub struct ProxyChoice {
    /// `proxy_url`, or the environment's proxies for http and https targets.
    http: Option<Uri>,
    https: Option<Uri>,
    /// Hosts that bypass the proxy; `None` when `proxy_url` is used without `no_proxy`,
    /// which Go's client applies to every host, loopback included.
    bypass: Option<NoProxy>,
    /// Sent with CONNECT; secrets, never logged.
    connect_headers: Vec<(HeaderName, HeaderValue)>,
}

impl ProxyChoice {
    pub fn prepare(keys: &ProxyKeys<'_>, source: &Source) -> Result<ProxyChoice, ConfigError> {
        let mut choice = ProxyChoice::default();
        if let Some(url) = keys.proxy_url {
            let uri = parse_proxy(&url.value).ok_or_else(|| {
                source.error_at_span(
                    url,
                    format!("proxy_url {:?} must be http://host:port", url.value),
                )
            })?;
            choice.http = Some(uri.clone());
            choice.https = Some(uri);
            choice.bypass = keys.no_proxy.map(|n| NoProxy::parse(&n.value));
        } else if let Some(env) = keys.proxy_from_environment.filter(|e| e.value) {
            let var = |names: [&str; 2]| {
                names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
            };
            let from_env = |names: [&str; 2]| match var(names) {
                None => Ok(None),
                Some(value) => parse_proxy(&value).map(Some).ok_or_else(|| {
                    source.error_at_span(
                        env,
                        format!(
                            "proxy_from_environment: {} {value:?} is not http://host:port",
                            names[0]
                        ),
                    )
                }),
            };
            choice.http = from_env(["HTTP_PROXY", "http_proxy"])?;
            choice.https = from_env(["HTTPS_PROXY", "https_proxy"])?;
            choice.bypass =
                Some(NoProxy::parse(&var(["NO_PROXY", "no_proxy"]).unwrap_or_default()));
        }
        for (name, values) in keys.proxy_connect_header {
            for value in values {
                let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    source.error_at_span(value, format!("invalid header name {name:?}"))
                })?;
                // A secret: the message names the header, never the value.
                let mut value = HeaderValue::from_str(&value.value).map_err(|_| {
                    source.error_at_span(
                        value,
                        format!("a value of header {name:?} is not a valid header value"),
                    )
                })?;
                value.set_sensitive(true);
                choice.connect_headers.push((header, value));
            }
        }
        Ok(choice)
    }

    /// Whether a proxy is configured at all (upstream's condition for
    /// `skip_resolve_phase_with_proxy`).
    pub fn is_configured(&self) -> bool {
        self.http.is_some() || self.https.is_some() || self.bypass.is_some()
    }

    /// The proxy for `uri`, if any.
    pub fn for_target(&self, uri: &Uri) -> Option<&Uri> {
        let https = uri.scheme_str() == Some("https");
        let proxy = if https { self.https.as_ref() } else { self.http.as_ref() }?;
        let host = uri.host().unwrap_or_default();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        match &self.bypass {
            Some(bypass) if bypass.bypasses(host, port) => None,
            _ => Some(proxy),
        }
    }

    /// Connects to `proxy`; for an https target, opens a CONNECT tunnel to `tunnel_to`.
    pub async fn connect(
        &self,
        proxy: &Uri,
        tunnel_to: Option<(&str, u16)>,
        report: &mut Report,
    ) -> Result<ProbeStream, Failure> {
        let proxy_failure = |message: String| Failure::new(FailureReason::Proxy, message);
        let host = proxy.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let port = proxy.port_u16().unwrap_or(80);
        let resolved = dial::resolve(host, crate::config::values::IpProtocol::V4, true, report)
            .await
            .map_err(|f| proxy_failure(format!("proxy {proxy}: {}", f.message)))?;
        let mut stream = dial::connect(SocketAddr::new(resolved.ip, port), None, report)
            .await
            .map_err(|f| proxy_failure(format!("proxy {proxy}: {}", f.message)))?;
        let Some((target_host, target_port)) = tunnel_to else {
            return Ok(stream);
        };
        let mut request = format!(
            "CONNECT {target_host}:{target_port} HTTP/1.1\r\nHost: {target_host}:{target_port}\r\n"
        )
        .into_bytes();
        for (name, value) in &self.connect_headers {
            request.extend_from_slice(name.as_str().as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        stream
            .write_all(&request)
            .await
            .map_err(|e| proxy_failure(format!("proxy {proxy}: {e}")))?;
        // Read the proxy's answer byte by byte so no tunnelled byte is consumed with it.
        let mut head = Vec::with_capacity(128);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 8192 {
                return Err(proxy_failure(format!("proxy {proxy}: response head too long")));
            }
            let byte =
                stream.read_u8().await.map_err(|e| proxy_failure(format!("proxy {proxy}: {e}")))?;
            head.push(byte);
        }
        let status_line =
            String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
        if status_line.split_whitespace().nth(1) != Some("200") {
            return Err(proxy_failure(format!("proxy {proxy} refused CONNECT: {status_line}")));
        }
        report.log(format_args!("proxy {proxy} opened a tunnel to {target_host}:{target_port}"));
        Ok(stream)
    }
}

/// A proxy URL as Go's client takes it: `http://` assumed when no scheme is written.
fn parse_proxy(text: &str) -> Option<Uri> {
    let text = if text.contains("://") { text.to_string() } else { format!("http://{text}") };
    let uri: Uri = text.parse().ok()?;
    (uri.scheme_str() == Some("http") && uri.host().is_some_and(|h| !h.is_empty())).then_some(uri)
}

/// A `no_proxy` list.
#[derive(Debug, Default)]
struct NoProxy {
    all: bool,
    networks: Vec<(IpAddr, u8)>,
    /// `(suffix starting with '.', whether the bare name matches too, port or 0 for any)`.
    domains: Vec<(String, bool, u16)>,
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut parsed = NoProxy::default();
        for entry in list.split(',').map(|e| e.trim().to_ascii_lowercase()) {
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                parsed.all = true;
                continue;
            }
            if let Some((ip, bits)) = entry.split_once('/') {
                if let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
                    parsed.networks.push((ip, bits));
                    continue;
                }
            }
            if let Ok(ip) = entry.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
                parsed.networks.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
                continue;
            }
            let (host, port) = match entry.rsplit_once(':') {
                Some((host, port)) if port.parse::<u16>().is_ok() => {
                    (host.to_string(), port.parse().unwrap_or(0))
                }
                _ => (entry.clone(), 0),
            };
            let host = host.strip_prefix('*').unwrap_or(&host).to_string();
            let (suffix, bare) = match host.strip_prefix('.') {
                Some(_) => (host.clone(), false),
                None => (format!(".{host}"), true),
            };
            parsed.domains.push((suffix, bare, port));
        }
        parsed
    }

    fn bypasses(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host == "localhost" {
            return true;
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return ip.is_loopback()
                || self.all
                || self.networks.iter().any(|(net, bits)| in_network(ip, *net, *bits));
        }
        self.all
            || self.domains.iter().any(|(suffix, bare, p)| {
                (*p == 0 || *p == port)
                    && (host.ends_with(suffix.as_str()) || (*bare && host == suffix[1..]))
            })
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits.min(32))).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits.min(128))).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_rules_as_go() {
        let list = NoProxy::parse("example.com, .sub.test, 10.0.0.0/8, 192.0.2.7, other.test:8080");
        let by = |host: &str, port| list.bypasses(host, port);
        assert!(by("example.com", 80) && by("www.example.com", 443));
        assert!(!by("notexample.com", 80));
        assert!(by("a.sub.test", 80) && !by("sub.test", 80));
        assert!(by("10.1.2.3", 80) && !by("11.1.2.3", 80));
        assert!(by("192.0.2.7", 80) && !by("192.0.2.8", 80));
        assert!(by("other.test", 8080) && !by("other.test", 80));
        assert!(by("localhost", 80) && by("127.0.0.1", 80) && by("[::1]", 80));
        assert!(NoProxy::parse("*").bypasses("anything.test", 80));
    }
}
