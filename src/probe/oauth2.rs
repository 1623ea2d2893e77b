//! `oauth2:` of an http module: the client-credentials grant of Prometheus' common HTTP client.
//! Each probe asks `token_url` for a token (as blackbox, which builds its client per probe),
//! then sends it as `Authorization: <token_type> <access_token>`.
//!
//! The token request is a form POST with `grant_type=client_credentials`, `scope` (the scopes
//! joined by spaces) and `endpoint_params`, the client authenticated with HTTP Basic (the
//! first style Go's oauth2 package tries). Its own `tls_config` and proxy keys apply to it.

use super::http::{exchange, parse_target, Secret};
use super::proxy::ProxyChoice;
use super::tls::TlsClient;
use super::{dial, Failure, FailureReason, Report};
use crate::config::probes::OAuth2;
use crate::config::{ConfigError, Source};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::net::SocketAddr;
use std::time::Instant;

/// A token response is a small JSON document.
const MAX_TOKEN_RESPONSE: usize = 1 << 20;

pub struct OAuth2Client {
    client_id: String,
    secret: Secret,
    /// The form sent, but the client's credentials.
    form: String,
    token_url: Uri,
    tls: TlsClient,
    proxy: ProxyChoice,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: String,
}

impl OAuth2Client {
    pub fn prepare(config: &Spanned<OAuth2>, source: &Source) -> Result<OAuth2Client, ConfigError> {
        let oauth2 = &config.value;
        let token_url = parse_target(&oauth2.token_url).map_err(|f| {
            source.error_at_span(config, format!("oauth2: token_url: {}", f.message))
        })?;
        let secret = match &oauth2.client_secret_file {
            Some(file) => {
                source.warn_if_missing(file, "oauth2 client_secret_file");
                Secret::File(file.value.clone())
            }
            None => Secret::Inline(oauth2.client_secret.clone().unwrap_or_default()),
        };
        let mut form = form_urlencoded::Serializer::new(String::new());
        if !oauth2.endpoint_params.contains_key("grant_type") {
            form.append_pair("grant_type", "client_credentials");
        }
        if !oauth2.scopes.is_empty() {
            form.append_pair("scope", &oauth2.scopes.join(" "));
        }
        for (key, value) in &oauth2.endpoint_params {
            form.append_pair(key, value);
        }
        Ok(OAuth2Client {
            client_id: oauth2.client_id.clone(),
            secret,
            form: form.finish(),
            token_url,
            tls: TlsClient::new(&oauth2.tls_config, &[b"http/1.1"], source)?,
            proxy: ProxyChoice::prepare(&oauth2.proxy_keys(), source)?,
        })
    }

    /// A fresh token as an Authorization header value (sensitive, so never printed).
    pub async fn authorization(&self, report: &mut Report) -> Result<HeaderValue, Failure> {
        let failed = |message: String| {
            Failure::new(FailureReason::OAuth2, format!("token from {}: {message}", self.token_url))
        };
        // The token exchange is not the probe's: its TLS and address gauges stay out of the
        // probe's report, only its log lines go in.
        let mut own = Report::new(Instant::now());
        let result = self.fetch(&mut own).await;
        for line in own.log_lines() {
            report.log(format_args!("oauth2: {line}"));
        }
        let token = result.map_err(|f| failed(f.message))?;
        let scheme = match token.token_type.as_str() {
            "" => "Bearer".to_string(),
            kind if kind.eq_ignore_ascii_case("bearer") => "Bearer".to_string(),
            kind => kind.to_string(),
        };
        let mut value = HeaderValue::from_str(&format!("{scheme} {}", token.access_token))
            .map_err(|_| failed("the token is not a valid header value".into()))?;
        value.set_sensitive(true);
        report.log("oauth2: token received");
        Ok(value)
    }

    async fn fetch(&self, report: &mut Report) -> Result<TokenResponse, Failure> {
        let uri = &self.token_url;
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let proxy = self.proxy.for_target(uri);
        let stream = match proxy {
            Some(proxy) => self.proxy.connect(proxy, https.then_some((host, port)), report).await?,
            None => {
                let resolved =
                    dial::resolve(host, crate::config::values::IpProtocol::V4, true, report)
                        .await?;
                dial::connect(SocketAddr::new(resolved.ip, port), None, report).await?
            }
        };
        let authority = uri.authority().map_or("", |a| a.as_str()).to_string();
        let target = if proxy.is_some() && !https {
            uri.to_string()
        } else {
            uri.path_and_query().map_or("/", |p| p.as_str()).to_string()
        };
        let request = self.request(&target, &authority)?;
        let (response, _connection) = if https {
            let name = self.tls.server_name().unwrap_or(host);
            let stream = self.tls.handshake(stream, name, report).await?;
            exchange(stream, false, request, report).await?
        } else {
            exchange(stream, false, request, report).await?
        };
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_TOKEN_RESPONSE)
            .collect()
            .await
            .map_err(|e| Failure::new(FailureReason::OAuth2, format!("reading the response: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(Failure::new(
                FailureReason::OAuth2,
                format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            ));
        }
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            Failure::new(FailureReason::OAuth2, format!("the response is not a token: {e}"))
        })?;
        if token.access_token.is_empty() {
            return Err(Failure::new(FailureReason::OAuth2, "the response has no access_token"));
        }
        Ok(token)
    }

    fn request(&self, target: &str, authority: &str) -> Result<Request<Full<Bytes>>, Failure> {
        use base64::Engine;
        // As Go's oauth2 package: id and secret are form-encoded before Basic encoding.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(&self.client_id), encode(&self.secret.read()?));
        let mut basic = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
        .map_err(|_| {
            Failure::new(FailureReason::Credentials, "client credentials are not valid")
        })?;
        basic.set_sensitive(true);
        Request::builder()
            .method(Method::POST)
            .uri(target)
            .header(header::HOST, authority)
            .header(header::USER_AGENT, super::http::USER_AGENT)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::AUTHORIZATION, basic)
            .body(Full::new(Bytes::from(self.form.clone())))
            .map_err(|e| Failure::new(FailureReason::OAuth2, format!("building the request: {e}")))
    }
}
