//! Loopback test peers: an HTTP(S) server with routes for every prober option, raw TCP
//! servers for faults, rcgen certificate chains, and helpers to run probes and the binary.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lookout::config::{ProbesFile, Source};
use lookout::metrics::exposition::Family;
pub use lookout::metrics::families::*;
use lookout::probe::{Outcome, PreparedModule};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Parses `module_yaml` (one module's body) and runs it against `target`.
pub async fn probe(module_yaml: &str, target: &str) -> Outcome {
    probe_with_timeout(module_yaml, target, Duration::from_secs(5)).await
}

pub async fn probe_with_timeout(module_yaml: &str, target: &str, timeout: Duration) -> Outcome {
    let module = prepare(module_yaml);
    lookout::probe::run(&module, target, timeout).await
}

pub fn prepare(module_yaml: &str) -> PreparedModule {
    let indented: String = module_yaml.lines().map(|l| format!("    {l}\n")).collect();
    let text = format!("modules:\n  m:\n{indented}");
    let source =
        Source::from_text(Path::new("test-probes.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let file = ProbesFile::load(&source).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let (name, module) = file.modules.into_iter().next().unwrap();
    PreparedModule::prepare(&name, module, &source).unwrap_or_else(|e| panic!("{e}"))
}

pub fn family<'a>(outcome: &'a Outcome, def: &FamilyDef) -> Option<&'a Family> {
    outcome.family(def)
}

/// The label sets of every sample of `def`, as (name, value) string pairs.
pub fn label_sets(outcome: &Outcome, def: &FamilyDef) -> Vec<Vec<(String, String)>> {
    family(outcome, def)
        .map(|f| {
            f.samples
                .iter()
                .map(|s| s.labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
                .collect()
        })
        .unwrap_or_default()
}

pub fn label<'a>(set: &'a [(String, String)], name: &str) -> &'a str {
    set.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
}

pub fn reason(outcome: &Outcome) -> &'static str {
    outcome.failure.as_ref().map_or("none", |f| f.reason.as_str())
}

// ---------------------------------------------------------------- HTTP server

/// Routes: `/` hello; `/status?code=N`; `/redirect?n=N`; `/to?url=U` (302 to U); `/loop`; `/echo` (method, body,
/// headers); `/gzip`, `/deflate`, `/br`; `/headers?name=value…` (sets response headers; `body=`
/// sets the body);
/// `/big?bytes=N`. The compressed routes answer 406 unless asked for their encoding.
async fn route(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let query: Vec<(String, String)> =
        form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let respond = |status: u16, body: Vec<u8>| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        r
    };
    match request.uri().path() {
        "/" => respond(200, b"hello world".to_vec()),
        "/status" => {
            respond(param("code").and_then(|c| c.parse().ok()).unwrap_or(200), b"status".to_vec())
        }
        "/redirect" => {
            let n: u32 = param("n").and_then(|n| n.parse().ok()).unwrap_or(0);
            if n == 0 {
                return respond(200, b"arrived".to_vec());
            }
            let mut r = respond(302, Vec::new());
            r.headers_mut().insert("location", format!("/redirect?n={}", n - 1).parse().unwrap());
            r
        }
        "/to" => {
            let mut r = respond(302, Vec::new());
            r.headers_mut().insert("location", param("url").unwrap_or_default().parse().unwrap());
            r
        }
        "/loop" => {
            let mut r = respond(302, Vec::new());
            r.headers_mut().insert("location", "/loop".parse().unwrap());
            r
        }
        "/echo" => {
            let mut text =
                format!("method={}\nversion={:?}\n", request.method(), request.version());
            for (name, value) in request.headers() {
                text.push_str(&format!("{}: {}\n", name, value.to_str().unwrap_or("?")));
            }
            let body =
                request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            text.push_str(&format!("body={}\n", String::from_utf8_lossy(&body)));
            respond(200, text.into_bytes())
        }
        "/gzip" | "/deflate" | "/br" => {
            let accepted = request
                .headers()
                .get("accept-encoding")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            if !accepted.contains(&request.uri().path()[1..]) {
                return respond(406, b"ask for the encoding".to_vec());
            }
            let plain = b"hello compressed world, hello compressed world";
            let (encoding, body) = match request.uri().path() {
                "/gzip" => {
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    e.write_all(plain).unwrap();
                    ("gzip", e.finish().unwrap())
                }
                "/deflate" => {
                    let mut e =
                        flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                    e.write_all(plain).unwrap();
                    ("deflate", e.finish().unwrap())
                }
                _ => {
                    let mut out = Vec::new();
                    brotli::BrotliCompress(&mut &plain[..], &mut out, &Default::default()).unwrap();
                    ("br", out)
                }
            };
            let mut r = respond(200, body);
            r.headers_mut().insert("content-encoding", encoding.parse().unwrap());
            r
        }
        "/headers" => {
            let body = param("body").unwrap_or_else(|| "with headers".into());
            let mut r = respond(200, body.into_bytes());
            for (k, v) in query.iter().filter(|(k, _)| k != "body") {
                r.headers_mut().append(
                    hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            r
        }
        "/big" => {
            respond(200, vec![b'a'; param("bytes").and_then(|b| b.parse().ok()).unwrap_or(1 << 20)])
        }
        _ => respond(404, b"not found".to_vec()),
    }
}

async fn serve_http<S>(io: S, h2: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(|r| async move { Ok::<_, Infallible>(route(r).await) });
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(io), service)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(io), service)
            .await;
    }
}

pub async fn http_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_http(stream, false));
        }
    });
    addr
}

/// An HTTPS server presenting `chain`; with `client_ca`, it requires a client certificate.
pub async fn https_server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<CertificateDer<'static>>,
    h2: bool,
) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols =
        if h2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    serve_http(tls, h2).await;
                }
            });
        }
    });
    addr
}

/// A TCP server that hands each connection to `handler`.
pub async fn raw_server<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handler(stream));
        }
    });
    addr
}

/// Runs a loopback server on a plain thread with its own runtime, for the binary to probe.
pub fn in_background<F, Fut>(start: F) -> std::net::SocketAddr
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::net::SocketAddr>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            tx.send(start().await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// A port on which nothing listens.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// ---------------------------------------------------------------- certificates

pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub key: KeyPair,
}

impl Leaf {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    pub fn pem(&self) -> String {
        pem(&self.der)
    }
}

pub fn pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> =
        b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

fn params(
    cn: &str,
    names: &[&str],
    valid_from_days: i64,
    valid_until_days: i64,
) -> CertificateParams {
    let mut p =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(valid_from_days);
    p.not_after = now + time::Duration::days(valid_until_days);
    p
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        Ca::with_validity(cn, -1, 3650)
    }

    pub fn with_validity(cn: &str, from_days: i64, until_days: i64) -> Ca {
        let mut p = params(cn, &[], from_days, until_days);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ca { issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap() }
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, cn: &str, from_days: i64, until_days: i64) -> Ca {
        let mut p = params(cn, &[], from_days, until_days);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ca {
            issuer: CertifiedIssuer::signed_by(p, KeyPair::generate().unwrap(), &self.issuer)
                .unwrap(),
        }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    pub fn leaf(&self, cn: &str, names: &[&str], from_days: i64, until_days: i64) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = params(cn, names, from_days, until_days).signed_by(&key, &self.issuer).unwrap();
        Leaf { der: cert.der().clone(), key }
    }
}

/// A self-signed leaf, trusted by nobody.
pub fn self_signed(cn: &str, names: &[&str]) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let cert = params(cn, names, -1, 365).self_signed(&key).unwrap();
    Leaf { der: cert.der().clone(), key }
}

pub fn write_file(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

// ---------------------------------------------------------------- the binary

pub const LOOKOUT: &str = env!("CARGO_BIN_EXE_lookout");

/// A lookout process serving on a free port; killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts lookout in `dir` with `flags` on a free port; returns once it accepts connections.
    pub fn spawn(dir: &Path, flags: &[String]) -> Server {
        Server::spawn_at(dir, flags, format!("127.0.0.1:{}", closed_port()).parse().unwrap())
    }

    /// [`Server::spawn`] on `addr`, for configurations that name lookout's own address.
    pub fn spawn_at(dir: &Path, flags: &[String], addr: SocketAddr) -> Server {
        Server::spawn_with_env(dir, flags, addr, &[])
    }

    /// [`Server::spawn_at`] with environment variables set (a trust store in `SSL_CERT_FILE`).
    pub fn spawn_with_env(
        dir: &Path,
        flags: &[String],
        addr: SocketAddr,
        env: &[(&str, &Path)],
    ) -> Server {
        let child = std::process::Command::new(LOOKOUT)
            .current_dir(dir)
            .envs(env.iter().copied())
            .args(flags)
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Server::ready(child, addr)
    }

    /// `child`, a lookout started to serve on `addr`, once it accepts connections.
    pub fn ready(child: std::process::Child, addr: SocketAddr) -> Server {
        let server = Server { child, addr };
        for _ in 0..100 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("lookout did not start on {addr}");
    }

    /// Debian's Prometheus on `config` (`flags` added), its data under `dir`, serving on
    /// `port` (which the configuration may name); stopped when dropped.
    pub fn prometheus(config: &Path, dir: &Path, port: u16, flags: &[&str]) -> Server {
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("prom-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(flags)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus; .ci/run installs it)");
        Server { child, addr: format!("127.0.0.1:{port}").parse().unwrap() }
    }

    /// lookout on `probes_yaml` alone.
    pub fn start(dir: &Path, probes_yaml: &str) -> Server {
        let probes = write_file(dir, "probes.yaml", probes_yaml);
        Server::spawn(dir, &[format!("--config.probes={}", probes.display())])
    }

    /// lookout on `probes` and `rules`, keeping its positions file in `dir`.
    pub fn with_logs(dir: &Path, probes: &Path, rules: &Path) -> Server {
        let flags = [
            format!("--config.probes={}", probes.display()),
            format!("--config.log-rules={}", rules.display()),
            format!("--positions.file={}", dir.join("positions.json").display()),
        ];
        Server::spawn(dir, &flags)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `lookout --once` on `dir/probes.yaml`, which must succeed; its output.
pub fn once_ok(dir: &Path) -> String {
    let out = std::process::Command::new(LOOKOUT)
        .current_dir(dir)
        .args(["--once", "--config.probes=probes.yaml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// Writes each case's `yaml` to `dir/file` and runs lookout with `flags` plus `FLAG=that file`;
/// each must be refused (exit 2) with `file:LINE:COL:` (`position`) and `message` on stderr.
pub fn assert_config_errors(
    dir: &Path,
    file: &str,
    flag: &str,
    flags: &[String],
    cases: &[(&str, &str, &str)],
) {
    for (yaml, position, message) in cases {
        let path = write_file(dir, file, yaml);
        let out = std::process::Command::new(LOOKOUT)
            .current_dir(dir)
            .args(flags)
            .arg(format!("{flag}={}", path.display()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {err}");
        assert!(
            err.contains(&format!("{file}:{position}:")) && err.contains(message),
            "expected {position} and {message:?} in {err}"
        );
    }
}

pub struct HttpReply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// A minimal blocking HTTP/1.0 client, so tests do not depend on the code under test.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<HttpReply> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(HttpReply { status, headers: head.to_string(), body: body.to_string() })
}

pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Option<HttpReply> {
    request(addr, "GET", path, headers)
}

/// The value of the first sample line that starts with `prefix` (name plus labels).
pub fn sample_value(exposition: &str, prefix: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------- nginx

const NGINX: &str = "/usr/sbin/nginx";

/// A real nginx (Debian's package) in `dir`, one worker, with `http` as the body of its `http {}`
/// block; ready once `port` answers. Stopped gracefully when dropped, so its logs are complete.
pub struct Nginx {
    pub child: std::process::Child,
    pub port: u16,
}

impl Nginx {
    pub fn start(dir: &Path, http: &str, port: u16) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "nginx must be installed (Debian package nginx); .ci/run installs it"
        );
        let d = dir.display();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\nhttp {{\n  \
             client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; \
             uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n  {http}\n}}\n"
        );
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let conf_path = write_file(dir, "nginx.conf", conf);
        let child = std::process::Command::new(NGINX)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let nginx = Nginx { child, port };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..100 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return nginx;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
    }

    /// Stops nginx after it finished every request (`SIGQUIT`).
    pub fn stop(mut self) {
        self.quit();
    }

    fn quit(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.quit();
    }
}
